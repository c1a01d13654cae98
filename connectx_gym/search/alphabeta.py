"""Alpha-beta search on bitboards (Kaggle's own negamax is :mod:`connectx_gym.search.negamax`).

``alphabeta_scores``/``alphabeta_move`` are a stronger depth-limited negamax with alpha-beta
pruning, centre-first ordering, forced blocks, a per-call transposition table and an open-window
count at the horizon; they prefer faster wins and slower losses and work for any board Kaggle
accepts (any rows, columns and inarow >= 1).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from connectx_gym.rules.bitboard import Geometry, Position
from connectx_gym.search import compiled
from connectx_gym.search.lines import LineTables, columns_of, require_playing, tables_for

WIN_SCORE = 1 << 40
"""Alpha-beta score of a win completed on the root's move; a win (loss) at ply ``n`` scores
``WIN_SCORE - n + 1`` (``-(WIN_SCORE - n + 1)``), far beyond any heuristic value."""


_HEURISTIC_MAX = WIN_SCORE >> 4


# ===================================================================== alpha-beta
def _heuristic(tables: LineTables, own: int, opponent: int) -> int:
    """Weighted count of opponent-free windows by own stones, mover minus opponent."""
    board_mask = tables.board_mask
    inarow = tables.inarow
    weights = tables.window_weights
    total = 0
    for stones, blockers, sign in ((own, opponent, 1), (opponent, own, -1)):
        open_cells = board_mask ^ blockers
        for step, starts in zip(tables.directions, tables.window_starts):
            windows = starts
            for i in range(inarow):
                windows &= open_cells >> (i * step)
                if not windows:
                    break
            if not windows:
                continue
            # Bit-sliced counter of own stones per window: count = sum(planes[b] << b).
            planes: list[int] = []
            for i in range(inarow):
                carry = (stones >> (i * step)) & windows
                for b in range(len(planes)):
                    if not carry:
                        break
                    plane = planes[b]
                    planes[b] = plane ^ carry
                    carry &= plane
                if carry:
                    planes.append(carry)
            for count, weight in weights:
                if count >> len(planes):
                    continue
                exact = windows
                for b, plane in enumerate(planes):
                    exact &= plane if (count >> b) & 1 else ~plane
                    if not exact:
                        break
                if exact:
                    total += sign * weight * exact.bit_count()
    if total > _HEURISTIC_MAX:
        return _HEURISTIC_MAX
    if total < -_HEURISTIC_MAX:
        return -_HEURISTIC_MAX
    return total


_EXACT, _LOWER, _UPPER = 0, 1, 2


def _make_search(tables: LineTables, root_stones: int) -> Callable[[int, int, int, int, int, int], int]:
    """A fail-soft alpha-beta negamax with its own transposition table, for one root position."""
    board_mask = tables.board_mask
    bottom_mask = tables.bottom_mask
    completions = tables.completions
    center_column_masks = tables.center_column_masks
    transpositions: dict[tuple[int, int], tuple[int, int, int, int]] = {}

    def search(own: int, mask: int, depth: int, alpha: int, beta: int, own_completions: int) -> int:
        if mask == board_mask:
            return 0
        ply = mask.bit_count() - root_stones
        playable = (mask + bottom_mask) & board_mask
        if own_completions & playable:
            return WIN_SCORE - ply
        opponent = mask ^ own
        opponent_completions = completions(opponent)
        candidates = playable
        forced = opponent_completions & playable
        if forced:
            if forced & (forced - 1):  # two threats: the opponent wins next move
                return -(WIN_SCORE - ply - 1)
            candidates = forced
        candidates &= ~(opponent_completions >> 1)  # never play under an opponent's winning cell
        if not candidates:
            return -(WIN_SCORE - ply - 1)
        if depth <= 0:
            return _heuristic(tables, own, opponent)
        # Our own win comes no earlier than two plies on: cap the window (mate-distance pruning).
        upper = WIN_SCORE - ply - 2
        if beta > upper:
            beta = upper
            if alpha >= beta:
                return beta
        key = (own, mask)
        entry = transpositions.get(key)
        first = 0
        if entry is not None:
            entry_depth, flag, stored, first = entry
            if entry_depth >= depth:
                if flag == _EXACT:
                    return stored
                if flag == _LOWER and stored >= beta:
                    return stored
                if flag == _UPPER and stored <= alpha:
                    return stored
        alpha_in = alpha
        best = -WIN_SCORE - 1
        best_bit = 0
        if first & candidates:
            order = [first] + [candidates & m for m in center_column_masks if candidates & m and not first & m]
        else:
            order = [candidates & m for m in center_column_masks if candidates & m]
        for bit in order:
            score = -search(opponent, mask | bit, depth - 1, -beta, -alpha, opponent_completions)
            if score > best:
                best = score
                best_bit = bit
                if score > alpha:
                    alpha = score
                    if alpha >= beta:
                        break
        flag = _UPPER if best <= alpha_in else (_LOWER if best >= beta else _EXACT)
        transpositions[key] = (depth, flag, best, best_bit)
        return best

    return search


def _check_depth(depth: int) -> None:
    if isinstance(depth, bool) or not isinstance(depth, (int, np.integer)) or depth < 1:
        raise ValueError(f"depth must be an integer >= 1, got {depth!r}")


def _search_root(position: Position, depth: int) -> tuple[Geometry, LineTables, int, int, int]:
    """What both root searches start from: the geometry, its tables, the mover's stones, the mask
    and the mover's completion cells, after checking ``depth`` and that the game goes on."""
    _check_depth(depth)
    require_playing(position)
    geometry = position.geometry
    tables = tables_for(geometry)
    own = position.stones[position.to_move]
    return geometry, tables, own, position.mask, tables.completions(own)


def alphabeta_scores(position: Position, depth: int) -> dict[int, int]:
    """The exact depth-limited negamax score of every legal root column (mover's point of view).

    A win completed at ply ``n`` (the root move is ply 1) scores ``WIN_SCORE - n + 1``, a loss the
    negative; anything else is the horizon heuristic or 0 for a draw.

    :param position: a position where the game is not over
    :param depth: plies searched, the root move included (>= 1)
    """
    geometry, tables, own, mask, own_completions = _search_root(position, depth)
    legal = geometry.legal_moves(mask)
    searched = [c for c in legal if not own_completions & geometry.drop_bit(mask, c)]
    found = dict(zip(searched, _root_scores(tables, own, mask, int(depth), searched, exact=True)))
    return {column: found.get(column, WIN_SCORE) for column in legal}


def _root_scores(tables: LineTables, own: int, mask: int, depth: int, columns: list[int], exact: bool) -> list[int]:
    """Scores of the root moves ``columns`` (in this order) searched to ``depth`` plies with one transposition
    table: with full windows (``exact``), or each with the window (best so far - 1, inf), which keeps every
    score >= the best exact. The compiled search (``compiled``) when the board allows it, else Python."""
    geometry = tables.geometry
    bits = [geometry.drop_bit(mask, column) for column in columns]
    if compiled.available(geometry):
        if tables.fast_arrays is None:
            tables.fast_arrays = compiled.geometry_arrays(tables)
        return compiled.root_scores(tables.fast_arrays, own, mask, depth, bits, exact, WIN_SCORE, _HEURISTIC_MAX)
    search = _make_search(tables, mask.bit_count())
    opponent = mask ^ own
    opponent_completions = tables.completions(opponent)
    infinity = WIN_SCORE + 1
    scores: list[int] = []
    for bit in bits:
        floor = max(scores) - 1 if scores and not exact else -infinity
        scores.append(-search(opponent, mask | bit, depth - 1, -infinity, -floor, opponent_completions))
    return scores


def alphabeta_move(position: Position, depth: int, rng: np.random.Generator) -> int:
    """The best column by alpha-beta search to ``depth`` plies; equal best columns are drawn with ``rng``.

    Immediate wins are always taken and single immediate threats always blocked (at any depth).

    :param position: a position where the game is not over
    :param depth: plies searched, the root move included (>= 1)
    :param rng: source of the tie-break between equally scored columns
    """
    geometry, tables, own, mask, own_completions = _search_root(position, depth)
    wins = own_completions & geometry.playable_cells(mask)
    if wins:
        best_columns = columns_of(geometry, wins)
    else:
        # centre first; window (best - 1, inf): a column scoring >= best gets its exact score, so ties are exact
        columns = [column for column in geometry.center_order if geometry.is_legal(mask, column)]
        scores = _root_scores(tables, own, mask, int(depth), columns, exact=False)
        best = max(scores)
        best_columns = sorted(column for column, score in zip(columns, scores) if score == best)
    if len(best_columns) == 1:
        return best_columns[0]
    return best_columns[int(rng.integers(len(best_columns)))]
