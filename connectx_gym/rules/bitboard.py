"""Connect-X rules on Python-int bitboards, for any board Kaggle's ConnectX accepts.

A board of ``rows`` x ``columns`` is stored column-major with one spare (sentinel) bit on top of
every column, so that bit ``column * (rows + 1) + height`` is the cell ``height`` stones above the
bottom of ``column``. The sentinel row is never occupied, which keeps line tests from wrapping
from one column into the next. Each player's stones are one int; ``mask`` is their union. Kaggle's
flat ``board`` list is row-major from the top row down, with marks 1 and 2 and 0 for empty.

This module is pure rules: no numpy, no gymnasium. ``Geometry`` holds the precomputed masks of
one board size; ``Position`` is a mutable game state built on it.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from dataclasses import dataclass, field

EMPTY = 0
FIRST_MARK = 1
SECOND_MARK = 2


def other_mark(mark: int) -> int:
    """The mark of the other player (1 <-> 2)."""
    return 3 - mark


@dataclass(frozen=True)
class Geometry:
    """Precomputed bit masks for one ``rows`` x ``columns`` board where ``inarow`` stones win.

    :param rows: number of rows (>= 1)
    :param columns: number of columns (>= 1)
    :param inarow: stones in a line needed to win (>= 1), as in Kaggle's configuration
    """

    rows: int
    columns: int
    inarow: int
    column_height: int = field(init=False)  # rows + 1: bits per column including the sentinel
    size: int = field(init=False)
    bottom_mask: int = field(init=False)
    board_mask: int = field(init=False)
    column_masks: tuple[int, ...] = field(init=False)
    bottom_cells: tuple[int, ...] = field(init=False)
    top_cells: tuple[int, ...] = field(init=False)
    center_order: tuple[int, ...] = field(init=False)
    bit_to_column: dict = field(init=False, repr=False, compare=False)
    _directions: tuple[int, ...] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        for name in ("rows", "columns", "inarow"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
            set_(self, name, int(value))
        height = self.rows + 1
        set_(self, "column_height", height)
        set_(self, "size", self.rows * self.columns)
        bottom_cells = tuple(1 << (c * height) for c in range(self.columns))
        column_masks = tuple(((1 << self.rows) - 1) << (c * height) for c in range(self.columns))
        set_(self, "bottom_cells", bottom_cells)
        set_(self, "column_masks", column_masks)
        set_(self, "top_cells", tuple(1 << (c * height + self.rows - 1) for c in range(self.columns)))
        set_(self, "bottom_mask", sum(bottom_cells))
        set_(self, "board_mask", sum(column_masks))
        # vertical, horizontal, diagonal (/), anti-diagonal (\)
        set_(self, "_directions", (1, height, height + 1, height - 1))
        middle = (self.columns - 1) / 2
        set_(self, "center_order", tuple(sorted(range(self.columns), key=lambda c: (abs(c - middle), c))))
        set_(self, "bit_to_column", {1 << b: b // height for b in range(height * self.columns)})

    # ----------------------------------------------------------------- cells and moves
    def cell_bit(self, column: int, height: int) -> int:
        """The bit of the cell ``height`` stones above the bottom of ``column``."""
        return 1 << (column * self.column_height + height)

    def is_legal(self, mask: int, column: int) -> bool:
        """Whether ``column`` is on the board and not full."""
        return 0 <= column < self.columns and not mask & self.top_cells[column]

    def legal_moves(self, mask: int) -> list[int]:
        """Columns that are not full, in increasing order."""
        top_cells = self.top_cells
        return [c for c in range(self.columns) if not mask & top_cells[c]]

    def playable_cells(self, mask: int) -> int:
        """Bitmap of the lowest empty cell of every column that is not full."""
        return (mask + self.bottom_mask) & self.board_mask

    def drop_bit(self, mask: int, column: int) -> int:
        """The bit a stone dropped into ``column`` lands on (the column must not be full)."""
        return (mask + self.bottom_cells[column]) & self.column_masks[column]

    def is_full(self, mask: int) -> bool:
        """Whether every cell is occupied (a draw if nobody has won)."""
        return mask == self.board_mask

    # ----------------------------------------------------------------- lines
    def has_line(self, stones: int) -> bool:
        """Whether ``stones`` contain ``inarow`` in a line in any direction."""
        inarow = self.inarow
        for step in self._directions:
            run = stones
            for i in range(1, inarow):
                run &= stones >> (i * step)
                if not run:
                    break
            if run:
                return True
        return False

    def winning_cells(self, stones: int, mask: int) -> int:
        """Bitmap of empty cells where one more stone of ``stones`` would complete a line.

        The cells need not be playable yet; ``& playable_cells(mask)`` gives immediate wins.
        """
        inarow = self.inarow
        result = 0
        for step in self._directions:
            # The new stone takes slot ``gap`` of a line of ``inarow`` cells; the others hold stones.
            for gap in range(inarow):
                cells = -1
                for slot in range(inarow):
                    if slot == gap:
                        continue
                    offset = (slot - gap) * step
                    cells &= (stones >> offset) if offset > 0 else (stones << -offset)
                    if not cells:
                        break
                result |= cells
        return result & self.board_mask & ~mask

    # ----------------------------------------------------------------- Kaggle format
    def to_kaggle(self, first_stones: int, second_stones: int) -> list[int]:
        """Kaggle's flat row-major board (top row first) from the two players' bitboards."""
        board = [EMPTY] * self.size
        rows, columns, height = self.rows, self.columns, self.column_height
        for mark, stones in ((FIRST_MARK, first_stones), (SECOND_MARK, second_stones)):
            while stones:
                low = stones & -stones
                bit = low.bit_length() - 1
                column, h = divmod(bit, height)
                board[(rows - 1 - h) * columns + column] = mark
                stones ^= low
        return board

    def from_kaggle(self, board: Sequence[int]) -> tuple[int, int]:
        """The two players' bitboards from Kaggle's flat board; rejects boards that break gravity."""
        if len(board) != self.size:
            raise ValueError(
                f"board has {len(board)} cells, expected rows*columns = {self.rows}*{self.columns} = {self.size}"
            )
        stones = [0, 0, 0]
        rows, columns = self.rows, self.columns
        for column in range(columns):
            seen_empty = False
            for h in range(rows):
                value = board[(rows - 1 - h) * columns + column]
                if isinstance(value, bool) or not isinstance(value, numbers.Integral):
                    raise ValueError(f"board cell values must be 0, 1 or 2, got {value!r}")
                value = int(value)
                if value == EMPTY:
                    seen_empty = True
                elif value in (FIRST_MARK, SECOND_MARK):
                    if seen_empty:
                        raise ValueError(f"board has a floating stone in column {column} at height {h}")
                    stones[value] |= self.cell_bit(column, h)
                else:
                    raise ValueError(f"board cell values must be 0, 1 or 2, got {value!r}")
        return stones[FIRST_MARK], stones[SECOND_MARK]


_GEOMETRY_CACHE: dict = {}


def geometry(rows: int = 6, columns: int = 7, inarow: int = 4) -> Geometry:
    """A shared ``Geometry`` for this board size (built once per size)."""
    key = (rows, columns, inarow)
    found = _GEOMETRY_CACHE.get(key)
    if found is None:
        found = _GEOMETRY_CACHE[key] = Geometry(rows, columns, inarow)
    return found


class Position:
    """A mutable Connect-X game: both players' stones, whose turn it is, and the result.

    ``stones[mark]`` is the bitboard of player ``mark`` (index 0 unused). ``winner`` is the mark
    that completed a line, 0 for a draw, ``None`` while the game goes on.
    """

    __slots__ = ("geometry", "stones", "mask", "to_move", "moves_played", "winner", "last_column")

    def __init__(self, geometry: Geometry) -> None:
        self.geometry = geometry
        self.stones = [0, 0, 0]
        self.mask = 0
        self.to_move = FIRST_MARK
        self.moves_played = 0
        self.winner: int | None = None
        self.last_column: int | None = None

    @classmethod
    def from_kaggle(cls, geometry: Geometry, board: Sequence[int], mark: int | None = None) -> Position:
        """A position from Kaggle's flat board; ``mark`` is the player to move (derived if omitted)."""
        position = cls(geometry)
        first, second = geometry.from_kaggle(board)
        ones, twos = bin(first).count("1"), bin(second).count("1")
        if ones - twos not in (0, 1):
            raise ValueError(f"board has {ones} stones of mark 1 and {twos} of mark 2; not a reachable position")
        derived = FIRST_MARK if ones == twos else SECOND_MARK
        if mark is not None and mark != derived:
            raise ValueError(f"mark {mark} is not the player to move on this board (mark {derived} is)")
        position.stones = [0, first, second]
        position.mask = first | second
        position.to_move = derived
        position.moves_played = ones + twos
        first_line, second_line = geometry.has_line(first), geometry.has_line(second)
        if first_line and second_line:
            raise ValueError("board has lines of both marks; not a reachable position")
        if first_line:
            position.winner = FIRST_MARK
        elif second_line:
            position.winner = SECOND_MARK
        elif geometry.is_full(position.mask):
            position.winner = EMPTY
        return position

    def copy(self) -> Position:
        clone = Position.__new__(Position)
        clone.geometry = self.geometry
        clone.stones = self.stones[:]
        clone.mask = self.mask
        clone.to_move = self.to_move
        clone.moves_played = self.moves_played
        clone.winner = self.winner
        clone.last_column = self.last_column
        return clone

    @property
    def done(self) -> bool:
        return self.winner is not None

    def legal_moves(self) -> list[int]:
        return self.geometry.legal_moves(self.mask)

    def is_legal(self, column: int) -> bool:
        return self.geometry.is_legal(self.mask, column)

    def play(self, column: int) -> int | None:
        """Drop a stone of the player to move into ``column``; returns ``winner`` afterwards.

        :raises ValueError: if the game is over or ``column`` is off the board or full.
        """
        geometry = self.geometry
        if self.winner is not None:
            raise ValueError("the game is over; reset before playing again")
        if not geometry.is_legal(self.mask, column):
            raise ValueError(f"column {column!r} is not a legal move; legal columns: {self.legal_moves()}")
        mark = self.to_move
        bit = (self.mask + geometry.bottom_cells[column]) & geometry.column_masks[column]
        stones = self.stones[mark] | bit
        self.stones[mark] = stones
        self.mask |= bit
        self.moves_played += 1
        self.last_column = column
        self.to_move = 3 - mark
        if geometry.has_line(stones):
            self.winner = mark
        elif self.mask == geometry.board_mask:
            self.winner = EMPTY
        return self.winner

    def to_kaggle(self) -> list[int]:
        return self.geometry.to_kaggle(self.stones[FIRST_MARK], self.stones[SECOND_MARK])

    def render(self) -> str:
        """The board as text, top row first, in Kaggle's marks (``.`` for empty)."""
        board = self.to_kaggle()
        columns = self.geometry.columns
        symbols = {EMPTY: ".", FIRST_MARK: "1", SECOND_MARK: "2"}
        lines = [
            " ".join(symbols[v] for v in board[r * columns : (r + 1) * columns]) for r in range(self.geometry.rows)
        ]
        lines.append(" ".join(str(c % 10) for c in range(columns)))
        return "\n".join(lines)

    def __repr__(self) -> str:
        g = self.geometry
        return (
            f"Position(rows={g.rows}, columns={g.columns}, inarow={g.inarow}, "
            f"moves_played={self.moves_played}, to_move={self.to_move}, winner={self.winner})"
        )
