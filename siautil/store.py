"""The on-disk record of a run: its full configuration and one Parquet file per question.

Layout of a run directory::

    config.json                        model, task, every sampling setting, seed, package versions
    records/q000042.parquet            the records of question 42 (one row per trace and checkpoint)
    records/q000042.parquet.sha256     its SHA-256, in ``sha256sum`` format (``sha256sum -c`` reads it)

Each question's file is written to a temporary name in the same directory, flushed to disk and
renamed into place, so a file either holds a question's complete records or does not exist: a
run killed at any moment (even with ``kill -9``) loses at most the window of questions in
flight, and two writers of the same question (a retried task racing a slow original) leave one
whole file, the last one renamed. Re-running the same configuration resumes by skipping the
windows whose questions' files all exist and are sound (:func:`siautil.runs.windows`; a window
with one missing is sampled again whole, so raising a run's ``limit`` can rewrite the last
window's questions, with records of the same distribution). A different configuration pointed
at the same directory is refused.

One configuration writes a directory at a time. A writer holds a shared lock on
``.locks/writers`` for as long as it has the store open, and the configuration is compared or
written under the exclusive lock ``.locks/config``, so a second writer with other settings is
refused even before the first has written a record (an empty store takes new settings only
when no writer holds it), and every write checks ``config.json`` once more. Writers of the same
configuration share the work: each claims a window (``.locks/window-<first question>``) before
sampling it (:meth:`RunStore.claim`), so no window is sampled twice. The locks are ``flock``
locks, which the system releases when their process dies, however it died; a store at a URL
has none (one writer per store there: the grid's tasks write disjoint shards).

A file is sound when its bytes match the checksum written beside it, or, where there is none
or it belongs to another write (stores written before the checksums, a writer stopped between
the two renames, two writers racing), when it reads whole as Parquet with its page checksums
and has rows. A damaged file (cut short by a partial copy or a full disk, or changed) is named
when the store is opened (:class:`DamagedRecordWarning`) and not counted as done, so resuming
samples it again; :func:`load_records` refuses it with the command that repairs the store.
Temporary files a killed writer left behind are removed when the store is next opened.

A run directory may be a local path or an fsspec URL (``file://``, ``s3://``, ``gs://``,
``memory://``, ...). On a remote filesystem each file is one upload, which object stores make
visible whole or not at all, so nothing is renamed there.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import platform
import re
import socket
import time
import uuid
import warnings
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path
from typing import Any, Iterable, Iterator

try:
    import fcntl
except ImportError:  # Windows: no flock; one writer per store is then the user's to keep
    fcntl = None

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from . import schema
from .errors import SiautilError

CONFIG = "config.json"
RECORDS = "records"
#: the directory of a store's lock files (:class:`RunStore`)
LOCKS = ".locks"
#: the suffix of the checksum file written beside each record file
CHECKSUM = ".sha256"
#: configuration keys that describe the machine, not the experiment: they may differ on resume.
#: The backend is one of them: the engine's and vLLM's records are one experiment, equal in
#: distribution, so a run sampled by one is read, and resumed, by the other; each question's
#: file names the backend that decoded it (RunStore.decoding).
VOLATILE = ("versions", "machine", "shard", "limit", "max_batch_rows", "backend")
#: a temporary file older than this is a dead writer's even when its process cannot be checked
#: (another host): a write takes seconds, this leaves room for slow shared filesystems
STALE_AFTER = 600.0


class RunStoreError(SiautilError, ValueError):
    """A run directory that cannot be used as asked."""


class MachineChangedWarning(UserWarning):
    """A run resumed with another thread count, CPU or bf16 support than it was begun with."""


class DamagedRecordWarning(UserWarning):
    """A record file of a store opened for resuming is damaged; it will be sampled again."""


def package_versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in ("siautil", "torch", "transformers", "tokenizers", "accelerate", "bitsandbytes", "vllm", "numpy", "pandas"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return out


def _url_to_fs(path: str | os.PathLike):
    """``(filesystem, path inside it, how to name it)``: a local path stays a :class:`Path`."""
    import fsspec
    from fsspec.implementations.local import LocalFileSystem

    fs, inner = fsspec.core.url_to_fs(os.fspath(path))
    if isinstance(fs, LocalFileSystem):
        text = os.fspath(path)
        return fs, inner, Path(text[len("file://"):] if text.startswith("file://") else text)
    return fs, inner, os.fspath(path).rstrip("/")


def _is_local(fs) -> bool:
    from fsspec.implementations.local import LocalFileSystem

    return isinstance(fs, LocalFileSystem)


#: a temporary file's name: ``.<name>.tmp-<pid>-<host>-<random>``, unique across hosts and writers
TMP = re.compile(r"^\.(?P<name>.+)\.tmp-(?P<pid>\d+)(?:-(?P<host>.+)-[0-9a-f]{8})?$")


def _tmp_name(name: str) -> str:
    return f".{name}.tmp-{os.getpid()}-{socket.gethostname()}-{uuid.uuid4().hex[:8]}"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def _stale(path: Path, now: float) -> bool:
    """Whether a temporary file's writer is gone: a process of this host that no longer runs, or
    a file untouched for :data:`STALE_AFTER` seconds (a writer on another host, a reused pid)."""
    m = TMP.match(path.name)
    if m is None:
        return False
    try:
        age = now - path.stat().st_mtime
    except FileNotFoundError:
        return False
    here = m["host"] in (None, socket.gethostname())
    return (here and not _alive(int(m["pid"]))) or age > STALE_AFTER


#: what to do about an error of the filesystem, by its errno
OS_ADVICE = {
    errno.ENOSPC: "the disk is full: free some space",
    errno.EDQUOT: "the disk quota is used up: free some space",
    errno.EACCES: "no permission to write there: choose a directory you can write",
    errno.EPERM: "no permission to write there: choose a directory you can write",
    errno.EROFS: "the filesystem is read-only: choose a directory you can write",
    errno.ENOTDIR: "part of that path is a file: give a directory",
    errno.EEXIST: "it is a file: give a directory (a new one, or a run directory)",
}


def _os_error(path, error: OSError) -> "RunStoreError":
    """One line for a filesystem error while writing a store: the path, what went wrong, what to
    do, and that the finished questions are safe (every file is written whole or not at all)."""
    advice = OS_ADVICE.get(error.errno, "fix that")
    return RunStoreError(f"cannot write {path}: {error.strerror or error}; {advice}, then run the same command "
                         "again (the questions already written are kept, and it resumes)")


def _atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` whole or not at all: a temporary file of this writer's own in the
    same directory, flushed to disk, renamed over ``path``. A write that fails (a full disk, say)
    removes its temporary file and raises :class:`RunStoreError` naming ``path``."""
    for attempt in range(3):
        tmp = path.with_name(_tmp_name(path.name))
        try:
            with open(tmp, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
        except OSError as e:
            tmp.unlink(missing_ok=True)
            raise _os_error(path, e) from None
        try:
            os.replace(tmp, path)
            break
        except FileNotFoundError:
            # a store opened elsewhere took it for a dead writer's (a paused process on a
            # filesystem whose clock is far off): the bytes are still here, write them again
            if attempt == 2:
                raise
        except OSError as e:
            tmp.unlink(missing_ok=True)
            raise _os_error(path, e) from None
    try:  # the rename itself survives a power cut once the directory is flushed
        fd = os.open(path.parent, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _comparable(config: dict) -> dict:
    return {k: v for k, v in config.items() if k not in VOLATILE}


def _diff(old: dict, new: dict) -> list[str]:
    keys = sorted(set(old) | set(new))
    return [f"{k}: {old.get(k)!r} (stored) vs {new.get(k)!r} (now)" for k in keys if old.get(k) != new.get(k)]


#: the key of a record file's metadata that names its protocol (so a bare copy still knows it)
PROTOCOL_KEY = b"siautil.protocol"
#: a record file's metadata key for how its question was decoded (RunStore.write)
DECODING_KEY = b"siautil.decoding"


def _checksum_line(data: bytes, name: str) -> bytes:
    return f"{hashlib.sha256(data).hexdigest()}  {name}\n".encode()


def _damage(data: bytes, checksum: bytes | None) -> str | None:
    """Why a record file's bytes are not sound, or ``None``: they match the checksum written
    beside them, or (no checksum, or one of another write) they read whole as Parquet, page
    checksums included, and hold rows. The fallback is what lets racing writers and a writer
    stopped between its two renames pass; its cost: a change outside the checksummed page data
    (a page header, the footer) that leaves the file readable passes too."""
    digest = hashlib.sha256(data).hexdigest()
    expected = checksum.split()[0].decode() if checksum and checksum.split() else None
    if expected == digest:
        return None
    try:
        table = pq.read_table(pa.BufferReader(data), page_checksum_verification=True)
    except (pa.ArrowException, OSError) as e:
        said = f"; its checksum file says sha256 {expected[:12]}…, it has {digest[:12]}…" if expected else ""
        return f"{len(data)} bytes, not readable as Parquet ({str(e).splitlines()[0]}){said}"
    if table.num_rows == 0:
        return "it holds no records"
    return None


def _read_records(data: bytes) -> pa.Table:
    return pq.read_table(pa.BufferReader(data))


def rerun_hint(path: str | os.PathLike, config: dict | None = None) -> str:
    """The command that samples a store's damaged or missing files again: ``siautil rollout``
    into it with the settings its configuration records (a profile's run says its grid command
    where it is read, :func:`siautil.runs.records`)."""
    config = config or {}
    return (f"siautil rollout --model {config.get('model', 'MODEL')} --task {config.get('task', 'TASK')} "
            f"--out {os.fspath(path).rstrip('/')} with the other settings its {CONFIG} records")


class RunStore:
    """A run directory (a local path or an fsspec URL). ``RunStore.open(path, config)`` creates
    it or checks that it holds the same configuration (a directory with no records yet takes
    the new one when no other writer holds it), removes dead writers' temporary files, names
    damaged record files, and holds the directory for writing until :meth:`close` (or the end
    of a ``with`` block, or of the process); ``done()`` lists finished questions whose files are
    sound; ``claim(first)`` takes a window to sample; ``write(index, records)`` adds one."""

    def __init__(self, path: str | os.PathLike, config: dict):
        self.fs, self._root, self.path = _url_to_fs(path)
        self.local = _is_local(self.fs)
        self.config = json.loads(json.dumps(config))  # normalise tuples etc. as JSON would store them
        self._sound: dict[str, tuple[tuple, str | None]] = {}  # file -> (its size and time, why damaged)
        self._writer = None  # the open lock file whose shared lock says a writer holds the store

    def __enter__(self) -> "RunStore":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Let the directory go: another configuration may take it once no writer holds it."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def __del__(self) -> None:
        self.close()

    # ---- the filesystem, local or not
    def _join(self, *parts: str) -> str:
        return "/".join([self._root.rstrip("/"), *parts])

    def _put(self, inner: str, data: bytes) -> None:
        if self.local:
            _atomic_write_bytes(Path(inner), data)
        else:
            self.fs.pipe_file(inner, data)

    def _get(self, inner: str) -> bytes | None:
        try:
            return self.fs.cat_file(inner)
        except FileNotFoundError:
            return None

    def _record_files(self) -> dict[int, str]:
        """Question index -> record file (inside the filesystem)."""
        try:
            names = self.fs.ls(self._join(RECORDS), detail=False)
        except FileNotFoundError:
            return {}
        out = {}
        for name in names:
            base = name.rstrip("/").rpartition("/")[2]
            if base.startswith("q") and base.endswith(".parquet") and base[1:-8].isdigit():
                out[int(base[1:-8])] = name
        return dict(sorted(out.items()))

    def _display(self, inner: str) -> str:
        rel = inner[len(self._root.rstrip("/")) + 1:]
        return str(self.path / rel) if self.local else f"{self.path}/{rel}"

    # ---- locks (local stores; see the module's docstring)
    def _lock_file(self, name: str):
        directory = Path(self._root) / LOCKS
        try:
            directory.mkdir(exist_ok=True)
            return open(directory / name, "a+b")
        except OSError as e:
            raise _os_error(directory / name, e) from None

    @contextmanager
    def _config_lock(self) -> Iterator[None]:
        if not self.local or fcntl is None:
            yield
            return
        with self._lock_file("config") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            yield

    def _hold(self, alone: bool = False) -> bool:
        """Hold the store as one of its writers; with ``alone``, only if no other writer holds it
        (then ``False``, holding nothing). Always ``True`` where there are no locks."""
        if not self.local or fcntl is None:
            return True
        f = self._lock_file("writers")
        if alone:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                f.close()
                return False
        fcntl.flock(f, fcntl.LOCK_SH)  # from exclusive: a writer of the same settings may join now
        self.close()
        self._writer = f
        return True

    @contextmanager
    def claim(self, first: int, wait: bool = False) -> Iterator[bool]:
        """Claim the window of questions starting at ``first`` for sampling: ``True`` when this
        writer has it until the block ends; ``False`` when another writer has it now (with
        ``wait``, this waits for it instead: that writer finished the window, or died). Where
        there are no locks, always ``True``."""
        if not self.local or fcntl is None:
            yield True
            return
        with self._lock_file(f"window-{first:06d}") as f:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
            except BlockingIOError:
                yield False
                return
            yield True

    @classmethod
    def open(cls, path: str | os.PathLike, config: dict[str, Any]) -> "RunStore":
        run = cls(path, config)
        config, fs = run.config, run.fs
        try:
            fs.makedirs(run._join(RECORDS), exist_ok=True)
        except OSError as e:
            raise _os_error(run.path, e) from None
        if run.local:
            run._remove_stale_temporaries()
        with run._config_lock():
            stored_text = run._get(run._join(CONFIG))
            if stored_text is not None and not run._record_files():
                stored = _parse_config(run, stored_text)
                if _diff(_comparable(stored), _comparable(config)):
                    # no finished work yet: a run that failed at once takes the new settings, but
                    # not one whose writer is still at work (loading its model, say)
                    if not run._hold(alone=True):
                        raise RunStoreError(
                            f"{run.path} is being written now by another writer with other settings:\n  "
                            + "\n  ".join(_diff(_comparable(stored), _comparable(config)))
                            + "\nWait for it to finish and use another output directory, or stop it first.")
                    stored_text = None
            if stored_text is None:
                run._hold()
                run._put(run._join(CONFIG), (json.dumps(config, indent=2, sort_keys=True) + "\n").encode())
                return run
            run._check_config(_parse_config(run, stored_text))
            run._hold()
        for index, why in run.damaged().items():
            warnings.warn(f"{run._display(run._file(index))} is damaged ({why}): it is not counted as done "
                          "and its window is sampled again", DamagedRecordWarning, stacklevel=2)
        return run

    def _check_config(self, stored: dict) -> None:
        """Refuse to write this store's records under ``stored``, the configuration it holds,
        unless it is this writer's own (warn where only the machine differs)."""
        config = self.config
        diff = _diff(_comparable(stored), _comparable(config))
        old = stored.get("protocol", 1)
        if diff and "protocol" in config and old != config["protocol"]:
            why = LEGACY.split(": ")[0] if old == 1 else f"written under protocol {old}"
            raise RunStoreError(
                f"{self.path} was {why}; it stays readable (store.load_records), but new records cannot "
                f"join it (siautil.config.PROTOCOL says what changed). Move it aside to keep it "
                f"(mv {self.path} {self.path}.protocol{old}) and run again to sample under protocol {config['protocol']}.")
        if diff:
            raise RunStoreError(
                f"{self.path} holds a run with a different configuration:\n  " + "\n  ".join(diff)
                + "\nUse another output directory, or delete this one to start over."
            )
        before, now = stored.get("machine"), config.get("machine")
        if before and now and before != now:
            changed = ", ".join(f"{k} {before.get(k)!r} -> {now.get(k)!r}" for k in sorted(set(before) | set(now))
                                if before.get(k) != now.get(k))
            warnings.warn(f"{self.path} was begun on another machine or thread count ({changed}): the questions "
                          "sampled now agree with its others in distribution, not bit for bit",
                          MachineChangedWarning, stacklevel=3)

    def _remove_stale_temporaries(self) -> None:
        """Remove what writers killed mid-write left (``kill -9``, a lost node), never a live
        writer's file (a shard of the same run writing now)."""
        now = time.time()
        for d in (Path(self._root), Path(self._join(RECORDS))):
            for tmp in d.glob(".*.tmp-*"):
                if _stale(tmp, now):
                    tmp.unlink(missing_ok=True)

    def _file(self, index: int) -> str:
        return self._join(RECORDS, f"q{index:06d}.parquet")

    def _check(self, inner: str) -> str | None:
        """Why the record file ``inner`` is damaged, or ``None`` (remembered until it changes)."""
        try:
            info = self.fs.info(inner)
        except FileNotFoundError:
            return "it vanished"
        key = (info.get("size"), info.get("mtime"), info.get("created"), info.get("LastModified"), info.get("ETag"))
        if inner in self._sound and self._sound[inner][0] == key:
            return self._sound[inner][1]
        data = self._get(inner)
        why = "it vanished" if data is None else _damage(data, self._get(inner + CHECKSUM))
        self._sound[inner] = (key, why)
        return why

    def damaged(self) -> dict[int, str]:
        """Question index -> why its record file is damaged."""
        out = {}
        for index, inner in self._record_files().items():
            why = self._check(inner)
            if why is not None:
                out[index] = why
        return out

    def decoding(self, index: int) -> dict:
        """How question ``index`` was decoded, as its writer recorded it (:meth:`write`); ``{}``
        where nothing was recorded."""
        written = (pq.read_schema(pa.BufferReader(self._get(self._file(index)))).metadata or {}).get(DECODING_KEY)
        return json.loads(written) if written else {}

    def done(self) -> set[int]:
        """Indices of the questions whose records are on disk and sound."""
        return {index for index, inner in self._record_files().items() if self._check(inner) is None}

    def write(self, index: int, records: list[dict], decoding: dict | None = None) -> str | Path:
        """Write one question's records atomically, then their checksum beside them.
        ``decoding`` says how the question was decoded where that may change between its
        windows (the batch rows and window after an out-of-memory retry): it is kept in the
        file's metadata (:meth:`decoding`), outside the run's identity."""
        if not records:
            raise RunStoreError(f"question {index} produced no records")
        try:
            table = schema.table(records)
        except ValueError as e:
            raise RunStoreError(f"question {index}: {e}") from None
        meta = {PROTOCOL_KEY: str(self.config.get("protocol", 1))}
        if decoding:
            meta[DECODING_KEY] = json.dumps(decoding, sort_keys=True)
        table = table.replace_schema_metadata(meta)
        sink = pa.BufferOutputStream()
        pq.write_table(table, sink, compression="zstd", write_page_checksum=True)
        return self._write_bytes(index, sink.getvalue().to_pybytes())

    def _write_bytes(self, index: int, data: bytes) -> str | Path:
        inner = self._file(index)
        if self.config:  # every write: the directory still holds this writer's configuration
            text = self._get(self._join(CONFIG))
            stored = _parse_config(self, text) if text is not None else {}
            diff = _diff(_comparable(stored), _comparable(self.config))
            if diff:
                raise RunStoreError(f"{self._display(self._join(CONFIG))} no longer holds this run's settings "
                                    f"({'; '.join(diff)}): nothing more is written there. The questions written "
                                    "are kept; use another output directory for this run.")
        # the file first: a writer stopped between the two leaves a checksum of another write,
        # which only sends the check to the full read
        self._put(inner, data)
        self._put(inner + CHECKSUM, _checksum_line(data, inner.rpartition("/")[2]))
        return Path(inner) if self.local else self._display(inner)

    def read_records(self, index: int) -> pa.Table:
        """One question's records; :class:`RunStoreError` naming the file and the command that
        repairs the store when it is damaged."""
        inner = self._file(index)
        data = self._get(inner)
        if data is None:
            raise RunStoreError(f"{self._display(inner)} does not exist")
        why = _damage(data, self._get(inner + CHECKSUM))
        if why is not None:
            config = self.config or _try_config(self)
            raise RunStoreError(
                f"{self._display(inner)} is damaged ({why}). Resuming the run samples it again: "
                f"`{rerun_hint(self.path, config)}` (the command that wrote it, with the same arguments).")
        return _read_records(data)


def _parse_config(run: RunStore, text: bytes) -> dict:
    """A store's configuration from the bytes of its ``config.json``; :class:`RunStoreError`
    naming the file when they are not a configuration (cut short by a copy or a full disk)."""
    try:
        config = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        why = f"{e.msg} at character {e.pos}" if isinstance(e, json.JSONDecodeError) else "not text"
        raise RunStoreError(f"{run._display(run._join(CONFIG))} is not valid JSON ({why}; {len(text)} bytes: cut "
                            "short?); copy the run directory again from where it came from, or move it aside and "
                            "sample the run again") from None
    if not isinstance(config, dict):
        raise RunStoreError(f"{run._display(run._join(CONFIG))} holds no run configuration; move the directory aside")
    return config


def _try_config(run: RunStore) -> dict:
    text = run._get(run._join(CONFIG))
    try:
        return _parse_config(run, text) if text else {}
    except RunStoreError:
        return {}


def read_config(path: str | os.PathLike) -> dict:
    run = RunStore(path, {})
    text = run._get(run._join(CONFIG))
    if text is None:
        raise RunStoreError(f"{path} is not a run directory (no {CONFIG})")
    return _parse_config(run, text)


def run_id(config: dict) -> str:
    """A short name for a run's settings: equal for the shards of one run, different for runs
    that differ in any setting (so diagnostics never merge them)."""
    text = json.dumps(_comparable(config), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:8]


#: Why a store written before protocol 2 is kept apart (see :data:`siautil.config.PROTOCOL`).
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


def _bare_file(path: str | os.PathLike) -> pa.Table:
    """A record file on its own (a merged or copied ``.parquet``), checked as a store's are."""
    fs, inner, shown = _url_to_fs(path)
    data = fs.cat_file(inner)
    checksum = fs.cat_file(inner + CHECKSUM) if fs.exists(inner + CHECKSUM) else None
    why = _damage(data, checksum)
    if why is not None:
        raise RunStoreError(f"{shown} is damaged ({why}); copy it again from where it came from, or load the "
                            "run directory it belongs to")
    t = _read_records(data)
    # it has no configuration: it carries its protocol (written since protocol 3), else its columns tell
    written = (t.schema.metadata or {}).get(PROTOCOL_KEY)
    protocol = int(written) if written else 2 if "continuations" in t.column_names else 1
    resolved = shown.resolve() if isinstance(shown, Path) else shown
    return _labelled(t, {"file": str(resolved), "protocol": protocol})


def load_records(paths: str | os.PathLike | Iterable[str | os.PathLike], arrow: bool = True) -> pd.DataFrame:
    """All records of one or more run directories (or merged ``.parquet`` files; local paths or
    fsspec URLs) as one DataFrame, sorted by question, trace and checkpoint, with the columns
    ``run`` (the run's :func:`run_id`) and ``protocol``. ``arrow=True`` keeps the answer and
    continuation lists Arrow-backed, which the estimators count without conversion. A store
    written before the present protocol loads with a warning that says what differs; a damaged
    record file raises :class:`RunStoreError` naming it and the command that repairs the store."""
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    tables = []
    for path in paths:
        run = RunStore(path, {})
        if run.fs.isfile(run._root):
            tables.append(_bare_file(path))
            continue
        if run._get(run._join(CONFIG)) is None:
            raise RunStoreError(f"{run.path} is not a run directory (no {CONFIG})")
        files = run._record_files()
        if not files:
            raise RunStoreError(f"{run.path} has no records yet: run `siautil rollout` first")
        run.config = config = read_config(path)
        if "protocol" not in config:
            warnings.warn(f"{run.path}: {LEGACY}", stacklevel=2)
        tables.extend(_labelled(run.read_records(index), config) for index in files)
    table = pa.concat_tables(tables, promote_options="default")
    lists = [c for c in ("answers", "continuations") if c in table.column_names]
    df = table.drop_columns(lists).to_pandas()
    for c in lists:
        col = table.column(c)
        df[c] = (pd.arrays.ArrowExtensionArray(col) if arrow
                 else pd.Series(col.to_pylist(), dtype=object).to_numpy())
    return df.sort_values(["question_index", "trace", "t"], kind="stable").reset_index(drop=True)


def merge(sources: Iterable[str | os.PathLike], out: str | os.PathLike) -> Path | str:
    """Join the shards of one run (directories with the same configuration) into ``out``:
    a run directory holding every question once. A damaged file in a shard stops the merge
    with its name, before anything is written for it."""
    sources = list(sources)
    if not sources:
        raise RunStoreError("merge needs at least one run directory")
    configs = [read_config(s) for s in sources]
    for s, c in zip(sources[1:], configs[1:]):
        diff = _diff(_comparable(configs[0]), _comparable(c))
        if diff:
            raise RunStoreError(f"{s} is not a shard of the same run as {sources[0]}:\n  " + "\n  ".join(diff))
    config = dict(configs[0])
    config.pop("shard", None)
    with RunStore.open(out, config) as target:
        have = target.done()
        for s, c in zip(sources, configs):
            shard = RunStore(s, c)
            for idx, inner in shard._record_files().items():
                if idx in have:
                    continue
                data = shard._get(inner)
                why = "it vanished" if data is None else _damage(data, shard._get(inner + CHECKSUM))
                if why is not None:
                    raise RunStoreError(f"{shard._display(inner)} is damaged ({why}); sample it again in its shard "
                                        f"(`{rerun_hint(shard.path, c)}`, with the shard's --shard), then merge")
                target._write_bytes(idx, data)
                have.add(idx)
    return target.path
