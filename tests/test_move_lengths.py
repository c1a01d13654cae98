"""benchmarks/move_lengths.py splits the moves that are not perfect into those that keep the result at
another length and those that change it."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent


def load_module():
    spec = importlib.util.spec_from_file_location("move_lengths", ROOT / "benchmarks" / "move_lengths.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_moves_split_by_result_and_length():
    nan = np.nan
    scores = np.array(
        [
            [3, 1, -2, nan],  # won: 0 the quickest win, 1 a slower one, 2 gives it away
            [-1, -4, -2, -3],  # lost: 0 the slowest loss
            [0, -1, 0, 2],  # won (3); the draws give the win away
            [0, 0, -1, nan],  # drawn: every draw is perfect
        ]
    )
    split = load_module().split_moves
    assert split(scores, [1, 0, 3, 1]) == {"positions": 4, "perfect": 3, "kept_won": 1, "kept_lost": 0, "changed": 0}
    assert split(scores, [1, 3, 0, 2]) == {"positions": 4, "perfect": 0, "kept_won": 1, "kept_lost": 1, "changed": 2}
    # a full column, no move and a column off the board are changed results, not errors
    assert split(scores, [3, None, 7, 0])["changed"] == 3
