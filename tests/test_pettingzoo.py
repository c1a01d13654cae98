"""The PettingZoo AEC environment: PettingZoo's own API and seed tests, and the same games as ConnectX-v0."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from pettingzoo.test import api_test, seed_test
from pettingzoo.utils.env import AECEnv

from connectx_gym.envs.connectx import ConnectXEnv
from connectx_gym.pettingzoo import env, raw_env
from connectx_gym.rules.planes import PLANE_OTHER, PLANE_OWN

BOARDS = [(6, 7, 4), (5, 4, 3), (4, 9, 5), (1, 5, 2), (7, 3, 3)]


@pytest.fixture(autouse=True)
def quiet_api_test_warnings():
    # api_test warns that a Dict observation "probably should be a Box"; connect_four_v3 has the same one
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        yield


@pytest.mark.parametrize("board", BOARDS)
def test_pettingzoo_api_test_passes(board):
    api_test(env(*board), num_cycles=300)


@pytest.mark.parametrize("board", BOARDS)
def test_pettingzoo_seed_test_passes(board):
    seed_test(lambda: env(*board), num_cycles=200)


def test_env_is_order_enforced_and_raw_env_is_the_plain_aec_env():
    wrapped = env()
    with pytest.raises(AssertionError, match="reset"):  # PettingZoo's order enforcement: reset first
        wrapped.step(0)
    plain = raw_env(5, 6, 4)
    assert isinstance(plain, AECEnv) and plain.possible_agents == ["player_0", "player_1"]
    assert plain.observation_space("player_0")["observation"].shape == (5, 6, 2)
    assert plain.action_space("player_1").n == 6
    with pytest.raises(ValueError, match="render_mode must be one of"):
        raw_env(render_mode="rgb_array")


class Scripted:
    """An opponent for ConnectX-v0 that replays the other player's columns of an AEC game."""

    name = "scripted"

    def __init__(self, moves):
        self.moves = list(moves)

    def act(self, position, rng):
        return self.moves.pop(0)


def play_aec(board, seed, illegal_at=None):
    """A random game through the AEC env: ``(columns, boards after each move, rewards, observations)``."""
    game = env(*board)
    game.reset(seed=seed)
    rng = np.random.default_rng(seed)
    columns, boards, observations, rewards, infos = [], [], [], {}, {}
    for agent in game.agent_iter():
        observation, reward, termination, truncation, info = game.last()
        if termination or truncation:
            rewards[agent], infos[agent] = reward, info  # each player's result, as it sees it at the end
            game.step(None)
            continue
        observations.append(observation["observation"].copy())
        mask = observation["action_mask"]
        assert mask.sum() == len(game.unwrapped.position.legal_moves()) > 0
        column = int(rng.choice(np.flatnonzero(mask)))
        if len(columns) == illegal_at:
            column = board[1] if len(columns) % 2 else -1  # off the board, either side
        columns.append(column)
        game.step(column)
        boards.append(game.unwrapped.board().ravel().tolist())
    assert game.agents == []  # both players saw the end and left
    return columns, boards, rewards, observations, infos


def play_connectx(board, columns):
    """The same columns through ConnectX-v0, the agent as player_0 and a scripted player_1."""
    rows, cols, inarow = board
    gym_env = ConnectXEnv(rows, cols, inarow, opponent=Scripted(columns[1::2]), agent_seat="first")
    obs, info = gym_env.reset(seed=0)
    boards, observations, reward, info = [], [obs], 0.0, {}
    for column in columns[0::2]:
        obs, reward, terminated, _, info = gym_env.step(column)
        boards.append(info["board"])
        observations.append(obs)
        if terminated:
            break
    return boards, reward, observations, info


@pytest.mark.parametrize("board", BOARDS)
@pytest.mark.parametrize("seed", range(6))
def test_the_same_games_give_the_same_boards_and_results_as_connectx_v0(board, seed):
    columns, aec_boards, rewards, aec_observations, _ = play_aec(board, seed)
    gym_boards, reward, gym_observations, info = play_connectx(board, columns)
    # ConnectX-v0 steps cover the agent's move and the reply: its boards are the AEC's after each reply
    assert gym_boards == [aec_boards[min(i, len(aec_boards) - 1)] for i in range(1, len(columns) + 1, 2)]
    assert rewards == {"player_0": reward, "player_1": -reward}
    assert info["outcome"] == {1.0: "win", -1.0: "loss", 0.0: "draw"}[reward]
    for aec, gym in zip(aec_observations[0::2], gym_observations):  # player_0's views, before each of its moves
        assert (aec[:, :, 0] == gym[PLANE_OWN]).all() and (aec[:, :, 1] == gym[PLANE_OTHER]).all()


@pytest.mark.parametrize("illegal_at", [0, 3, 4])
def test_an_illegal_column_loses_for_its_player_as_in_connectx_v0(illegal_at):
    board = (6, 7, 4)
    columns, _, rewards, _, infos = play_aec(board, seed=1, illegal_at=illegal_at)
    assert len(columns) == illegal_at + 1
    mover, other = ("player_0", "player_1") if illegal_at % 2 == 0 else ("player_1", "player_0")
    assert rewards == {mover: -1, other: 1} and infos[mover]["illegal_action"] == columns[-1]
    if mover == "player_0":  # the agent's illegal move loses ConnectX-v0's game too
        _, reward, _, info = play_connectx(board, columns)
        assert reward == -1.0 and info["illegal_action"] == columns[-1]


def test_render_ansi_and_human(capsys):
    game = raw_env(render_mode="ansi")
    game.reset()
    game.step(3)
    text = game.render()
    assert text.splitlines()[-2] == ". . . 1 . . ." and text.splitlines()[-1] == "0 1 2 3 4 5 6"
    shown = raw_env(render_mode="human")
    shown.reset()
    shown.step(0)
    assert capsys.readouterr().out.splitlines()[-3] == "1 . . . . . ."
