"""runtime.worker_pool: the ordered map over worker processes that a stop cannot hang."""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import time

import pytest

from connectx_gym.errors import WorkerError
from connectx_gym.runtime.worker_pool import WorkerPool


def slow_square(job):
    number, seconds = job
    time.sleep(seconds)
    return number * number


def pid_of(_job):
    return os.getpid()


def fails(job):
    raise ValueError(f"bad job {job}")


def dies(_job):
    os._exit(3)


@pytest.fixture
def pool():
    made = WorkerPool(2, mp.get_context("forkserver"), "test worker")
    yield made
    made.close()


def test_results_come_in_the_jobs_order_whatever_order_they_finish(pool):
    jobs = [(1, 0.3), (2, 0.0), (3, 0.1), (4, 0.0), (5, 0.0)]
    assert list(pool.imap(slow_square, jobs)) == [1, 4, 9, 16, 25]
    assert list(pool.imap(slow_square, [])) == []
    assert len(set(pool.imap(pid_of, range(8)))) == 2  # both workers took jobs, and the pool is reusable


def test_a_failing_job_is_a_worker_error_with_its_traceback(pool):
    with pytest.raises(WorkerError, match=r"test worker \d \(pid \d+\) failed: ValueError: bad job 1") as caught:
        list(pool.imap(fails, [1]))
    assert "raise ValueError" in caught.value.worker_traceback


def test_a_worker_that_dies_is_named_with_its_exit(pool):
    with pytest.raises(WorkerError, match=r"test worker \d \(pid \d+\) exited with code 3"):
        list(pool.imap(dies, [0]))


def test_the_workers_ignore_stop_signals_and_close_does_not_wait_for_busy_ones(pool):
    pids = set(pool.imap(pid_of, range(4)))
    for pid in pids:
        os.kill(pid, signal.SIGTERM)  # as a stop to the whole process group: the parent decides
        os.kill(pid, signal.SIGINT)
    assert list(pool.imap(slow_square, [(3, 0.0), (4, 0.0)])) == [9, 16]
    running = pool.imap(slow_square, [(1, 0.0), (2, 60.0), (3, 60.0)])
    assert next(running) == 1  # now both workers run a job of a minute
    started = time.monotonic()
    pool.close()
    assert time.monotonic() - started < 5

    def gone(pid):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        return False

    deadline = time.monotonic() + 5
    while not all(gone(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert all(gone(pid) for pid in pids)
