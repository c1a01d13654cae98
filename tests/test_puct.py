"""The PUCT tree search (search/puct.py): exact on boards small enough to solve by brute force, the
rules it never misses, proofs, batching across and within trees, budgets and seeds."""

from __future__ import annotations

import functools
import itertools
import types

import numpy as np
import pytest
from helpers import random_positions

from connectx_gym.rules.bitboard import Position, geometry
from connectx_gym.rules.planes import encode_position
from connectx_gym.search import puct
from connectx_gym.search.puct import DRAW, LOSS, WIN, TreeSearch
from connectx_gym.search.puct_board import SearchBoard


def flat(columns):
    """A network that knows nothing: equal logits, value 0 (row by row, so batching cannot change it)."""

    def evaluate(planes):
        return np.zeros((len(planes), columns), dtype=np.float32), np.zeros(len(planes), dtype=np.float32)

    return evaluate


def preferring(columns, favourite, value=0.0):
    """A network that loves one column everywhere and values every position at ``value``."""

    def evaluate(planes):
        logits = np.zeros((len(planes), columns), dtype=np.float32)
        logits[:, favourite] = 8.0
        return logits, np.full(len(planes), value, dtype=np.float32)

    return evaluate


def hashed(columns):
    """A deterministic, position-dependent network computed row by row (no BLAS: batch-invariant)."""

    def evaluate(planes):
        weights = np.sin(np.arange(planes[0].size, dtype=np.float64)).reshape(planes.shape[1:])
        rows = []
        for p in planes:
            mixed = (p * weights).sum()
            rows.append([np.sin(mixed * (c + 1)) * 2 for c in range(columns)])
        logits = np.array(rows, dtype=np.float32)
        values = np.tanh(np.array([(p * weights).sum() % 1.7 - 0.85 for p in planes], dtype=np.float32))
        return logits, values

    return evaluate


def root_of(search, position):
    return search.root(position.stones[position.to_move], position.mask)


def exact_results(position):
    """Brute force: the game-theoretic result (1 win, 0 draw, -1 loss) after every legal column."""
    g = position.geometry

    @functools.cache
    def negamax(own, mask):
        other = mask ^ own
        best = -1
        for column in g.legal_moves(mask):
            bit = g.drop_bit(mask, column)
            if g.has_line(own | bit):
                return 1
            if (mask | bit) == g.board_mask:
                best = max(best, 0)
                continue
            best = max(best, -negamax(other, mask | bit))
            if best == 1:
                return 1
        return best

    own, mask = position.stones[position.to_move], position.mask
    results = {}
    for column in g.legal_moves(mask):
        bit = g.drop_bit(mask, column)
        if g.has_line(own | bit):
            results[column] = 1
        elif (mask | bit) == g.board_mask:
            results[column] = 0
        else:
            results[column] = -negamax(mask ^ own, mask | bit)
    return results


# ---------------------------------------------------------------------- exactness on solvable boards
@pytest.mark.parametrize("rows, columns, inarow", [(4, 4, 3), (3, 5, 3), (3, 4, 3)])
def test_with_enough_simulations_the_search_proves_every_small_position(rows, columns, inarow):
    """Brute force knows every move's result; the search, with a network that knows nothing, proves the
    root and plays a move of the best class in every test position."""
    search = TreeSearch((rows, columns, inarow), flat(columns), batch=4)
    positions = random_positions(dict(rows=rows, columns=columns, inarow=inarow), 25, seed=rows * 10 + columns)
    names = {1: "win", 0: "draw", -1: "loss"}
    for position in positions:
        truth = exact_results(position)
        best = max(truth.values())
        root = root_of(search, position)
        search.run([root], simulations=200_000)
        result = search.result(root)
        assert result.proven == names[best], (position.render(), truth, result)
        assert truth[result.move] == best, (position.render(), truth, result)


def test_a_lost_position_resists_longest_and_two_threats_are_lost_at_once():
    g = geometry(4, 5, 3)
    position = Position(g)
    for column in (2, 2, 1):  # player 1's open two on the bottom row: it wins at 0 or at 3 next move
        position.play(column)
    search = TreeSearch((4, 5, 3), flat(5))
    root = root_of(search, position)
    assert root.proven == LOSS and root.plies == 2  # proven by the rules, without a simulation
    assert max(exact_results(position).values()) == -1
    assert search.result(root).move in (0, 3)  # it still blocks one of them
    # every move proven lost, at different depths: the slowest loss is played
    root = search.root(0, 0)
    search.run([root], simulations=0)
    search.exclude(root, {0: 3, 1: 9, 2: 5, 3: 7, 4: 3})
    result = search.result(root)
    assert result.proven == "loss" and result.move == 1 and result.plies == 9


# ---------------------------------------------------------------------- rules it never misses
@pytest.mark.parametrize("budget", [0, 1, 50])
def test_immediate_wins_and_forced_blocks_are_never_missed(budget):
    g = geometry(6, 7, 4)
    search = TreeSearch(g and (6, 7, 4), preferring(7, 6, value=-1.0))  # it hates everything but column 6
    win = Position(g)
    for column in (3, 0, 3, 0, 3, 1):
        win.play(column)
    root = root_of(search, win)
    search.run([root], simulations=budget)
    assert search.result(root).move == 3 and search.result(root).proven == "win"
    block = Position(g)
    for column in (3, 0, 3, 0, 3):
        block.play(column)
    root = root_of(search, block)
    search.run([root], simulations=budget)
    assert search.result(root).move == 3
    assert root.moves == [3]  # facing one threat, the block is the only move searched
    # winning beats blocking
    both = Position(g)
    for column in (0, 6, 0, 6, 0, 6):
        both.play(column)
    root = root_of(search, both)
    search.run([root], simulations=budget)
    assert search.result(root).move == 0


def test_a_move_under_the_opponents_winning_cell_is_never_searched():
    g = geometry(6, 7, 4)
    position = Position(g)
    # player 2's three in a row on the second row waits for cell (column 3, height 1)
    for column in (0, 0, 1, 1, 2, 2, 6, 6):
        position.play(column)
    assert position.to_move == 1
    search = TreeSearch((6, 7, 4), preferring(7, 3))
    root = root_of(search, position)
    # column 3 would finish player 1's row anyway: a win, taken at once
    assert root.proven == WIN
    position2 = Position(g)
    for column in (0, 1, 6, 1, 0, 2, 6, 2, 5, 6):
        position2.play(column)
    own, mask = position2.stones[position2.to_move], position2.mask
    board = SearchBoard(6, 7, 4)
    threats = board.wins(mask ^ own, mask)
    root = search.root(own, mask)
    for column in range(7):
        bit = (mask + board.bottom_cells[column]) & board.column_masks[column]
        if bit and (bit << 1) & threats and not threats & bit:
            assert column not in root.moves


def test_terminal_and_finished_positions():
    search = TreeSearch((6, 7, 4), flat(7))
    g = geometry(6, 7, 4)
    over = Position(g)
    for column in (0, 1, 0, 1, 0, 1, 0):
        over.play(column)
    with pytest.raises(ValueError, match="game is over"):
        root_of(search, over)
    with pytest.raises(ValueError, match="full"):
        search.root(0, g.board_mask)


# ---------------------------------------------------------------------- batching and budgets
def test_trees_in_lockstep_give_each_tree_its_own_result():
    board = (6, 7, 4)
    positions = random_positions(dict(rows=6, columns=7, inarow=4), 6, seed=3)
    together = TreeSearch(board, hashed(7), batch=4, cache_size=0)
    roots = [root_of(together, p) for p in positions]
    together.run(roots, simulations=120)
    for position, root in zip(positions, roots):
        alone = TreeSearch(board, hashed(7), batch=4, cache_size=0)
        single = root_of(alone, position)
        alone.run([single], simulations=120)
        a, b = together.result(root), alone.result(single)
        assert (a.move, a.visits, a.proven) == (b.move, b.visits, b.proven)


def counting(sizes):
    """``hashed(7)``, noting the size of every batch it is asked for in ``sizes``."""
    network = hashed(7)

    def evaluate(planes):
        sizes.append(len(planes))
        return network(planes)

    return evaluate


def test_virtual_loss_batches_leaves_within_one_tree():
    sizes = []
    search = TreeSearch((6, 7, 4), counting(sizes), batch=8, cache_size=0)
    root = search.root(0, 0)
    search.run([root], simulations=400)
    assert root.total == 400
    assert sizes[0] == 1  # the root alone
    assert max(sizes) == 8 and np.mean(sizes[1:]) > 4  # rounds of several leaves, not one at a time
    assert search.evaluations == sum(sizes)


def test_the_cache_saves_evaluations_of_transpositions():
    counted = []
    with_cache = TreeSearch((6, 7, 4), counting(counted), batch=1)
    root = with_cache.root(0, 0)
    with_cache.run([root], simulations=2000)
    assert sum(counted) < 2000


def test_a_time_budget_stops_the_search(monkeypatch):
    # a clock that moves one second per reading: the budget is counted in rounds, not in this machine's speed
    ticks = itertools.count()
    monkeypatch.setattr(puct, "time", types.SimpleNamespace(perf_counter=lambda: float(next(ticks))))
    sizes = []
    search = TreeSearch((6, 7, 4), counting(sizes), batch=8, cache_size=0)
    root = search.root(0, 0)
    search.run([root], seconds=5)  # the deadline is read at 0; the rounds start at 1, 2, 3 and 4
    assert len(sizes) == 1 + 4  # the root, then one batch per round begun before the deadline
    assert sizes[0] == 1 and root.total == sum(sizes[1:]) > 20  # the root's own evaluation is no visit
    search.run([root], seconds=0)  # a spent budget starts no round
    assert len(sizes) == 5
    with pytest.raises(ValueError, match="budget"):
        search.run([root])


def test_seeds_decide_noise_and_temperature():
    board = (6, 7, 4)

    def play(seed):
        search = TreeSearch(board, hashed(7), batch=4)
        positions = random_positions(dict(rows=6, columns=7, inarow=4), 8, seed=11)
        rngs = [np.random.default_rng(seed + i) for i in range(len(positions))]
        roots = [root_of(search, p) for p in positions]
        search.run(roots, simulations=60, noise=(0.5, 0.25), rngs=rngs)
        return [
            (search.result(r, temperature=1.0, rng=g).move, tuple(search.result(r).visits)) for r, g in zip(roots, rngs)
        ]

    assert play(1) == play(1)
    assert play(1) != play(2)
    with pytest.raises(ValueError, match="generator per root"):
        search = TreeSearch(board, hashed(7))
        search.run([search.root(0, 0)], simulations=5, noise=(0.3, 0.25))


def test_result_statistics_and_distribution():
    search = TreeSearch((6, 7, 4), hashed(7), batch=4)
    root = search.root(0, 0)
    search.run([root], simulations=300)
    result = search.result(root)
    assert sum(result.visits) == 300 == result.simulations
    assert result.move == int(np.argmax(result.visits))
    assert abs(sum(result.distribution()) - 1) < 1e-9 and abs(sum(result.priors) - 1) < 1e-6
    assert all(q is None or -1 <= q <= 1 for q in result.q) and -1 <= result.search_value <= 1
    assert result.proven is None and result.evaluations == 0  # the caller passes the count it wants shown


# ---------------------------------------------------------------------- planes and proof helpers
@pytest.mark.parametrize("rows, columns, inarow", [(6, 7, 4), (5, 6, 3), (9, 7, 5), (10, 12, 4)])
def test_planes_match_the_training_encoding(rows, columns, inarow):
    board = SearchBoard(rows, columns, inarow)
    positions = random_positions(dict(rows=rows, columns=columns, inarow=inarow), 20, seed=rows + columns)
    got = board.planes([p.stones[p.to_move] for p in positions], [p.mask for p in positions])
    expected = np.stack([encode_position(p) for p in positions])
    assert got.dtype == np.float32 and np.array_equal(got, expected)


def test_exclude_marks_moves_lost_and_proves_the_root():
    search = TreeSearch((6, 7, 4), flat(7))
    root = search.root(0, 0)
    search.run([root], simulations=0)
    search.exclude(root, {c: 5 for c in range(7) if c != 3})
    search.run([root], simulations=50)
    assert root.visits[root.moves.index(3)] == 50 and search.result(root).move == 3
    search.exclude(root, {3: 9})
    assert root.proven == LOSS and search.result(root).move == 3 and search.result(root).plies == 9
    assert DRAW == 0


@pytest.mark.parametrize("rows, columns, inarow", [(6, 7, 4), (5, 6, 3), (9, 7, 5), (10, 12, 4), (4, 4, 2), (3, 8, 1)])
def test_the_search_board_is_pinned_to_the_rules(rows, columns, inarow):
    """The embedded search keeps its own bit masks (the Kaggle file carries no package code but its
    source): on every board they agree with the rules' ``Geometry``, for both players' stones."""
    shape = geometry(rows, columns, inarow)
    board = SearchBoard(rows, columns, inarow)
    assert (board.bottom_cells, board.column_masks) == (
        [shape.cell_bit(c, 0) for c in range(columns)],
        [sum(shape.cell_bit(c, h) for h in range(rows)) for c in range(columns)],
    )
    assert board.full == shape.board_mask
    positions = random_positions(dict(rows=rows, columns=columns, inarow=inarow), 60, seed=rows * columns + inarow)
    for position in positions:
        mask = position.mask
        assert board.columns_of(shape.playable_cells(mask)) == shape.legal_moves(mask)
        for stones in (position.stones[1], position.stones[2]):
            assert board.has_line(stones) == shape.has_line(stones)
            assert board.wins(stones, mask) == shape.winning_cells(stones, mask)
