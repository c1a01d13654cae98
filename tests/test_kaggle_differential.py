"""Differential tests: our ``Position`` against Kaggle's real ConnectX rules, ply by ply.

Two references, both Kaggle's own code:

* fast: ``kaggle_environments.envs.connectx.connectx.interpreter`` called directly on a state built
  like the one ``Environment.step`` hands it (thousands of games, plus ``is_win`` look-ahead);
* full: ``kaggle_environments.make("connectx")`` stepped with ``env.step`` (fewer games, ~1 ms/step),
  which adds the schema checks and the status/reward post-processing of ``core.py``.

At every ply: same board, legal moves, terminal flag, winner/rewards and player to move. Some games
inject an illegal move (full column or off the board): Kaggle ends the game with the mover marked
invalid, and our ``Position`` must call the move illegal and refuse to play it.
"""

from __future__ import annotations

import contextlib
import io

import numpy as np
import pytest

with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
    import kaggle_environments
    from kaggle_environments.envs.connectx import connectx as kaggle_connectx
    from kaggle_environments.utils import structify

from connectx_gym.rules.bitboard import EMPTY, Geometry, Position

# (rows, columns, inarow)
SIZES = [
    (6, 7, 4),  # Kaggle's default
    (5, 8, 4),
    (8, 5, 4),
    (4, 9, 5),
    (3, 3, 3),
    (5, 6, 3),
    (7, 7, 5),
    (6, 7, 2),
    (1, 1, 1),
    (2, 2, 2),
    (1, 5, 2),
    (4, 4, 1),  # first stone wins
    (3, 4, 5),  # inarow beyond both dimensions: always a draw
    (2, 6, 4),  # inarow beyond rows: no vertical or diagonal lines
]
IDS = [f"{r}x{c}x{k}" for r, c, k in SIZES]

FAST_GAMES = 1000  # per size in the default run -> 14000 games
FULL_GAMES = 100  # per size through make("connectx") -> 1400 games
SLOW_FAST_GAMES = 10000
SLOW_FULL_GAMES = 500
ILLEGAL_FRACTION = 0.25  # games that may get an illegal move


def _rng(seed: int, size) -> np.random.Generator:
    return np.random.default_rng([seed, *size])


def _expected_rewards(position: Position):
    """Kaggle's rewards for (agent 0, agent 1): +1/-1 for a win, 0/0 for a draw or an ongoing game."""
    if position.winner in (None, EMPTY):
        return [0, 0]
    return [1, -1] if position.winner == 1 else [-1, 1]


def _expected_statuses(position: Position):
    if position.done:
        return ["DONE", "DONE"]
    return ["ACTIVE", "INACTIVE"] if position.to_move == 1 else ["INACTIVE", "ACTIVE"]


def _illegal_column(position: Position, rng: np.random.Generator, flagged: bool):
    """In a flagged game, now and then an illegal column: a full one once there is one, else off the board."""
    if not flagged:
        return None
    columns = position.geometry.columns
    full = [c for c in range(columns) if not position.is_legal(c)]
    if full and rng.random() < 0.3:
        return int(full[rng.integers(len(full))])
    if rng.random() < 0.08:
        off_board = [columns, columns + int(rng.integers(1, 5)), -1, -int(rng.integers(2, 5))]
        return int(off_board[rng.integers(len(off_board))])
    return None


def _assert_refuses(position: Position, column: int) -> None:
    before = (position.stones[:], position.mask, position.to_move, position.moves_played, position.winner)
    assert not position.is_legal(column)
    assert column not in position.legal_moves()
    with pytest.raises(ValueError):
        position.play(column)
    assert (position.stones[:], position.mask, position.to_move, position.moves_played, position.winner) == before


def _choose_moves(position: Position, rng: np.random.Generator):
    """A random legal move; a third of the time biased to one column so columns fill up."""
    moves = position.legal_moves()
    if rng.random() < 0.33:
        favourite = int(rng.integers(position.geometry.columns))
        if favourite in moves:
            return favourite
    return int(moves[rng.integers(len(moves))])


# ---------------------------------------------------------------------------------------- fast: interpreter


class _InterpreterEnv:
    """What ``interpreter(state, env)`` reads from ``env``: its configuration and ``done``."""

    def __init__(self, rows: int, columns: int, inarow: int) -> None:
        self.configuration = structify({"rows": rows, "columns": columns, "inarow": inarow})
        self.done = False  # Environment.step refuses to run once done


def _initial_state(size: int):
    return structify(
        [
            {"action": None, "reward": 0, "status": "ACTIVE", "observation": {"board": [0] * size, "mark": 1}},
            {"action": None, "reward": 0, "status": "INACTIVE", "observation": {"mark": 2}},
        ]
    )


def _check_against_interpreter(position: Position, state, env) -> None:
    g = position.geometry
    board = state[0].observation.board
    assert board == position.to_kaggle()
    assert [c for c in range(g.columns) if board[c] == EMPTY] == position.legal_moves()
    kaggle_done = all(s.status != "ACTIVE" for s in state)
    assert kaggle_done == position.done
    assert [s.status for s in state] == _expected_statuses(position)
    assert [s.reward for s in state] == _expected_rewards(position)
    if not position.done:
        # Kaggle's own look-ahead (negamax agent's "can win next") vs our winning cells.
        mark = position.to_move
        wins = g.winning_cells(position.stones[mark], position.mask)
        for c in position.legal_moves():
            expected = kaggle_connectx.is_win(board, c, mark, env.configuration, has_played=False)
            assert bool(wins & g.drop_bit(position.mask, c)) == expected, (c, mark)


def _fast_games(size, games: int, seed: int):
    rows, columns, inarow = size
    g = Geometry(rows, columns, inarow)
    env = _InterpreterEnv(rows, columns, inarow)
    rng = _rng(seed, size)
    outcomes = {"first": 0, "second": 0, "draw": 0, "illegal": 0, "full_column": 0}
    plies = 0
    for _ in range(games):
        position = Position(g)
        state = _initial_state(g.size)
        flagged = rng.random() < ILLEGAL_FRACTION
        _check_against_interpreter(position, state, env)
        while not position.done:
            active = 0 if position.to_move == 1 else 1
            column = _illegal_column(position, rng, flagged)
            if column is not None:
                _assert_refuses(position, column)
                state[active].action, state[1 - active].action = column, None
                state = kaggle_connectx.interpreter(state, env)
                assert state[active].status == f"Invalid column: {column}"
                assert state[1 - active].status == "DONE"
                assert state[0].observation.board == position.to_kaggle()  # unchanged
                outcomes["illegal"] += 1
                outcomes["full_column"] += 0 <= column < columns
                break
            column = _choose_moves(position, rng)
            assert position.is_legal(column)
            state[active].action, state[1 - active].action = column, None
            state = kaggle_connectx.interpreter(state, env)
            position.play(column)
            plies += 1
            _check_against_interpreter(position, state, env)
        else:
            outcomes[{1: "first", 2: "second", EMPTY: "draw"}[position.winner]] += 1
    return outcomes, plies


def _assert_outcome_coverage(size, outcomes):
    rows, columns, inarow = size
    if inarow == 1:
        assert outcomes["first"] + outcomes["illegal"] > 0 and outcomes["second"] == outcomes["draw"] == 0
    elif inarow > max(rows, columns):
        assert outcomes["first"] == outcomes["second"] == 0 and outcomes["draw"] > 0
    elif (rows, columns, inarow) not in {(2, 2, 2), (1, 5, 2)}:
        assert outcomes["first"] > 0 and outcomes["second"] > 0
    assert outcomes["illegal"] > 0
    if rows > 1 and (inarow >= 3 or rows == 2):  # some column fills up before the game ends
        assert outcomes["full_column"] > 0


@pytest.mark.parametrize("size", SIZES, ids=IDS)
def test_fast_differential_interpreter(size):
    outcomes, _ = _fast_games(size, FAST_GAMES, seed=2024)
    assert sum(outcomes.values()) - outcomes["full_column"] == FAST_GAMES
    _assert_outcome_coverage(size, outcomes)


@pytest.mark.slow
@pytest.mark.parametrize("size", SIZES, ids=IDS)
def test_fast_differential_interpreter_slow(size):
    outcomes, _ = _fast_games(size, SLOW_FAST_GAMES, seed=77)
    assert sum(outcomes.values()) - outcomes["full_column"] == SLOW_FAST_GAMES


def test_interpreter_illegal_first_move_and_pure_play():
    """Kaggle's ``play``/``is_win`` on a hand-built board agree with ours, including a full column."""
    g = Geometry(3, 3, 3)
    config = structify({"rows": 3, "columns": 3, "inarow": 3})
    board = [0] * 9
    position = Position(g)
    for column, mark in ((0, 1), (0, 2), (0, 1)):
        kaggle_connectx.play(board, column, mark, config)
        position.play(column)
        assert board == position.to_kaggle()
        assert kaggle_connectx.is_win(board, column, mark, config) == (position.winner == mark)
    assert board[0] != EMPTY and not position.is_legal(0)
    env = _InterpreterEnv(3, 3, 3)
    state = _initial_state(9)
    state[0].observation.board = board
    state[0].status, state[1].status = "INACTIVE", "ACTIVE"  # mark 2 to move
    state[1].action = 0
    state = kaggle_connectx.interpreter(state, env)
    assert state[1].status == "Invalid column: 0" and state[0].status == "DONE"
    _assert_refuses(position, 0)


# ---------------------------------------------------------------------------------------- full: make("connectx")


def _make_env(size):
    rows, columns, inarow = size
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        return kaggle_environments.make(
            "connectx", configuration={"rows": rows, "columns": columns, "inarow": inarow}, debug=False
        )


def _check_against_env(position: Position, env) -> None:
    g = position.geometry
    state = env.state
    board = state[0].observation.board
    assert list(board) == position.to_kaggle()
    assert [c for c in range(g.columns) if board[c] == EMPTY] == position.legal_moves()
    assert env.done == position.done
    assert [s.status for s in state] == _expected_statuses(position)
    assert [s.reward for s in state] == _expected_rewards(position)
    assert [s.observation.mark for s in state] == [1, 2]
    if not position.done:
        active = [s.status for s in state].index("ACTIVE")
        assert active + 1 == position.to_move
        # What an agent would rebuild from its observation is our position.
        rebuilt = Position.from_kaggle(g, board, mark=state[active].observation.mark)
        assert rebuilt.stones == position.stones and rebuilt.to_move == position.to_move
        assert rebuilt.winner is None and rebuilt.moves_played == position.moves_played


def _full_games(size, games: int, seed: int):
    rows, columns, inarow = size
    g = Geometry(rows, columns, inarow)
    env = _make_env(size)
    rng = _rng(seed, size)
    played = illegal = 0
    for game in range(games):
        if game:
            env.reset()
        position = Position(g)
        flagged = rng.random() < ILLEGAL_FRACTION
        _check_against_env(position, env)
        while not position.done:
            active = 0 if position.to_move == 1 else 1
            actions = [None, None]
            column = _illegal_column(position, rng, flagged)
            if column is not None:
                _assert_refuses(position, column)
                actions[active] = column
                env.step(actions)
                # core.py turns "Invalid column: N" (not in the status enum) and a negative action
                # (fails the action schema) into INVALID with a None reward; the opponent gets 0.
                assert env.done
                assert env.state[active].status == "INVALID" and env.state[active].reward is None
                assert env.state[1 - active].status == "DONE" and env.state[1 - active].reward == 0
                assert list(env.state[0].observation.board) == position.to_kaggle()
                illegal += 1
                break
            column = _choose_moves(position, rng)
            actions[active] = column
            env.step(actions)
            position.play(column)
            _check_against_env(position, env)
        else:
            played += 1
    assert played + illegal == games
    assert illegal > 0
    return played, illegal


@pytest.mark.parametrize("size", SIZES, ids=IDS)
def test_full_env_differential(size):
    _full_games(size, FULL_GAMES, seed=99)


@pytest.mark.slow
@pytest.mark.parametrize("size", SIZES, ids=IDS)
def test_full_env_differential_slow(size):
    _full_games(size, SLOW_FULL_GAMES, seed=5)


def test_full_env_raw_interpreter_status_for_out_of_range_column():
    """The interpreter's "Invalid column: 7" is outside core.py's status enum, so the env says INVALID."""
    env = _make_env((6, 7, 4))
    env.step([7, None])
    assert env.done and env.state[0].status == "INVALID" and env.state[1].status == "DONE"
    assert not Position(Geometry(6, 7, 4)).is_legal(7)
