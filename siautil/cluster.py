"""The grid across processes: on a Ray cluster (``siautil grid --profile P --executor ray``), or
in worker processes of this machine (``--workers N``, :func:`run_local`).

:func:`run_ray` turns every (cell, shard) of a profile into one Ray task. A task samples its
shard of the cell's windows into the cell's run store (:func:`siautil.runs.sample` into
:func:`siautil.paths.run_dir`, a local path or ``URL/PROFILE/CELL``), exactly as
``siautil grid --shard k/K`` does on one machine, so the stores
are those of a local run and ``runs.records``, the chapters and ``siautil merge`` read them
unchanged. A task asks for one GPU on a cluster that has GPUs, else one CPU (``cpus``,
``gpus`` override), and is run again when its worker dies (``max_retries``): it resumes from
the questions already written, and the store's atomic writes keep a retry racing a slow
original from leaving a torn file (:mod:`siautil.store`). A driver stopped and started again
resumes the same way. The driver shows one progress bar over the grid's questions, read from
the stores, and returns which cells are complete. :func:`run_local` drives the same tasks in
worker processes of this machine (:mod:`siautil.workers`), without retries: a task whose worker
died fails with a line that says so, and the same command run again resumes.

Ray is an optional extra (``pip install 'siautil[ray]'``), imported only here and only when
this executor is asked for.
"""

from __future__ import annotations

import os

import pandas as pd
from tqdm import tqdm

from . import grid, paths, runs, store, workers
from .config import RunConfig
from .errors import SiautilError

#: what a driver passes on to the workers it starts (their data, the hub's cache and mode)
PASS_ENV = ("SIAUTIL_DATA_DIR", "HF_HUB_OFFLINE", "HF_HOME", "HF_TOKEN", "TOKENIZERS_PARALLELISM",
            "OMP_WAIT_POLICY")
#: seconds between two readings of the stores for the progress bar
POLL = 1.0


class ClusterError(SiautilError, RuntimeError):
    """An executor (Ray or the local workers) cannot run as asked, or some of its tasks failed."""


def import_ray():
    """``ray``, or an error that says how to install it."""
    try:
        import ray
    except ImportError:
        raise ClusterError("the Ray executor needs Ray: pip install 'siautil[ray]' "
                           "(or run without --executor ray)") from None
    return ray


def _local(runs_dir: str | os.PathLike | None) -> str:
    """The runs directory as every worker reads it: an absolute path (workers start elsewhere)
    or the URL as given."""
    text = os.fspath(runs_dir) if runs_dir is not None else str(paths.default_runs_dir())
    return text if paths.is_url(text) else str(paths.local(text).resolve())


def run_shard(cell: RunConfig, profile: str, runs_dir: str, shard: str, threads: int) -> str:
    """One task (of Ray, or of a local worker process): shard ``shard`` of ``cell`` sampled into
    its store (resuming). ``threads`` is the torch thread count, the task's CPUs, so a task
    decodes as a local run with as many threads does (the last bits of the logits depend on it)."""
    import torch

    torch.set_num_threads(max(1, threads))
    runs.sample(cell, paths.run_dir(cell, profile, runs_dir), shard=shard, progress=False)
    return f"{cell.name} {shard}"


def _done(run: store.RunStore, n: int) -> int:
    """Questions finished in a cell's store (only the ``n`` the cell asks for)."""
    try:
        return sum(1 for k in run.done() if k < n)
    except (OSError, store.RunStoreError):
        return 0


def resources(ray, cpus: float | None = None, gpus: float | None = None) -> dict:
    """What one task asks for: one GPU where the cluster has GPUs, else one CPU (``cpus`` and
    ``gpus`` override, e.g. ``gpus=0.5`` for two small models on one GPU)."""
    has_gpu = ray.cluster_resources().get("GPU", 0) >= 1
    out = {"num_cpus": 1 if cpus is None else cpus,
           "num_gpus": (1 if has_gpu else 0) if gpus is None else gpus}
    if out["num_gpus"] and not has_gpu:
        raise ClusterError(f"tasks ask for {out['num_gpus']} GPU but the Ray cluster has none; "
                           "leave --gpus-per-task out on a CPU cluster")
    return out


def run_ray(profile: str, runs_dir: str | os.PathLike | None = None, shards_per_cell: int = 1,
             address: str | None = None, cpus: float | None = None, gpus: float | None = None,
             max_retries: int = 3, progress: bool = True, chosen: list[RunConfig] | None = None) -> pd.DataFrame:
    """Sample every cell of ``profile`` (or the ``chosen`` cells) on a Ray cluster, each cell in
    ``shards_per_cell`` tasks; returns one row per cell: questions, done, complete.

    ``address``: ``None`` starts a local Ray cluster unless ``RAY_ADDRESS`` names one (or Ray
    is already initialised in this process), ``"auto"`` joins the cluster this machine belongs
    to, ``"ray://host:10001"`` connects through Ray Client. ``runs_dir`` must be a path every
    worker sees (a shared filesystem) or an fsspec URL. A task that failed is reported with
    its error after the others have finished; running the same command again resumes.
    """
    if shards_per_cell < 1:
        raise ClusterError(f"--shards-per-cell must be at least 1, got {shards_per_cell}")
    ray = import_ray()
    runs_dir = _local(runs_dir)
    started = not ray.is_initialized()
    if started:
        env = {k: os.environ[k] for k in PASS_ENV if k in os.environ}
        # workers' output would interleave with the progress bar; their errors come back as exceptions
        ray.init(address=address, runtime_env={"env_vars": env} if env else None, log_to_driver=False)
    try:
        need = resources(ray, cpus, gpus)
        remote = ray.remote(max_retries=max_retries, retry_exceptions=False, **need)(run_shard)
        threads = int(need["num_cpus"]) or 1
        return _drive(profile, runs_dir, chosen, shards_per_cell, progress, f"grid {profile} on Ray",
                      start=lambda c, shard: remote.remote(c, profile, runs_dir, shard, threads),
                      wait=lambda handles: ray.wait(handles, num_returns=1, timeout=POLL)[0],
                      result=ray.get)
    finally:
        if started:
            ray.shutdown()


def run_local(profile: str, runs_dir: str | os.PathLike | None = None, processes: int = 2, threads: int = 1,
              shards_per_cell: int | None = None, progress: bool = True,
              chosen: list[RunConfig] | None = None) -> pd.DataFrame:
    """Sample every cell of ``profile`` (or the ``chosen`` cells) in ``processes`` worker
    processes of this machine (:func:`siautil.workers.pool`), each with ``threads`` torch
    threads; returns the table of :func:`run_ray`.

    Each cell is cut into ``shards_per_cell`` tasks (default: one per process) of whole
    windows, as ``--shard`` cuts it between machines, so the stores and records are those a
    serial run with as many threads writes; cells of very different sizes still keep every
    worker busy. A small model decodes at a few dozen rows a step, too few to keep more than
    one core busy, so on a CPU processes of one thread use the cores better than one process
    of many (``benchmarks/ray_overhead.py`` measures it)."""
    import concurrent.futures as cf

    if processes < 1 or threads < 1:
        raise ClusterError(f"--workers needs at least one process of one thread, got {processes} x {threads}")
    runs_dir = _local(runs_dir)
    with workers.pool(processes) as pool:
        return _drive(profile, runs_dir, chosen, shards_per_cell or processes, progress,
                      f"grid {profile} in {processes} processes",
                      start=lambda c, shard: pool.submit(run_shard, c, profile, runs_dir, shard, threads),
                      wait=lambda handles: cf.wait(handles, timeout=POLL, return_when=cf.FIRST_COMPLETED).done,
                      result=lambda future: future.result())


def _drive(profile: str, runs_dir: str, chosen: list[RunConfig] | None, shards_per_cell: int, progress: bool,
           desc: str, start, wait, result) -> pd.DataFrame:
    """Run a task per (cell, shard) with ``start(cell, shard)``, shard by shard across the cells,
    and show one progress bar over the grid's questions, read from the stores, until
    ``wait(handles)`` has returned every task; ``result(handle)`` raises a task's error."""
    cells = grid.cells(profile) if chosen is None else list(chosen)
    skipped = [c for c in cells if not runs.data_available(c)]
    for c in skipped:
        print(runs.skipped(c), flush=True)
    cells = [c for c in cells if c not in skipped]
    # one store object per cell for the whole run: it remembers which files it has checked
    stores = {c.name: store.RunStore(paths.run_dir(c, profile, runs_dir), {}) for c in cells}
    sizes = {c.name: len(runs.questions(c)) for c in cells}
    pending = {start(c, f"{k}/{shards_per_cell}"): (c, k) for k in range(shards_per_cell) for c in cells}
    failed = []
    with tqdm(total=sum(sizes.values()), desc=desc, unit="question", disable=not progress) as bar:

        def update() -> dict[str, int]:
            done = {c.name: _done(stores[c.name], sizes[c.name]) for c in cells}
            bar.n = sum(done.values())
            bar.set_postfix(cells=f"{sum(done[c] == sizes[c] for c in done)}/{len(cells)} complete",
                            tasks_left=len(pending), refresh=False)
            bar.refresh()
            return done

        update()
        while pending:
            for handle in wait(list(pending)):
                cell, k = pending.pop(handle)
                try:
                    result(handle)
                except Exception as e:  # reported with the others once every task has ended
                    failed.append(workers.failure(f"{cell.name} shard {k}/{shards_per_cell}", e))
            update()
        done = update()
    table = pd.DataFrame([dict(cell=c.name, questions=sizes[c.name], done=done[c.name],
                               complete=done[c.name] == sizes[c.name]) for c in cells])
    if progress:
        print(table.to_string(index=False), flush=True)
    if failed:
        raise ClusterError(f"{len(failed)} of {len(cells) * shards_per_cell} tasks failed (their finished questions "
                           "are kept; running the same command again resumes):\n  " + "\n  ".join(failed))
    return table


def sampler(**options):
    """What :func:`siautil.runs.sample_grid` calls to sample a profile's cells on Ray:
    :func:`run_ray` with ``options`` (``address``, ``shards_per_cell``, ``cpus``, ``gpus``,
    ``max_retries``). Ray itself is imported when it is called."""
    def sample(profile: str, runs_dir, progress: bool, chosen: list[RunConfig]) -> pd.DataFrame:
        return run_ray(profile, runs_dir, progress=progress, chosen=chosen, **options)

    return sample


def local_sampler(processes: int, threads: int = 1):
    """What :func:`siautil.runs.sample_grid` calls to sample a profile's cells in ``processes``
    worker processes of this machine (:func:`run_local`)."""
    def sample(profile: str, runs_dir, progress: bool, chosen: list[RunConfig]) -> pd.DataFrame:
        return run_local(profile, runs_dir, processes=processes, threads=threads, progress=progress, chosen=chosen)

    return sample
