"""The ``mcts`` teacher (expert iteration on PPO's rollouts): the search over a snapshot of the learner
as the move teacher, its root values as the value head's targets, the snapshot's refresh, the value
term of the update, the schedule, ``train.init_from`` and the value-sign accuracy of every evaluation."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from connectx_gym.agents.mcts import MctsAgent
from connectx_gym.config import load_config
from connectx_gym.envs.connectx import ConnectXEnv
from connectx_gym.envs.teachers import SearchTeacher
from connectx_gym.errors import ConfigError
from connectx_gym.inference.numpy_policy import load_checkpoint
from connectx_gym.rules.bitboard import Position, geometry
from connectx_gym.runtime.checkpoints import read_network
from connectx_gym.search.targets import search_targets

BOARD = {"rows": 6, "columns": 7, "inarow": 4}


@pytest.fixture(scope="module")
def tiny_agent(tmp_path_factory):
    from helpers import tiny_checkpoint

    path = tiny_checkpoint(tmp_path_factory.mktemp("ei") / "tiny.zip", BOARD)
    return MctsAgent(load_checkpoint(path), simulations=16), path


def test_search_targets_are_the_visits_and_the_root_value(tiny_agent):
    agent, _ = tiny_agent
    position = Position(geometry(6, 7, 4))
    result = agent.search([position])[0]
    probs, value = search_targets(result)
    np.testing.assert_allclose(probs, np.asarray(result.visits) / sum(result.visits), rtol=1e-6)
    assert value == pytest.approx(result.search_value) and -1 <= value <= 1
    # a win in one: proven, all mass on the winning column, value +1
    won = Position(geometry(6, 7, 4))
    for column in (0, 6, 1, 6, 2, 5):
        won.play(column)
    probs, value = search_targets(agent.search([won])[0])
    assert value == 1.0 and probs.tolist() == [0, 0, 0, 1, 0, 0, 0]


def test_the_env_attaches_the_search_teacher_on_its_share_of_positions(tiny_agent):
    agent, _ = tiny_agent
    env = ConnectXEnv(opponent="random")
    _, info = env.reset(seed=3)
    assert "teacher" not in info  # no snapshot yet
    env.teacher = SearchTeacher(agent, share=0.5)
    searched = steps = 0
    for _ in range(200):
        mask = env.action_masks()
        _, _, done, _, info = env.step(int(np.flatnonzero(mask)[0]))
        if done:
            _, info = env.reset()
        steps += 1
        if "teacher" in info:
            searched += 1
            assert info["teacher"].sum() == pytest.approx(1.0)
            assert not info["teacher"][~env.action_masks()].any()
            assert -1 <= info["teacher_value"] <= 1
    assert 0.35 < searched / steps < 0.65
    with pytest.raises(ValueError, match=r"share must be in \(0, 1\], got 0.0"):
        SearchTeacher(agent, share=0.0)


def tiny(*overrides: str):
    from helpers import TINY

    return load_config(None, [*TINY, "train.eval_every=0", *overrides]).resolved()


MCTS = ("kickstart.coef=1.0", "kickstart.teacher.kind=mcts", "kickstart.teacher.simulations=8")


def test_config_rules():
    with pytest.raises(ConfigError, match="kickstart.teacher.value_coef is not a key of the alphabeta teacher"):
        tiny("kickstart.coef=1.0", "kickstart.teacher.value_coef=1.0")
    with pytest.raises(ConfigError, match="kickstart.teacher.search_share must be a number > 0 and <= 1, got 0"):
        tiny(*MCTS, "kickstart.teacher.search_share=0")
    from connectx_gym.training.kickstart import kickstart_coef

    section = tiny(*MCTS, "kickstart.schedule=constant", "kickstart.decay_steps=10").kickstart
    assert [kickstart_coef(section, s) for s in (0, 10, 10**9)] == [1.0, 1.0, 1.0]


def test_a_run_refreshes_the_snapshot_and_learns_the_search_values(tmp_path, monkeypatch):
    """The workers get the learner's network at step 0 and every refresh_steps, between rollouts; the value
    term is logged, and pulling harder on it makes the value head fit the search's values better."""
    import threading

    from connectx_gym.envs.vec import ChunkedVecEnv
    from connectx_gym.training.loop import run

    sent = []
    original = ChunkedVecEnv.set_attr

    def recording(self, name, value, indices=None):
        if name == "teacher":
            acting = [t for t in threading.enumerate() if t.name == "connectx-acting" and t.is_alive()]
            sent.append((value.agent.policy.arrays()["action_net.bias"].copy(), len(acting)))
        return original(self, name, value, indices)

    monkeypatch.setattr(ChunkedVecEnv, "set_attr", recording)
    mse = {}
    for coef in (0.0, 4.0):
        sent.clear()
        overrides = [
            *MCTS,
            f"kickstart.teacher.value_coef={coef}",
            "kickstart.teacher.refresh_steps=64",
            "train.overlap=true",
        ]
        config = tiny(*overrides, "train.total_timesteps=192", "ppo.n_epochs=4")
        run(config, tmp_path / f"run{coef}", None)
        # at 0, 64 and 128 (the rollout ending at 192 is the last): never while the acting thread steps
        assert len(sent) == 3 and all(acting == 0 for _, acting in sent)
        assert not np.array_equal(sent[0][0], sent[-1][0])  # the snapshots follow the learner
        with open(tmp_path / f"run{coef}" / "progress.csv", newline="") as handle:
            rows = [r for r in csv.DictReader(handle) if r.get("train/teacher_value_mse")]
        assert rows and all(float(r["train/teacher_kl"]) > 0 for r in rows)
        mse[coef] = float(rows[-1]["train/teacher_value_mse"])
    assert mse[4.0] < mse[0.0]


def test_teacher_network_is_searched_first_then_the_learners_own(tmp_path, monkeypatch):
    """kickstart.teacher_network: the workers search that checkpoint's network (another shape than the
    learner's) once, for its first teacher_network_steps, then the learner's snapshots as usual."""
    from helpers import tiny_checkpoint

    from connectx_gym.envs.vec import ChunkedVecEnv
    from connectx_gym.training.loop import run

    teacher = tiny_checkpoint(
        tmp_path / "teacher.zip",
        BOARD,
        settings=dict(features="cnn", cnn_channels=[6, 6], kernel_size=3, net_arch=[12], activation="relu"),
    )
    sent = []
    original = ChunkedVecEnv.set_attr

    def recording(self, name, value, indices=None):
        if name == "teacher" and value is not None:
            sent.append(value.agent.policy.arrays())
        return original(self, name, value, indices)

    monkeypatch.setattr(ChunkedVecEnv, "set_attr", recording)
    overrides = [*MCTS, f"kickstart.teacher.network={teacher}", "kickstart.teacher.network_steps=96"]
    config = tiny(*overrides, "kickstart.teacher.refresh_steps=32", "train.total_timesteps=192", "train.overlap=true")
    run(config, tmp_path / "run", None)
    _, weights = read_network(teacher)
    # step 0: the teacher network, kept while its phase lasts (no refresh at 32 or 64); at 96 and 128 and
    # 160: the learner's 4-channel network
    assert len(sent) == 4
    assert "features_extractor.cnn.2.weight" in sent[0]  # the teacher's two conv layers
    for name, array in sent[0].items():
        np.testing.assert_array_equal(array, weights[name])
    assert all(arrays["features_extractor.cnn.0.weight"].shape[0] == 4 for arrays in sent[1:])


def test_teacher_network_config_errors(tiny_agent, tmp_path):
    from connectx_gym.training.builders import check_teacher_network

    _, path = tiny_agent
    with pytest.raises(ConfigError, match=r"kickstart.teacher.network is not a key of the alphabeta teacher"):
        tiny("kickstart.coef=1.0", "kickstart.teacher.network=t.zip")
    check_teacher_network(tiny(*MCTS, f"kickstart.teacher.network={path}"))
    with pytest.raises(ConfigError, match="kickstart.teacher.network: checkpoint 'nope.zip' does not exist"):
        check_teacher_network(tiny(*MCTS, "kickstart.teacher.network=nope.zip"))
    with pytest.raises(ConfigError, match="was trained on the board"):
        check_teacher_network(tiny(*MCTS, f"kickstart.teacher.network={path}", "env.rows=5", "env.columns=6"))
    with pytest.raises(ConfigError, match="kickstart.teacher.network_steps must be an integer >= 1"):
        tiny(*MCTS, "kickstart.teacher.network_steps=0")


def test_init_from_starts_a_run_from_a_checkpoints_weights(tiny_agent, tmp_path):
    from connectx_gym.training.builders import build_model, build_vec_env, check_init_from

    _, path = tiny_agent
    config = tiny(f"train.init_from={path}")
    check_init_from(config)
    venv = build_vec_env(config, 0)
    try:
        model = build_model(config, venv, None)
    finally:
        venv.close()
    _, expected = read_network(path)
    assert set(expected) == set(model.policy.state_dict())
    for name, tensor in model.policy.state_dict().items():
        np.testing.assert_array_equal(tensor.numpy(), expected[name])
    with pytest.raises(ConfigError, match=r"its network is not this config's policy section's shape \(weight"):
        check_init_from(tiny(f"train.init_from={path}", "policy.net_arch=[16]"))
    with pytest.raises(ConfigError, match="was trained on the board"):
        check_init_from(tiny(f"train.init_from={path}", "env.rows=5", "env.columns=6"))
    with pytest.raises(ConfigError, match="train.init_from: checkpoint 'nope.zip' does not exist"):
        check_init_from(tiny("train.init_from=nope.zip"))


def test_every_evaluation_logs_the_value_signs_accuracy(tmp_path):
    from connectx_gym.training.loop import run

    config = tiny("train.total_timesteps=64", "train.eval_every=64", "train.eval_accuracy=true")
    run(config, tmp_path / "run", None)
    with open(tmp_path / "run" / "progress.csv", newline="") as handle:
        rows = [r for r in csv.DictReader(handle) if r.get("eval/value_sign_decided")]
    assert rows and 0 <= float(rows[-1]["eval/value_sign_decided"]) <= 1
    assert 0 <= float(rows[-1]["eval/value_sign_lost"]) <= 1
    # and per phase of the game
    for phase in ("opening", "middle", "late"):
        assert 0 <= float(rows[-1][f"eval/perfect_move_rate/{phase}"]) <= 1
        assert 0 <= float(rows[-1][f"eval/value_sign_decided/{phase}"]) <= 1
