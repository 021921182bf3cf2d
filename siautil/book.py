"""The book pipeline: execute the chapter notebooks with papermill, then build with Jupyter Book.

Sources live in ``notebooks/<name>.ipynb`` (a cell tagged ``parameters``, no outputs), each
paired by jupytext (``jupytext.toml``) with ``notebooks/<name>.py`` in percent format, the side
to edit and review; ``jupytext --sync notebooks/*.py`` brings the two together. Papermill executes each into ``book/<name>.ipynb``; the chapters and their order come from
``_toc.yml``. Jupyter Book v1 then compiles ``_build/html`` without executing anything.
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

from .errors import SiautilError

#: Cell tag papermill gives the cell it injects; the book hides that cell.
INJECTED_TAG = "injected-parameters"
#: Seconds a chapter's cell may run before it is stopped (``$SIAUTIL_CELL_TIMEOUT`` overrides): the
#: default book's longest cell takes about two minutes on a 2-core CPU, and a kernel that stops
#: answering (seen once in CI) would otherwise hold the build forever.
CELL_TIMEOUT = 1200
TIMEOUT_ENV = "SIAUTIL_CELL_TIMEOUT"


class ChapterError(SiautilError, RuntimeError):
    """A chapter could not run: unknown chapter or parameter, or a failing cell."""


def project_root(start: Path | None = None) -> Path:
    """The nearest directory at or above ``start`` holding ``_toc.yml``."""
    here = Path(start or Path.cwd()).resolve()
    for d in (here, *here.parents):
        if (d / "_toc.yml").exists():
            return d
    raise ChapterError(f"no _toc.yml found at or above {here}: run this from the siautil checkout")


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


def check_parameters(name: str, notebook: Path, parameters: Mapping[str, Any]) -> None:
    """Refuse parameters the chapter does not declare (papermill itself only warns)."""
    known = declared_parameters(notebook)
    unknown = sorted(set(parameters) - set(known))
    if unknown:
        raise ChapterError(
            f"chapter {name!r} has no parameter {', '.join(map(repr, unknown))}; "
            f"its parameters are: {', '.join(sorted(known)) or '(none)'}"
        )


def _finish(output: Path, parameters: Mapping[str, Any], seconds: float) -> None:
    """Hide papermill's injected cell and append how the chapter was run."""
    nb = json.loads(output.read_text())
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

    Raises :class:`ChapterError` naming the chapter and the failing cell.
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
    try:
        timeout = int(os.environ.get(TIMEOUT_ENV, CELL_TIMEOUT))
    except ValueError:
        raise ChapterError(f"${TIMEOUT_ENV}={os.environ[TIMEOUT_ENV]!r}: give the seconds a chapter's cell may run, "
                           "as a whole number") from None
    try:
        for attempt in (1, 2):
            start = time.perf_counter()
            try:
                papermill.execute_notebook(
                    str(source), str(output), parameters=parameters, kernel_name=kernel,
                    cwd=str(output.parent), progress_bar=False, execution_timeout=timeout,
                )
                break
            except TimeoutError:  # nbclient's CellTimeoutError is one
                if attempt == 2:
                    raise ChapterError(
                        f"chapter {name!r}: a cell ran past {timeout} s twice (the notebook as far as it ran is "
                        f"at {output.relative_to(root)}); a chapter that samples runs itself may need more: set "
                        f"${TIMEOUT_ENV}, or sample ahead with `siautil grid --profile PROFILE --no-book`") from None
                print(f"[book] {name}: a cell ran past {timeout} s; executing the chapter again", flush=True)
    except PapermillExecutionError as e:
        raise ChapterError(
            f"chapter {name!r} ({source.relative_to(root)}) failed in cell {e.cell_index} "
            f"(execution count {e.exec_count}): {e.ename}: {e.evalue}\n"
            f"The executed notebook with the error is at {output.relative_to(root)}."
        ) from None
    _finish(output, parameters, time.perf_counter() - start)
    return output


def build_html(root: Path) -> Path:
    """Compile the executed notebooks into ``_build/html``; warnings are errors."""
    cmd = [str(Path(sys.executable).with_name("jupyter-book")), "build", str(root), "--warningiserror",
           "--keep-going", "--quiet"]
    proc = subprocess.run(cmd, cwd=root)
    if proc.returncode != 0:
        raise ChapterError(f"jupyter-book build failed (exit {proc.returncode}); see the messages above")
    return root / "_build" / "html"


def _execute_timed(name: str, parameters: Mapping[str, Any], root: Path, threads: int | None) -> float:
    """:func:`execute` in a worker process; its kernel gets ``threads`` OpenMP threads."""
    if threads is not None:
        os.environ["OMP_NUM_THREADS"] = str(threads)  # the kernel inherits it
    start = time.perf_counter()
    execute(name, parameters, root)
    return time.perf_counter() - start


def default_jobs() -> int:
    """Chapters executed at once by default: one per core, at most 4 (a chapter's kernel
    mostly waits on one thread of pandas, matplotlib or a small model)."""
    from .workers import MAX_PROCESSES, cores

    return max(1, min(cores(), MAX_PROCESSES))


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
    if jobs <= 1 or len(todo) <= 1:
        for name in todo:
            print(f"[book] executing {name}", flush=True)
            print(f"[book] {name}: {_execute_timed(name, params[name], root, None):.1f} s", flush=True)
    else:
        import concurrent.futures as cf

        from . import workers

        threads = max(1, workers.cores() // jobs)
        print(f"[book] executing {len(todo)} chapters, {jobs} at once", flush=True)
        errors = []
        with workers.pool(jobs) as pool:
            running = {pool.submit(_execute_timed, name, params[name], root, threads): name for name in todo}
            for future in cf.as_completed(running):
                name = running[future]
                try:
                    print(f"[book] {name}: {future.result():.1f} s", flush=True)
                except Exception as e:  # the others still finish; every failure is reported
                    print(f"[book] {name} failed", flush=True)
                    errors.append(str(e) if isinstance(e, ChapterError) else workers.failure(f"chapter {name!r}", e))
        if errors:
            raise ChapterError("\n".join(errors))
    missing = [n for n in chapters(root) if not (root / "book" / f"{n}.ipynb").exists()]
    if html:
        if missing:
            raise ChapterError(f"chapters never executed: {', '.join(missing)}; run `siautil book` once")
        out = build_html(root)
        print(f"[book] HTML in {out}", flush=True)

