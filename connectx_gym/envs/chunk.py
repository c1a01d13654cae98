"""A chunk of environments stepped together, and the ways one is served: over a pipe or as a Ray actor.

``EnvChunk`` is the stepping code every transport shares (in-process, subprocess, Ray actor): it
takes all of a chunk's actions at once and returns stacked observations, rewards,
dones, infos and action masks, resetting finished episodes itself the way SB3's ``VecEnv`` does.
This module deliberately imports neither torch nor stable-baselines3 (nor Ray), so a worker
process starts in a fraction of a second and prints nothing (SB3 drags in the old ``gym`` and its
banner).
"""

from __future__ import annotations

import os
import pickle
import socket
import time
import traceback
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

# Make the envs the workers build importable before the first message arrives: under the
# forkserver start method this module is preloaded, so every worker inherits it ready-made.
import connectx_gym.envs.connectx as _env  # noqa: F401
from connectx_gym.envs import profiling
from connectx_gym.runtime.processes import limit_threads
from connectx_gym.runtime.stopping import ignore_stop_signals

StepResult = tuple[np.ndarray, np.ndarray, np.ndarray, list[dict[str, Any]], np.ndarray]


class EnvChunk:
    """Owns ``len(env_fns)`` environments and steps them as one batch.

    :param env_fns: callables that each build one Gymnasium env exposing ``action_masks()``
    """

    def __init__(self, env_fns: Sequence[Callable[[], Any]]) -> None:
        self.envs = [make() for make in env_fns]
        first = self.envs[0]
        self.observation_space = first.observation_space
        self.action_space = first.action_space
        count = len(self.envs)
        self._obs = np.zeros((count,) + first.observation_space.shape, dtype=first.observation_space.dtype)
        self._masks = np.zeros((count, first.action_space.n), dtype=bool)
        # plain ConnectX envs step in parts, so opponents backed by one policy can answer together
        self._batchable = [type(env) is _env.ConnectXEnv for env in self.envs]

    def reset(
        self, seeds: Sequence[int | None], options: Sequence[dict[str, Any]]
    ) -> tuple[np.ndarray, np.ndarray, list[dict[str, Any]]]:
        """Reset every env with its own seed and options; returns (obs, masks, reset infos)."""
        started = time.perf_counter()
        infos = []
        for i, env in enumerate(self.envs):
            extra = {"options": options[i]} if options[i] else {}
            self._obs[i], info = env.reset(seed=seeds[i], **extra)
            self._masks[i] = env.action_masks()
            infos.append(info)
        if profiling.TIMERS is not None:
            profiling.TIMERS["step"] += time.perf_counter() - started
        return self._obs.copy(), self._masks.copy(), infos

    def step(self, actions: np.ndarray) -> tuple[StepResult, list[dict[str, Any]]]:
        """Step every env with its action; finished episodes are reset at once.

        :return: ((obs, rewards, dones, infos, masks), reset infos) where a finished env's info
            holds ``terminal_observation`` and its reset info is the new episode's.
        """
        started = time.perf_counter()
        count = len(self.envs)
        rewards = np.zeros(count, dtype=np.float32)
        dones = np.zeros(count, dtype=bool)
        infos: list[dict[str, Any]] = []
        reset_infos: list[dict[str, Any]] = []
        results = self._step_all(actions)
        for i, env in enumerate(self.envs):
            obs, reward, terminated, truncated, info = results[i]
            done = terminated or truncated
            info["TimeLimit.truncated"] = truncated and not terminated
            reset_info: dict[str, Any] = {}
            if done:
                info["terminal_observation"] = obs
                obs, reset_info = env.reset()
            self._obs[i] = obs
            self._masks[i] = env.action_masks()
            rewards[i] = reward
            dones[i] = done
            infos.append(info)
            reset_infos.append(reset_info)
        if profiling.TIMERS is not None:
            profiling.TIMERS["step"] += time.perf_counter() - started
        return (self._obs.copy(), rewards, dones, infos, self._masks.copy()), reset_infos

    def _step_all(self, actions: np.ndarray) -> list[tuple]:
        """Every env's step result. Opponents answering through a numpy policy (self-play snapshots,
        checkpoints) move together: one forward pass per policy for all the envs it answers, with the
        same moves as one pass per env (sampled moves draw from each env's own generator)."""
        results: list[Any] = [None] * len(self.envs)
        groups: dict[tuple[int, bool], list[tuple[int, dict[str, Any]]]] = {}
        policies: dict[int, Any] = {}
        for i, env in enumerate(self.envs):
            if not self._batchable[i]:
                results[i] = env.step(actions[i])
                continue
            info, ended = env.step_agent(actions[i])
            if ended is not None:
                results[i] = ended
                continue
            batch = env.opponent_batch_policy()
            if batch is None:
                if env.winner is None:
                    env._opponent_move(info)
                results[i] = env.finish_step(info)
                continue
            policy, deterministic = batch
            policies[id(policy)] = policy
            groups.setdefault((id(policy), deterministic), []).append((i, info))
        timers = profiling.TIMERS
        for (key, deterministic), members in groups.items():
            envs = [self.envs[i] for i, _ in members]
            rngs = None if deterministic else [env.np_random for env in envs]
            started = time.perf_counter()
            columns = policies[key].moves([env.position for env in envs], deterministic, rngs)
            if timers is not None:
                timers[f"opponent:{envs[0].opponent_kind} batched"] += time.perf_counter() - started
            for (i, info), env, column in zip(members, envs, columns):
                env.answer_opponent(info, column)
                results[i] = env.finish_step(info)
        return results

    # -------------------------------------------------------------- attribute access (rare)
    def get_attr(self, name: str, indices: Sequence[int]) -> list[Any]:
        return [self.envs[i].get_wrapper_attr(name) for i in indices]

    def has_attr(self, name: str) -> bool:
        try:
            self.envs[0].get_wrapper_attr(name)
            return True
        except AttributeError:
            return False

    def set_attr(self, name: str, value: Any, indices: Sequence[int]) -> None:
        for i in indices:
            setattr(self.envs[i].unwrapped, name, value)

    def env_method(self, name: str, args: tuple, kwargs: dict, indices: Sequence[int]) -> list[Any]:
        return [self.envs[i].get_wrapper_attr(name)(*args, **kwargs) for i in indices]

    def env_is_wrapped(self, wrapper_name: str, indices: Sequence[int]) -> list[bool]:
        """Whether each env is wrapped by the class with qualified name ``wrapper_name``.

        The class travels by name, not by pickle: unpickling e.g. SB3's ``Monitor`` would import
        stable-baselines3 (and its ``gym`` banner) into the worker.
        """
        results = []
        for i in indices:
            env, wrapped = self.envs[i], False
            while hasattr(env, "env"):
                if wrapper_name in (f"{cls.__module__}.{cls.__qualname__}" for cls in type(env).__mro__):
                    wrapped = True
                    break
                env = env.env
            results.append(wrapped)
        return results

    def close(self) -> None:
        for env in self.envs:
            env.close()


def dispatch(chunk: EnvChunk, command: str, data: Any) -> Any:
    """Run one transport message (``command``, ``data``) on ``chunk``; every transport uses this."""
    if command == "step":
        return chunk.step(data)
    if command == "has_attr":
        return chunk.has_attr(data)
    if command == "profile":
        return profiling.snapshot()
    if command == "close":
        return chunk.close()
    if command in ("reset", "get_attr", "set_attr", "env_method", "env_is_wrapped"):
        return getattr(chunk, command)(*data)
    raise ValueError(f"unknown worker command {command!r}")


def worker_main(remote, parent_remote, env_fns_bytes: bytes) -> None:
    """Serve one ``EnvChunk`` over ``remote`` until told to close or the parent goes away.

    Every reply is ``("ok", payload)`` or ``("error", (summary, traceback text))``; after an
    error the worker exits, so the parent can report it instead of waiting forever.
    """
    parent_remote.close()
    ignore_stop_signals()
    limit_threads()
    chunk: EnvChunk | None = None
    try:
        chunk = EnvChunk(pickle.loads(env_fns_bytes))
        remote.send(("ok", (chunk.observation_space, chunk.action_space)))
        timers = profiling.TIMERS
        while True:
            waiting = time.perf_counter()
            command, data = remote.recv()
            if command == "close":
                chunk.close()
                remote.send(("ok", None))
                break
            received = time.perf_counter()
            reply = dispatch(chunk, command, data)
            sending = time.perf_counter()
            remote.send(("ok", reply))
            if timers is not None:
                timers["wait"] += received - waiting
                timers["send"] += time.perf_counter() - sending
    except (EOFError, BrokenPipeError):
        pass  # the parent is gone; nothing left to serve
    except BaseException as error:  # report anything, including errors raised by opponents
        summary = f"{type(error).__name__}: {error}"
        try:
            remote.send(("error", (summary, traceback.format_exc())))
        except (EOFError, BrokenPipeError, OSError):
            pass
    finally:
        remote.close()


class ChunkActor:
    """An ``EnvChunk`` served by method calls: the body of a Ray actor (``vec`` wraps it with
    ``ray.remote``), speaking the same ``dispatch`` messages as ``worker_main``.

    :param env_fns_bytes: the chunk's env factories, cloudpickled
    """

    def __init__(self, env_fns_bytes: bytes) -> None:
        limit_threads()
        self.chunk = EnvChunk(pickle.loads(env_fns_bytes))

    def describe(self) -> tuple[Any, Any, int, str]:
        """``(observation space, action space, pid, host name)``: what the driver needs and names."""
        return self.chunk.observation_space, self.chunk.action_space, os.getpid(), socket.gethostname()

    def call(self, command: str, data: Any) -> Any:
        return dispatch(self.chunk, command, data)
