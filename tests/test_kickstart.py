"""Kickstarting: the search teacher's distributions, their way from the env workers into the rollout
buffer, and the PPO update with the teacher term."""

from __future__ import annotations

import copy
from types import SimpleNamespace

import numpy as np
import pytest

from connectx_gym.envs.connectx import ConnectXEnv
from connectx_gym.envs.teachers import AlphaBetaTeacher, make_teacher
from connectx_gym.rules.bitboard import Position, geometry
from connectx_gym.search import solver as oracle
from connectx_gym.search.alphabeta import WIN_SCORE
from connectx_gym.search.targets import distribution, move_value, search_distribution

BOARD = geometry(6, 7, 4)


def position(moves: str) -> Position:
    result = Position(BOARD)
    for column in moves:
        result.play(int(column))
    return result


# --- the teacher ---------------------------------------------------------------------------------


def test_move_values_order_wins_heuristics_and_losses():
    win_now, win_later = move_value(WIN_SCORE), move_value(WIN_SCORE - 4)
    loss_now, loss_later = move_value(-WIN_SCORE), move_value(-(WIN_SCORE - 4))
    assert win_now == 1.0 and loss_now == -1.0
    assert win_now > win_later > 0.5 > move_value(40) > move_value(0) == 0.0 > move_value(-40) > -0.5
    assert -0.5 > loss_later > loss_now


def test_distribution_at_zero_temperature_is_even_over_the_best_columns():
    probs = distribution({0: 0.1, 3: 0.4, 5: 0.4, 6: -1.0}, 7, 0.0)
    assert probs.tolist() == [0.0, 0.0, 0.0, 0.5, 0.0, 0.5, 0.0]
    soft = distribution({0: 0.1, 3: 0.4, 5: 0.4, 6: -1.0}, 7, 0.1)
    assert soft.sum() == pytest.approx(1.0) and soft[3] == soft[5] > soft[0] > soft[6] > 0
    assert soft[1] == soft[2] == soft[4] == 0.0


def test_teacher_takes_the_win_and_blocks_the_threat():
    # first player has 0,1,2 on the bottom row: column 3 wins at once
    win = search_distribution(position("041526"), depth=3, temperature=0.1)
    assert win.argmax() == 3 and win[3] > 0.99
    # second player to move must block column 3
    block = search_distribution(position("04152"), depth=3, temperature=0.1)
    assert block.argmax() == 3 and block[3] > 0.99


def test_teacher_is_zero_once_the_game_is_over():
    assert not search_distribution(position("0415263"), depth=2, temperature=0.1).any()


# --- the env carries it ---------------------------------------------------------------------------


def test_env_attaches_the_teacher_of_every_observation_it_returns():
    env = ConnectXEnv(opponent="random", info_board=False)
    env.teacher = AlphaBetaTeacher(2, 0.1)
    _, info = env.reset(seed=3)
    for _ in range(40):
        teacher = info["teacher"]
        assert teacher.shape == (7,) and teacher.sum() == pytest.approx(1.0)
        assert not teacher[~env.action_masks()].any()
        np.testing.assert_array_equal(teacher, search_distribution(env.position, 2, 0.1))
        _, _, done, _, info = env.step(int(np.flatnonzero(env.action_masks())[0]))
        if done:
            assert "teacher" not in info
            _, info = env.reset()
    assert "teacher" not in ConnectXEnv(opponent="random").reset(seed=0)[1]


@pytest.mark.parametrize(
    "arguments, message",
    [((0,), "depth must be an integer >= 1, got 0"), ((1.5,), "got 1.5"), ((2, -0.1), "temperature must be >= 0")],
)
def test_bad_teacher_arguments_are_refused(arguments, message):
    with pytest.raises(ValueError, match=message):
        AlphaBetaTeacher(*arguments)


def test_the_gymnasium_env_takes_no_teacher_argument():
    with pytest.raises(TypeError, match="teacher_depth"):
        ConnectXEnv(teacher_depth=2)
    assert ConnectXEnv().teacher is None


# --- buffer and update ----------------------------------------------------------------------------


def tiny_config(*overrides: str):
    from connectx_gym.config import load_config

    return load_config(
        None,
        [
            "env.opponent=random",
            "curriculum.stages=[]",
            "multiprocessing.use_multiprocessing=false",
            "multiprocessing.parallel_episodes=4",
            "multiprocessing.num_processes=1",
            "ppo.n_steps=16",
            "ppo.batch_size=32",
            "ppo.n_epochs=2",
            "policy.cnn_channels=[4]",
            "policy.net_arch=[8]",
            "kickstart.coef=1.0",
            "kickstart.teacher.depth=2",
            *overrides,
        ],
    ).resolved()


@pytest.fixture
def collected():
    """A tiny kickstarted model whose rollout buffer holds one collected rollout, and its config."""
    from connectx_gym.training.acting import Rollout
    from connectx_gym.training.builders import build_model, build_vec_env

    config = tiny_config()
    venv = build_vec_env(config, 0)
    try:
        model = build_model(config, venv, None)
        model._setup_learn(64, None, False, "MaskablePPO", False)
        model._collect(model.rollout_buffer, Rollout())
        yield model, config
    finally:
        venv.close()


def test_the_buffer_keeps_each_observations_teacher_through_the_shuffle(collected):
    model, config = collected
    for samples in model.rollout_buffer.get(16):
        for planes, teacher in zip(samples.observations.numpy(), samples.teacher.numpy()):
            expected = search_distribution(position_of(planes), 2, config.kickstart.teacher.temperature)
            np.testing.assert_allclose(teacher, expected)


def position_of(planes: np.ndarray) -> Position:
    """The position an observation shows (own and other stones; plane 3 says whether the mover is first)."""
    mover = 1 if planes[3].any() else 2
    board = (planes[0] * mover + planes[1] * (3 - mover)).astype(int).reshape(-1).tolist()
    return Position.from_kaggle(BOARD, board, mover)


def test_teacher_term_at_zero_weight_is_maskableppo_train_exactly(collected):
    import torch
    from sb3_contrib import MaskablePPO

    model, _ = collected
    twin = copy.deepcopy(model.policy.state_dict()), copy.deepcopy(model.policy.optimizer.state_dict())
    np.random.seed(5)
    model.train_with_teacher(0.0)
    ours = {k: v.clone() for k, v in model.policy.state_dict().items()}
    model.policy.load_state_dict(twin[0])
    model.policy.optimizer.load_state_dict(twin[1])
    model.rollout_buffer.generator_ready = True  # already flattened by the first pass
    np.random.seed(5)
    MaskablePPO.train(model)
    theirs = model.policy.state_dict()
    assert all(torch.equal(ours[k], theirs[k]) for k in ours)
    assert not all(torch.equal(ours[k], twin[0][k]) for k in ours)  # and the update did change the weights


def test_kickstart_weight_decays_linearly_to_zero():
    from connectx_gym.training.kickstart import kickstart_coef

    section = tiny_config("kickstart.coef=0.5", "kickstart.decay_steps=1000").kickstart
    assert [kickstart_coef(section, s) for s in (0, 500, 1000, 5000)] == [0.5, 0.25, 0.0, 0.0]


@pytest.mark.parametrize("overlap", [False, True])
def test_a_kickstarted_run_logs_the_teacher_term_until_it_decays(tmp_path, overlap):
    import csv

    from helpers import TINY

    from connectx_gym.config import load_config
    from connectx_gym.training.loop import run

    overrides = [
        *TINY,
        "train.total_timesteps=160",
        "train.eval_every=0",
        "kickstart.coef=1.0",
        "kickstart.teacher.depth=2",
        "kickstart.decay_steps=96",
        f"train.overlap={str(overlap).lower()}",
    ]
    result = run(load_config(None, overrides).resolved(), tmp_path / "run", None)
    assert result.steps == 160 and result.final_model.is_file()
    with open(tmp_path / "run" / "progress.csv", newline="") as handle:
        rows = [row for row in csv.DictReader(handle) if row.get("train/teacher_coef")]
    # the update after step 32 weighs the teacher 1 - 32/96, after 64: 1 - 64/96; from 96 on it is off
    assert [round(float(row["train/teacher_coef"]), 3) for row in rows] == [0.667, 0.333]
    assert all(float(row["train/teacher_kl"]) > 0 for row in rows)


def test_the_teacher_is_retired_while_no_acting_thread_steps_the_envs(tmp_path, monkeypatch):
    import threading

    from helpers import TINY

    from connectx_gym.config import load_config
    from connectx_gym.envs.vec import ChunkedVecEnv
    from connectx_gym.training.loop import run

    calls = []
    original = ChunkedVecEnv.set_attr

    def recording(self, name, value, indices=None):
        acting = [t for t in threading.enumerate() if t.name == "connectx-acting" and t.is_alive()]
        calls.append((name, value, len(acting)))
        return original(self, name, value, indices)

    monkeypatch.setattr(ChunkedVecEnv, "set_attr", recording)
    overrides = [*TINY, "train.total_timesteps=160", "train.eval_every=0", "train.overlap=true"]
    overrides += ["kickstart.coef=1.0", "kickstart.teacher.depth=2", "kickstart.decay_steps=64"]
    result = run(load_config(None, overrides).resolved(), tmp_path / "run", None)
    assert calls == [("teacher", None, 0)]  # once, at step 64, with no acting thread alive

    # resumed after the decay: the teacher is retired before the first rollout is collected
    calls.clear()
    resumed = [*overrides, "train.total_timesteps=224"]
    run(load_config(None, resumed).resolved(), tmp_path / "run2", (160, result.checkpoint))
    assert calls == [("teacher", None, 0)]


def mirror_position(position: Position) -> Position:
    """The left-right mirror image of ``position``."""
    board = np.array(position.to_kaggle()).reshape(BOARD.rows, BOARD.columns)[:, ::-1]
    return Position.from_kaggle(BOARD, board.reshape(-1).tolist(), position.to_move)


def test_mirrored_samples_are_the_mirrored_positions_with_their_own_teacher(collected):
    from connectx_gym.rules.planes import encode_position, legal_mask
    from connectx_gym.training.augment import mirrored

    model, config = collected
    samples = next(model.rollout_buffer.get(32))
    flip = np.arange(32) % 2 == 0
    flipped = mirrored(samples, flip)
    for i in range(32):
        planes = samples.observations[i].numpy()
        new_planes, new_teacher = flipped.observations[i].numpy(), flipped.teacher[i].numpy()
        position = position_of(planes)
        if not flip[i]:
            np.testing.assert_array_equal(new_planes, planes)
            assert flipped.actions[i] == samples.actions[i]
            continue
        image = mirror_position(position)
        np.testing.assert_array_equal(new_planes, encode_position(image))
        np.testing.assert_array_equal(flipped.action_masks[i].numpy(), legal_mask(BOARD, image.mask))
        np.testing.assert_allclose(
            new_teacher, search_distribution(image, 2, config.kickstart.teacher.temperature), atol=1e-6
        )
        assert int(flipped.actions[i]) == BOARD.columns - 1 - int(samples.actions[i])
        assert float(flipped.advantages[i]) == float(samples.advantages[i])
        assert float(flipped.old_log_prob[i]) == float(samples.old_log_prob[i])
    assert not any(mirrored(samples, np.zeros(32, bool)).observations.ne(samples.observations).flatten())


def test_a_mirrored_run_flips_about_half_of_every_minibatch(tmp_path, monkeypatch):
    from helpers import TINY

    from connectx_gym.config import load_config
    from connectx_gym.training import ppo
    from connectx_gym.training.loop import run

    seen = []
    original = ppo.mirrored

    def spy(samples, flip):
        seen.append(int(flip.sum()) / len(flip))
        return original(samples, flip)

    monkeypatch.setattr(ppo, "mirrored", spy)
    overrides = [*TINY, "train.total_timesteps=96", "train.eval_every=0", "train.mirror=true"]
    result = run(load_config(None, overrides).resolved(), tmp_path / "run", None)
    assert result.steps == 96 and result.final_model.is_file()
    assert seen and 0.3 < float(np.mean(seen)) < 0.7  # about half of every minibatch is flipped


def test_the_solver_teacher_is_refused_off_its_board_or_without_the_solver(monkeypatch):
    import sys

    from connectx_gym.errors import ConfigError

    with pytest.raises(ConfigError, match=r"only 6x7 boards with 4 in a row, not env.rows=5, env.columns=7"):
        tiny_config("kickstart.teacher.kind=solver", "env.rows=5")
    tiny_config("kickstart.teacher.kind=solver", "env.rows=5", "kickstart.coef=0")  # off: nothing to check
    monkeypatch.setitem(sys.modules, "bitbully", None)  # import bitbully now raises ImportError
    with pytest.raises(ConfigError, match=r"needs the perfect Connect-4 solver bitbully.*pip install"):
        tiny_config("kickstart.teacher.kind=solver")
    with pytest.raises(ValueError, match="teacher must be one of alphabeta|solver|mcts, got 'oracle'"):
        make_teacher(SimpleNamespace(kind="oracle"), {"rows": 6, "columns": 7, "inarow": 4})


@pytest.mark.skipif(not oracle.solver_available(), reason="the solver extra is not installed")
def test_the_solver_teacher_is_perfect_from_book_and_solver_and_searches_between():
    """On positions of noisy games: up to 10 stones and from solver_from on, the distribution is even
    over exactly the solver's best columns; in between it is the alpha-beta teacher's."""
    from connectx_gym.agents.specs import make_opponent
    from connectx_gym.envs.solver_teacher import solver_distribution

    solver, player, rng = oracle.Oracle(), make_opponent("alphabeta:2:0.3"), np.random.default_rng(3)
    checked = {"book": 0, "solver": 0, "search": 0}
    for _ in range(6):
        position = Position(BOARD)
        while position.winner is None:
            got = solver_distribution(position, 2, 0.1, 22)
            if 10 < position.moves_played < 22:
                np.testing.assert_allclose(got, search_distribution(position, 2, 0.1))
                checked["search"] += 1
            else:
                best = oracle.best_columns(solver.scores(position))
                np.testing.assert_allclose(got, np.isin(np.arange(7), best) / len(best), atol=1e-6)
                checked["book" if position.moves_played <= 10 else "solver"] += 1
            position.play(player.act(position, rng))
    assert min(checked.values()) >= 5, checked
