"""Bit masks of one Connect-X board for the tree search: immediate wins, columns, observation planes
(standard library and numpy only).

``SearchBoard`` is what :mod:`connectx_gym.search.puct` knows of the rules: the cells that
complete a line, the columns of a set of cells, and the network's input planes for many positions
at once. Like the search, it imports no other module of the package, and the Kaggle submission
embeds its source from ``import numpy`` on (see ``connectx_gym.submission.build``), so nothing
below the imports may name the package.
"""

import numpy as np


class SearchBoard:
    """Bit masks of one ``rows`` x ``columns`` board where ``inarow`` in a line wins.

    The layout is the package's bitboard layout: column-major, ``rows + 1`` bits per column with
    an empty sentinel bit on top, so bit ``column * (rows + 1) + height`` is the cell ``height``
    stones above the bottom of ``column``.
    """

    def __init__(self, rows, columns, inarow):
        self.rows, self.columns, self.inarow = int(rows), int(columns), int(inarow)
        height = self.rows + 1
        self.height = height
        self.bottom_cells = [1 << (c * height) for c in range(self.columns)]
        self.column_masks = [((1 << self.rows) - 1) << (c * height) for c in range(self.columns)]
        self.bottom = sum(self.bottom_cells)
        self.full = sum(self.column_masks)
        self.steps = (1, height, height + 1, height - 1)  # vertical, horizontal, both diagonals
        #: the column of each bit that can be a playable cell
        self.bit_column = {1 << b: b // height for b in range(height * self.columns)}
        #: every cell's bit index, top row first (the observation planes' order)
        self.cell_bits = np.array(
            [c * height + (self.rows - 1 - r) for r in range(self.rows) for c in range(self.columns)], dtype=np.int64
        )
        self.nbytes = (height * self.columns + 7) // 8

    def wins(self, stones, mask):
        """Empty cells where one more stone of ``stones`` completes a line (playable or not)."""
        if self.inarow == 4:
            return self._wins_of_four(stones) & self.full & ~mask
        need = self.inarow - 1
        if need == 0:
            return self.full & ~mask
        result = 0
        for step in self.steps:
            behind, run = [-1], -1
            for i in range(1, need + 1):
                run &= stones << (i * step)
                if not run:
                    break
                behind.append(run)
            ahead, run = [-1], -1
            for i in range(1, need + 1):
                run &= stones >> (i * step)
                if not run:
                    break
                ahead.append(run)
            for i in range(len(behind)):
                if need - i < len(ahead):
                    result |= behind[i] & ahead[need - i]
        return result & self.full & ~mask

    def _wins_of_four(self, p):
        """``wins`` for four in a row, unrolled: three stones and a gap in every window (the hot path)."""
        result = (p << 1) & (p << 2) & (p << 3)  # vertical: the cell above three stacked stones
        for step in self.steps[1:]:
            pair = (p << step) & (p << 2 * step)
            result |= pair & (p << 3 * step)
            result |= pair & (p >> step)
            pair = (p >> step) & (p >> 2 * step)
            result |= pair & (p << step)
            result |= pair & (p >> 3 * step)
        return result

    def has_line(self, stones):
        """Whether ``stones`` hold ``inarow`` in a line."""
        for step in self.steps:
            run = stones
            for i in range(1, self.inarow):
                run &= stones >> (i * step)
                if not run:
                    break
            if run:
                return True
        return False

    def columns_of(self, cells):
        """The columns of a bitmap of playable cells (at most one per column), in increasing order."""
        out = []
        bit_column = self.bit_column
        while cells:
            low = cells & -cells
            out.append(bit_column[low])
            cells ^= low
        out.sort()
        return out

    def planes(self, owns, masks):
        """Observation planes ``(n, 4, rows, columns)`` float32 of ``n`` positions given as the mover's stones
        and all stones: own stones, the other's, playable cells, 1 where the mover moves first."""
        count = len(owns)
        nbytes, bottom, full = self.nbytes, self.bottom, self.full
        words = list(owns)
        words += [mask ^ own for own, mask in zip(owns, masks)]
        words += [(mask + bottom) & full for mask in masks]
        data = b"".join(word.to_bytes(nbytes, "little") for word in words)
        bits = np.unpackbits(np.frombuffer(data, dtype=np.uint8).reshape(3 * count, nbytes), axis=1, bitorder="little")
        cells = bits[:, self.cell_bits].reshape(3, count, self.rows, self.columns)
        out = np.empty((count, 4, self.rows, self.columns), dtype=np.float32)
        out[:, :3] = cells.transpose(1, 0, 2, 3)
        first = np.array([bin(mask).count("1") % 2 == 0 for mask in masks], dtype=np.float32)
        out[:, 3] = first[:, None, None]
        return out
