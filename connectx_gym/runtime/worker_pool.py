"""An ordered map over worker processes that a stop cannot hang: one pipe per worker, nothing shared.

``multiprocessing.Pool`` and ``ProcessPoolExecutor`` feed their workers through one queue guarded by
one lock, which an idle worker holds while it waits for a task. A worker killed at that moment (the
stop signal of ``timeout`` or a scheduler reaches the whole process group) leaves the lock held for
good, and ``Pool.terminate`` then waits on it forever: a stopped run that never saves. Here each
worker has its own pipe, so a worker that dies blocks nothing: the map raises ``WorkerError`` naming
it, and :meth:`WorkerPool.close` kills the workers still busy (a stop does not wait for a task to
end) and lets the idle ones exit.

The workers ignore the stop signals (SIGINT, SIGTERM, SIGHUP): the parent decides when they stop,
after saving its work. They run one BLAS thread each (started inside ``single_threaded_children``).
"""

from __future__ import annotations

import signal
import traceback
from collections.abc import Callable, Iterable, Iterator
from multiprocessing import connection
from typing import Any

from connectx_gym.errors import WorkerError
from connectx_gym.runtime.processes import single_threaded_children

#: seconds a worker gets to exit after it is told to, before it is killed
CLOSE_TIMEOUT_S = 5.0
#: the signals the workers ignore
WORKER_IGNORES = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def _serve(remote: Any, parent_remote: Any) -> None:
    """A worker: ``(function, job)`` in, ``("ok", result)`` or ``("error", (summary, traceback))`` out,
    until ``None`` or the parent goes away."""
    parent_remote.close()
    for signum in WORKER_IGNORES:
        signal.signal(signum, signal.SIG_IGN)
    try:
        while True:
            task = remote.recv()
            if task is None:
                break
            function, job = task
            try:
                remote.send(("ok", function(job)))
            except Exception as error:  # reported to the parent, which raises it as a WorkerError
                remote.send(("error", (f"{type(error).__name__}: {error}", traceback.format_exc())))
    except (EOFError, BrokenPipeError, OSError):
        pass  # the parent is gone
    finally:
        remote.close()


def exit_text(exitcode: int | None) -> str:
    """How an error says a worker process ended: ``was killed by SIGKILL``, ``exited with code 3``."""
    if exitcode is None:
        return "is unresponsive"
    if exitcode < 0:
        try:
            return f"was killed by {signal.Signals(-exitcode).name}"
        except ValueError:
            return f"was killed by signal {-exitcode}"
    return f"exited with code {exitcode}"


class WorkerPool:
    """``processes`` worker processes of ``context`` (``multiprocessing.get_context(...)``), each fed one
    job at a time over its own pipe.

    :param name: how errors name the workers (``self-play worker 1 (pid 4242)``)
    """

    def __init__(self, processes: int, context: Any, name: str = "worker") -> None:
        self.name = name
        self.workers: list[tuple[Any, Any]] = []
        self.busy: dict[int, int] = {}  # worker index -> the job it is running
        with single_threaded_children():
            for index in range(processes):
                remote, work_remote = context.Pipe()
                process = context.Process(
                    target=_serve, args=(work_remote, remote), daemon=True, name=f"connectx-{name}-{index}"
                )
                process.start()
                work_remote.close()
                self.workers.append((process, remote))

    def imap(self, function: Callable[[Any], Any], jobs: Iterable[Any]) -> Iterator[Any]:
        """``function(job)`` of every job, in the jobs' order, each worker running one job at a time.

        :raises WorkerError: a job raised (its worker's traceback kept), or a worker died
        """
        if self.busy:
            raise RuntimeError("a map of this pool was left unfinished: close the pool")
        pending = list(jobs)
        results: dict[int, Any] = {}
        next_job = next_result = 0
        idle = list(range(len(self.workers)))
        while next_result < len(pending):
            while idle and next_job < len(pending):
                index = idle.pop(0)
                self._send(index, (function, pending[next_job]))
                self.busy[index] = next_job
                next_job += 1
            while next_result in results:
                yield results.pop(next_result)
                next_result += 1
            if next_result >= len(pending):
                break
            remotes = {self.workers[i][1]: i for i in self.busy}
            sentinels = {self.workers[i][0].sentinel: i for i in self.busy}
            for ready in connection.wait([*remotes, *sentinels]):
                index = remotes.get(ready, sentinels.get(ready))
                if index not in self.busy:
                    continue  # both its pipe and its sentinel were ready
                results[self.busy.pop(index)] = self._receive(index)
                idle.append(index)

    def _describe(self, index: int) -> str:
        return f"{self.name} {index} (pid {self.workers[index][0].pid})"

    def _send(self, index: int, task: Any) -> None:
        try:
            self.workers[index][1].send(task)
        except (BrokenPipeError, EOFError, OSError):
            raise WorkerError(f"{self._describe(index)} {exit_text(self._joined(index).exitcode)}") from None

    def _receive(self, index: int) -> Any:
        try:
            status, payload = self.workers[index][1].recv()
        except (EOFError, OSError):
            raise WorkerError(f"{self._describe(index)} {exit_text(self._joined(index).exitcode)}") from None
        if status == "error":
            summary, worker_traceback = payload
            raise WorkerError(f"{self._describe(index)} failed: {summary}", worker_traceback)
        return payload

    def _joined(self, index: int) -> Any:
        process = self.workers[index][0]
        process.join(timeout=1.0)
        return process

    def close(self) -> None:
        """Kill the busy workers, tell the idle ones to exit, and wait for all of them."""
        for index, (process, remote) in enumerate(self.workers):
            if index in self.busy:
                process.kill()
            else:
                try:
                    remote.send(None)
                except (BrokenPipeError, EOFError, OSError):
                    pass
        for process, remote in self.workers:
            process.join(timeout=CLOSE_TIMEOUT_S)
            if process.is_alive():
                process.kill()
                process.join()
            remote.close()
        self.workers, self.busy = [], {}
