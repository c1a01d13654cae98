"""Self-play pool, mixtures and curriculum: sampling statistics, snapshot round trips, resume, promotions."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
from helpers import run_train, win_rate_against_random

from connectx_gym.agents.opponents import MixtureOpponent
from connectx_gym.agents.selfplay import SelfPlayOpponent, SnapshotPool, pool, reset_pools
from connectx_gym.agents.specs import make_opponent
from connectx_gym.envs.connectx import ConnectXEnv
from connectx_gym.inference.numpy_policy import NumpyPolicy
from connectx_gym.rules.bitboard import Position, geometry
from connectx_gym.training.curriculum import Curriculum
from connectx_gym.training.pool_keeper import PoolKeeper, uses_selfplay

ROOT = Path(__file__).resolve().parent.parent


def tiny_policy(seed: int, favourite: int | None = None, rows: int = 6, columns: int = 7) -> NumpyPolicy:
    """A random small MLP policy; with ``favourite`` its action bias makes it prefer that column."""
    rng = np.random.default_rng(seed)
    features = 4 * rows * columns
    weights = {
        "mlp_extractor.policy_net.0.weight": rng.standard_normal((16, features)).astype(np.float32) * 0.1,
        "mlp_extractor.policy_net.0.bias": np.zeros(16, np.float32),
        "mlp_extractor.value_net.0.weight": rng.standard_normal((16, features)).astype(np.float32) * 0.1,
        "mlp_extractor.value_net.0.bias": np.zeros(16, np.float32),
        "action_net.weight": rng.standard_normal((columns, 16)).astype(np.float32) * 0.01,
        "action_net.bias": np.zeros(columns, np.float32),
        "value_net.weight": rng.standard_normal((1, 16)).astype(np.float32),
        "value_net.bias": np.zeros(1, np.float32),
    }
    if favourite is not None:
        weights["action_net.bias"][favourite] = 50.0
    return NumpyPolicy(weights, "relu", {"rows": rows, "columns": columns, "inarow": 4})


@pytest.fixture(autouse=True)
def fresh_pools():
    reset_pools()
    yield
    reset_pools()


def test_pool_is_bounded_deduplicated_and_sorted():
    snapshots = SnapshotPool(max_size=3)
    for snapshot_id in (30, 10, 20, 40):
        assert snapshots.add(snapshot_id, tiny_policy(snapshot_id))
    assert not snapshots.add(40, tiny_policy(0))
    assert snapshots.ids() == [20, 30, 40]


def test_pool_sampling_statistics():
    snapshots = SnapshotPool(max_size=10, latest_probability=0.5)
    for snapshot_id in range(5):
        snapshots.add(snapshot_id, tiny_policy(snapshot_id))
    rng = np.random.default_rng(0)
    draws = [snapshots.sample(rng)[0] for _ in range(8000)]
    counts = np.bincount(draws, minlength=5) / len(draws)
    assert abs(counts[4] - 0.5) < 0.03  # the latest
    assert np.allclose(counts[:4], 0.125, atol=0.02)  # older ones uniform
    snapshots.set_weights({0: 3.0, 1: 1.0, 2: 0.0, 3: 0.0})
    draws = [snapshots.sample(rng)[0] for _ in range(8000)]
    counts = np.bincount(draws, minlength=5) / len(draws)
    assert abs(counts[0] - 0.375) < 0.03 and abs(counts[1] - 0.125) < 0.03
    assert counts[2] == 0 and counts[3] == 0


def test_snapshot_round_trip_through_bytes_and_env_method():
    policy = tiny_policy(1)
    env = ConnectXEnv(opponent="selfplay:greedy")
    assert env.add_snapshot(7, policy.to_bytes(), 5, 1.0)
    assert not env.add_snapshot(7, policy.to_bytes(), 5, 1.0)  # once per id per process
    restored = pool().snapshots[0][1]
    planes = (np.random.default_rng(0).random((3, 4, 6, 7)) > 0.5).astype(np.float32)
    assert np.array_equal(restored.logits(planes), policy.logits(planes))
    assert pickle.loads(pickle.dumps(restored)).logits(planes).tolist() == policy.logits(planes).tolist()


def test_selfplay_opponent_plays_the_drawn_snapshot_and_random_before_any():
    opponent = SelfPlayOpponent(greedy=True)
    position = Position(geometry(6, 7, 4))
    rng = np.random.default_rng(0)
    opponent.start_episode(rng)
    assert opponent.episode_label == "selfplay:none"
    assert {opponent.act(position, rng) for _ in range(50)} == set(range(7))
    pool().add(3, tiny_policy(0, favourite=5))
    opponent.start_episode(rng)
    assert opponent.episode_label == "selfplay:3"
    assert opponent.act(position, rng) == 5
    clone = pickle.loads(pickle.dumps(opponent))  # travels without its pool
    clone.start_episode(rng)
    assert clone.act(position, rng) == 5


def test_mixture_draws_components_by_weight_and_labels_episodes():
    mixture = make_opponent({"random": 3, "negamax": 1})
    assert isinstance(mixture, MixtureOpponent)
    rng = np.random.default_rng(1)
    names = []
    for _ in range(4000):
        mixture.start_episode(rng)
        names.append(mixture.episode_label)
    assert abs(names.count("random") / 4000 - 0.75) < 0.03
    env = ConnectXEnv(opponent={"selfplay": 1.0})
    pool().add(0, tiny_policy(0))
    env.reset(seed=0)
    done, info = False, {}
    while not done:
        _, _, done, _, info = env.step(int(np.flatnonzero(env.action_masks())[0]))
    assert info["opponent"] == "selfplay:0"


def test_uses_selfplay():
    assert uses_selfplay("selfplay") and uses_selfplay({"selfplay:greedy": 1, "random": 1})
    assert not uses_selfplay({"selfplay": 0, "random": 1}) and not uses_selfplay("negamax")


def test_pool_keeper_priorities_and_state_round_trip():
    keeper = PoolKeeper(pool_size=2, latest_probability=0.5, prioritized=True)
    for snapshot_id in (0, 10, 20):
        keeper.add(snapshot_id, tiny_policy(snapshot_id).to_bytes())
    assert keeper.ids() == [10, 20]
    for _ in range(8):
        keeper.record("selfplay:10", "loss")
    keeper.record("selfplay:20", "win")
    keeper.record("negamax", "loss")
    weights = keeper.weights()
    assert weights[10] == pytest.approx(9 / 10) and weights[20] == pytest.approx(1 / 3)
    restored = PoolKeeper(pool_size=2, latest_probability=0.5, prioritized=True)
    restored.restore(pickle.loads(pickle.dumps(keeper.state())))
    assert restored.ids() == [10, 20] and restored.weights() == weights


def test_curriculum_waits_for_min_episodes_and_a_full_window():
    stages = [
        {"opponent": "random", "promote_at": 0.8, "min_episodes": 6},
        {"opponent": "negamax", "promote_at": 0.5},
        {"opponent": {"selfplay": 1}},
    ]
    curriculum = Curriculum(stages, window=4)
    assert curriculum.opponent == "random"
    for _ in range(5):  # 100% over a full window, but fewer than min_episodes
        assert not curriculum.record("win")
    assert curriculum.record("win")
    assert curriculum.stage == 1 and curriculum.opponent == "negamax"
    for _ in range(3):  # a new stage starts with an empty window
        assert not curriculum.record("win")
    assert curriculum.record("win") and curriculum.opponent == {"selfplay": 1}
    assert not any(curriculum.record("win") for _ in range(10))  # the last stage lasts


def test_curriculum_threshold_is_respected():
    curriculum = Curriculum([{"opponent": "random", "promote_at": 0.8}, {"opponent": "negamax"}], window=5)
    for outcome in ["win", "win", "win", "loss", "loss", "win", "win", "win"]:
        assert not curriculum.record(outcome), curriculum.win_rate  # at most 3 wins in the last 5
    assert curriculum.record("win")  # loss, win, win, win, win: 80%
    resumed = Curriculum([{"opponent": "random", "promote_at": 0.5}, {"opponent": "negamax"}], window=5, stage=1)
    assert resumed.opponent == "negamax"


def test_selfplay_training_saves_and_resume_restores_pool_and_stage(tmp_path):
    common = [
        "--config",
        str(ROOT / "configs" / "quick.yaml"),
        "--set",
        "train.run_name=sp",
        "--set",
        "selfplay.snapshot_every=1024",
        "--set",
        "selfplay.pool_size=3",
        "--set",
        "curriculum.stages=[{opponent: random, promote_at: 0.05}, {opponent: {selfplay: 1, random: 1}}]",
        "--set",
        "curriculum.window=20",
        "--set",
        "logging.progress_bar=false",
        "--set",
        "train.eval_every=0",
    ]
    result = run_train(tmp_path, *common, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "curriculum: stage 1" in result.stderr
    run = tmp_path / "models" / "sp"
    with open(run / "trainer_state.pkl", "rb") as handle:
        state = pickle.load(handle)
    assert state["stage"] == 1
    assert [snapshot_id for snapshot_id, _ in state["pool"]["snapshots"]] == [2048, 3072, 4096]
    result = run_train(
        tmp_path,
        "--resume",
        str(run),
        "--set",
        "train.total_timesteps=5120",
        "--set",
        "logging.progress_bar=false",
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert "curriculum: stage" not in result.stderr  # resumed in stage 1, nothing to promote
    with open(run / "trainer_state.pkl", "rb") as handle:
        state = pickle.load(handle)
    assert [snapshot_id for snapshot_id, _ in state["pool"]["snapshots"]] == [3072, 4096, 5120]
    header = (run / "progress.csv").read_text().splitlines()[0]
    assert "curriculum/stage" in header and "selfplay/pool_size" in header


@pytest.mark.slow
def test_short_selfplay_run_improves_over_random(tmp_path):
    """About 20 s: 60k steps of pure self-play must beat random far more often than chance."""
    result = run_train(
        tmp_path,
        "--config",
        str(ROOT / "configs" / "quick.yaml"),
        "--set",
        "train.run_name=selfplay",
        "--set",
        "env.opponent=selfplay",
        "--set",
        "selfplay.snapshot_every=8192",
        "--set",
        "train.total_timesteps=61440",
        "--set",
        "train.eval_every=0",
        "--set",
        "logging.progress_bar=false",
        "--set",
        "multiprocessing.parallel_episodes=16",
        "--set",
        "ppo.n_steps=128",
        "--set",
        "ppo.batch_size=512",
        "--set",
        "ppo.n_epochs=4",
        timeout=900,
    )
    assert result.returncode == 0, result.stderr
    assert win_rate_against_random(tmp_path / "models" / "selfplay" / "final_model.zip") > 0.8
