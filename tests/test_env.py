"""ConnectXEnv: Gymnasium API conformance, Kaggle's rules from the agent's seat, and opponents' failures."""

from __future__ import annotations

import gymnasium
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import connectx_gym  # noqa: F401  (registers ConnectX-v0)
from connectx_gym.envs.connectx import ConnectXEnv
from connectx_gym.rules.bitboard import FIRST_MARK, SECOND_MARK
from connectx_gym.rules.planes import PLANE_FIRST, PLANE_OTHER, PLANE_OWN


class ScriptedOpponent:
    """Plays a fixed list of columns, then the lowest legal one."""

    name = "scripted"

    def __init__(self, moves=()):
        self.moves = list(moves)

    def act(self, position, rng):
        if self.moves:
            return self.moves.pop(0)
        return position.legal_moves()[0]


class RaisingOpponent:
    name = "raising"

    def act(self, position, rng):
        raise RuntimeError("boom")


class IllegalOpponent:
    name = "illegal"

    def act(self, position, rng):
        return position.geometry.columns + 3


def play_out(env, seed):
    """A whole episode with seeded random legal actions; returns the transcript."""
    rng = np.random.default_rng(seed)
    obs, info = env.reset(seed=seed)
    transcript = [(obs.copy(), info["board"])]
    while True:
        action = int(rng.choice(np.flatnonzero(env.action_masks())))
        obs, reward, terminated, truncated, info = env.step(action)
        transcript.append((obs.copy(), reward, terminated, info["board"]))
        if terminated:
            return transcript


@pytest.mark.parametrize("size", [(6, 7, 4), (5, 6, 3), (4, 9, 5), (1, 3, 1)])
def test_check_env_passes(size):
    rows, columns, inarow = size
    env = gymnasium.make("ConnectX-v0", rows=rows, columns=columns, inarow=inarow, opponent="random")
    check_env(env.unwrapped)


def test_make_with_negamax_on_odd_board():
    env = gymnasium.make("ConnectX-v0", rows=5, columns=6, inarow=3, opponent="negamax")
    obs, info = env.reset(seed=3)
    assert obs.shape == (4, 5, 6)
    assert env.action_space.n == 6
    obs, reward, terminated, truncated, info = env.step(int(np.flatnonzero(env.unwrapped.action_masks())[0]))
    assert sum(1 for cell in info["board"] if cell) in (2, 3)


def test_same_seed_same_episode_and_different_seeds_differ():
    env = ConnectXEnv(opponent="random")
    first = play_out(env, 11)
    second = play_out(env, 11)
    assert len(first) == len(second)
    for a, b in zip(first, second):
        assert np.array_equal(a[0], b[0]) and a[-1] == b[-1]
    boards = {tuple(play_out(env, seed)[-1][-1]) for seed in range(8)}
    assert len(boards) > 1


def test_agent_second_sees_opponent_opening_move():
    env = ConnectXEnv(opponent=ScriptedOpponent([2]), agent_seat="second")
    obs, info = env.reset(seed=0)
    assert info["agent_mark"] == SECOND_MARK
    assert info["board"][(6 - 1) * 7 + 2] == FIRST_MARK
    assert obs[PLANE_OTHER, 5, 2] == 1 and obs[PLANE_OWN].sum() == 0
    assert obs[PLANE_FIRST].max() == 0


@pytest.mark.parametrize(
    ("opening", "seat", "stones"),
    [([3], "first", 2), ([3, 3], "first", 2), ([3], "second", 1), ([3, 3], "second", 3), ([], "second", 1)],
)
def test_reset_plays_the_opening_then_whoever_is_to_move(opening, seat, stones):
    env = ConnectXEnv(opponent=ScriptedOpponent([6]), agent_seat=seat)
    obs, info = env.reset(seed=0, options={"opening": opening})
    agent_mark = FIRST_MARK if seat == "first" else SECOND_MARK
    assert info["agent_mark"] == agent_mark and env.position.to_move == agent_mark
    assert env.position.moves_played == stones == obs[PLANE_OWN].sum() + obs[PLANE_OTHER].sum()
    if opening:  # the opening's first stone is the first player's, bottom of column 3
        assert obs[PLANE_OWN if seat == "first" else PLANE_OTHER, 5, 3] == 1
    assert (obs[PLANE_OTHER, 5, 6] == 1) == (stones > len(opening))  # the opponent answered in column 6
    again, _ = env.reset(seed=0)  # the next reset starts from the empty board again
    assert again[PLANE_OWN].sum() + again[PLANE_OTHER].sum() == (seat == "second")


@pytest.mark.parametrize(
    ("opening", "message"),
    [([7], "illegal column 7"), ([0] * 7, "illegal column 0"), ([0, 1] * 3 + [0], "ends the game"), (["3"], "'3'")],
)
def test_reset_refuses_a_bad_opening(opening, message):
    env = ConnectXEnv(opponent="random", agent_seat="first")
    with pytest.raises(ValueError, match=message):
        env.reset(seed=0, options={"opening": opening})


def test_random_seat_uses_both_seats():
    env = ConnectXEnv(opponent="random", agent_seat="random")
    marks = {env.reset(seed=seed)[1]["agent_mark"] for seed in range(20)}
    assert marks == {FIRST_MARK, SECOND_MARK}


def test_win_loss_draw_rewards_are_configurable():
    env = ConnectXEnv(opponent=ScriptedOpponent([0, 0, 0]), agent_seat="first", reward_win=2.5)
    env.reset(seed=0)
    for _ in range(3):
        _, reward, terminated, _, info = env.step(3)
        assert not terminated and reward == 0.0
    _, reward, terminated, _, info = env.step(3)
    assert terminated and reward == 2.5 and info["winner"] == FIRST_MARK and info["outcome"] == "win"

    env = ConnectXEnv(opponent=ScriptedOpponent([0, 0, 0, 0]), agent_seat="first", reward_loss=-3.0)
    env.reset(seed=0)
    for column in (1, 2, 6):
        assert not env.step(column)[2]
    _, reward, terminated, _, info = env.step(5)
    assert terminated and reward == -3.0 and info["winner"] == SECOND_MARK and info["outcome"] == "loss"

    # 1x2 board needing 2 in a row: the board fills with no line.
    env = ConnectXEnv(rows=1, columns=2, inarow=2, opponent="random", agent_seat="first", reward_draw=0.25)
    env.reset(seed=0)
    _, reward, terminated, _, info = env.step(0)
    assert terminated and reward == 0.25 and info["winner"] == 0 and info["outcome"] == "draw"


def test_illegal_action_lose_and_raise():
    env = ConnectXEnv(rows=2, columns=3, inarow=3, opponent=ScriptedOpponent([0]), agent_seat="first")
    env.reset(seed=0)
    env.step(0)
    assert not env.action_masks()[0]
    _, reward, terminated, _, info = env.step(0)
    assert terminated and reward == -1.0 and info["illegal_action"] == 0 and info["outcome"] == "loss"

    env = ConnectXEnv(
        rows=2, columns=3, inarow=3, opponent=ScriptedOpponent([0]), agent_seat="first", illegal_action="raise"
    )
    env.reset(seed=0)
    env.step(0)
    with pytest.raises(ValueError, match="illegal action 0"):
        env.step(0)
    with pytest.raises(ValueError, match="illegal action 7"):
        env.step(7)


def test_step_after_end_raises():
    env = ConnectXEnv(rows=1, columns=2, inarow=1, opponent="random", agent_seat="first")
    env.reset(seed=0)
    assert env.step(0)[2]
    with pytest.raises(RuntimeError, match="reset"):
        env.step(1)


@pytest.mark.parametrize("opponent", [RaisingOpponent(), IllegalOpponent()])
@pytest.mark.parametrize("seat", ["first", "second"])
def test_failing_opponent_forfeits(opponent, seat):
    env = ConnectXEnv(opponent=opponent, agent_seat=seat)
    env.reset(seed=0)
    _, reward, terminated, _, info = env.step(3)
    assert terminated and reward == 1.0 and info["outcome"] == "win"
    assert info["opponent_error"]


def test_bad_constructor_arguments_are_named():
    with pytest.raises(ValueError, match="agent_seat.*'middle'"):
        ConnectXEnv(agent_seat="middle")
    with pytest.raises(ValueError, match="illegal_action.*'ignore'"):
        ConnectXEnv(illegal_action="ignore")
    with pytest.raises(ValueError, match="rows must be an integer >= 1, got 0"):
        ConnectXEnv(rows=0)
    with pytest.raises(TypeError, match="opponent"):
        ConnectXEnv(opponent=42)


def test_observation_is_relative_to_agent_and_matches_board():
    env = ConnectXEnv(opponent="random")
    for seed in range(5):
        transcript = play_out(env, seed)
        mark = env.agent_mark
        for entry in transcript[:-1]:
            obs, board = entry[0], entry[-1]
            grid = np.array(board).reshape(6, 7)
            assert np.array_equal(obs[PLANE_OWN], (grid == mark).astype(np.float32))
            assert np.array_equal(obs[PLANE_OTHER], (grid == 3 - mark).astype(np.float32))


def test_render_modes(capsys):
    env = ConnectXEnv(opponent="random", render_mode="ansi")
    env.reset(seed=0)
    text = env.render()
    assert len(text.splitlines()) == 7
    env = ConnectXEnv(opponent="random", render_mode="human")
    env.reset(seed=0)
    env.render()
    assert ". . . . . . ." in capsys.readouterr().out


@pytest.mark.parametrize("size", [(6, 7, 4), (3, 5, 3), (1, 4, 2), (7, 3, 3)])
def test_incremental_views_equal_views_rebuilt_from_the_rules(size):
    """The env updates obs, masks and board move by move; they must equal a fresh rebuild every step."""
    from connectx_gym.rules.planes import encode_position, legal_mask

    rows, columns, inarow = size
    env = ConnectXEnv(rows=rows, columns=columns, inarow=inarow, opponent="random")
    for seed in range(15):
        rng = np.random.default_rng(seed)
        obs, info = env.reset(seed=seed)
        while True:
            position = env.position
            assert np.array_equal(obs, encode_position(position, env.agent_mark))
            assert np.array_equal(env.action_masks(), legal_mask(env.geometry, position.mask))
            assert info["board"] == position.to_kaggle()
            obs, _, terminated, _, info = env.step(int(rng.choice(np.flatnonzero(env.action_masks()))))
            if terminated:
                assert info["board"] == env.position.to_kaggle()
                break
