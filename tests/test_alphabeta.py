"""Tests of ``connectx_gym.search.alphabeta``: Kaggle's negamax re-implementation and the alpha-beta search.

Oracles: a verbatim copy of the recursion of Kaggle's ``negamax_agent`` (run on Kaggle's own
``play``/``is_win``) for the negamax scores, and a brute-force minimax on ``Position`` objects
(no pruning, no tables) for the alpha-beta scores.
"""

from __future__ import annotations

import contextlib
import io
import random

import numpy as np
import pytest

from connectx_gym.rules.bitboard import EMPTY, Geometry, Position, geometry
from connectx_gym.search import alphabeta as solver
from connectx_gym.search import lines, negamax
from connectx_gym.search.alphabeta import WIN_SCORE, alphabeta_move, alphabeta_scores
from connectx_gym.search.negamax import (
    KAGGLE_NEGAMAX_DEPTH,
    kaggle_immediate_win,
    kaggle_negamax_move,
    kaggle_negamax_scores,
)

with contextlib.redirect_stderr(io.StringIO()):  # kaggle_environments drags in the old gym, which warns
    from kaggle_environments.envs.connectx.connectx import is_win as kaggle_is_win
    from kaggle_environments.envs.connectx.connectx import play as kaggle_play
    from kaggle_environments.utils import Struct

# ---------------------------------------------------------------------------------------- oracles


def kaggle_root_scores(board: list[int], mark: int, config) -> tuple[int | None, dict[int, float] | None]:
    """Kaggle's negamax root, scored per column: ``(winning column, None)`` or ``(None, scores)``.

    ``negamax`` below is copied verbatim from ``negamax_agent`` in
    kaggle_environments 1.33.2, ``envs/connectx/connectx.py`` (only ``choice`` is spelt
    ``random.choice``); the root loop is Kaggle's own, except that it records every column's score.
    """
    columns = config.columns
    rows = config.rows
    size = rows * columns
    max_depth = 4

    def negamax(board, mark, depth):
        moves = sum(1 if cell != EMPTY else 0 for cell in board)

        # Tie Game
        if moves == size:
            return (0, None)

        # Can win next.
        for column in range(columns):
            if board[column] == EMPTY and kaggle_is_win(board, column, mark, config, False):
                return ((size + 1 - moves) / 2, column)

        # Recursively check all columns.
        best_score = -size
        best_column = None
        for column in range(columns):
            if board[column] == EMPTY:
                # Max depth reached. Score based on cell proximity for a clustering effect.
                if depth <= 0:
                    row = max([r for r in range(rows) if board[column + (r * columns)] == EMPTY])
                    score = (size + 1 - moves) / 2
                    if column > 0 and board[row * columns + column - 1] == mark:
                        score += 1
                    if column < columns - 1 and board[row * columns + column + 1] == mark:
                        score += 1
                    if row > 0 and board[(row - 1) * columns + column] == mark:
                        score += 1
                    if row < rows - 2 and board[(row + 1) * columns + column] == mark:
                        score += 1
                else:
                    next_board = board[:]
                    kaggle_play(next_board, column, mark, config)
                    (score, _) = negamax(next_board, 1 if mark == 2 else 2, depth - 1)
                    score = score * -1
                if score > best_score or (score == best_score and random.choice([True, False])):
                    best_score = score
                    best_column = column

        return (best_score, best_column)

    for column in range(columns):  # the root's "Can win next"
        if board[column] == EMPTY and kaggle_is_win(board, column, mark, config, False):
            return column, None
    scores = {}
    for column in range(columns):
        if board[column] == EMPTY:
            next_board = board[:]
            kaggle_play(next_board, column, mark, config)
            (score, _) = negamax(next_board, 1 if mark == 2 else 2, max_depth - 1)
            scores[column] = score * -1
    return None, scores


def kaggle_config(g: Geometry):
    return Struct(rows=g.rows, columns=g.columns, inarow=g.inarow)


def sequential_coin_flip_distribution(scores: dict[int, float], size: int) -> dict[int | None, float]:
    """Exact distribution of Kaggle's ``score > best or (score == best and choice([True, False]))``."""
    best = -size
    distribution: dict[int | None, float] = {None: 1.0}
    for column, score in scores.items():
        if score > best:
            best, distribution = score, {column: 1.0}
        elif score == best:
            distribution = {c: p / 2 for c, p in distribution.items()}
            distribution[column] = distribution.get(column, 0.0) + 0.5
    return distribution


def brute_force_value(g: Geometry, own: int, other: int, depth: int, ply: int) -> int:
    """Plain minimax with the alpha-beta scoring rules: no pruning, no tables, no move filtering.

    Uses only the rules of ``bitboard`` (``drop_bit``, ``has_line``) and the solver's heuristic.
    """
    mask = own | other
    moves = [g.drop_bit(mask, column) for column in g.legal_moves(mask)]
    for bit in moves:
        if g.has_line(own | bit):
            return WIN_SCORE - ply
    if depth <= 0:

        def other_wins_next(bit: int) -> bool:
            after = mask | bit
            return any(g.has_line(other | g.drop_bit(after, c)) for c in g.legal_moves(after))

        if all(other_wins_next(bit) for bit in moves):
            return -(WIN_SCORE - ply - 1)
        return solver._heuristic(lines.tables_for(g), own, other)
    best = None
    for bit in moves:
        if g.is_full(mask | bit):
            value = 0
        else:
            value = -brute_force_value(g, other, own | bit, depth - 1, ply + 1)
        best = value if best is None else max(best, value)
    return best


def brute_force_root_scores(position: Position, depth: int) -> dict[int, int]:
    g = position.geometry
    own = position.stones[position.to_move]
    other = position.mask ^ own
    scores = {}
    for column in position.legal_moves():
        bit = g.drop_bit(position.mask, column)
        if g.has_line(own | bit):
            scores[column] = WIN_SCORE
        elif g.is_full(position.mask | bit):
            scores[column] = 0
        else:
            scores[column] = -brute_force_value(g, other, own | bit, depth - 1, 1)
    return scores


def naive_window_score(g: Geometry, own: int, other: int) -> int:
    """The horizon heuristic counted window by window on a grid."""
    k = g.inarow
    weights = {j: 4 ** (j - 1) for j in range(max(1, k - 3), k)}

    def side(stones: int, blockers: int) -> int:
        total = 0
        for dc, dh in ((0, 1), (1, 0), (1, 1), (1, -1)):
            for c in range(g.columns):
                for h in range(g.rows):
                    cells = [(c + i * dc, h + i * dh) for i in range(k)]
                    if not all(0 <= cc < g.columns and 0 <= hh < g.rows for cc, hh in cells):
                        continue
                    bits = [g.cell_bit(cc, hh) for cc, hh in cells]
                    if any(blockers & b for b in bits):
                        continue
                    total += weights.get(sum(1 for b in bits if stones & b), 0)
        return total

    return side(own, other) - side(other, own)


# ---------------------------------------------------------------------------------------- helpers


def random_positions(
    g: Geometry, count: int, seed: int, min_moves: int = 0, max_moves: int | None = None
) -> list[Position]:
    """``count`` non-terminal positions reached by seeded random play (moves played drawn uniformly)."""
    rng = np.random.default_rng(seed)
    positions = []
    high = g.size - 1 if max_moves is None else min(max_moves, g.size - 1)
    while len(positions) < count:
        position = Position(g)
        target = int(rng.integers(min(min_moves, high), high + 1))
        while position.moves_played < target and not position.done:
            legal = position.legal_moves()
            position.play(legal[int(rng.integers(len(legal)))])
        if not position.done:
            positions.append(position)
    return positions


def from_columns(g: Geometry, columns: list[int]) -> Position:
    position = Position(g)
    for column in columns:
        position.play(column)
    return position


def from_rows(g: Geometry, rows_top_first: list[str]) -> Position:
    """A position from a picture: one string per row, top row first, '.', '1' or '2' per cell."""
    board = [{".": 0, "1": 1, "2": 2}[ch] for row in rows_top_first for ch in row.replace(" ", "")]
    return Position.from_kaggle(g, board)


# ------------------------------------------------------------------ Kaggle negamax equivalence

# (rows, columns, inarow, positions, seed, minimum moves played)
EQUIVALENCE_CASES = [
    (6, 7, 4, 100, 1, 0),
    (6, 7, 4, 50, 2, 28),  # near-full boards
    (5, 6, 3, 50, 3, 0),
    (4, 5, 4, 40, 4, 0),
    (7, 8, 5, 20, 5, 0),
    (3, 3, 3, 15, 6, 0),
    (2, 5, 2, 10, 7, 0),
    (1, 6, 3, 8, 8, 0),
    (5, 4, 6, 10, 9, 0),  # inarow larger than both sides: nobody can ever win
    (6, 7, 1, 3, 10, 0),
]


def test_equivalence_cases_cover_at_least_300_positions():
    assert sum(case[3] for case in EQUIVALENCE_CASES) >= 300


@pytest.mark.parametrize("rows,columns,inarow,count,seed,min_moves", EQUIVALENCE_CASES)
def test_negamax_scores_equal_kaggles(rows, columns, inarow, count, seed, min_moves):
    g = geometry(rows, columns, inarow)
    config = kaggle_config(g)
    rng = np.random.default_rng(seed)
    for position in random_positions(g, count, seed, min_moves):
        board = position.to_kaggle()
        kaggle_win, kaggle_scores = kaggle_root_scores(board, position.to_move, config)
        ours = kaggle_negamax_scores(position)
        move = kaggle_negamax_move(position, rng)
        if kaggle_win is not None:
            assert ours is None
            assert kaggle_immediate_win(position) == kaggle_win
            assert move == kaggle_win
            continue
        assert kaggle_immediate_win(position) is None
        assert ours is not None and list(ours) == list(kaggle_scores), position.render()
        for column, score in kaggle_scores.items():
            assert ours[column] == score, (column, position.render(), kaggle_scores, ours)
        best = max(kaggle_scores.values())
        assert kaggle_scores[move] == best


def test_negamax_move_tie_break_matches_sequential_coin_flips():
    g = geometry(6, 7, 4)
    # Find a position with at least three equal best columns.
    for position in random_positions(g, 200, seed=11):
        scores = kaggle_negamax_scores(position)
        if scores is None:
            continue
        distribution = sequential_coin_flip_distribution(scores, g.size)
        if sum(1 for p in distribution.values() if p > 0) >= 3:
            break
    else:
        pytest.fail("no position with three tied best columns found")
    rng = np.random.default_rng(12)
    draws = 800
    counts: dict[int, int] = {}
    for _ in range(draws):
        column = kaggle_negamax_move(position, rng)
        counts[column] = counts.get(column, 0) + 1
    assert set(counts) == {c for c, p in distribution.items() if p > 0}
    for column, p in distribution.items():
        # 4.5 standard deviations: a wrong scheme (e.g. uniform) over 800 draws is far outside it.
        tolerance = 4.5 * (p * (1 - p) / draws) ** 0.5
        assert abs(counts.get(column, 0) / draws - p) <= tolerance, (counts, distribution)


def test_negamax_tie_break_is_not_uniform_but_favours_later_columns():
    # Equal scores everywhere: Kaggle's scheme gives the last column 1/2, the first 1/2**(n-1).
    distribution = sequential_coin_flip_distribution({0: 1.0, 1: 1.0, 2: 1.0, 3: 1.0}, 42)
    assert distribution == {0: 0.125, 1: 0.125, 2: 0.25, 3: 0.5}


def test_negamax_move_is_seeded():
    g = geometry(6, 7, 4)
    positions = random_positions(g, 20, seed=13)
    first = [kaggle_negamax_move(p, np.random.default_rng(3)) for p in positions]
    second = [kaggle_negamax_move(p, np.random.default_rng(3)) for p in positions]
    assert first == second


def test_negamax_scores_do_not_depend_on_the_cache():
    g = geometry(5, 6, 3)
    positions = random_positions(g, 10, seed=14)
    warm = [kaggle_negamax_scores(p) for p in positions]
    lines.clear_caches()
    cold = [kaggle_negamax_scores(p) for p in reversed(positions)][::-1]
    assert warm == cold


# ------------------------------------------------------------------ Kaggle negamax quirks


def test_leaf_counts_the_stone_below_only_two_cells_above_the_bottom():
    # One column of six: Kaggle's leaf checks "row < rows - 2", so a stone right below a landing
    # cell at height 1 is not counted, one below height 2 is.
    g = geometry(6, 1, 4)
    tables = lines.tables_for(g)
    one = g.cell_bit(0, 0)
    value = negamax._kaggle_node_value(tables, one, one, 0, tables.completions(one))
    assert value == (6 + 1 - 1) / 2  # no bonus: the quirk
    two = one | g.cell_bit(0, 1)
    value = negamax._kaggle_node_value(tables, two, two, 0, tables.completions(two))
    assert value == (6 + 1 - 2) / 2 + 1


def test_leaf_counts_left_and_right_neighbours_at_the_landing_height():
    g = geometry(6, 7, 4)
    tables = lines.tables_for(g)
    own = g.cell_bit(2, 0) | g.cell_bit(4, 0)
    other = g.cell_bit(0, 0) | g.cell_bit(6, 0)
    mask = own | other
    # Column 3's landing cell has own stones left and right: bonus 2.
    assert negamax._kaggle_node_value(tables, own, mask, 0, tables.completions(own)) == (42 + 1 - 4) / 2 + 2


def test_leaf_bonus_is_the_best_column_not_the_sum():
    # Own stones at heights 0..2 of column 1 and at height 3 of column 0 and 2 (on opponent stones):
    # column 1's landing cell (height 3) has left, right and (height >= 2) below: bonus 3.
    g = geometry(6, 3, 5)
    tables = lines.tables_for(g)
    own = sum(g.cell_bit(1, h) for h in range(3)) | g.cell_bit(0, 3) | g.cell_bit(2, 3)
    other = sum(g.cell_bit(c, h) for c in (0, 2) for h in range(3))
    mask = own | other
    assert negamax._kaggle_node_value(tables, own, mask, 0, tables.completions(own)) == (18 + 1 - 11) / 2 + 3


def test_negamax_scores_a_full_board_zero():
    g = geometry(6, 7, 4)
    config = kaggle_config(g)
    rng = np.random.default_rng(15)
    found = 0
    while found < 3:
        position = random_positions(g, 1, int(rng.integers(1 << 30)), min_moves=g.size - 1)[0]
        if position.moves_played != g.size - 1 or kaggle_immediate_win(position) is not None:
            continue
        found += 1
        (column,) = position.legal_moves()
        assert kaggle_negamax_scores(position) == {column: 0}
        assert kaggle_root_scores(position.to_kaggle(), position.to_move, config) == (None, {column: 0})


def test_negamax_immediate_win_returns_lowest_winning_column_without_scores():
    g = geometry(6, 7, 4)
    # Mark 1 to move with three on the bottom row, open at both ends: columns 0 and 4 both win.
    position = from_columns(g, [1, 1, 2, 2, 3, 3])
    assert position.to_move == 1
    assert kaggle_negamax_scores(position) is None
    assert kaggle_immediate_win(position) == 0
    assert {kaggle_negamax_move(position, np.random.default_rng(s)) for s in range(20)} == {0}
    assert kaggle_root_scores(position.to_kaggle(), 1, kaggle_config(g)) == (0, None)


def test_negamax_scores_when_the_opponent_wins_next():
    g = geometry(6, 7, 4)
    # Mark 2 has three on the bottom row (columns 0-2), mark 1 cannot win: every column but 3 lets
    # mark 2 win with 7 stones on the board, scoring -(42 + 1 - 7) / 2 = -18.
    position = from_rows(
        g,
        [
            ".......",
            ".......",
            ".......",
            ".......",
            "......1",
            "222..11",
        ],
    )
    assert position.to_move == 1
    scores = kaggle_negamax_scores(position)
    assert scores is not None
    assert {c: s for c, s in scores.items() if c != 3} == {c: -18.0 for c in (0, 1, 2, 4, 5, 6)}
    assert scores[3] > -18
    assert kaggle_negamax_move(position, np.random.default_rng(0)) == 3
    assert kaggle_root_scores(position.to_kaggle(), 1, kaggle_config(g)) == (None, scores)


def test_negamax_with_inarow_one_plays_column_zero():
    position = Position(geometry(3, 4, 1))
    assert kaggle_negamax_move(position, np.random.default_rng(0)) == 0


def test_negamax_root_depth_is_kaggles():
    assert KAGGLE_NEGAMAX_DEPTH == 4


def test_negamax_rejects_finished_games():
    position = from_columns(geometry(6, 7, 4), [0, 1, 0, 1, 0, 1, 0])
    with pytest.raises(ValueError, match="game is over"):
        kaggle_negamax_move(position, np.random.default_rng(0))


def test_negamax_is_fast():
    # Generous bound for a loaded 2-core machine; a cold empty-board search takes ~2 ms.
    import time

    position = Position(geometry(6, 7, 4))
    rng = np.random.default_rng(0)
    lines.clear_caches()
    start = time.perf_counter()
    kaggle_negamax_move(position, rng)
    assert time.perf_counter() - start < 0.1


# ------------------------------------------------------------------ alpha-beta


@pytest.mark.parametrize("depth", [1, 2, 3, 4, 5])
def test_alphabeta_takes_a_win_in_one(depth):
    g = geometry(6, 7, 4)
    # Mark 1: three stacked in column 5; mark 2 scattered without threats.
    position = from_columns(g, [5, 0, 5, 1, 5, 3])
    assert position.to_move == 1
    for seed in range(5):
        assert alphabeta_move(position, depth, np.random.default_rng(seed)) == 5
    assert alphabeta_scores(position, depth)[5] == WIN_SCORE


@pytest.mark.parametrize("depth", [1, 2, 3, 4, 5])
def test_alphabeta_blocks_a_loss_in_one(depth):
    g = geometry(6, 7, 4)
    # Mark 2 has three stacked in column 6; mark 1 (to move) has no win.
    position = from_columns(g, [0, 6, 1, 6, 4, 6])
    assert position.to_move == 1
    for seed in range(5):
        assert alphabeta_move(position, depth, np.random.default_rng(seed)) == 6
    scores = alphabeta_scores(position, depth)
    assert all(scores[c] == -(WIN_SCORE - 1) for c in scores if c != 6)


@pytest.mark.parametrize("depth", [3, 4, 5])
def test_alphabeta_finds_a_double_threat(depth):
    g = geometry(6, 7, 4)
    # Mark 1 has columns 2 and 3 of the bottom row; adding 1 or 4 threatens both ends at once.
    position = from_rows(
        g,
        [
            ".......",
            ".......",
            ".......",
            ".......",
            "..22...",
            "..11...",
        ],
    )
    assert position.to_move == 1
    scores = alphabeta_scores(position, depth)
    assert scores[1] == scores[4] == WIN_SCORE - 2  # the win lands on ply 3
    assert max(scores.values()) == WIN_SCORE - 2
    assert {alphabeta_move(position, depth, np.random.default_rng(s)) for s in range(10)} == {1, 4}


def test_alphabeta_prefers_faster_wins_and_slower_losses():
    g = geometry(6, 7, 4)
    # Mark 1 can win now in column 0 or make a double threat in column 4: winning now scores higher.
    position = from_rows(
        g,
        [
            ".......",
            ".......",
            "1......",
            "1......",
            "1.22..2",
            "2.11..2",
        ],
    )
    assert position.to_move == 1
    scores = alphabeta_scores(position, 4)
    assert scores[0] == WIN_SCORE
    assert scores[4] == WIN_SCORE - 2
    assert alphabeta_move(position, 4, np.random.default_rng(0)) == 0
    # Mark 2 is lost: blocking column 5 loses on ply 4, anything else on ply 2. It blocks.
    lost = from_rows(
        g,
        [
            ".......",
            ".......",
            ".2.....",
            ".1.1...",
            ".1122..",
            "22111.2",
        ],
    )
    assert lost.to_move == 2
    scores = alphabeta_scores(lost, 4)
    assert scores == {c: -(WIN_SCORE - 3) if c == 5 else -(WIN_SCORE - 1) for c in range(7)}
    assert alphabeta_move(lost, 4, np.random.default_rng(0)) == 5


@pytest.mark.parametrize(
    "rows,columns,inarow,depth,count",
    [
        (6, 7, 4, 1, 25),
        (6, 7, 4, 2, 25),
        (6, 7, 4, 3, 25),
        (6, 7, 4, 4, 6),
        (5, 5, 4, 5, 4),
        (4, 5, 3, 5, 6),
        (5, 6, 3, 4, 10),
        (3, 4, 5, 4, 8),
        (2, 3, 2, 5, 8),
        (4, 4, 3, 6, 60),  # deep enough for transposition-table bounds to decide results
        (4, 4, 3, 7, 20),
    ],
)
def test_alphabeta_scores_equal_brute_force_minimax(rows, columns, inarow, depth, count):
    g = geometry(rows, columns, inarow)
    # Early positions: deep, wide trees where pruning and the transposition table matter most.
    positions = random_positions(g, count, seed=rows * 100 + columns * 10 + depth, max_moves=g.size // 3)
    for position in positions:
        assert alphabeta_scores(position, depth) == brute_force_root_scores(position, depth), position.render()


@pytest.mark.parametrize("depth", [1, 2, 4])
def test_alphabeta_move_is_an_argmax_of_its_scores(depth):
    g = geometry(6, 7, 4)
    for position in random_positions(g, 10, seed=20 + depth):
        scores = alphabeta_scores(position, depth)
        best = max(scores.values())
        argmax = {c for c, s in scores.items() if s == best}
        rng = np.random.default_rng(depth)
        chosen = {alphabeta_move(position, depth, rng) for _ in range(8 * len(argmax))}
        assert chosen <= argmax
        if len(argmax) > 1:
            assert len(chosen) > 1  # ties are broken at random, not always the same way


@pytest.mark.parametrize(
    "rows,columns,inarow", [(6, 7, 4), (5, 6, 3), (4, 9, 6), (3, 3, 2), (6, 7, 1), (2, 8, 9), (1, 7, 2), (7, 1, 3)]
)
def test_horizon_heuristic_counts_open_windows(rows, columns, inarow):
    g = geometry(rows, columns, inarow)
    tables = lines.tables_for(g)
    for position in random_positions(g, 15, seed=rows * columns + inarow):
        own = position.stones[position.to_move]
        other = position.mask ^ own
        assert solver._heuristic(tables, own, other) == naive_window_score(g, own, other)


ODD_SIZES = [
    (1, 1, 1),
    (1, 5, 2),
    (5, 1, 2),
    (3, 3, 3),
    (4, 9, 6),
    (2, 2, 3),
    (6, 7, 1),
    (3, 8, 9),
    (1, 7, 8),
    (2, 6, 4),
]


@pytest.mark.parametrize("rows,columns,inarow", ODD_SIZES)
def test_solvers_play_legal_moves_on_any_board(rows, columns, inarow):
    g = geometry(rows, columns, inarow)
    rng = np.random.default_rng(rows * 10 + columns)
    for position in random_positions(g, 6, seed=rows + columns + inarow):
        legal = position.legal_moves()
        for depth in (1, 2, 4):
            assert alphabeta_move(position, depth, rng) in legal
        assert kaggle_negamax_move(position, rng) in legal


@pytest.mark.parametrize("rows,columns,inarow", ODD_SIZES)
def test_solvers_finish_whole_games_on_any_board(rows, columns, inarow):
    g = geometry(rows, columns, inarow)
    rng = np.random.default_rng(1)
    position = Position(g)
    while not position.done:
        if position.to_move == 1:
            position.play(alphabeta_move(position, 3, rng))
        else:
            position.play(kaggle_negamax_move(position, rng))
    assert position.winner in (0, 1, 2)


def test_alphabeta_is_deterministic_given_the_seed():
    g = geometry(6, 7, 4)

    def game(seed: int) -> list[int]:
        rng = np.random.default_rng(seed)
        position = Position(g)
        columns = []
        while not position.done:
            columns.append(alphabeta_move(position, 3 if position.to_move == 1 else 2, rng))
            position.play(columns[-1])
        return columns

    assert game(4) == game(4)
    assert len({tuple(game(s)) for s in range(4)}) > 1


def test_alphabeta_beats_random():
    g = geometry(6, 7, 4)
    rng = np.random.default_rng(30)
    wins = 0
    games = 20
    for game in range(games):
        position = Position(g)
        searcher = 1 + game % 2
        while not position.done:
            if position.to_move == searcher:
                position.play(alphabeta_move(position, 4, rng))
            else:
                legal = position.legal_moves()
                position.play(legal[int(rng.integers(len(legal)))])
        wins += position.winner == searcher
    assert wins >= games - 1


def test_alphabeta_beats_kaggle_negamax_most_of_the_time():
    g = geometry(6, 7, 4)
    rng = np.random.default_rng(31)
    wins = 0
    for game in range(10):
        position = Position(g)
        searcher = 1 + game % 2
        while not position.done:
            if position.to_move == searcher:
                position.play(alphabeta_move(position, 4, rng))
            else:
                position.play(kaggle_negamax_move(position, rng))
        wins += position.winner == searcher
    assert wins >= 7


@pytest.mark.parametrize("depth", [0, -1, 1.5, True, "3"])
def test_alphabeta_rejects_bad_depths(depth):
    with pytest.raises(ValueError, match="depth"):
        alphabeta_move(Position(geometry()), depth, np.random.default_rng(0))


def test_alphabeta_rejects_finished_games():
    position = from_columns(geometry(6, 7, 4), [0, 1, 0, 1, 0, 1, 0])
    with pytest.raises(ValueError, match="game is over"):
        alphabeta_move(position, 2, np.random.default_rng(0))
