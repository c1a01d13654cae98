"""Opponents backed by a numpy policy (self-play snapshots, checkpoints) answer a chunk's envs with one
forward pass per policy, making exactly the moves one pass per env makes from the same seeds."""

from __future__ import annotations

from functools import partial

import numpy as np
import pytest
from helpers import tiny_model
from test_selfplay import tiny_policy

from connectx_gym.agents.checkpoint import CheckpointOpponent
from connectx_gym.agents.selfplay import pool, reset_pools
from connectx_gym.envs.chunk import EnvChunk
from connectx_gym.envs.connectx import ConnectXEnv
from connectx_gym.inference.numpy_policy import from_sb3_model


@pytest.fixture(autouse=True)
def fresh_pools():
    reset_pools()
    yield
    reset_pools()


def rollout(opponent, batched: bool, steps: int = 300, count: int = 12, seed: int = 5):
    """Observations, rewards, dones and infos of a chunk stepped with seeded random legal actions."""
    chunk = EnvChunk([partial(ConnectXEnv, opponent=opponent) for _ in range(count)])
    if not batched:
        chunk._batchable = [False] * count
    obs, masks, _ = chunk.reset([seed + i for i in range(count)], [{}] * count)
    rng = np.random.default_rng(seed)
    trace = [obs.copy()]
    for _ in range(steps):
        actions = np.array([rng.choice(np.flatnonzero(m)) for m in masks])
        (obs, rewards, dones, infos, masks), _ = chunk.step(actions)
        trace.append((obs.copy(), rewards.copy(), dones.copy(), [(i.get("outcome"), i.get("opponent")) for i in infos]))
    return trace


def same(a, b) -> bool:
    if isinstance(a, np.ndarray):
        return np.array_equal(a, b)
    if isinstance(a, (tuple, list)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return a == b


@pytest.mark.parametrize("spec", ["selfplay", "selfplay:greedy", {"selfplay": 0.5, "random": 0.25, "negamax": 0.25}])
def test_batched_selfplay_moves_equal_one_pass_per_env(spec):
    shared = pool()
    for snapshot in range(3):
        shared.add(snapshot, tiny_policy(seed=snapshot))
    batched, single = rollout(spec, batched=True), rollout(spec, batched=False)
    assert same(batched, single)
    outcomes = [o for step in batched[1:] for o, _ in step[3] if o]
    assert len(outcomes) > 50 and {"win", "loss"} <= set(outcomes)  # real games were played


def test_batched_checkpoint_moves_equal_one_pass_per_env():
    model = tiny_model({"rows": 6, "columns": 7, "inarow": 4}, steps=64)
    opponent = CheckpointOpponent(from_sb3_model(model), name="checkpoint:tiny")
    assert same(rollout(opponent, batched=True), rollout(opponent, batched=False))


def test_one_forward_pass_per_policy_and_step(monkeypatch):
    shared = pool()
    shared.add(0, tiny_policy(seed=0))
    calls = []
    policy = shared.sample(np.random.default_rng(0))[1]
    original = type(policy).logits
    monkeypatch.setattr(type(policy), "logits", lambda self, x: calls.append(len(x)) or original(self, x))
    chunk = EnvChunk([partial(ConnectXEnv, opponent="selfplay", agent_seat="first") for _ in range(8)])
    _, masks, _ = chunk.reset(list(range(8)), [{}] * 8)
    calls.clear()
    chunk.step(np.array([np.flatnonzero(m)[0] for m in masks]))
    assert calls == [8]
