"""The book pipeline: papermill execution, strict parameters, clear failures, clean sources."""

import json
import shutil
from pathlib import Path

import pytest

from siautil import book

ROOT = Path(__file__).resolve().parents[1]


def _nb(cells):
    return {
        "cells": [
            {"cell_type": "code", "id": f"c{i}", "metadata": {"tags": tags}, "source": src,
             "execution_count": None, "outputs": []}
            for i, (src, tags) in enumerate(cells)
        ],
        "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
        "nbformat": 4, "nbformat_minor": 5,
    }


@pytest.fixture
def project(tmp_path):
    (tmp_path / "notebooks").mkdir()
    (tmp_path / "_toc.yml").write_text(
        "format: jb-book\nroot: book/intro\nchapters:\n- file: book/good\n- file: book/bad\n"
    )
    (tmp_path / "notebooks" / "good.ipynb").write_text(json.dumps(_nb([
        ("n = 3\nlabel = 'x'", ["parameters"]),
        ("print(label * n)", []),
    ])))
    (tmp_path / "notebooks" / "bad.ipynb").write_text(json.dumps(_nb([
        ("n = 3", ["parameters"]),
        ("x = 1", []),
        ("raise ValueError(f'broken with n={n}')", []),
    ])))
    return tmp_path


def test_chapters_follow_the_toc():
    names = book.chapters(ROOT)
    assert names[0] == "theory" or "theory" in names
    assert all((ROOT / "notebooks" / f"{n}.ipynb").exists() for n in names)


@pytest.mark.slow
def test_execute_hides_injected_cell_and_records_the_run(project):
    out = book.execute("good", {"n": 2, "label": "ab"}, root=project)
    nb = json.loads(out.read_text())
    injected = [c for c in nb["cells"] if "injected-parameters" in c["metadata"].get("tags", [])]
    assert injected and "remove-cell" in injected[0]["metadata"]["tags"]
    printed = "".join("".join(o.get("text", "")) for c in nb["cells"] for o in c.get("outputs", []))
    assert "abab" in printed
    assert "executed by papermill" in nb["cells"][-1]["source"]


@pytest.mark.slow
def test_chapters_run_at_once_and_one_failing_leaves_the_others_done(project, capsys):
    for name in ("also", "too"):  # each notes when it ran and how many threads its kernel was given
        (project / "notebooks" / f"{name}.ipynb").write_text(json.dumps(_nb([
            ("n = 1", ["parameters"]),
            ("import os, time\nstart = time.time()\ntime.sleep(4)\n"
             "print('ran', start, time.time(), 'threads', os.environ.get('OMP_NUM_THREADS'))", []),
        ])))
    with pytest.raises(book.ChapterError, match="broken with n=3"):
        book.build(["bad", "also", "too"], root=project, html=False, jobs=2)
    assert "3 chapters, 2 at once" in capsys.readouterr().out and "[book] bad failed"
    spans = {}
    for name in ("also", "too"):
        nb = json.loads((project / "book" / f"{name}.ipynb").read_text())
        assert "executed by papermill" in nb["cells"][-1]["source"]
        printed = "".join("".join(o.get("text", "")) for c in nb["cells"] for o in c.get("outputs", []))
        words = printed.split()
        spans[name] = (float(words[1]), float(words[2]))
        assert words[3] == "threads" and words[4].isdigit()  # set for the kernel, not left to torch
    (a0, a1), (b0, b1) = spans["also"], spans["too"]
    assert a0 < b1 and b0 < a1, f"the chapters ran one after the other: {spans}"


@pytest.mark.slow
def test_a_cell_past_its_time_is_stopped_and_the_chapter_tried_again(project, monkeypatch, capsys):
    (project / "notebooks" / "slow.ipynb").write_text(json.dumps(_nb([
        ("n = 1", ["parameters"]),
        ("import time\ntime.sleep(60)", []),
    ])))
    monkeypatch.setenv(book.TIMEOUT_ENV, "3")
    with pytest.raises(book.ChapterError, match=r"ran past 3 s twice.*\$SIAUTIL_CELL_TIMEOUT"):
        book.execute("slow", root=project)
    assert "executing the chapter again" in capsys.readouterr().out


def test_unknown_parameter_is_named(project):
    with pytest.raises(book.ChapterError, match=r"no parameter 'm'.*its parameters are: label, n"):
        book.execute("good", {"m": 1}, root=project)


def test_unknown_chapter_lists_the_chapters(project):
    with pytest.raises(book.ChapterError, match="chapters: good, bad"):
        book.execute("nope", root=project)


@pytest.mark.slow
def test_failing_cell_is_named(project):
    with pytest.raises(book.ChapterError) as err:
        book.execute("bad", {"n": 5}, root=project)
    msg = str(err.value)
    assert "'bad'" in msg and "cell 3" in msg and "broken with n=5" in msg


def test_parameters_parse_as_yaml():
    assert book.parse_parameters([("n", "20"), ("x", "0.5"), ("m", "gpt2"), ("flag", "true")]) == {
        "n": 20, "x": 0.5, "m": "gpt2", "flag": True}


def test_notebook_sources_have_no_outputs_and_a_parameters_cell():
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        nb = json.loads(path.read_text())
        assert not any(c.get("outputs") for c in nb["cells"]), f"{path.name} has outputs"
        tags = [t for c in nb["cells"] for t in c.get("metadata", {}).get("tags", [])]
        assert "parameters" in tags, f"{path.name} has no cell tagged parameters"


def _cells(nb):
    return [(c.cell_type, c.source.strip("\n"), sorted(c.metadata.get("tags", []))) for c in nb.cells]


def test_notebooks_are_in_sync_with_their_jupytext_sources():
    """Each chapter is a jupytext pair, notebooks/<name>.py (percent) and notebooks/<name>.ipynb
    (jupytext.toml): same cells, sources and tags on both sides, every cell tagged as the book
    needs it. After editing one side: .venv/bin/jupytext --sync notebooks/*.py"""
    jupytext = pytest.importorskip("jupytext")
    pys = {p.stem for p in (ROOT / "notebooks").glob("*.py")}
    ipynbs = {p.stem for p in (ROOT / "notebooks").glob("*.ipynb")}
    assert pys == ipynbs, f"unpaired: {sorted(pys ^ ipynbs)}"
    config = jupytext.config.load_jupytext_config(str(ROOT / "notebooks" / "theory.py"))
    for name in sorted(pys):
        ipynb = ROOT / "notebooks" / f"{name}.ipynb"
        assert config.default_formats(str(ipynb)), f"{name}.ipynb is not paired by jupytext.toml"
        py = jupytext.read(ROOT / "notebooks" / f"{name}.py")
        nb = jupytext.read(ipynb)
        hint = f"{name}.py and {name}.ipynb differ: run .venv/bin/jupytext --sync notebooks/{name}.py"
        assert _cells(py) == _cells(nb), hint
        first = nb.cells[0]
        assert {"remove-cell", "colab-setup"} <= set(first.metadata.get("tags", [])), \
            f"{name}: the first cell must be the hidden Colab set-up cell"
        assert "google.colab" in first.source


@pytest.mark.slow
def test_theory_chapter_runs_with_small_parameters(tmp_path):
    (tmp_path / "notebooks").mkdir()
    shutil.copy(ROOT / "_toc.yml", tmp_path)
    shutil.copy(ROOT / "notebooks" / "theory.ipynb", tmp_path / "notebooks")
    out = book.execute("theory", {"n_joints": 5, "steps": 2, "seed": 1}, root=tmp_path)
    nb = json.loads(out.read_text())
    images = [o for c in nb["cells"] for o in c.get("outputs", []) if "image/png" in o.get("data", {})]
    assert len(images) == 4


def test_book_bundles_mathjax_for_offline_reading():
    """The built book must render math without internet: the sphinx-mathjax-offline extension
    (book extra) is configured and ships the MathJax file it points mathjax_path to."""
    import yaml

    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    assert "sphinx-mathjax-offline" in config["sphinx"]["extra_extensions"]
    assert "mathjax_path" not in config["sphinx"].get("config", {}), "the extension sets mathjax_path"
    ext = pytest.importorskip("sphinx-mathjax-offline")
    assert (Path(ext.__file__).parent / "static" / "mathjax" / "tex-chtml.js").stat().st_size > 100_000
