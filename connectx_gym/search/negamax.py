"""Kaggle's built-in negamax on bitboards, exactly.

``kaggle_negamax_scores``/``kaggle_negamax_move`` give, for every position, the same root column
scores as the ``negamax_agent`` of ``kaggle_environments.envs.connectx`` (depth 4, its leaf
heuristic and its off-by-one included) and pick among equal scores with the same sequential coin
flips, drawn from a numpy generator instead of Python's ``random``; node values never depend on
tie-breaks, so they are cached per board size in a bounded transposition table.
"""

from __future__ import annotations

import numpy as np

from connectx_gym.rules.bitboard import Position
from connectx_gym.search import compiled
from connectx_gym.search.lines import LineTables, columns_of, require_playing, tables_for

KAGGLE_NEGAMAX_DEPTH = 4
"""The ``max_depth`` of Kaggle's ``negamax_agent``."""


_NEGAMAX_CACHE_LIMIT = 100_000
"""Entries kept in a board size's Kaggle-negamax node cache before it is cleared."""


_DEPTH_BITS = KAGGLE_NEGAMAX_DEPTH.bit_length()


def _kaggle_node_value(tables: LineTables, own: int, mask: int, depth: int, own_completions: int) -> float:
    """The score Kaggle's ``negamax(board, mark, depth)`` returns for the mover with ``own`` stones.

    :param tables: the board size's tables
    :param own: stones of the player to move
    :param mask: all stones
    :param depth: Kaggle's remaining depth (0 is its leaf heuristic)
    :param own_completions: ``tables.completions(own)``, passed down to avoid recomputing it
    """
    key = (((own << tables.mask_bits) | mask) << _DEPTH_BITS) | depth
    cache = tables.negamax_cache
    value = cache.get(key)
    if value is not None:
        return value
    board_mask = tables.board_mask
    if mask == board_mask:  # "Tie Game"
        value = 0.0
    else:
        playable = (mask + tables.bottom_mask) & board_mask
        base = (tables.size + 1 - mask.bit_count()) / 2
        if own_completions & playable:  # "Can win next"
            value = base
        elif depth <= 0:
            # Leaf: (size + 1 - moves) / 2 plus own stones left, right and (quirk) below only when
            # the landing cell is two or more above the bottom; "above" is always empty.
            height = tables.height
            left = (own << height) & playable
            right = (own >> height) & playable
            below = (own << 1) & playable & tables.kaggle_below_cells
            if left & right & below:
                bonus = 3
            elif (left & right) | (left & below) | (right & below):
                bonus = 2
            elif left | right | below:
                bonus = 1
            else:
                bonus = 0
            value = base + bonus
        else:
            opponent = mask ^ own
            opponent_completions = tables.completions(opponent)
            best = -tables.size  # best_score = -size; ties only move best_column, never the value
            rest = playable
            while rest:
                bit = rest & -rest
                rest ^= bit
                score = -_kaggle_node_value(tables, opponent, mask | bit, depth - 1, opponent_completions)
                if score > best:
                    best = score
            value = float(best)
    if len(cache) >= _NEGAMAX_CACHE_LIMIT:
        cache.clear()
    cache[key] = value
    return value


def kaggle_immediate_win(position: Position) -> int | None:
    """The lowest column where the player to move wins at once (what Kaggle's negamax plays), or None.

    :param position: a position where the game is not over
    """
    require_playing(position)
    geometry = position.geometry
    tables = tables_for(geometry)
    wins = tables.completions(position.stones[position.to_move]) & geometry.playable_cells(position.mask)
    return columns_of(geometry, wins)[0] if wins else None


def kaggle_negamax_scores(position: Position) -> dict[int, float] | None:
    """Kaggle's negamax score of every legal root column, or None when the mover wins at once.

    Kaggle's agent returns the lowest winning column before scoring anything else in that case
    (see ``kaggle_immediate_win``).

    :param position: a position where the game is not over; the player to move is Kaggle's ``mark``
    :returns: ``{column: score}`` for every legal column, equal to Kaggle's scores
    """
    require_playing(position)
    geometry = position.geometry
    tables = tables_for(geometry)
    own = position.stones[position.to_move]
    mask = position.mask
    if tables.completions(own) & geometry.playable_cells(mask):
        return None
    if compiled.available(geometry):
        if tables.kaggle_constants is None:
            tables.kaggle_constants = compiled.kaggle_constants(tables)
        legal = geometry.legal_moves(mask)
        bits = [geometry.drop_bit(mask, column) for column in legal]
        found = compiled.kaggle_scores(tables.kaggle_constants, own, mask, KAGGLE_NEGAMAX_DEPTH - 1, bits)
        return dict(zip(legal, found))
    opponent = mask ^ own
    opponent_completions = tables.completions(opponent)
    scores: dict[int, float] = {}
    for column in geometry.legal_moves(mask):
        bit = geometry.drop_bit(mask, column)
        child = _kaggle_node_value(tables, opponent, mask | bit, KAGGLE_NEGAMAX_DEPTH - 1, opponent_completions)
        scores[column] = 0.0 - child  # not -0.0 for a draw
    return scores


def kaggle_negamax_move(position: Position, rng: np.random.Generator) -> int:
    """The column Kaggle's ``negamax_agent`` plays, with its coin flips drawn from ``rng``.

    Equal best scores are resolved as Kaggle does: in column order, a column replaces the current
    best when its score is higher, or equal and a fair coin says so.

    :param position: a position where the game is not over
    :param rng: source of the coin flips (and of the fallback random column)
    """
    win = kaggle_immediate_win(position)
    if win is not None:
        return win
    scores = kaggle_negamax_scores(position)
    assert scores is not None
    best_score: float = -position.geometry.size
    best_column: int | None = None
    for column, score in scores.items():
        if score > best_score or (score == best_score and rng.random() < 0.5):
            best_score = score
            best_column = column
    if best_column is None:  # Kaggle: choice over the non-full columns
        legal = list(scores)
        best_column = legal[int(rng.integers(len(legal)))]
    return best_column
