"""The alpha-beta search of ``alphabeta`` compiled by numba: the same negamax, move order, transposition
table, threat rules and horizon heuristic, node for node, on 64-bit boards (``columns * (rows + 1)
<= 63``: every Kaggle-sized board), so it returns the very same scores as the Python search.

``alphabeta.alphabeta_scores``/``alphabeta_move`` use it whenever numba is installed and the board fits
(``available(geometry)``), and fall back to the Python search otherwise (``CONNECTX_PURE_PYTHON=1``
forces the fallback). The first use in a process compiles the kernels, or loads them from numba's
on-disk cache (``cache=True``) in well under a second.
"""

from __future__ import annotations

import importlib.util
import os
from typing import Any

import numpy as np

#: the most bits a board may use (columns x (rows + 1), sentinel row included) for the compiled search
MAX_BITS = 63


_HAS_NUMBA = importlib.util.find_spec("numba") is not None


def available(geometry: Any) -> bool:
    """Whether the compiled search serves ``geometry`` (numba installed, the board fits in 63 bits)."""
    if not _HAS_NUMBA or os.environ.get("CONNECTX_PURE_PYTHON") == "1":
        return False
    return geometry.column_height * geometry.columns <= MAX_BITS


def geometry_arrays(tables: Any) -> tuple[np.ndarray, ...]:
    """The per-board constants the kernels take, from ``lines.LineTables``."""
    masks = np.array([tables.board_mask, tables.bottom_mask], dtype=np.uint64)
    directions = np.array(tables.directions, dtype=np.int64)
    starts = np.array(tables.window_starts, dtype=np.uint64)
    weights = np.array(tables.window_weights, dtype=np.int64).reshape(-1, 2)
    center = np.array(tables.center_column_masks, dtype=np.uint64)
    return masks, directions, starts, weights, center, np.array([tables.inarow], dtype=np.int64)


def kaggle_constants(tables: Any) -> tuple:
    """The per-board constants of the compiled Kaggle negamax, from ``lines.LineTables``."""
    return (
        np.uint64(tables.board_mask),
        np.uint64(tables.bottom_mask),
        np.array(tables.directions, dtype=np.int64),
        tables.inarow - 1,
        tables.size,
        tables.height,
        np.uint64(tables.kaggle_below_cells),
    )


def kaggle_scores(constants: tuple, own: int, mask: int, depth: int, bits: list[int]) -> list[float]:
    """Kaggle's negamax scores of the root moves ``bits``, each searched ``depth`` plies below the root
    by the compiled search (``alphabeta_kernels.kaggle_scores``)."""
    # deferred: numba compiles the kernels when their module is imported; only the first search pays
    from connectx_gym.search.alphabeta_kernels import kaggle_scores as kernel

    found = kernel(np.uint64(own), np.uint64(mask), np.int64(depth), np.array(bits, dtype=np.uint64), constants)
    return [float(score) for score in found]


def root_scores(
    arrays: tuple[np.ndarray, ...], own: int, mask: int, depth: int, bits: list[int], exact: bool, win: int, limit: int
) -> list[int]:
    """Scores of the root moves ``bits`` by the compiled search (``alphabeta_kernels.root_scores``), as Python ints.

    :param arrays: ``geometry_arrays`` of the board
    :param win: ``solver.WIN_SCORE``; ``limit``: the heuristic's bound
    """
    # deferred: numba compiles the kernels when their module is imported; only the first search pays
    from connectx_gym.search.alphabeta_kernels import root_scores as kernel

    masks, directions, starts, weights, center, inarow = arrays
    g = (masks[0], masks[1], directions, starts, weights, center, int(inarow[0]), np.int64(win), np.int64(limit))
    found = kernel(np.uint64(own), np.uint64(mask), np.int64(depth), np.array(bits, dtype=np.uint64), exact, g)
    return [int(score) for score in found]
