"""``ChunkedVecEnv``: SB3 ``VecEnv`` semantics with one message per worker per step.

Each worker owns a contiguous chunk of environments (``chunk.EnvChunk``). A step sends every
worker its slice of the actions and receives stacked observations, rewards, dones, infos and
action masks in one reply; finished episodes reset inside the worker. MaskablePPO's
``env_method("action_masks")`` is answered from the masks that came with the observations, so it
costs no round trip. With ``use_multiprocessing=False`` the same chunks run in this process; with
``use_ray=True`` each chunk is a Ray actor (``chunk.ChunkActor``) on a local or remote cluster.
Only the transport differs: every worker steps its chunk with the same ``chunk.dispatch``.

``make_vec_env`` builds the training vec env from the config: this one, or SB3's own
``SubprocVecEnv`` / ``DummyVecEnv`` for comparison.
"""

from __future__ import annotations

import multiprocessing as mp
import typing
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

import connectx_gym.runtime.quiet  # noqa: F401 - first: no legacy gym banner when SB3 loads

import numpy as np
from stable_baselines3.common.vec_env import VecEnv
from stable_baselines3.common.vec_env.base_vec_env import VecEnvIndices, VecEnvStepReturn

from connectx_gym.config.training import VecBackend
from connectx_gym.envs.connectx import ConnectXEnv
from connectx_gym.envs.workers import (
    InProcessWorker,
    RayWorker,
    SubprocessWorker,
    ray_chunk_actor_class,
    split_evenly,
)
from connectx_gym.runtime.processes import single_threaded_children

MASK_METHOD = "action_masks"


class ChunkedVecEnv(VecEnv):
    """Vectorized env over chunks of envs, one message per worker per step.

    :param env_fns: one callable per env (must be picklable by cloudpickle for subprocesses)
    :param num_workers: number of chunks (= worker processes when ``use_multiprocessing``)
    :param use_multiprocessing: run the chunks in worker processes (True) or in this process
    :param start_method: ``forkserver`` (default: safe with torch, workers preload this package),
        ``spawn`` or ``fork``
    :param use_ray: run the chunks as Ray actors instead (``use_multiprocessing`` and
        ``start_method`` then do not apply)
    :param ray_address: the cluster for ``use_ray``: empty or None starts a local instance,
        ``auto`` or ``host:port`` joins one
    :param ray_cpus_per_worker: CPUs each actor reserves from Ray's scheduler
    """

    def __init__(
        self,
        env_fns: Sequence[Callable[[], Any]],
        num_workers: int = 1,
        use_multiprocessing: bool = True,
        start_method: str = "forkserver",
        use_ray: bool = False,
        ray_address: str | None = None,
        ray_cpus_per_worker: float = 1.0,
    ) -> None:
        if not 1 <= num_workers <= len(env_fns):
            raise ValueError(
                f"num_workers must be between 1 and the number of envs ({len(env_fns)}), got {num_workers}"
            )
        self.chunk_ranges = split_evenly(len(env_fns), num_workers)
        self.use_multiprocessing = use_multiprocessing
        self.use_ray = use_ray
        self.workers: list[Any] = []
        self.closed = False
        self.waiting = False
        try:
            if use_ray:
                actor_class = ray_chunk_actor_class(ray_address, ray_cpus_per_worker * num_workers)
                for index, env_indices in enumerate(self.chunk_ranges):
                    fns = [env_fns[i] for i in env_indices]
                    self.workers.append(RayWorker(index, env_indices, fns, actor_class, ray_cpus_per_worker))
                for worker in self.workers:
                    worker.spaces()
            elif use_multiprocessing:
                context = mp.get_context(start_method)
                if start_method == "forkserver":
                    context.set_forkserver_preload(["connectx_gym.envs.chunk"])
                with single_threaded_children():
                    for index, env_indices in enumerate(self.chunk_ranges):
                        fns = [env_fns[i] for i in env_indices]
                        self.workers.append(SubprocessWorker(index, env_indices, fns, context))
            else:
                self.workers = [InProcessWorker([env_fns[i] for i in r]) for r in self.chunk_ranges]
        except BaseException:
            self._stop_workers()
            raise
        observation_space, action_space = self.workers[0].spaces()
        num_envs = len(env_fns)
        self._masks = np.ones((num_envs, action_space.n), dtype=bool)
        self._obs = np.zeros((num_envs,) + observation_space.shape, dtype=observation_space.dtype)
        self._rewards = np.zeros(num_envs, dtype=np.float32)
        self._dones = np.zeros(num_envs, dtype=bool)
        super().__init__(num_envs, observation_space, action_space)

    # ------------------------------------------------------------------ stepping
    def reset(self):
        for worker, env_indices in zip(self.workers, self.chunk_ranges):
            seeds = [self._seeds[i] for i in env_indices]
            options = [self._options[i] for i in env_indices]
            worker.send("reset", (seeds, options))
        reset_infos: list[dict[str, Any]] = []
        for worker, env_indices in zip(self.workers, self.chunk_ranges):
            obs, masks, infos = worker.recv()
            self._obs[env_indices.start : env_indices.stop] = obs
            self._masks[env_indices.start : env_indices.stop] = masks
            reset_infos.extend(infos)
        self.reset_infos = reset_infos
        self._reset_seeds()
        self._reset_options()
        return self._obs.copy()

    def step_async(self, actions: np.ndarray) -> None:
        actions = np.asarray(actions)
        for worker, env_indices in zip(self.workers, self.chunk_ranges):
            worker.send("step", actions[env_indices.start : env_indices.stop])
        self.waiting = True

    def step_wait(self) -> VecEnvStepReturn:
        infos: list[dict[str, Any]] = []
        for worker, env_indices in zip(self.workers, self.chunk_ranges):
            (obs, rewards, dones, chunk_infos, masks), reset_infos = worker.recv()
            window = slice(env_indices.start, env_indices.stop)
            self._obs[window] = obs
            self._rewards[window] = rewards
            self._dones[window] = dones
            self._masks[window] = masks
            infos.extend(chunk_infos)
            for offset, reset_info in enumerate(reset_infos):
                if reset_info:
                    self.reset_infos[env_indices.start + offset] = reset_info
        self.waiting = False
        return self._obs.copy(), self._rewards.copy(), self._dones.copy(), infos

    def worker_profiles(self) -> list[dict[str, Any]]:
        """Each worker's ``envs.profiling.snapshot()``: its timers (with ``CONNECTX_PROFILE=1``), CPU seconds, pid."""
        for worker in self.workers:
            worker.send("profile", None)
        return [worker.recv() for worker in self.workers]

    def action_masks(self) -> np.ndarray:
        """Masks for the current observations of all envs, shape ``(num_envs, n_actions)``."""
        return self._masks.copy()

    # ------------------------------------------------------------------ attribute access
    def _by_worker(self, indices: VecEnvIndices):
        """Group env indices by worker: yields (worker, local indices, global indices)."""
        wanted = list(self._get_indices(indices))
        for worker, env_indices in zip(self.workers, self.chunk_ranges):
            mine = [i for i in wanted if env_indices.start <= i < env_indices.stop]
            if mine:
                yield worker, [i - env_indices.start for i in mine], mine

    def _gather(self, command: str, make_data, indices: VecEnvIndices) -> list[Any]:
        groups = list(self._by_worker(indices))
        for worker, local, _ in groups:
            worker.send(command, make_data(local))
        results: dict[int, Any] = {}
        for worker, _, global_indices in groups:
            results.update(zip(global_indices, worker.recv()))
        return [results[i] for i in self._get_indices(indices)]

    def get_attr(self, attr_name: str, indices: VecEnvIndices = None) -> list[Any]:
        return self._gather("get_attr", lambda local: (attr_name, local), indices)

    def has_attr(self, attr_name: str) -> bool:
        if attr_name == MASK_METHOD:
            return True
        self.workers[0].send("has_attr", attr_name)
        return bool(self.workers[0].recv())

    def set_attr(self, attr_name: str, value: Any, indices: VecEnvIndices = None) -> None:
        groups = list(self._by_worker(indices))
        for worker, local, _ in groups:
            worker.send("set_attr", (attr_name, value, local))
        for worker, _, _ in groups:
            worker.recv()

    def env_method(self, method_name: str, *method_args, indices: VecEnvIndices = None, **method_kwargs) -> list[Any]:
        if method_name == MASK_METHOD and not method_args and not method_kwargs:
            return [self._masks[i].copy() for i in self._get_indices(indices)]
        return self._gather("env_method", lambda local: (method_name, method_args, method_kwargs, local), indices)

    def env_is_wrapped(self, wrapper_class, indices: VecEnvIndices = None) -> list[bool]:
        name = f"{wrapper_class.__module__}.{wrapper_class.__qualname__}"
        return self._gather("env_is_wrapped", lambda local: (name, local), indices)

    def get_images(self):
        raise NotImplementedError("ChunkedVecEnv has no image rendering; use env_method('render')")

    # ------------------------------------------------------------------ shutdown
    def _stop_workers(self) -> None:
        for worker in self.workers:
            try:
                worker.stop()
            except Exception:  # a worker that is already gone must not keep the others alive
                pass

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self._stop_workers()

    def __del__(self):  # pragma: no cover - best effort at interpreter exit
        try:
            self.close()
        except Exception:
            pass


BACKENDS: tuple[str, ...] = typing.get_args(VecBackend)


def teaching_env(env_kwargs: dict[str, Any], teacher: Any) -> Any:
    """A ``ConnectXEnv`` with ``env_kwargs`` whose :attr:`~ConnectXEnv.teacher` is ``teacher``."""
    env = ConnectXEnv(**env_kwargs)
    env.teacher = teacher
    return env


def env_factories(env_kwargs: dict[str, Any], count: int, teacher: Any = None) -> list[Callable[[], Any]]:
    """``count`` picklable callables that each build a ``ConnectXEnv`` with ``env_kwargs`` (and ``teacher``:
    one object, which a worker's envs share once the factories are unpickled together)."""
    if teacher is None:
        return [partial(ConnectXEnv, **env_kwargs) for _ in range(count)]
    return [partial(teaching_env, env_kwargs, teacher) for _ in range(count)]


def make_vec_env(
    env_kwargs: dict[str, Any],
    parallel_episodes: int,
    num_processes: int,
    use_multiprocessing: bool = True,
    backend: str = "chunked",
    start_method: str = "forkserver",
    seed: int | None = None,
    ray_address: str | None = None,
    ray_cpus_per_worker: float = 1.0,
    teacher: Any = None,
) -> VecEnv:
    """The training vec env (not yet reset), seeded so that env ``i`` gets ``seed + i``.

    :param env_kwargs: ``ConnectXEnv`` keyword arguments
    :param parallel_episodes: number of envs (SB3's ``n_envs``)
    :param num_processes: number of chunks / worker processes (``chunked``; ignored by the SB3 backends)
    :param use_multiprocessing: workers in subprocesses (``chunked``)
    :param backend: ``chunked``, ``ray`` (the same chunks as Ray actors), ``sb3_subproc`` (one env
        per process) or ``sb3_dummy`` (in-process)
    :param ray_address: the Ray cluster (``ray``): empty or None starts a local instance
    :param ray_cpus_per_worker: CPUs each chunk actor reserves (``ray``)
    :param teacher: the kickstarting teacher every env labels its observations with
        (:mod:`connectx_gym.envs.teachers`); ``set_attr("teacher", ...)`` replaces or removes it later
    """
    fns = env_factories(env_kwargs, parallel_episodes, teacher)
    if backend == "chunked":
        venv: VecEnv = ChunkedVecEnv(fns, num_processes, use_multiprocessing, start_method)
    elif backend == "ray":
        venv = ChunkedVecEnv(
            fns, num_processes, use_ray=True, ray_address=ray_address, ray_cpus_per_worker=ray_cpus_per_worker
        )
    elif backend == "sb3_subproc":
        # deferred: SB3's own vec envs are built only for their backends
        from stable_baselines3.common.vec_env import SubprocVecEnv

        if start_method == "forkserver":
            mp.get_context("forkserver").set_forkserver_preload(["connectx_gym.runtime.quiet"])
        with single_threaded_children():
            venv = SubprocVecEnv(fns, start_method=start_method)
    elif backend == "sb3_dummy":
        from stable_baselines3.common.vec_env import DummyVecEnv

        venv = DummyVecEnv(fns)
    else:
        raise ValueError(f"backend must be one of {'|'.join(BACKENDS)}, got {backend!r}")
    if seed is not None:
        venv.seed(seed)
    return venv
