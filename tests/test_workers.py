"""Worker processes: a job that fails or a worker that dies is reported plainly, and leaving the
block by an exception (Ctrl-C included) stops the workers instead of running every queued job."""

import concurrent.futures as cf
import os
import time
from multiprocessing import connection

import pytest

from siautil import workers


def test_cores_is_what_this_process_may_use():
    assert 1 <= workers.cores() <= (os.cpu_count() or 1)


@pytest.mark.slow
def test_an_exception_in_the_block_stops_the_workers_at_once():
    start = time.perf_counter()
    with pytest.raises(KeyboardInterrupt):
        with workers.pool(2) as pool:
            jobs = [pool.submit(time.sleep, 60) for _ in range(6)]
            time.sleep(2)  # the first two are running
            processes = list(pool._processes.values())
            raise KeyboardInterrupt
    assert time.perf_counter() - start < 30  # not the 180 s of the queued sleeps
    # a process's sentinel is ready once it has ended (is_alive() cannot tell when the pool's own
    # thread reaped it first)
    waiting, deadline = {p.sentinel for p in processes}, time.monotonic() + 10
    while waiting and time.monotonic() < deadline:
        waiting -= set(connection.wait(list(waiting), timeout=deadline - time.monotonic()))
    assert not waiting, "a worker outlived the block"
    # no queued sleep ran to its end: each was cancelled, or failed with the pool it was in
    cf.wait(jobs, timeout=10)
    assert all(j.done() and (j.cancelled() or j.exception() is not None) for j in jobs)


@pytest.mark.slow
def test_a_dead_worker_and_a_failing_job_are_reported_plainly():
    with workers.pool(1) as pool:
        failing = pool.submit(int, "not a number")
        line = workers.failure("job 1", failing.exception())
        assert line.startswith("job 1: ValueError: invalid literal")
        dead = pool.submit(os._exit, 1)
        cf.wait([dead])
        assert "a worker process died" in workers.failure("job 2", dead.exception())


def _running(pid: int) -> bool:
    """Whether ``pid`` is a live process (a zombie waiting for its reaper has ended)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


DRIVER = """
import sys, time
from siautil import workers
with workers.pool(2) as pool:
    jobs = [pool.submit(time.sleep, 300) for _ in range(2)]
    while len(pool._processes) < 2 or not all(j.running() for j in jobs):
        time.sleep(0.1)
    print(*[p.pid for p in pool._processes.values()], flush=True)
    time.sleep(300)
"""


@pytest.mark.slow
@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="reads process states from /proc")
def test_workers_end_within_seconds_when_their_driver_is_killed():
    import signal
    import subprocess
    import sys

    driver = subprocess.Popen([sys.executable, "-c", DRIVER], stdout=subprocess.PIPE, text=True)
    try:
        pids = [int(p) for p in driver.stdout.readline().split()]
        assert len(pids) == 2 and all(_running(p) for p in pids)
        driver.send_signal(signal.SIGKILL)
        driver.wait(timeout=10)
        deadline = time.monotonic() + 5
        while any(_running(p) for p in pids) and time.monotonic() < deadline:
            time.sleep(0.1)
        alive = [p for p in pids if _running(p)]
        for p in alive:  # leave nothing behind even when the test fails
            os.kill(p, signal.SIGKILL)
        assert not alive, f"workers {alive} outlived their driver by 5 s"
    finally:
        if driver.poll() is None:
            driver.kill()
