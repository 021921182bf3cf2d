"""Worker processes: a job that fails or a worker that dies is reported plainly, and leaving the
block by an exception (Ctrl-C included) stops the workers instead of running every queued job."""

import concurrent.futures as cf
import os
import time

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
    for p in processes:
        p.join(timeout=10)
        assert not p.is_alive()
    assert sum(j.cancelled() for j in jobs) >= 3


@pytest.mark.slow
def test_a_dead_worker_and_a_failing_job_are_reported_plainly():
    with workers.pool(1) as pool:
        failing = pool.submit(int, "not a number")
        line = workers.failure("job 1", failing.exception())
        assert line.startswith("job 1: ValueError: invalid literal")
        dead = pool.submit(os._exit, 1)
        cf.wait([dead])
        assert "a worker process died" in workers.failure("job 2", dead.exception())
