"""The on-disk record of a run: its full configuration and one Parquet file per question.

Layout of a run directory::

    config.json                  model, task, every sampling setting, seed, package versions
    records/q000042.parquet      the records of question 42 (one row per trace and checkpoint)

Each question's file is written to a temporary name and renamed into place, so a file either
holds a question's complete records or does not exist: a run killed at any moment (even with
``kill -9``) loses at most the window of questions in flight, and re-running the same
configuration resumes by skipping the windows whose questions' files all exist
(:func:`siautil.runs.windows`; a window with one missing is sampled again whole, so raising a
run's ``limit`` can rewrite the last window's questions, with records of the same distribution). A different configuration pointed at
the same directory is refused.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import warnings
from importlib import metadata
from pathlib import Path
from typing import Any, Iterable

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from .errors import SiautilError

CONFIG = "config.json"
RECORDS = "records"
#: configuration keys that describe the machine, not the experiment: they may differ on resume
VOLATILE = ("versions", "machine", "shard", "limit", "max_batch_rows")


class RunStoreError(SiautilError, ValueError):
    """A run directory that cannot be used as asked."""


def package_versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in ("siautil", "torch", "transformers", "tokenizers", "accelerate", "bitsandbytes", "numpy", "pandas"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return out


def _atomic_write_bytes(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _comparable(config: dict) -> dict:
    return {k: v for k, v in config.items() if k not in VOLATILE}


def _diff(old: dict, new: dict) -> list[str]:
    keys = sorted(set(old) | set(new))
    return [f"{k}: {old.get(k)!r} (stored) vs {new.get(k)!r} (now)" for k in keys if old.get(k) != new.get(k)]


#: the key of a record file's metadata that names its protocol (so a bare copy still knows it)
PROTOCOL_KEY = b"siautil.protocol"


class RunStore:
    """A run directory. ``RunStore.open(path, config)`` creates it or checks that it holds the
    same configuration (a directory with no records yet takes the new one); ``done()`` lists
    finished questions; ``write(index, records)`` adds one."""

    def __init__(self, path: Path, config: dict):
        self.path = Path(path)
        self.config = config

    @classmethod
    def open(cls, path: str | os.PathLike, config: dict[str, Any]) -> "RunStore":
        path = Path(path)
        config = json.loads(json.dumps(config))  # normalise tuples etc. as JSON would store them
        existing = path / CONFIG
        if existing.exists() and not any((path / RECORDS).glob("q*.parquet")):
            existing.unlink()  # no finished work yet: a run that failed at once takes new settings
        if existing.exists():
            try:
                stored = json.loads(existing.read_text())
            except json.JSONDecodeError as e:
                raise RunStoreError(f"{existing} is not valid JSON ({e.msg}); move the directory aside") from None
            diff = _diff(_comparable(stored), _comparable(config))
            old = stored.get("protocol", 1)
            if diff and "protocol" in config and old != config["protocol"]:
                why = LEGACY.split(": ")[0] if old == 1 else f"written under protocol {old}"
                raise RunStoreError(
                    f"{path} was {why}; it stays readable (store.load_records), but new records cannot "
                    f"join it (siautil.runs.PROTOCOL says what changed). Move it aside to keep it "
                    f"(mv {path} {path}.protocol{old}) and run again to sample under protocol {config['protocol']}.")
            if diff:
                raise RunStoreError(
                    f"{path} holds a run with a different configuration:\n  " + "\n  ".join(diff)
                    + "\nUse another output directory, or delete this one to start over."
                )
        else:
            (path / RECORDS).mkdir(parents=True, exist_ok=True)
            _atomic_write_bytes(existing, (json.dumps(config, indent=2, sort_keys=True) + "\n").encode())
        (path / RECORDS).mkdir(exist_ok=True)
        for stale in (path / RECORDS).glob(".*.tmp-*"):  # a write cut short by a killed run
            stale.unlink(missing_ok=True)
        return cls(path, config)

    def _file(self, index: int) -> Path:
        return self.path / RECORDS / f"q{index:06d}.parquet"

    def done(self) -> set[int]:
        """Indices of the questions whose records are on disk."""
        return {int(p.stem[1:]) for p in (self.path / RECORDS).glob("q*.parquet")}

    def write(self, index: int, records: list[dict]) -> Path:
        """Write one question's records atomically."""
        if not records:
            raise RunStoreError(f"question {index} produced no records")
        table = pa.Table.from_pylist(records)
        table = table.replace_schema_metadata({PROTOCOL_KEY: str(self.config.get("protocol", 1))})
        sink = pa.BufferOutputStream()
        pq.write_table(table, sink, compression="zstd")
        path = self._file(index)
        _atomic_write_bytes(path, sink.getvalue().to_pybytes())
        return path


def read_config(path: str | os.PathLike) -> dict:
    p = Path(path) / CONFIG
    if not p.exists():
        raise RunStoreError(f"{path} is not a run directory (no {CONFIG})")
    return json.loads(p.read_text())


def run_id(config: dict) -> str:
    """A short name for a run's settings: equal for the shards of one run, different for runs
    that differ in any setting (so diagnostics never merge them)."""
    text = json.dumps(_comparable(config), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:8]


#: Why a store written before protocol 2 is kept apart (see :data:`siautil.runs.PROTOCOL`).
LEGACY = ("written under protocol 1: every generation stopped at its first answer and each trace's "
          "t = T record was filled in from its own answer without sampling; its records have no "
          "continuation text or answer-holding flags. Diagnostics keep it apart (column `run`); "
          "sample it again for the paper's protocol.")


def _labelled(table: pa.Table, config: dict) -> pa.Table:
    if "run" in table.column_names:  # written from load_records output: already labelled
        return table
    n = table.num_rows
    return (table.append_column("run", pa.array([run_id(config)] * n, pa.string()))
                 .append_column("protocol", pa.array([int(config.get("protocol", 1))] * n, pa.int64())))


def load_records(paths: str | os.PathLike | Iterable[str | os.PathLike], arrow: bool = True) -> pd.DataFrame:
    """All records of one or more run directories (or merged ``.parquet`` files) as one
    DataFrame, sorted by question, trace and checkpoint, with the columns ``run`` (the run's
    :func:`run_id`) and ``protocol``. ``arrow=True`` keeps the answer and continuation lists
    Arrow-backed, which the estimators count without conversion. A store written before
    the present protocol loads with a warning that says what differs."""
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    tables = []
    for path in map(Path, paths):
        if path.is_file():
            # a bare file has no configuration: it carries its protocol (written since protocol 3),
            # else its columns tell
            t = pq.read_table(path)
            written = (t.schema.metadata or {}).get(PROTOCOL_KEY)
            protocol = int(written) if written else 2 if "continuations" in t.column_names else 1
            tables.append(_labelled(t, {"file": str(path.resolve()), "protocol": protocol}))
            continue
        files = sorted((path / RECORDS).glob("q*.parquet"))
        if not (path / CONFIG).exists():
            raise RunStoreError(f"{path} is not a run directory (no {CONFIG})")
        if not files:
            raise RunStoreError(f"{path} has no records yet: run `siautil rollout` first")
        config = read_config(path)
        if "protocol" not in config:
            warnings.warn(f"{path}: {LEGACY}", stacklevel=2)
        tables.extend(_labelled(pq.read_table(f), config) for f in files)
    table = pa.concat_tables(tables, promote_options="default")
    lists = [c for c in ("answers", "continuations") if c in table.column_names]
    df = table.drop_columns(lists).to_pandas()
    for c in lists:
        col = table.column(c)
        df[c] = (pd.arrays.ArrowExtensionArray(col) if arrow
                 else pd.Series(col.to_pylist(), dtype=object).to_numpy())
    return df.sort_values(["question_index", "trace", "t"], kind="stable").reset_index(drop=True)


def merge(sources: Iterable[str | os.PathLike], out: str | os.PathLike) -> Path:
    """Join the shards of one run (directories with the same configuration) into ``out``:
    a run directory holding every question once."""
    sources = [Path(s) for s in sources]
    if not sources:
        raise RunStoreError("merge needs at least one run directory")
    configs = [read_config(s) for s in sources]
    for s, c in zip(sources[1:], configs[1:]):
        diff = _diff(_comparable(configs[0]), _comparable(c))
        if diff:
            raise RunStoreError(f"{s} is not a shard of the same run as {sources[0]}:\n  " + "\n  ".join(diff))
    config = dict(configs[0])
    config.pop("shard", None)
    target = RunStore.open(out, config)
    have = target.done()
    for s in sources:
        for f in sorted((s / RECORDS).glob("q*.parquet")):
            idx = int(f.stem[1:])
            if idx in have:
                continue
            _atomic_write_bytes(target._file(idx), f.read_bytes())
            have.add(idx)
    return target.path
