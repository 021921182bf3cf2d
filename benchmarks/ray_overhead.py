"""What Ray adds: the wall time of one small grid (three toy cells of 12 questions) run serially
in this process and on a local 2-CPU Ray cluster, the cluster's start, and the per-task cost of
tasks with nothing to do. Prints figures; not a test.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/ray_overhead.py
"""
import os
import shutil
import tempfile
import time
from dataclasses import replace

import torch

from siautil import cluster, grid, runs
from siautil.config import RunConfig

torch.set_num_threads(1)
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # read by ray.init: no network

S = replace(grid.TOY, n_traces=2, n_continuations=3, stride=8, window=1)
CELLS = [RunConfig(f"toy-{r}", "toy", S, limit=12) for r in ("base", "sft", "rl")]
root = tempfile.mkdtemp()
t = time.perf_counter()
for c in CELLS:
    runs.ensure(c, "default", f"{root}/serial", progress=False)
serial = time.perf_counter() - t
print(f"local serial: {serial:.1f} s", flush=True)

ray = cluster.import_ray()
t = time.perf_counter()
ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, object_store_memory=100 * 2**20,
         runtime_env={"env_vars": {"OMP_NUM_THREADS": "1"}})
init = time.perf_counter() - t
print(f"ray.init (local cluster, 2 CPUs): {init:.1f} s", flush=True)
for k, name in ((2, "cold workers"), (2, "warm workers"), (1, "warm workers")):
    shutil.rmtree(f"{root}/ray", ignore_errors=True)
    t = time.perf_counter()
    cluster.run_ray("default", f"{root}/ray", shards_per_cell=k, chosen=CELLS, progress=False)
    print(f"ray grid, {len(CELLS) * k} tasks, {name}: {time.perf_counter() - t:.1f} s", flush=True)
# a grid already complete: every task opens its store, loads its questions and finds nothing to do
t = time.perf_counter()
cluster.run_ray("default", f"{root}/ray", shards_per_cell=4, chosen=CELLS, progress=False)
print(f"ray grid already complete, {len(CELLS) * 4} no-op tasks: {time.perf_counter() - t:.2f} s", flush=True)
t = time.perf_counter()
for c in CELLS:
    for k in range(4):
        runs.ensure(c, "default", f"{root}/ray", shard=f"{k}/4", progress=False)
print(f"the same 12 no-op shards in this process: {time.perf_counter() - t:.2f} s", flush=True)
ray.shutdown()
shutil.rmtree(root)
