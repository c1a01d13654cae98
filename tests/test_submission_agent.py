"""The Kaggle agent module on its own (``connectx_gym.submission.agent``), as the package imports it: an
empty file (no weights, no book) whose settings and network the tests set, and the exact proof it runs
(``connectx_gym.search.proof``) against the package's alpha-beta search."""

from __future__ import annotations

import time

import numpy as np
import pytest
from helpers import random_positions

from connectx_gym.data.book import load_book
from connectx_gym.inference.numpy_policy import load_checkpoint
from connectx_gym.rules.bitboard import Position, geometry
from connectx_gym.rules.planes import encode_position
from connectx_gym.search.alphabeta import WIN_SCORE, alphabeta_scores
from connectx_gym.search.proof import PROOF_WIN, ProofBoard, prove
from connectx_gym.submission import agent

BOARD = {"rows": 6, "columns": 7, "inarow": 4}


def grid_of(board, position):
    return np.asarray(position.to_kaggle(), dtype=np.int64).reshape(board["rows"], board["columns"])


@pytest.fixture
def playing(monkeypatch, tmp_path):
    """The module with a tiny trained network in place of the empty one; its state restored after."""
    from helpers import tiny_checkpoint

    policy = load_checkpoint(tiny_checkpoint(tmp_path / "tiny.zip", BOARD, steps=32))
    monkeypatch.setattr(agent, "_NETWORK", policy.network)
    monkeypatch.setattr(agent, "_STATE", {})
    monkeypatch.setattr(agent, "LAST_MOVE", {"source": None, "simulations": 0})
    return policy


def test_the_package_module_is_an_empty_file():
    assert agent._NETWORK is None and agent._BOOK is None and agent.SEARCH_MS is None
    assert agent._WEIGHTS_B64 is None and agent._BOOK_B64 is None  # decoded, then dropped


@pytest.mark.parametrize(
    "observation, configuration, message",
    [
        ({"board": [0] * 42, "mark": 1}, {"rows": 5}, "trained on 6x7 inarow 4, got 5x7 inarow 4"),
        ({"mark": 1}, {}, "observation needs 'board' and 'mark'"),
        ({"board": [0] * 42, "mark": 3}, {}, "observation.mark must be 1 or 2, got 3"),
        ({"board": [0] * 41, "mark": 1}, {}, "observation.board has 41 cells, expected 42"),
    ],
)
def test_bad_arguments_are_named(observation, configuration, message):
    with pytest.raises(ValueError, match=message):
        agent.read_position(observation, configuration)


def test_encode_is_the_training_encoding():
    for position in random_positions(BOARD, 100, seed=3):
        grid = grid_of(BOARD, position)
        np.testing.assert_array_equal(agent.encode(grid, position.to_move), encode_position(position))


def test_book_columns_are_the_books(monkeypatch):
    book = load_book()
    monkeypatch.setattr(agent, "_BOOK", book.table)
    monkeypatch.setattr(agent, "BOOK_PLIES", book.plies)
    rng = np.random.default_rng(5)
    g = geometry(**BOARD)
    seen = 0
    for _ in range(300):
        position = Position(g)
        for _ in range(int(rng.integers(0, book.plies + 3))):
            if position.done:
                break
            position.play(int(rng.choice(position.legal_moves())))
        if position.done:
            continue
        moves = [[] for _ in range(7)]
        grid = grid_of(BOARD, position)
        for column in range(7):
            moves[column] = [int(v) for v in grid[::-1, column] if v]
        expected = book.best_columns(moves)
        assert agent.book_columns(grid) == expected
        seen += expected is not None
    assert seen > 100
    floating = np.zeros((6, 7), dtype=np.int64)
    floating[0, 3] = 1  # a stone in the top row over an empty column
    assert agent.book_columns(floating) is None


def test_the_greedy_agent_plays_the_networks_best_legal_column(playing):
    for position in random_positions(BOARD, 50, seed=7):
        kaggle_board, mark = position.to_kaggle(), position.to_move
        planes = encode_position(position)[None]
        expected = int(playing.act(planes, np.array([[position.is_legal(c) for c in range(7)]]))[0])
        assert agent.agent({"board": kaggle_board, "mark": mark}, {}) == expected
        assert agent.LAST_MOVE["source"] == "greedy"


def test_with_a_search_it_takes_a_win_and_plays_legal_moves(playing, monkeypatch):
    monkeypatch.setattr(agent, "SEARCH_MS", 50)
    g = geometry(**BOARD)
    win = Position(g)
    for column in (0, 6, 0, 6, 0, 5):
        win.play(column)
    assert agent.agent({"board": win.to_kaggle(), "mark": win.to_move}, {}) == 0
    assert agent.LAST_MOVE["source"] == "rules"
    for position in random_positions(BOARD, 10, seed=8):
        column = agent.agent({"board": position.to_kaggle(), "mark": position.to_move}, {})
        assert position.is_legal(column) and agent.LAST_MOVE["source"] in ("rules", "proof", "tree")


# ---------------------------------------------------------------------- the exact proof
@pytest.mark.parametrize("rows, columns, inarow", [(4, 5, 3), (3, 6, 3), (4, 4, 3)])
def test_what_the_proof_proves_the_full_search_confirms(rows, columns, inarow):
    """On boards small enough to search to the end, a column the proof calls won wins and a column it
    calls lost loses, under the package's alpha-beta search to the end of the game (in
    positions the proof is asked about: no immediate win or forced block)."""
    board_size = {"rows": rows, "columns": columns, "inarow": inarow}
    board = ProofBoard(rows, columns, inarow)
    shape = geometry(rows, columns, inarow)
    checked = 0
    for position in random_positions(board_size, 80, seed=rows * 10 + columns):
        mark, mask = position.to_move, position.mask
        playable = shape.playable_cells(mask)
        if any(shape.winning_cells(position.stones[m], mask) & playable for m in (1, 2)):
            continue  # an immediate win or a forced block: the tree's rules play those, not the proof
        empty = rows * columns - position.moves_played
        exact = alphabeta_scores(position, empty)
        order = position.legal_moves()
        won, lost = prove(board, position.stones[mark], position.mask, order, time.perf_counter() + 30)
        if won is not None:
            assert exact[won] > WIN_SCORE - empty - 1, (position.render(), won, exact)
        for column, plies in lost.items():
            assert exact[column] <= -(WIN_SCORE - empty + 1), (position.render(), column, plies, exact)
        checked += (won is not None) + len(lost)
    assert checked > 20
    assert PROOF_WIN < WIN_SCORE
