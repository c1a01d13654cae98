"""The line tables both bitboard searches score with (Kaggle's negamax and alpha-beta): per board
size, the bit shifts of the four line directions, the cells where a line of ``inarow`` fits, the
window weights of the heuristics and a bounded cache of line completions, built once per size and
shared by every search on it.
"""

from __future__ import annotations

from connectx_gym.rules.bitboard import Geometry, Position

_COMPLETIONS_CACHE_LIMIT = 50_000
"""Entries kept in a board size's line-completion cache before it is cleared."""


# (column step, height step) of the four line directions: vertical, horizontal, diagonal, anti-diagonal
_LINE_DIRECTIONS = ((0, 1), (1, 0), (1, 1), (1, -1))


class LineTables:
    """Per-board-size constants and caches shared by every search on that size."""

    __slots__ = (
        "geometry",
        "size",
        "inarow",
        "height",
        "board_mask",
        "bottom_mask",
        "directions",
        "kaggle_below_cells",
        "window_starts",
        "window_weights",
        "center_column_masks",
        "completions_cache",
        "negamax_cache",
        "mask_bits",
        "fast_arrays",
        "kaggle_constants",
    )

    def __init__(self, geometry: Geometry) -> None:
        self.geometry = geometry
        self.size = geometry.size
        self.inarow = geometry.inarow
        height = self.height = geometry.column_height
        self.board_mask = geometry.board_mask
        self.bottom_mask = geometry.bottom_mask
        # bit shifts of one step along each line direction (the sentinel bit stops wrap-around)
        self.directions = tuple(dcol * height + dh for dcol, dh in _LINE_DIRECTIONS)
        # Kaggle's leaf counts the stone below a landing cell only when ``row < rows - 2``, i.e. when
        # the landing cell is at least two cells above the bottom.
        self.kaggle_below_cells = sum(
            geometry.cell_bit(c, h) for c in range(geometry.columns) for h in range(2, geometry.rows)
        )
        self.window_starts = tuple(self._window_starts(dcol, dh) for dcol, dh in _LINE_DIRECTIONS)
        # Weight of an opponent-free window holding j own stones: 4 ** (j - 1) for the three
        # fullest counts (j = inarow - 1 is a threat), nothing for fewer or for none.
        self.window_weights = tuple((j, 4 ** (j - 1)) for j in range(max(1, geometry.inarow - 3), geometry.inarow))
        self.center_column_masks = tuple(geometry.column_masks[c] for c in geometry.center_order)
        self.completions_cache: dict[int, int] = {}
        self.negamax_cache: dict[int, float] = {}
        self.mask_bits = height * geometry.columns
        self.fast_arrays: tuple | None = None  # the compiled searches' constants, built on first use
        self.kaggle_constants: tuple | None = None

    def _window_starts(self, dcol: int, dh: int) -> int:
        """Cells from which ``inarow`` cells stepping ``dcol`` columns and ``dh`` rows all lie on the board."""
        geometry = self.geometry
        rows, columns, inarow = geometry.rows, geometry.columns, geometry.inarow
        starts = 0
        for c in range(columns):
            for h in range(rows):
                end_c, end_h = c + dcol * (inarow - 1), h + dh * (inarow - 1)
                if 0 <= end_c < columns and 0 <= end_h < rows:
                    starts |= geometry.cell_bit(c, h)
        return starts

    def completions(self, stones: int) -> int:
        """Board cells (occupied or not) where one more of ``stones`` would complete a line.

        Callers intersect with empty cells; cached per ``stones``.
        """
        cache = self.completions_cache
        found = cache.get(stones)
        if found is not None:
            return found
        need = self.inarow - 1
        if need == 0:
            result = self.board_mask
        else:
            result = 0
            for step in self.directions:
                # behind[i]: cells with i of ``stones`` right behind them (towards -step); ahead likewise.
                behind = [-1]
                run = -1
                for i in range(1, need + 1):
                    run &= stones << (i * step)
                    if not run:
                        break
                    behind.append(run)
                if step == 1:  # vertical (or a diagonal of a one-row board): nothing lies above an empty cell
                    if len(behind) > need:
                        result |= behind[need]
                    continue
                ahead = [-1]
                run = -1
                for i in range(1, need + 1):
                    run &= stones >> (i * step)
                    if not run:
                        break
                    ahead.append(run)
                for i in range(max(0, need + 1 - len(ahead)), min(len(behind), need + 1)):
                    result |= behind[i] & ahead[need - i]
            result &= self.board_mask
        if len(cache) >= _COMPLETIONS_CACHE_LIMIT:
            cache.clear()
        cache[stones] = result
        return result


_TABLES: dict[tuple[int, int, int], LineTables] = {}


def tables_for(geometry: Geometry) -> LineTables:
    key = (geometry.rows, geometry.columns, geometry.inarow)
    found = _TABLES.get(key)
    if found is None:
        found = _TABLES[key] = LineTables(geometry)
    return found


def clear_caches() -> None:
    """Drop every cached node value and line table (e.g. to measure cold-cache speed)."""
    _TABLES.clear()


def columns_of(geometry: Geometry, bits: int) -> list[int]:
    """Columns of the set bits of ``bits``, in increasing order."""
    height = geometry.column_height
    columns = []
    while bits:
        low = bits & -bits
        columns.append((low.bit_length() - 1) // height)
        bits ^= low
    return columns


def require_playing(position: Position) -> None:
    if position.winner is not None:
        raise ValueError(f"the game is over (winner={position.winner}); there is no move to choose")
