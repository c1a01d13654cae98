"""Search teachers for kickstarting: the alpha-beta scores of a position's moves turned into a move
distribution the learner is pulled toward (Schmitt et al. 2018, "Kickstarting Deep Reinforcement
Learning").

Each legal column's ``alphabeta.alphabeta_scores`` score becomes a value in [-1, 1]: a forced win is
1 (less 0.02 per extra ply before it lands, so the faster win is preferred), a forced loss -1 (plus
0.02 per extra ply it is delayed), and a heuristic score ``0.5 * tanh(score / 16)`` (16 is one open
three in Connect 4's window weights). The distribution is the softmax of the values over the
legal columns at ``temperature``; temperature 0 spreads the mass evenly over the best columns.

The ``mcts`` teacher reads a PUCT search over the learner's own network instead (``search_targets``):
its visit distribution, and its root value as the value head's target.
"""

from __future__ import annotations

import math

import numpy as np

from connectx_gym.rules.bitboard import Position
from connectx_gym.search.alphabeta import WIN_SCORE, alphabeta_scores

#: a decided score's magnitude is at least this (wins and losses are WIN_SCORE - plies + 1)
DECIDED = WIN_SCORE >> 1
#: value lost per extra ply before a win lands (gained per extra ply a loss is delayed)
PLY_DISCOUNT = 0.02
#: heuristic scores map to 0.5 * tanh(score / HEURISTIC_SCALE)
HEURISTIC_SCALE = 16.0


def move_value(score: int) -> float:
    """A search score as a value in [-1, 1] (see the module docstring)."""
    if score >= DECIDED:
        return max(0.5, 1.0 - PLY_DISCOUNT * (WIN_SCORE - score))
    if score <= -DECIDED:
        return min(-0.5, -1.0 + PLY_DISCOUNT * (WIN_SCORE + score))
    return 0.5 * math.tanh(score / HEURISTIC_SCALE)


def distribution(values: dict[int, float], columns: int, temperature: float) -> np.ndarray:
    """The move distribution over ``columns`` from each legal column's value (absent columns get 0)."""
    probs = np.zeros(columns, dtype=np.float32)
    if not values:
        return probs
    legal = np.fromiter(values, dtype=np.int64, count=len(values))
    scores = np.fromiter(values.values(), dtype=np.float64, count=len(values))
    if temperature <= 0:
        weights = (scores == scores.max()).astype(np.float64)
    else:
        weights = np.exp((scores - scores.max()) / temperature)
    probs[legal] = weights / weights.sum()
    return probs


def search_distribution(position: Position, depth: int, temperature: float) -> np.ndarray:
    """The teacher's move distribution for the player to move (zeros once the game is over)."""
    columns = position.geometry.columns
    if position.winner is not None:
        return np.zeros(columns, dtype=np.float32)
    scores = alphabeta_scores(position, depth)
    return distribution({column: move_value(score) for column, score in scores.items()}, columns, temperature)


#: a proven root's value target
PROVEN_VALUES = {"win": 1.0, "draw": 0.0, "loss": -1.0}


def search_targets(result) -> tuple[np.ndarray, float]:
    """The ``mcts`` teacher's targets from a ``puct.SearchResult``: the move distribution (the visit
    distribution; all mass on the chosen move when the root is proven) and the value for the player to move
    (the search's root value; +1, 0 or -1 when proven)."""
    if result.proven is not None:
        probs = np.zeros(len(result.visits), dtype=np.float32)
        probs[result.move] = 1.0
        return probs, PROVEN_VALUES[result.proven]
    return np.asarray(result.distribution(), dtype=np.float32), float(np.clip(result.search_value, -1.0, 1.0))
