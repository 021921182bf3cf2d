"""Where things are: the project checkout a process works in, the run directories, the cache,
and whether a location is a URL. Imports nothing of the package, so any module may ask it."""

from __future__ import annotations

import os
from pathlib import Path


def checkout(start: str | Path | None = None) -> Path | None:
    """The project checkout at or above ``start`` (default: the working directory): the nearest
    folder holding the book's ``_toc.yml`` and its ``notebooks/``; ``None`` outside one (a
    ``pip install`` used from elsewhere)."""
    here = Path(start or Path.cwd()).resolve()
    for d in (here, *here.parents):
        if (d / "_toc.yml").is_file() and (d / "notebooks").is_dir():
            return d
    return None


def cache_dir() -> Path:
    """Where converted models and runs outside a checkout are kept (``$SIAUTIL_CACHE``, default
    ``~/.cache/siautil``)."""
    return Path(os.environ.get("SIAUTIL_CACHE", Path.home() / ".cache" / "siautil"))


def is_url(location: str | os.PathLike | None) -> bool:
    """Whether a runs directory or run store is an fsspec URL (``s3://``, ``gs://``, ...), not a
    local path (a ``file://`` URL is a local path)."""
    text = os.fspath(location) if location is not None else ""
    return "://" in text and not text.startswith("file://")


def local(location: str | os.PathLike) -> Path:
    """A local location as a path (``file://`` taken off)."""
    return Path(os.fspath(location).removeprefix("file://"))


def default_runs_dir() -> Path:
    """``$SIAUTIL_RUNS``, else ``runs/`` of the checkout this runs in (ignored by git, apart from
    the data the project ships), else the cache."""
    if os.environ.get("SIAUTIL_RUNS"):
        return Path(os.environ["SIAUTIL_RUNS"])
    root = checkout()
    return root / "runs" if root else cache_dir() / "runs"


def stored_dir() -> Path | None:
    """``data/stored`` of the checkout: runs committed with the project, which the published book
    reads and ``make book`` never samples; ``None`` outside a checkout."""
    root = checkout()
    return root / "data" / "stored" if root else None


def run_dir(run, profile: str, runs_dir: str | os.PathLike | None = None) -> str | Path:
    """Where ``run`` (a :class:`siautil.config.RunConfig`) of ``profile`` keeps its store under
    ``runs_dir`` (default :func:`default_runs_dir`): a path, or a URL under a URL."""
    if is_url(runs_dir):
        return f"{os.fspath(runs_dir).rstrip('/')}/{profile}/{run.name}"
    return local(runs_dir or default_runs_dir()) / profile / run.name
