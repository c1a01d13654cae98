"""Unit and property tests for the rules core (``connectx_gym.rules.bitboard``) and the planes.

A naive grid reference (``_grid_has_line``) and brute force over empty cells serve as oracles;
the Kaggle differential lives in ``test_kaggle_differential.py``.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connectx_gym.rules.bitboard import (
    EMPTY,
    FIRST_MARK,
    SECOND_MARK,
    Geometry,
    Position,
    geometry,
    other_mark,
)
from connectx_gym.rules.planes import (
    NUM_PLANES,
    PLANE_FIRST,
    PLANE_OTHER,
    PLANE_OWN,
    PLANE_PLAYABLE,
    bits_to_grid,
    encode_position,
    legal_mask,
)

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# ---------------------------------------------------------------------------------------- helpers


def _play_all(g: Geometry, columns) -> Position:
    position = Position(g)
    for c in columns:
        position.play(c)
    return position


def _grid(g: Geometry, stones: int) -> np.ndarray:
    """(rows, columns) bool grid, row 0 = bottom, by cell_bit (independent of planes.py)."""
    grid = np.zeros((g.rows, g.columns), dtype=bool)
    for c in range(g.columns):
        for h in range(g.rows):
            grid[h, c] = bool(stones & g.cell_bit(c, h))
    return grid


def _grid_has_line(grid: np.ndarray, inarow: int) -> bool:
    """Naive line test on a bool grid: any ``inarow`` consecutive cells in one of 4 directions."""
    rows, columns = grid.shape
    for h in range(rows):
        for c in range(columns):
            for dh, dc in ((1, 0), (0, 1), (1, 1), (1, -1)):
                end_h, end_c = h + dh * (inarow - 1), c + dc * (inarow - 1)
                if not (0 <= end_h < rows and 0 <= end_c < columns):
                    continue
                if all(grid[h + dh * i, c + dc * i] for i in range(inarow)):
                    return True
    return False


def _random_position(g: Geometry, rng: np.random.Generator, max_plies=None) -> Position:
    """A random reachable position (possibly terminal)."""
    position = Position(g)
    plies = int(rng.integers(0, g.size + 1)) if max_plies is None else max_plies
    for _ in range(plies):
        if position.done:
            break
        moves = position.legal_moves()
        position.play(int(moves[rng.integers(len(moves))]))
    return position


def _brute_winning_cells(g: Geometry, stones: int, mask: int) -> int:
    result = 0
    for c in range(g.columns):
        for h in range(g.rows):
            bit = g.cell_bit(c, h)
            if not mask & bit and g.has_line(stones | bit):
                result |= bit
    return result


def _kaggle_index(g: Geometry, column: int, height: int) -> int:
    return (g.rows - 1 - height) * g.columns + column


sizes = st.tuples(st.integers(1, 8), st.integers(1, 9), st.integers(1, 6))


# ---------------------------------------------------------------------------------------- Geometry


@pytest.mark.parametrize(
    "args",
    [
        (0, 7, 4),
        (6, 0, 4),
        (6, 7, 0),
        (-1, 7, 4),
        (6, 7, -3),
        (True, 7, 4),
        (6, True, 4),
        (6, 7, True),
        (6, 7, False),
        (6.0, 7, 4),
        (6, 7.0, 4),
        (6, 7, 4.0),
        ("6", 7, 4),
        (None, 7, 4),
        (6, 7, None),
    ],
)
def test_geometry_rejects_bad_sizes(args):
    with pytest.raises(ValueError):
        Geometry(*args)


def test_geometry_accepts_minimal_and_default():
    g = Geometry(1, 1, 1)
    assert (g.size, g.column_height, g.board_mask) == (1, 2, 1)
    d = geometry()
    assert (d.rows, d.columns, d.inarow) == (6, 7, 4)
    assert d.size == 42 and d.column_height == 7
    assert geometry(6, 7, 4) is d  # cached
    assert geometry(5, 8, 4) is not d


@given(sizes)
@SETTINGS
def test_geometry_masks(size):
    rows, columns, inarow = size
    g = Geometry(rows, columns, inarow)
    assert bin(g.board_mask).count("1") == rows * columns
    assert bin(g.bottom_mask).count("1") == columns
    for c in range(columns):
        assert g.column_masks[c] & g.board_mask == g.column_masks[c]
        assert g.bottom_cells[c] == g.cell_bit(c, 0)
        assert g.top_cells[c] == g.cell_bit(c, rows - 1)
        assert g.bit_to_column[g.cell_bit(c, rows - 1)] == c
        # The sentinel above every column is outside the board.
        assert not g.cell_bit(c, rows) & g.board_mask
    assert sorted(g.center_order) == list(range(columns))
    middle = (columns - 1) / 2
    distances = [abs(c - middle) for c in g.center_order]
    assert distances == sorted(distances)


def test_other_mark():
    assert other_mark(FIRST_MARK) == SECOND_MARK
    assert other_mark(SECOND_MARK) == FIRST_MARK


# ---------------------------------------------------------------------------------------- moves


def test_legal_moves_and_drop_positions():
    g = geometry(3, 4, 3)
    position = Position(g)
    assert position.legal_moves() == [0, 1, 2, 3]
    for h in range(3):
        assert g.drop_bit(position.mask, 2) == g.cell_bit(2, h)
        assert position.is_legal(2)
        position.play(2)
        assert position.stones[FIRST_MARK if h % 2 == 0 else SECOND_MARK] & g.cell_bit(2, h)
    assert not position.is_legal(2)
    assert position.legal_moves() == [0, 1, 3]
    assert g.playable_cells(position.mask) == g.cell_bit(0, 0) | g.cell_bit(1, 0) | g.cell_bit(3, 0)
    for bad in (-1, 4, 100, -100):
        assert not position.is_legal(bad)


@given(sizes, st.integers(0, 2**32 - 1))
@SETTINGS
def test_legal_moves_playable_cells_random(size, seed):
    g = Geometry(*size)
    position = _random_position(g, np.random.default_rng(seed))
    heights = [bin(position.mask & g.column_masks[c]).count("1") for c in range(g.columns)]
    expected_legal = [c for c in range(g.columns) if heights[c] < g.rows]
    assert position.legal_moves() == expected_legal
    assert g.legal_moves(position.mask) == expected_legal
    assert [c for c in range(-2, g.columns + 2) if position.is_legal(c)] == expected_legal
    playable = 0
    for c in expected_legal:
        bit = g.cell_bit(c, heights[c])
        assert g.drop_bit(position.mask, c) == bit
        playable |= bit
    assert g.playable_cells(position.mask) == playable
    assert legal_mask(g, position.mask).tolist() == [c in expected_legal for c in range(g.columns)]
    assert position.moves_played == sum(heights)
    assert g.is_full(position.mask) == (sum(heights) == g.size)


def test_play_raises_on_full_column_and_bad_column():
    g = geometry(2, 3, 3)
    position = _play_all(g, [0, 0])
    before = (position.stones[:], position.mask, position.to_move, position.moves_played)
    for bad in (0, -1, 3, 7):
        with pytest.raises(ValueError):
            position.play(bad)
        assert (position.stones[:], position.mask, position.to_move, position.moves_played) == before


def test_play_raises_after_game_over():
    g = geometry(6, 7, 4)
    won = _play_all(g, [0, 1, 0, 1, 0, 1, 0])
    assert won.winner == FIRST_MARK and won.done
    for c in range(7):
        with pytest.raises(ValueError):
            won.play(c)
    drawn = _play_all(geometry(1, 2, 2), [0, 1])
    assert drawn.winner == EMPTY and drawn.done
    with pytest.raises(ValueError):
        drawn.play(0)


def test_play_returns_winner_and_tracks_state():
    g = geometry(6, 7, 4)
    position = Position(g)
    assert position.to_move == FIRST_MARK and position.winner is None and not position.done
    assert position.play(3) is None
    assert position.to_move == SECOND_MARK and position.last_column == 3 and position.moves_played == 1
    assert position.play(4) is None
    assert position.to_move == FIRST_MARK and position.last_column == 4


def test_copy_independence():
    g = geometry(6, 7, 4)
    a = _play_all(g, [3, 3, 2])
    b = a.copy()
    assert b.to_kaggle() == a.to_kaggle() and b.geometry is a.geometry
    b.play(4)
    assert a.moves_played == 3 and b.moves_played == 4
    assert a.to_kaggle() != b.to_kaggle()
    assert a.stones is not b.stones
    assert a.to_move == SECOND_MARK and b.to_move == FIRST_MARK
    a.play(0)
    assert b.to_kaggle()[_kaggle_index(g, 0, 0)] == EMPTY
    # A copy of a finished game keeps its result and stays finished independently.
    won = _play_all(g, [0, 1, 0, 1, 0, 1, 0])
    clone = won.copy()
    assert clone.winner == FIRST_MARK and clone.last_column == 0
    with pytest.raises(ValueError):
        clone.play(2)


# ---------------------------------------------------------------------------------------- wins


@pytest.mark.parametrize(
    "rows,columns,inarow,moves,winner",
    [
        # vertical in the first and the last column, reaching the top row
        (4, 5, 4, [0, 1, 0, 1, 0, 1, 0], FIRST_MARK),
        (4, 5, 4, [4, 3, 4, 3, 4, 3, 4], FIRST_MARK),
        (4, 5, 4, [0, 4, 1, 4, 2, 4, 0, 4], SECOND_MARK),
        # horizontal on the bottom row, at both edges
        (4, 5, 4, [0, 0, 1, 1, 2, 2, 3], FIRST_MARK),
        (4, 5, 4, [1, 1, 2, 2, 3, 3, 4], FIRST_MARK),
        # horizontal on the top row of a 2-row board, by the second player
        (2, 5, 4, [0, 0, 1, 1, 2, 2, 4, 3, 4, 3], SECOND_MARK),
        # diagonal / from the bottom-left corner to the top-right corner
        (4, 4, 4, [0, 1, 1, 2, 2, 3, 2, 3, 3, 0, 3], FIRST_MARK),
        # anti-diagonal \ from the top-left corner to the bottom-right corner
        (4, 4, 4, [3, 2, 2, 1, 1, 0, 1, 0, 0, 3, 0], FIRST_MARK),
        # inarow=1: the first stone wins
        (6, 7, 1, [5], FIRST_MARK),
        (1, 1, 1, [0], FIRST_MARK),
        # 1xN: only horizontal lines
        (1, 5, 2, [0, 2, 1], FIRST_MARK),
        (1, 5, 3, [0, 1, 2, 3, 4], EMPTY),
        # Nx1: only vertical lines; stones alternate, so inarow>=2 is always a draw
        (5, 1, 2, [0, 0, 0, 0, 0], EMPTY),
        (5, 1, 1, [0], FIRST_MARK),
        # inarow larger than the board in both directions: a full board is a draw
        (3, 3, 4, [0, 1, 2, 0, 1, 2, 0, 1, 2], EMPTY),
        (2, 2, 2, [0, 0, 1], FIRST_MARK),  # diagonal (0,0)-(1,1)
    ],
)
def test_known_games(rows, columns, inarow, moves, winner):
    g = Geometry(rows, columns, inarow)
    position = Position(g)
    for i, c in enumerate(moves):
        assert not position.done, f"game ended early at ply {i}"
        result = position.play(c)
    assert result == winner and position.winner == winner and position.done


def _single_line(g: Geometry, start, direction) -> int:
    (c, h), (dc, dh) = start, direction
    return sum(g.cell_bit(c + dc * i, h + dh * i) for i in range(g.inarow))


@pytest.mark.parametrize("rows,columns,inarow", [(6, 7, 4), (4, 9, 5), (8, 5, 4), (3, 3, 3), (5, 6, 2)])
def test_has_line_every_placement_and_no_wraparound(rows, columns, inarow):
    """Every in-board line is found; every 'line' that would leave the board is not."""
    g = Geometry(rows, columns, inarow)
    for dc, dh in ((0, 1), (1, 0), (1, 1), (1, -1)):
        for c in range(-inarow, columns + 1):
            for h in range(-inarow, rows + 1):
                cells = [(c + dc * i, h + dh * i) for i in range(inarow)]
                inside = [(cc, hh) for cc, hh in cells if 0 <= cc < columns and 0 <= hh < rows]
                stones = sum(g.cell_bit(cc, hh) for cc, hh in inside)
                if len(inside) == inarow:
                    assert g.has_line(stones), (cells, dc, dh)
                    # one stone fewer is never a line
                    for cell in inside:
                        assert not g.has_line(stones & ~g.cell_bit(*cell))
                elif inside:
                    assert not g.has_line(stones), (inside, dc, dh)


@pytest.mark.parametrize("rows,columns,inarow", [(6, 7, 4), (4, 9, 5), (5, 5, 3), (3, 8, 3)])
def test_no_wraparound_across_columns_or_rows(rows, columns, inarow):
    g = Geometry(rows, columns, inarow)
    # Vertical run continuing from the top of one column into the bottom of the next.
    for c in range(columns - 1):
        for split in range(1, inarow):
            top = sum(g.cell_bit(c, rows - 1 - i) for i in range(split))
            bottom = sum(g.cell_bit(c + 1, i) for i in range(inarow - split))
            if split < inarow and inarow - split <= rows and split <= rows:
                assert not g.has_line(top | bottom)
    # Horizontal run from the right edge of one row into the left edge of the next row.
    for h in range(rows - 1):
        for split in range(1, inarow):
            right = sum(g.cell_bit(columns - 1 - i, h) for i in range(min(split, columns)))
            left = sum(g.cell_bit(i, h + 1) for i in range(min(inarow - split, columns)))
            assert not g.has_line(right | left)
    # Diagonals wrapping at the top/bottom edge into the neighbouring column.
    for c in range(columns - 1):
        for h in range(rows):
            diag = sum(g.cell_bit(c + i, (h + i) % rows) for i in range(min(inarow, columns - c)))
            if h + min(inarow, columns - c) - 1 >= rows:  # it really wraps
                assert not g.has_line(diag)
            anti = sum(g.cell_bit(c + i, (h - i) % rows) for i in range(min(inarow, columns - c)))
            if h - min(inarow, columns - c) + 1 < 0:
                assert not g.has_line(anti)


@given(sizes, st.integers(0, 2**63 - 1))
@SETTINGS
def test_has_line_matches_grid_reference(size, raw):
    g = Geometry(*size)
    stones = raw & g.board_mask
    # Bias towards dense boards so that lines actually occur.
    stones |= (raw >> 7) & g.board_mask
    assert g.has_line(stones) == _grid_has_line(_grid(g, stones), g.inarow)


@pytest.mark.parametrize("rows,columns", [(6, 7), (3, 3), (1, 5), (5, 1), (2, 2)])
def test_inarow_larger_than_board(rows, columns):
    """inarow > rows: no vertical; inarow > columns: no horizontal; > both: no line at all."""
    inarow = max(rows, columns) + 1
    g = Geometry(rows, columns, inarow)
    assert not g.has_line(g.board_mask)
    rng = np.random.default_rng(rows * 100 + columns)
    for _ in range(20):
        position = _random_position(g, rng, max_plies=g.size)
        assert position.winner == EMPTY and position.moves_played == g.size
    # inarow > rows only: a full column is no line, but a row still is.
    g2 = Geometry(3, 6, 4)
    assert not g2.has_line(g2.column_masks[0])
    assert g2.has_line(sum(g2.cell_bit(c, 0) for c in range(4)))
    # inarow > columns only
    g3 = Geometry(6, 3, 4)
    assert not g3.has_line(sum(g3.cell_bit(c, 0) for c in range(3)))
    assert g3.has_line(sum(g3.cell_bit(0, h) for h in range(4)))


def test_tiny_boards():
    # 1x1: inarow=1 first stone wins; inarow=2 draw after one stone.
    assert _play_all(Geometry(1, 1, 1), [0]).winner == FIRST_MARK
    one = _play_all(Geometry(1, 1, 2), [0])
    assert one.winner == EMPTY and one.legal_moves() == []
    # Nx1 with inarow=1
    assert _play_all(Geometry(4, 1, 1), [0]).winner == FIRST_MARK
    # 1xN: second player can win
    assert _play_all(Geometry(1, 6, 2), [0, 3, 5, 4]).winner == SECOND_MARK
    # 2x2x2: legal moves shrink and the first player wins on the diagonal or row
    p = _play_all(Geometry(2, 2, 2), [0, 1])
    assert p.legal_moves() == [0, 1] and p.winner is None
    assert p.play(1) == FIRST_MARK  # (0,0)-(1,1) diagonal


@given(sizes, st.integers(0, 2**32 - 1))
@SETTINGS
def test_random_games_result_matches_reference(size, seed):
    g = Geometry(*size)
    rng = np.random.default_rng(seed)
    position = Position(g)
    while not position.done:
        moves = position.legal_moves()
        mover = position.to_move
        position.play(int(moves[rng.integers(len(moves))]))
        mover_line = _grid_has_line(_grid(g, position.stones[mover]), g.inarow)
        # the other player never has a line while the game goes on
        assert not _grid_has_line(_grid(g, position.stones[3 - mover]), g.inarow)
        if mover_line:
            assert position.winner == mover
        elif position.mask == g.board_mask:
            assert position.winner == EMPTY
        else:
            assert position.winner is None
    assert position.stones[FIRST_MARK] & position.stones[SECOND_MARK] == 0
    assert position.stones[FIRST_MARK] | position.stones[SECOND_MARK] == position.mask


# ---------------------------------------------------------------------------------------- winning_cells


@given(sizes, st.integers(0, 2**32 - 1))
@SETTINGS
def test_winning_cells_brute_force_random_positions(size, seed):
    g = Geometry(*size)
    position = _random_position(g, np.random.default_rng(seed))
    for mark in (FIRST_MARK, SECOND_MARK):
        stones = position.stones[mark]
        if g.has_line(stones):
            continue  # every empty cell would trivially "win"; only line-free stones are meaningful
        assert g.winning_cells(stones, position.mask) == _brute_winning_cells(g, stones, position.mask)


@given(sizes, st.integers(0, 2**63 - 1), st.integers(0, 2**63 - 1))
@SETTINGS
def test_winning_cells_brute_force_arbitrary_bitboards(size, raw_own, raw_other):
    """Also on non-gravity bitboards: cells need not be playable."""
    g = Geometry(*size)
    own = (raw_own | (raw_own >> 5)) & g.board_mask
    other = raw_other & g.board_mask & ~own
    mask = own | other
    if g.has_line(own):
        return  # has_line(own | cell) is then trivially true: brute force is meaningless
    result = g.winning_cells(own, mask)
    assert result & mask == 0 and result & ~g.board_mask == 0
    assert result == _brute_winning_cells(g, own, mask)


def test_winning_cells_examples():
    g = geometry(6, 7, 4)
    position = _play_all(g, [0, 6, 1, 6, 2])  # mark 1 on the bottom row at 0,1,2
    assert g.winning_cells(position.stones[FIRST_MARK], position.mask) == g.cell_bit(3, 0)
    # gap in the middle: 0, 1, _, 3
    position = _play_all(g, [0, 6, 1, 6, 3])
    assert g.winning_cells(position.stones[FIRST_MARK], position.mask) == g.cell_bit(2, 0)
    # no wrap-around: three on the right edge do not win on the left of the next row
    g5 = geometry(5, 5, 4)
    right = g5.cell_bit(2, 0) | g5.cell_bit(3, 0) | g5.cell_bit(4, 0)
    assert g5.winning_cells(right, right) == g5.cell_bit(1, 0)
    # inarow=1: every empty cell wins
    g1 = geometry(3, 3, 1)
    assert g1.winning_cells(0, 0) == g1.board_mask
    assert g1.winning_cells(0, g1.cell_bit(1, 0)) == g1.board_mask & ~g1.cell_bit(1, 0)


# ---------------------------------------------------------------------------------------- Kaggle format


def test_to_kaggle_layout():
    g = geometry(6, 7, 4)
    position = _play_all(g, [3, 3, 0])
    board = position.to_kaggle()
    assert len(board) == 42
    assert board[5 * 7 + 3] == 1 and board[4 * 7 + 3] == 2 and board[5 * 7 + 0] == 1
    assert sum(1 for v in board if v) == 3
    assert Position(g).to_kaggle() == [0] * 42


@given(sizes, st.integers(0, 2**32 - 1))
@SETTINGS
def test_kaggle_round_trip(size, seed):
    g = Geometry(*size)
    position = _random_position(g, np.random.default_rng(seed))
    board = position.to_kaggle()
    assert len(board) == g.size and set(board) <= {0, 1, 2}
    assert g.from_kaggle(board) == (position.stones[FIRST_MARK], position.stones[SECOND_MARK])
    # independent layout check: row-major, top row first
    for c in range(g.columns):
        for h in range(g.rows):
            bit = g.cell_bit(c, h)
            expected = 1 if position.stones[1] & bit else 2 if position.stones[2] & bit else 0
            assert board[_kaggle_index(g, c, h)] == expected
    rebuilt = Position.from_kaggle(g, board)
    assert rebuilt.stones == position.stones and rebuilt.mask == position.mask
    assert rebuilt.to_move == position.to_move and rebuilt.moves_played == position.moves_played
    assert rebuilt.winner == position.winner
    assert rebuilt.to_kaggle() == board
    assert Position.from_kaggle(g, board, mark=position.to_move).stones == position.stones
    assert Position.from_kaggle(g, tuple(board)).mask == position.mask
    assert Position.from_kaggle(g, np.array(board)).mask == position.mask
    with pytest.raises(ValueError):
        Position.from_kaggle(g, board, mark=3 - position.to_move)
    if not rebuilt.done:
        # the rebuilt game continues identically
        c = rebuilt.legal_moves()[0]
        clone = position.copy()
        assert rebuilt.play(c) == clone.play(c)
        assert rebuilt.to_kaggle() == clone.to_kaggle()


def test_from_kaggle_rejects_bad_boards():
    g = geometry(3, 3, 3)
    empty = [0] * 9

    def at(column, height, value, board=None):
        board = list(empty if board is None else board)
        board[_kaggle_index(g, column, height)] = value
        return board

    # floating stones
    with pytest.raises(ValueError, match="floating"):
        g.from_kaggle(at(1, 1, 1))
    with pytest.raises(ValueError, match="floating"):
        g.from_kaggle(at(0, 2, 2, at(0, 0, 1)))  # gap at height 1
    with pytest.raises(ValueError):
        Position.from_kaggle(g, at(2, 2, 1))
    # bad values
    for value in (3, -1, 9, None, "1", 1.5):
        with pytest.raises(ValueError):
            g.from_kaggle(at(0, 0, value))
    # wrong length
    for board in ([], [0] * 8, [0] * 10, [0] * 42):
        with pytest.raises(ValueError):
            g.from_kaggle(board)
        with pytest.raises(ValueError):
            Position.from_kaggle(g, board)
    # unreachable stone counts
    two_ones = at(1, 0, 1, at(0, 0, 1))
    with pytest.raises(ValueError):
        Position.from_kaggle(g, two_ones)
    only_two = at(0, 0, 2)
    with pytest.raises(ValueError):
        Position.from_kaggle(g, only_two)
    three_to_one = at(2, 0, 1, at(1, 0, 1, at(0, 1, 2, at(0, 0, 1))))
    three_to_one = at(1, 1, 1, three_to_one)  # 4 ones, 1 two
    with pytest.raises(ValueError):
        Position.from_kaggle(g, three_to_one)
    # wrong mark
    one = at(0, 0, 1)
    assert Position.from_kaggle(g, one).to_move == SECOND_MARK
    assert Position.from_kaggle(g, one, mark=SECOND_MARK).to_move == SECOND_MARK
    with pytest.raises(ValueError):
        Position.from_kaggle(g, one, mark=FIRST_MARK)
    with pytest.raises(ValueError):
        Position.from_kaggle(g, empty, mark=SECOND_MARK)
    assert Position.from_kaggle(g, empty, mark=FIRST_MARK).to_move == FIRST_MARK


def test_from_kaggle_terminal_positions():
    g = geometry(4, 4, 3)
    won = _play_all(g, [0, 1, 0, 1, 0])
    rebuilt = Position.from_kaggle(g, won.to_kaggle())
    assert rebuilt.winner == FIRST_MARK and rebuilt.done
    with pytest.raises(ValueError):
        rebuilt.play(2)
    lost = _play_all(g, [0, 1, 2, 1, 0, 1])
    assert Position.from_kaggle(g, lost.to_kaggle()).winner == SECOND_MARK
    draw = _play_all(geometry(1, 4, 3), [0, 1, 2, 3])
    assert draw.winner == EMPTY
    assert Position.from_kaggle(geometry(1, 4, 3), draw.to_kaggle()).winner == EMPTY


# ---------------------------------------------------------------------------------------- render / repr


@given(sizes, st.integers(0, 2**32 - 1))
@SETTINGS
def test_render_shape(size, seed):
    g = Geometry(*size)
    position = _random_position(g, np.random.default_rng(seed))
    lines = position.render().split("\n")
    assert len(lines) == g.rows + 1
    assert all(len(line) == 2 * g.columns - 1 for line in lines)
    board = position.to_kaggle()
    symbols = {0: ".", 1: "1", 2: "2"}
    for r in range(g.rows):
        assert lines[r].split(" ") == [symbols[v] for v in board[r * g.columns : (r + 1) * g.columns]]
    assert lines[-1].split(" ") == [str(c % 10) for c in range(g.columns)]
    assert f"rows={g.rows}" in repr(position)


def test_render_example():
    position = _play_all(geometry(2, 3, 3), [1, 1, 0])
    assert position.render() == ". 2 .\n1 1 .\n0 1 2"


# ---------------------------------------------------------------------------------------- planes


@given(sizes, st.integers(0, 2**32 - 1))
@SETTINGS
def test_encode_position_matches_kaggle_board(size, seed):
    g = Geometry(*size)
    position = _random_position(g, np.random.default_rng(seed))
    board = np.array(position.to_kaggle()).reshape(g.rows, g.columns)
    heights = [bin(position.mask & g.column_masks[c]).count("1") for c in range(g.columns)]
    playable = np.zeros((g.rows, g.columns), dtype=np.float32)
    for c in range(g.columns):
        if heights[c] < g.rows:
            playable[g.rows - 1 - heights[c], c] = 1
    for mark in (None, FIRST_MARK, SECOND_MARK):
        me = position.to_move if mark is None else mark
        planes = encode_position(position, mark)
        assert planes.shape == (NUM_PLANES, g.rows, g.columns) and planes.dtype == np.float32
        np.testing.assert_array_equal(planes[PLANE_OWN], (board == me).astype(np.float32))
        np.testing.assert_array_equal(planes[PLANE_OTHER], (board == 3 - me).astype(np.float32))
        np.testing.assert_array_equal(planes[PLANE_PLAYABLE], playable)
        np.testing.assert_array_equal(planes[PLANE_FIRST], np.full((g.rows, g.columns), float(me == 1)))
    # playable cells are exactly the legal columns' landing cells
    np.testing.assert_array_equal(playable.any(axis=0), legal_mask(g, position.mask))
    # out= is filled in place
    out = np.full((NUM_PLANES, g.rows, g.columns), 7.0, dtype=np.float32)
    result = encode_position(position, out=out)
    assert result is out
    np.testing.assert_array_equal(out, encode_position(position))


def test_encode_position_example():
    g = geometry(6, 7, 4)
    position = _play_all(g, [3, 3, 0])  # mark 2 to move
    planes = encode_position(position)
    assert planes[PLANE_OWN].sum() == 1 and planes[PLANE_OWN][4, 3] == 1  # mark 2's stone
    assert planes[PLANE_OTHER].sum() == 2 and planes[PLANE_OTHER][5, 3] == 1 and planes[PLANE_OTHER][5, 0] == 1
    assert planes[PLANE_PLAYABLE].sum() == 7
    assert planes[PLANE_PLAYABLE][3, 3] == 1 and planes[PLANE_PLAYABLE][4, 0] == 1 and planes[PLANE_PLAYABLE][5, 6] == 1
    assert (planes[PLANE_FIRST] == 0).all()
    assert (encode_position(position, FIRST_MARK)[PLANE_FIRST] == 1).all()


def test_bits_to_grid_and_legal_mask_edges():
    g = geometry(1, 1, 1)
    assert bits_to_grid(g, 0).tolist() == [[0]]
    assert bits_to_grid(g, 1).tolist() == [[1]]
    assert legal_mask(g, 0).tolist() == [True] and legal_mask(g, 1).tolist() == [False]
    g = geometry(6, 7, 4)
    full = bits_to_grid(g, g.board_mask)
    assert full.shape == (6, 7) and full.all()
    assert not bits_to_grid(g, ~g.board_mask & ((1 << 49) - 1)).any()  # sentinels are not cells
    assert legal_mask(g, g.board_mask).tolist() == [False] * 7
    assert legal_mask(g, g.column_masks[2]).tolist() == [True, True, False, True, True, True, True]
    assert legal_mask(g, 0).dtype == bool


# ------------------------------------------------------------------------- rule properties


def _random_game(size, seed):
    """A random game on ``size``: the Position and the columns played."""
    rng = np.random.default_rng(seed)
    position = Position(geometry(*size))
    moves = []
    while not position.done:
        column = int(rng.choice(position.legal_moves()))
        position.play(column)
        moves.append(column)
    return position, moves


@given(sizes, st.integers(0, 2**32 - 1), st.data())
@settings(max_examples=150, deadline=None)
def test_stone_counts_and_gravity_hold_after_any_prefix(size, seed, data):
    _, moves = _random_game(size, seed)
    prefix = moves[: data.draw(st.integers(0, len(moves)))]
    position = Position(geometry(*size))
    for column in prefix:
        position.play(column)
    board = np.array(position.to_kaggle()).reshape(size[0], size[1])
    ones, twos = int((board == 1).sum()), int((board == 2).sum())
    assert (ones, twos) == ((len(prefix) + 1) // 2, len(prefix) // 2)
    assert position.to_move == (1 if len(prefix) % 2 == 0 else 2)
    # gravity: below every stone (towards the bottom row) there is no empty cell
    for column in range(size[1]):
        filled = board[:, column] != 0
        assert list(filled) == sorted(filled), f"floating stone in column {column}"


@given(sizes, st.integers(0, 2**32 - 1))
@settings(max_examples=150, deadline=None)
def test_mirrored_game_gives_mirrored_board_and_same_result(size, seed):
    rows, columns, _ = size
    position, moves = _random_game(size, seed)
    mirrored = Position(geometry(*size))
    for column in moves:
        assert mirrored.winner is None
        mirrored.play(columns - 1 - column)
    original = np.array(position.to_kaggle()).reshape(rows, columns)
    assert np.array_equal(np.array(mirrored.to_kaggle()).reshape(rows, columns), original[:, ::-1])
    assert mirrored.winner == position.winner
    assert mirrored.legal_moves() == sorted(columns - 1 - c for c in position.legal_moves())
