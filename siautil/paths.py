"""Where things are: the project checkout a process works in. Imports nothing of the package,
so any module may ask it."""

from __future__ import annotations

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
