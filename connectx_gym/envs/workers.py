"""The transports of ``ChunkedVecEnv``: where a chunk of envs runs and how messages reach it.

A worker serves one ``chunk.EnvChunk`` behind one call interface (``send`` a command, ``recv``
its reply, ``stop``): in this process, in a subprocess over a pipe, or in a Ray actor on a local
or remote cluster. Every transport steps its chunk with the same ``chunk.dispatch``; a worker
that raises or dies becomes a ``WorkerError`` naming the worker, its envs and the cause.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import cloudpickle

from connectx_gym.envs.chunk import ChunkActor, EnvChunk, dispatch, worker_main
from connectx_gym.errors import UserError, WorkerError
from connectx_gym.runtime.processes import usable_cpu_count
from connectx_gym.runtime.ray_cluster import cluster_cpus, connect, import_ray
from connectx_gym.runtime.worker_pool import exit_text

#: seconds between liveness checks while waiting for a worker's reply
POLL_INTERVAL_S = 0.5
#: seconds a worker gets to exit cleanly on close before it is terminated
CLOSE_TIMEOUT_S = 5.0
#: what needs Ray, in the message shown when it is not installed
BACKEND_NEEDS_RAY = "multiprocessing.backend=ray"


def split_evenly(count: int, parts: int) -> list[range]:
    """``count`` indices in ``parts`` contiguous ranges whose sizes differ by at most one."""
    base, extra = divmod(count, parts)
    ranges, start = [], 0
    for part in range(parts):
        size = base + (1 if part < extra else 0)
        ranges.append(range(start, start + size))
        start += size
    return ranges


def worker_label(index: int, env_indices: range, where: str) -> str:
    """How errors name a worker: ``env worker 1 (envs 2-3, pid 4242)``."""
    return f"env worker {index} (envs {env_indices.start}-{env_indices.stop - 1}, {where})"


class InProcessWorker:
    """A chunk stepped in this process, behind the same call interface as a subprocess."""

    def __init__(self, env_fns: Sequence[Callable[[], Any]]) -> None:
        self.chunk = EnvChunk(env_fns)
        self._pending: Any = None

    def spaces(self):
        return self.chunk.observation_space, self.chunk.action_space

    def send(self, command: str, data: Any) -> None:
        self._pending = dispatch(self.chunk, command, data)

    def recv(self) -> Any:
        reply, self._pending = self._pending, None
        return reply

    def stop(self) -> None:
        pass


class SubprocessWorker:
    """A chunk served by a worker process over a pipe; failures become ``WorkerError``."""

    def __init__(self, index: int, env_indices: range, env_fns, context) -> None:
        self.index = index
        self.env_indices = env_indices
        self.remote, work_remote = context.Pipe()
        payload = cloudpickle.dumps(list(env_fns))
        self.process = context.Process(
            target=worker_main, args=(work_remote, self.remote, payload), daemon=True, name=f"connectx-worker-{index}"
        )
        self.process.start()
        work_remote.close()
        self._spaces = self.recv()

    def describe(self) -> str:
        return worker_label(self.index, self.env_indices, f"pid {self.process.pid}")

    def spaces(self):
        return self._spaces

    def send(self, command: str, data: Any) -> None:
        try:
            self.remote.send((command, data))
        except (BrokenPipeError, EOFError, OSError):
            self._raise_dead()

    def recv(self) -> Any:
        remote = self.remote
        while not remote.poll(POLL_INTERVAL_S):
            if not self.process.is_alive():
                self._raise_dead()
        try:
            status, payload = remote.recv()
        except (EOFError, OSError):
            self._raise_dead()
        if status == "error":
            summary, worker_traceback = payload
            raise WorkerError(f"{self.describe()} failed: {summary}", worker_traceback)
        return payload

    def _raise_dead(self):
        self.process.join(timeout=1.0)
        raise WorkerError(f"{self.describe()} {exit_text(self.process.exitcode)}")

    def stop(self) -> None:
        if self.process.is_alive():
            try:
                self.remote.send(("close", None))
            except (BrokenPipeError, EOFError, OSError):
                pass
            self.process.join(timeout=CLOSE_TIMEOUT_S)
        if self.process.is_alive():
            self.process.terminate()
            self.process.join(timeout=CLOSE_TIMEOUT_S)
        self.remote.close()


class RayWorker:
    """A chunk served by a Ray actor; a dead actor or an error inside it becomes ``WorkerError``.

    Creating one only submits the actor: ``spaces()`` waits for it, so all actors of a vec env
    start at the same time.
    """

    def __init__(self, index: int, env_indices: range, env_fns, actor_class, num_cpus: float) -> None:
        self.ray = import_ray(BACKEND_NEEDS_RAY)
        self.index = index
        self.env_indices = env_indices
        self.where = ""
        self.actor = actor_class.options(num_cpus=num_cpus).remote(cloudpickle.dumps(list(env_fns)))
        self._pending = self.actor.describe.remote()
        self._spaces = None

    def describe(self) -> str:
        return worker_label(self.index, self.env_indices, f"ray actor{self.where}")

    def spaces(self):
        if self._spaces is None:
            observation_space, action_space, pid, host = self.recv()
            self.where = f" pid {pid} on {host}"
            self._spaces = observation_space, action_space
        return self._spaces

    def send(self, command: str, data: Any) -> None:
        self._pending = self.actor.call.remote(command, data)

    def recv(self) -> Any:
        exceptions = self.ray.exceptions
        pending, self._pending = self._pending, None
        try:
            return self.ray.get(pending)
        except exceptions.RayActorError as error:
            text = getattr(error, "error_msg", "") or str(error)
            if getattr(error, "_actor_init_failed", False):  # the chunk's envs could not be built
                raise WorkerError(f"{self.describe()} failed to start: {_lines(text)[-1]}", text) from None
            raise WorkerError(f"{self.describe()} died: {_lines(text)[0]}", text) from None
        except exceptions.RayTaskError as error:
            cause = error.cause if isinstance(error.cause, BaseException) else error
            raise WorkerError(f"{self.describe()} failed: {type(cause).__name__}: {cause}", str(error)) from None

    def stop(self) -> None:
        try:
            self.ray.get(self.actor.call.remote("close", None), timeout=CLOSE_TIMEOUT_S)
        except Exception:  # dead, stuck or already gone: killed below all the same
            pass
        self.ray.kill(self.actor)


def _lines(text: str) -> list[str]:
    """The non-blank lines of ``text`` (at least one)."""
    return [line.strip() for line in text.splitlines() if line.strip()] or ["(no message)"]


def ray_chunk_actor_class(address: str | None, cpus_needed: float):
    """``ray.remote(ChunkActor)``, after joining the cluster at ``address`` (or starting a local one).

    A local instance gets at least ``cpus_needed`` logical CPUs, as the subprocess backend starts
    as many workers as asked for; a cluster that has fewer in all is an error rather than actors
    that wait forever for a place.
    """
    needed = max(1, math.ceil(cpus_needed))
    if not address:
        ray = connect("", num_cpus=max(usable_cpu_count(), needed), what=BACKEND_NEEDS_RAY)
    else:
        ray = connect(address, what=BACKEND_NEEDS_RAY)
    available = cluster_cpus(ray)
    if cpus_needed > available:
        raise UserError(
            f"the ray backend needs {cpus_needed:g} CPUs (multiprocessing.num_processes × ray.num_cpus_per_worker) "
            f"but the Ray cluster has {available}; lower one of them or add nodes"
        )
    return ray.remote(ChunkActor)
