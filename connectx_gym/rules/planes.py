"""Observation planes from bitboards, relative to the player to move (numpy only).

The network sees ``NUM_PLANES`` planes of shape ``(rows, columns)``, top row first like Kaggle's
board: the mover's stones, the other player's stones, the cells a stone can be dropped into, and a
constant plane that is 1 when the mover is the first player (parity matters in Connect-X). One
encoding serves the training env, frozen-policy opponents in workers and the exported submission's
twin of this code, so the network plays either seat.
"""

from __future__ import annotations

import numpy as np

from connectx_gym.rules.bitboard import Geometry, Position

NUM_PLANES = 4
PLANE_OWN, PLANE_OTHER, PLANE_PLAYABLE, PLANE_FIRST = range(NUM_PLANES)

_CELL_INDEX_CACHE: dict = {}


def _cell_bit_index(geometry: Geometry) -> np.ndarray:
    """For every cell of the (rows, columns) grid, top row first, its bit index in a bitboard."""
    key = (geometry.rows, geometry.columns)
    found = _CELL_INDEX_CACHE.get(key)
    if found is None:
        rows, height = geometry.rows, geometry.column_height
        row = np.arange(rows)[:, None]
        column = np.arange(geometry.columns)[None, :]
        found = _CELL_INDEX_CACHE[key] = column * height + (rows - 1 - row)
    return found


def bits_to_grid(geometry: Geometry, bits: int) -> np.ndarray:
    """A bitboard as a (rows, columns) uint8 grid of 0/1, top row first."""
    nbytes = (geometry.column_height * geometry.columns + 7) // 8
    flat = np.unpackbits(np.frombuffer(bits.to_bytes(nbytes, "little"), dtype=np.uint8), bitorder="little")
    return flat[_cell_bit_index(geometry)]


def encode(geometry: Geometry, own: int, other: int, mask: int, mover_is_first: bool, out=None) -> np.ndarray:
    """Planes ``(NUM_PLANES, rows, columns)`` float32 for the player whose stones are ``own``."""
    if out is None:
        out = np.empty((NUM_PLANES, geometry.rows, geometry.columns), dtype=np.float32)
    out[PLANE_OWN] = bits_to_grid(geometry, own)
    out[PLANE_OTHER] = bits_to_grid(geometry, other)
    out[PLANE_PLAYABLE] = bits_to_grid(geometry, geometry.playable_cells(mask))
    out[PLANE_FIRST] = 1.0 if mover_is_first else 0.0
    return out


def encode_position(position: Position, mark: int | None = None, out=None) -> np.ndarray:
    """Planes for ``mark`` (default: the player to move) in ``position``."""
    if mark is None:
        mark = position.to_move
    return encode(position.geometry, position.stones[mark], position.stones[3 - mark], position.mask, mark == 1, out)


def legal_mask(geometry: Geometry, mask: int) -> np.ndarray:
    """Boolean vector over columns: True where a stone can be dropped."""
    top_cells = geometry.top_cells
    return np.array([not mask & top for top in top_cells], dtype=bool)
