"""ChunkedVecEnv: same trajectories in subprocesses and in-process, masks without round trips, crashes reported."""

from __future__ import annotations

import os
import signal
import time
from functools import partial

import numpy as np
import pytest
from helpers import assert_same, rollout

from connectx_gym.envs.connectx import ConnectXEnv
from connectx_gym.envs.vec import ChunkedVecEnv, make_vec_env
from connectx_gym.envs.workers import split_evenly
from connectx_gym.errors import WorkerError

ENV_KWARGS = dict(opponent="random", info_board=True)


def test_split_evenly():
    assert [len(r) for r in split_evenly(10, 3)] == [4, 3, 3]
    assert split_evenly(4, 2) == [range(0, 2), range(2, 4)]


def test_subprocess_and_in_process_give_identical_trajectories():
    subprocess = make_vec_env(ENV_KWARGS, 6, 2, use_multiprocessing=True)
    in_process = make_vec_env(ENV_KWARGS, 6, 3, use_multiprocessing=False)
    dummy = make_vec_env(ENV_KWARGS, 6, 1, backend="sb3_dummy")
    try:
        a = rollout(subprocess, 60, seed=5)
        b = rollout(in_process, 60, seed=5)
        c = rollout(dummy, 60, seed=5)
        assert_same(a, b)
        assert_same(a, c)
        assert any(step[2].any() for step in a[1:]), "some episodes should have ended"
    finally:
        for venv in (subprocess, in_process, dummy):
            venv.close()


def test_auto_reset_keeps_terminal_observation_and_masks_match_envs():
    venv = ChunkedVecEnv([partial(ConnectXEnv, **ENV_KWARGS) for _ in range(4)], num_workers=2)
    try:
        venv.seed(0)
        venv.reset()
        rng = np.random.default_rng(0)
        seen_done = False
        for _ in range(40):
            masks = venv.action_masks()
            actions = np.array([rng.choice(np.flatnonzero(m)) for m in masks])
            obs, _, dones, infos = venv.step(actions)
            # masks are cached from the step reply; they must agree with the real envs
            real = np.stack(venv.env_method("action_masks", indices=None))
            assert np.array_equal(real, venv.action_masks())
            for i, done in enumerate(dones):
                if done:
                    seen_done = True
                    assert infos[i]["terminal_observation"].shape == obs[i].shape
                    assert "outcome" in infos[i]
        assert seen_done
        assert venv.has_attr("action_masks")
        assert venv.get_attr("agent_seat") == ["random"] * 4
        venv.set_attr("agent_seat", "first", indices=[1, 2])
        assert venv.get_attr("agent_seat") == ["random", "first", "first", "random"]
    finally:
        venv.close()


class ExplodingOpponentEnv(ConnectXEnv):
    """An env whose step raises after a few moves (stands in for a bug inside a worker)."""

    def step(self, action):
        if self.position.moves_played >= 4:
            raise ValueError("exploded on purpose")
        return super().step(action)


def test_worker_exception_is_reported_with_index_and_cause():
    fns = [partial(ConnectXEnv, **ENV_KWARGS)] * 2 + [partial(ExplodingOpponentEnv, **ENV_KWARGS)] * 2
    venv = ChunkedVecEnv(fns, num_workers=2)
    try:
        venv.seed(0)
        venv.reset()
        with pytest.raises(WorkerError, match=r"env worker 1 \(envs 2-3.*ValueError: exploded on purpose"):
            for _ in range(10):
                masks = venv.action_masks()
                venv.step(np.array([np.flatnonzero(m)[0] for m in masks]))
    finally:
        venv.close()
    assert not any(worker.process.is_alive() for worker in venv.workers)


def test_killed_worker_is_reported_quickly():
    venv = ChunkedVecEnv([partial(ConnectXEnv, **ENV_KWARGS)] * 4, num_workers=2)
    try:
        venv.seed(0)
        venv.reset()
        os.kill(venv.workers[0].process.pid, signal.SIGKILL)
        started = time.monotonic()
        with pytest.raises(WorkerError, match=r"env worker 0 .* was killed by SIGKILL"):
            venv.step(np.zeros(4, dtype=np.int64))
        assert time.monotonic() - started < 10
    finally:
        venv.close()
    assert not any(worker.process.is_alive() for worker in venv.workers)


def test_bad_worker_count_is_rejected():
    with pytest.raises(ValueError, match="num_workers must be between 1 and the number of envs \\(2\\), got 3"):
        ChunkedVecEnv([partial(ConnectXEnv, **ENV_KWARGS)] * 2, num_workers=3)


def test_works_with_maskable_ppo():
    from sb3_contrib import MaskablePPO

    venv = make_vec_env(ENV_KWARGS, 4, 2, seed=0)
    try:
        model = MaskablePPO("MlpPolicy", venv, n_steps=16, batch_size=32, n_epochs=1, seed=0, device="cpu")
        model.learn(64)
        assert model.num_timesteps >= 64
    finally:
        venv.close()


class ThreadReportingEnv(ConnectXEnv):
    """Records the BLAS thread setting its worker process started with."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.blas_threads = os.environ.get("OPENBLAS_NUM_THREADS")


def test_workers_start_single_threaded_and_parent_env_is_untouched():
    before = os.environ.get("OPENBLAS_NUM_THREADS")
    venv = ChunkedVecEnv([partial(ThreadReportingEnv, **ENV_KWARGS)] * 2, num_workers=2)
    try:
        assert venv.get_attr("blas_threads") == ["1", "1"]
    finally:
        venv.close()
    assert os.environ.get("OPENBLAS_NUM_THREADS") == before
