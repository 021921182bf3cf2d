"""Where the benchmark files are, and whether they are the official ones.

The checkout's ``data/`` holds GSM8K, SVAMP and ARC (``data/README.md``: sources, licences,
checksums; ``data/SHA256SUMS``: the manifest). :func:`data_dir` finds the directory to read
(``data_dir=`` beats ``$SIAUTIL_DATA_DIR`` beats the checkout's ``data/``); :func:`verified`
checks a file against its manifest the first time a process reads it, so a changed or
truncated file is named, never silently read.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from .. import paths
from ..errors import SiautilError

#: Environment variable naming the directory with the benchmark files in their official formats.
DATA_ENV = "SIAUTIL_DATA_DIR"

#: The manifest of a data directory: ``sha256  path`` per line, as ``sha256sum`` writes it.
MANIFEST = "SHA256SUMS"

#: Where a clone keeps the files: ``data/`` beside the package.
CHECKOUT_DATA = Path(__file__).resolve().parents[2] / "data"

_verified: dict[tuple[str, int, int], str] = {}


class DataError(SiautilError, ValueError):
    """Benchmark data is missing or malformed."""


def data_dir(explicit: str | os.PathLike | None = None) -> Path | None:
    """The directory to read benchmark files from: ``explicit``, else ``$SIAUTIL_DATA_DIR``,
    else the ``data/`` of the checkout the package sits in, else that of the checkout the
    process works in, when it holds the files; ``None`` when there is none."""
    chosen = explicit or os.environ.get(DATA_ENV)
    if chosen:
        return Path(chosen).expanduser()
    if (CHECKOUT_DATA / MANIFEST).is_file():
        return CHECKOUT_DATA
    # an install from a clone, used inside it (Colab works in its clone)
    root = paths.checkout()
    return root / "data" if root is not None and (root / "data" / MANIFEST).is_file() else None


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def manifest(directory: Path) -> dict[str, str]:
    """``{path: sha256}`` from the directory's :data:`MANIFEST` (empty when it has none)."""
    path = directory / MANIFEST
    if not path.is_file():
        return {}
    return {rel: digest for digest, rel in (line.split(maxsplit=1) for line in path.read_text().splitlines() if line.strip())}


def verified(path: Path, directory: Path) -> Path:
    """``path`` after checking it against the sha256 its directory's :data:`MANIFEST` lists
    (once per process and file version). A directory without a manifest (your own copies,
    test fixtures) and files it does not list pass unchecked."""
    try:
        rel = path.resolve().relative_to(directory.resolve()).as_posix()
    except ValueError:
        return path
    expected = manifest(directory).get(rel)
    if expected is None:
        return path
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if _verified.get(key) == expected:
        return path
    found = sha256(path)
    if found != expected:
        raise DataError(
            f"{path} is not the official {rel}: sha256 {found} (expected {expected}, "
            f"{st.st_size:,} bytes on disk). It was changed or cut short. Restore it with "
            f"`git checkout -- data/{rel}` in a clone, or copy it again from the source named in "
            "data/README.md")
    _verified[key] = expected
    return path
