"""The opening book's numbering and lookup, shared by the package and the Kaggle file.

Positions are numbered densely, so the book stores no keys (``connectx_gym.data.book`` has the whole
scheme and builds the book). A position is given as each column's marks, bottom up (``stacks``).
The Kaggle submission embeds this module's source from ``from math import comb`` on (see
``connectx_gym.submission.build``), so nothing below the imports may name the package, and it imports
only the standard library.
"""

from math import comb


def ply_offsets(columns, plies):
    """``offsets[k]``: the first number of the positions with ``k`` stones on a board of ``columns``
    columns, for ``k`` up to ``plies + 1`` (the last is the table's length)."""
    offsets = [0]
    for stones in range(plies + 1):
        offsets.append(offsets[-1] + comb(stones + columns - 1, columns - 1) * comb(stones, (stones + 1) // 2))
    return offsets


def position_number(stacks, offsets):
    """A position's dense number: positions of ``k`` stones are numbered by the rank of their column
    heights among all ways to put ``k`` stones into the columns, then by the rank of the places of
    mark 1 in the stones read column by column, bottom up."""
    stones = sum(len(stack) for stack in stacks)
    heights_rank, rest = 0, stones
    for c in range(len(stacks) - 1):
        parts = len(stacks) - 1 - c  # columns after this one share what this one does not take
        for taken in range(len(stacks[c])):
            heights_rank += comb(rest - taken + parts - 1, parts - 1)
        rest -= len(stacks[c])
    colours_rank, firsts, place = 0, 0, 0
    for stack in stacks:
        for mark in stack:
            if mark == 1:
                firsts += 1
                colours_rank += comb(place, firsts)
            place += 1
    return offsets[stones] + heights_rank * comb(stones, (stones + 1) // 2) + colours_rank


def canonical_number(stacks, offsets):
    """(the number a position is stored under: the smaller of its own and its mirror image's, whether
    that is the mirror image's)."""
    own = position_number(stacks, offsets)
    mirrored = position_number(stacks[::-1], offsets)
    return (mirrored, True) if mirrored < own else (own, False)


def mirror_bits(bits, columns):
    """A set of columns as bits, seen in the mirror: column ``c`` becomes ``columns - 1 - c``."""
    return sum(1 << (columns - 1 - c) for c in range(columns) if bits >> c & 1)


def book_moves(table, plies, stacks):
    """The perfect moves the book ``table`` (a byte of column bits per number, every position of up to
    ``plies`` stones) holds for a position, or None when it holds none (too many stones, a position
    no game reaches, a finished game)."""
    stones = sum(len(stack) for stack in stacks)
    if stones > plies or sum(list(stack).count(1) for stack in stacks) != (stones + 1) // 2:
        return None
    columns = len(stacks)
    number, mirrored = canonical_number(stacks, ply_offsets(columns, plies))
    bits = mirror_bits(table[number], columns) if mirrored else table[number]
    return [c for c in range(columns) if bits >> c & 1] or None
