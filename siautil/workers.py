"""Worker processes of this machine, for the local grid and the book's chapters.

Both spread independent jobs (shards of a grid's cells, chapters) over the cores with a
``concurrent.futures.ProcessPoolExecutor``: spawned, not forked (a fork of a process that has
run torch may deadlock in its thread pools), its workers deaf to Ctrl-C, so the parent alone
decides what happens: on Ctrl-C or any error it cancels what is queued and terminates the
workers instead of waiting for every queued job (``shutdown(wait=True)``, what leaving a
``with`` block does, would run the whole grid first). A worker also ends when its parent dies
without a word (``kill -9``, the out-of-memory killer): otherwise it would sample on for a
driver that is gone, beside the rerun. A kernel a worker started for a chapter follows it, as
every Jupyter kernel ends with the process that launched it.
"""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing
import os
import signal
import threading
from contextlib import contextmanager
from typing import Iterator

#: Most worker processes started by default (each holds its own copy of a model, or a kernel).
MAX_PROCESSES = 4
#: What a worker reports when the process running a job died (killed for memory, say).
BROKEN = ("a worker process died (killed for memory?); what it finished is kept; "
          "run the same command again with fewer workers")


def cores() -> int:
    """CPU cores this process may run on (its affinity where the OS tells it)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def local_workers(requested: int | None, shard: str | None, serial: bool, threads: int) -> tuple[int, int]:
    """``(processes, torch threads each)`` for the local grid: ``requested``, else one process per
    core (at most :data:`MAX_PROCESSES`) sharing the cores, or one process with every thread
    (``threads``) where the work is ``serial`` (a GPU, or models of billions of parameters: one
    copy per process) or ``--shard`` has already cut the machine's share."""
    n = cores()
    if requested is None:
        requested = 1 if (serial or shard) else max(1, min(n, MAX_PROCESSES))
    elif requested < 1:
        raise ValueError(f"--workers {requested}: give at least 1")
    elif requested > 1 and shard:
        raise ValueError("--shard cuts the grid between machines; on one machine use --workers alone")
    return requested, max(1, n // requested) if requested > 1 else threads


def _exit_with_parent() -> None:
    """Wait until the parent process is gone, then end this one at once (its sentinel, a pipe
    the parent holds open, becomes readable when the parent dies, however it died)."""
    from multiprocessing.connection import wait

    parent = multiprocessing.parent_process()
    if parent is None:
        return
    wait([parent.sentinel])
    os._exit(1)


def _start_worker() -> None:
    """A worker's set-up: deaf to Ctrl-C (the parent decides), and gone when its parent is."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # tqdm's default lock is a named semaphore shared across processes: a worker terminated while
    # holding one leaks it (the resource tracker's warning at exit). A worker's bars are its own.
    from tqdm import tqdm

    tqdm.set_lock(threading.RLock())
    threading.Thread(target=_exit_with_parent, name="exit-with-parent", daemon=True).start()


@contextmanager
def pool(processes: int) -> Iterator[cf.ProcessPoolExecutor]:
    """``processes`` spawned workers; on leaving the block by an exception (Ctrl-C included),
    queued jobs are cancelled and running ones stopped before the exception goes on."""
    executor = cf.ProcessPoolExecutor(processes, mp_context=multiprocessing.get_context("spawn"),
                                      initializer=_start_worker)
    try:
        yield executor
    except BaseException:
        stop = getattr(executor, "terminate_workers", None)  # Python 3.14+
        if stop is not None:
            stop()
        # before shutdown, which forgets them
        processes = list((getattr(executor, "_processes", None) or {}).values())
        executor.shutdown(wait=False, cancel_futures=True)
        for process in processes:
            process.terminate()
        raise
    executor.shutdown(wait=True)


def failure(job: str, error: BaseException) -> str:
    """One line for a job that failed: its name and its error (a dead worker said plainly)."""
    if isinstance(error, cf.process.BrokenProcessPool):
        return f"{job}: {BROKEN}"
    text = str(error).strip()
    return f"{job}: {type(error).__name__}: {text.splitlines()[-1] if text else ''}"
