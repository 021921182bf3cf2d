"""The grid on a Ray cluster (siautil.cluster), on a local cluster this module starts (CPU only, two
CPUs, no dashboard, no usage statistics): records equal a local serial run's, a worker killed in the
middle of its task is run again and leaves nothing partial, a driver killed and started again resumes
without redoing finished questions, the command line's progress bar and closing table; and what the
command line says without Ray."""

import os
import pickle
import signal
import subprocess
import sys
import threading
import time
from dataclasses import replace

import pandas as pd
import pytest

from siautil import cli, cluster, grid, paths, runs, store, workers
from siautil.config import RunConfig

#: windows of one question, so a task writes often and a kill lands between two of its questions
SETTINGS = replace(grid.TOY, n_traces=2, n_continuations=3, stride=8, window=1)
CELLS = [RunConfig("toy-sft", "toy", SETTINGS, limit=8), RunConfig("toy-rl", "toy", SETTINGS, limit=3)]
PROFILE = "default"


def test_asking_for_ray_without_it_says_how_to_install(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)  # what an install without the extra sees
    assert cli.main(["grid", "--profile", "default", "--executor", "ray", "--no-book"]) == cli.ERROR_EXIT
    assert "pip install 'siautil[ray]'" in capsys.readouterr().err


def test_local_workers_by_default_one_per_core_and_serial_where_a_process_each_would_not_pay(monkeypatch):
    monkeypatch.setattr(workers, "cores", lambda: 2)
    assert workers.local_workers(None, None, serial=False, threads=2) == (2, 1)
    assert workers.local_workers(None, "0/2", serial=False, threads=2) == (1, 2)  # the shard is the machine's share
    assert workers.local_workers(None, None, serial=True, threads=2) == (1, 2)  # a GPU, or a multi-billion model
    assert workers.local_workers(3, None, serial=False, threads=2) == (3, 1)
    monkeypatch.setattr(workers, "cores", lambda: 16)
    assert workers.local_workers(None, None, serial=False, threads=16) == (workers.MAX_PROCESSES,
                                                                           16 // workers.MAX_PROCESSES)
    with pytest.raises(ValueError, match="--workers 0: give at least 1"):
        workers.local_workers(0, None, serial=False, threads=2)


def test_workers_are_the_local_executor_s_and_not_with_a_shard(capsys):
    assert cli.main(["grid", "--workers", "2", "--shard", "0/2", "--no-book"]) == cli.ERROR_EXIT
    assert "use --workers alone" in capsys.readouterr().err
    assert cli.main(["grid", "--executor", "ray", "--workers", "2", "--no-book"]) == cli.ERROR_EXIT
    assert "--workers: only with --executor local" in capsys.readouterr().err


@pytest.mark.slow
def test_a_grid_in_local_worker_processes_equals_a_local_serial_run(serial, tmp_path):
    table = cluster.run_local(PROFILE, tmp_path, processes=2, threads=1, chosen=CELLS, progress=False)
    assert table[["cell", "questions", "done", "complete"]].values.tolist() == [
        ["toy-sft__toy", 8, 8, True], ["toy-rl__toy", 3, 3, True]]
    pd.testing.assert_frame_equal(_records(tmp_path), serial)
    assert store.read_config(paths.run_dir(CELLS[0], PROFILE, tmp_path))["machine"]["threads"] == 1


def test_ray_options_need_the_ray_executor_and_shards_and_urls_are_its_own(capsys):
    assert cli.main(["grid", "--profile", "default", "--shards-per-cell", "2", "--no-book"]) == cli.ERROR_EXIT
    assert "--shards-per-cell: only with --executor ray" in capsys.readouterr().err
    assert cli.main(["grid", "--executor", "ray", "--shard", "0/2", "--no-book"]) == cli.ERROR_EXIT
    assert "use --shards-per-cell" in capsys.readouterr().err
    assert cli.main(["grid", "--runs-dir", "s3://bucket/runs", "--no-book"]) == cli.ERROR_EXIT
    assert "a URL takes --executor ray" in capsys.readouterr().err


try:
    import ray
except ImportError:
    ray = None


@pytest.fixture(scope="module")
def cluster_address():
    if ray is None:
        pytest.skip("Ray is not installed: pip install 'siautil[ray]' (the dev extra has it)")
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"  # inherited by the cluster's processes: nothing is reported
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, object_store_memory=100 * 2**20,
             runtime_env={"env_vars": {"OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE"}})
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()


@pytest.fixture(scope="module")
def serial(tmp_path_factory):
    """The grid's records from a local serial run (one torch thread, as the tasks)."""
    path = tmp_path_factory.mktemp("serial")
    for cell in CELLS:
        runs.ensure(cell, PROFILE, path, progress=False)
    return _records(path)


def _records(runs_dir):
    df = runs.records(PROFILE, CELLS, runs_dir=runs_dir, run_missing=False, progress=False)
    return df.sort_values(["model", "question_index", "trace", "t"]).reset_index(drop=True)


def _files(runs_dir):
    return {p: p.stat().st_mtime_ns for p in runs_dir.rglob("q*.parquet")}


def _workers_running(name=b"ray::run_shard"):
    """PIDs of Ray workers running a grid task now (Ray names the process after its task)."""
    out = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if f.read().startswith(name):
                    out.append(int(pid))
        except OSError:
            pass
    return out


def _wait_for(predicate, what, seconds=120):
    deadline = time.time() + seconds
    while not predicate():
        assert time.time() < deadline, f"gave up waiting for {what}"
        time.sleep(0.01)


def test_a_ray_grid_equals_a_local_serial_run(cluster_address, serial, tmp_path):
    table = cluster.run_ray(PROFILE, tmp_path, shards_per_cell=2, chosen=CELLS, progress=False)
    assert table[["cell", "questions", "done", "complete"]].values.tolist() == [
        ["toy-sft__toy", 8, 8, True], ["toy-rl__toy", 3, 3, True]]
    pd.testing.assert_frame_equal(_records(tmp_path), serial)
    assert store.read_config(paths.run_dir(CELLS[0], PROFILE, tmp_path))["machine"]["threads"] == 1


def test_the_command_line_shows_one_bar_for_the_grid_and_the_cells_complete(cluster_address, monkeypatch, capsys,
                                                                             tmp_path):
    monkeypatch.setattr(grid, "cells", lambda profile: CELLS)
    assert cli.main(["grid", "--profile", PROFILE, "--executor", "ray", "--shards-per-cell", "2",
                     "--runs-dir", str(tmp_path), "--no-book"]) == 0
    out = capsys.readouterr()
    assert "grid default on Ray" in out.err and "11/11" in out.err and "2/2 complete" in out.err
    assert [line.split() for line in out.out.splitlines()[-2:]] == [["toy-sft__toy", "8", "8", "True"],
                                                                    ["toy-rl__toy", "3", "3", "True"]]


@pytest.mark.skipif(not os.path.isdir("/proc"), reason="finds the worker to kill in /proc (Linux)")
def test_a_worker_killed_mid_task_is_run_again_and_leaves_nothing_partial(cluster_address, serial, tmp_path):
    cell_dir = paths.run_dir(CELLS[0], PROFILE, tmp_path)
    result = {}
    driver = threading.Thread(target=lambda: result.update(table=cluster.run_ray(
        PROFILE, tmp_path, chosen=CELLS[:1], progress=False)))
    driver.start()
    _wait_for(lambda: cell_dir.exists() and len(store.RunStore(cell_dir, {}).done()) >= 1, "the first question")
    victims = _workers_running()
    written = len(list((cell_dir / store.RECORDS).glob("q*.parquet")))
    assert len(victims) == 1 and written < CELLS[0].limit, "the task ended before it could be killed"
    os.kill(victims[0], signal.SIGKILL)
    driver.join()
    assert result["table"]["complete"].all()
    assert not list(cell_dir.rglob(".*.tmp-*")) and store.RunStore(cell_dir, {}).damaged() == {}
    pd.testing.assert_frame_equal(_records(tmp_path).query("model == 'toy-sft'").reset_index(drop=True),
                                  serial.query("model == 'toy-sft'").reset_index(drop=True))


DRIVER = """
import pickle, sys
from siautil import cluster
cells = pickle.loads(bytes.fromhex(sys.argv[3]))
cluster.run_ray("default", sys.argv[2], chosen=cells, address=sys.argv[1], progress=False)
"""


@pytest.mark.skipif(not os.path.isdir("/proc"), reason="waits for the dead driver's workers in /proc (Linux)")
def test_a_driver_killed_and_started_again_resumes_without_redoing_finished_questions(cluster_address, serial,
                                                                                      tmp_path):
    cells = CELLS[:1]  # one task: the restart finds a worker of this module's earlier tests ready
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-c", DRIVER, cluster_address, str(tmp_path), pickle.dumps(cells).hex()],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _wait_for(lambda: len(_files(tmp_path)) >= 1 or proc.poll() is not None, "a finished question")
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    # the cluster ends a dead driver's tasks; wait for that, so what is on disk now stays
    _wait_for(lambda: not _workers_running(), "the dead driver's tasks to end", seconds=60)
    before = _files(tmp_path)  # whole files only: each is renamed into place complete
    assert 1 <= len(before) < cells[0].limit, "the driver finished before it could be killed"
    table = cluster.run_ray(PROFILE, tmp_path, chosen=cells, progress=False)
    assert table["complete"].all()
    assert {p: t for p, t in _files(tmp_path).items() if p in before} == before  # not one rewritten
    pd.testing.assert_frame_equal(_records(tmp_path).query("model == 'toy-sft'").reset_index(drop=True),
                                  serial.query("model == 'toy-sft'").reset_index(drop=True))
