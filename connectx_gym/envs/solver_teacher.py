"""The ``solver`` kickstarting teacher (``kickstart.teacher.kind: solver``): perfect moves where they are
cheap to know, the alpha-beta teacher in between. 6x7 boards with 4 in a row only.

- up to ``BOOK_PLIES`` stones: the shipped opening book's perfect moves (``connectx_gym.data.book``);
- from ``solver_from`` stones on: the perfect solver's (the ``[solver]`` extra), which answers such
  positions in about a millisecond (figures by stone count in ``docs/benchmarks.md``);
- in between: ``search.targets.search_distribution`` at the kickstart depth and temperature.

A perfect move set becomes the distribution spread evenly over it (``search.targets.distribution`` at
temperature 0). The book and the solver are loaded once per process, on first use.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from connectx_gym.data.book import load_book
from connectx_gym.rules.bitboard import Position
from connectx_gym.search.solver import Oracle, best_columns
from connectx_gym.search.targets import distribution, search_distribution


@lru_cache(maxsize=1)
def _book():
    return load_book()


@lru_cache(maxsize=1)
def _oracle():
    return Oracle()


def marks_by_column(position: Position) -> tuple[tuple[int, ...], ...]:
    """Each column's marks, bottom up (the opening book's view of a position)."""
    shape, first = position.geometry, position.stones[1]
    columns = []
    for column in range(shape.columns):
        marks = []
        for height in range(shape.rows):
            bit = shape.cell_bit(column, height)
            if not position.mask & bit:
                break
            marks.append(1 if first & bit else 2)
        columns.append(tuple(marks))
    return tuple(columns)


def solver_distribution(position: Position, depth: int, temperature: float, solver_from: int) -> np.ndarray:
    """The solver teacher's move distribution for the player to move (zeros once the game is over)."""
    width = position.geometry.columns
    if position.winner is not None:
        return np.zeros(width, dtype=np.float32)
    stones = position.moves_played
    book = _book()
    if stones <= book.plies:
        best = book.best_columns(marks_by_column(position))
        if best:
            return distribution(dict.fromkeys(best, 1.0), width, 0.0)
    if stones >= solver_from:
        return distribution(dict.fromkeys(best_columns(_oracle().scores(position)), 1.0), width, 0.0)
    return search_distribution(position, depth, temperature)
