"""The compiled alpha-beta search (numba) against the Python search it mirrors: identical scores and
moves on many positions, depths and board sizes, and the Python fallback where it does not apply."""

from __future__ import annotations

import math

import numpy as np
import pytest
from helpers import random_positions

from connectx_gym.rules.bitboard import Position, geometry
from connectx_gym.search import alphabeta, compiled, lines, negamax

pytestmark = pytest.mark.skipif(not compiled._HAS_NUMBA, reason="numba is not installed")


def both_ways(monkeypatch, call):
    """``call()`` with the compiled search, then with the Python search."""
    monkeypatch.setenv("CONNECTX_PURE_PYTHON", "0")
    fast = call()
    monkeypatch.setenv("CONNECTX_PURE_PYTHON", "1")
    slow = call()
    return fast, slow


@pytest.mark.parametrize(
    "rows, columns, inarow, depths",
    [
        (6, 7, 4, (1, 2, 3, 4)),
        (5, 6, 3, (1, 3)),
        (4, 5, 4, (2, 5)),
        (7, 7, 5, (1, 3)),
        (3, 3, 2, (1, 4)),
        (1, 6, 3, (3,)),
    ],
)
def test_compiled_search_gives_the_python_search_scores_and_moves(monkeypatch, rows, columns, inarow, depths):
    positions = random_positions(dict(rows=rows, columns=columns, inarow=inarow), 40, seed=rows * 100 + columns)
    assert compiled.available(positions[0].geometry)
    for depth in depths:

        def scores(depth=depth):
            return [alphabeta.alphabeta_scores(p, depth) for p in positions]

        def moves(depth=depth):
            return [alphabeta.alphabeta_move(p, depth, np.random.default_rng(i)) for i, p in enumerate(positions)]

        fast, slow = both_ways(monkeypatch, scores)
        assert fast == slow, f"scores differ at depth {depth}"
        fast, slow = both_ways(monkeypatch, moves)
        assert fast == slow, f"moves differ at depth {depth}"


def test_compiled_search_on_the_labelled_positions(monkeypatch):
    from connectx_gym.evaluation.accuracy import load_positions

    positions = load_positions().positions()[::35]
    fast, slow = both_ways(
        monkeypatch, lambda: [alphabeta.alphabeta_move(p, 4, np.random.default_rng(i)) for i, p in enumerate(positions)]
    )
    assert fast == slow and len(fast) == 100


def test_boards_over_63_bits_use_the_python_search(monkeypatch):
    monkeypatch.setenv("CONNECTX_PURE_PYTHON", "0")
    big = geometry(8, 8, 4)  # 9 x 8 = 72 bits with the sentinel row
    assert not compiled.available(big) and compiled.available(geometry(8, 7, 4))
    position = Position(big)
    position.play(3)
    assert alphabeta.alphabeta_move(position, 2, np.random.default_rng(0)) in range(8)


def test_the_environment_switch_forces_the_python_search(monkeypatch):
    monkeypatch.setenv("CONNECTX_PURE_PYTHON", "1")
    assert not compiled.available(geometry())


@pytest.mark.parametrize("rows, columns, inarow", [(6, 7, 4), (5, 6, 3), (4, 5, 4), (7, 7, 5), (3, 3, 2)])
def test_compiled_kaggle_negamax_gives_the_python_scores_and_moves(monkeypatch, rows, columns, inarow):
    positions = random_positions(dict(rows=rows, columns=columns, inarow=inarow), 60, seed=rows * 10 + inarow)

    def scores():
        lines.clear_caches()
        return [negamax.kaggle_negamax_scores(p) for p in positions]

    def moves():
        return [negamax.kaggle_negamax_move(p, np.random.default_rng(i)) for i, p in enumerate(positions)]

    fast, slow = both_ways(monkeypatch, scores)
    assert fast == slow
    assert all(
        math.copysign(1, a) == math.copysign(1, b)
        for f, s in zip(fast, slow)
        if f
        for a, b in zip(f.values(), s.values())
    )
    fast, slow = both_ways(monkeypatch, moves)
    assert fast == slow
