"""Where things are (siautil.paths): the checkout, the runs directories, URLs."""

from pathlib import Path

from siautil import paths
from siautil.config import RunConfig

ROOT = Path(__file__).resolve().parents[1]


def test_the_checkout_is_found_from_any_folder_inside_it_and_not_outside(tmp_path):
    assert paths.checkout(ROOT / "siautil" / "tasks") == ROOT
    assert paths.checkout(tmp_path) is None
    (tmp_path / "_toc.yml").write_text("root: intro\n")  # another book: no notebooks/ beside it
    assert paths.checkout(tmp_path) is None


def test_urls_and_local_paths():
    assert paths.is_url("s3://bucket/runs") and paths.is_url("gs://b")
    assert not paths.is_url("file:///tmp/runs") and not paths.is_url("/tmp/runs") and not paths.is_url(None)
    assert paths.local("file:///tmp/runs") == Path("/tmp/runs")


def test_a_run_directory_under_a_path_or_a_url(tmp_path, monkeypatch):
    run = RunConfig("toy-sft", "toy").shuffled("steps")
    assert paths.run_dir(run, "default", tmp_path) == tmp_path / "default" / "toy-sft__toy__shuffled-steps"
    assert paths.run_dir(run, "default", "s3://b/runs/") == "s3://b/runs/default/toy-sft__toy__shuffled-steps"
    monkeypatch.setenv("SIAUTIL_RUNS", str(tmp_path / "elsewhere"))
    assert paths.run_dir(run, "p") == tmp_path / "elsewhere" / "p" / run.name
    monkeypatch.delenv("SIAUTIL_RUNS")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SIAUTIL_CACHE", str(tmp_path / "cache"))
    assert paths.default_runs_dir() == tmp_path / "cache" / "runs" and paths.stored_dir() is None
