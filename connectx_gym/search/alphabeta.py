"""Fast search opponents on bitboards: Kaggle's built-in negamax re-implemented exactly, and alpha-beta.

``kaggle_negamax_scores``/``kaggle_negamax_move`` give, for every position, the same root column
scores as the ``negamax_agent`` of ``kaggle_environments.envs.connectx`` (depth 4, its leaf
heuristic and its off-by-one included) and pick among equal scores with the same sequential coin
flips, drawn from a numpy generator instead of Python's ``random``; node values never depend on
tie-breaks, so they are cached per board size in a bounded transposition table.
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

KAGGLE_NEGAMAX_DEPTH = 4
"""The ``max_depth`` of Kaggle's ``negamax_agent``."""

WIN_SCORE = 1 << 40
"""Alpha-beta score of a win completed on the root's move; a win (loss) at ply ``n`` scores
``WIN_SCORE - n + 1`` (``-(WIN_SCORE - n + 1)``), far beyond any heuristic value."""

_NEGAMAX_CACHE_LIMIT = 100_000
"""Entries kept in a board size's Kaggle-negamax node cache before it is cleared."""

_COMPLETIONS_CACHE_LIMIT = 50_000
"""Entries kept in a board size's line-completion cache before it is cleared."""

_HEURISTIC_MAX = WIN_SCORE >> 4

_DEPTH_BITS = KAGGLE_NEGAMAX_DEPTH.bit_length()

# (column step, height step) of the four line directions: vertical, horizontal, diagonal, anti-diagonal
_LINE_DIRECTIONS = ((0, 1), (1, 0), (1, 1), (1, -1))


class _Tables:
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


_TABLES: dict[tuple[int, int, int], _Tables] = {}


def _tables(geometry: Geometry) -> _Tables:
    key = (geometry.rows, geometry.columns, geometry.inarow)
    found = _TABLES.get(key)
    if found is None:
        found = _TABLES[key] = _Tables(geometry)
    return found


def clear_caches() -> None:
    """Drop every cached node value and line table (e.g. to measure cold-cache speed)."""
    _TABLES.clear()


def _columns_of(geometry: Geometry, bits: int) -> list[int]:
    """Columns of the set bits of ``bits``, in increasing order."""
    height = geometry.column_height
    columns = []
    while bits:
        low = bits & -bits
        columns.append((low.bit_length() - 1) // height)
        bits ^= low
    return columns


def _require_playing(position: Position) -> None:
    if position.winner is not None:
        raise ValueError(f"the game is over (winner={position.winner}); there is no move to choose")


# ===================================================================== Kaggle's negamax
def _kaggle_node_value(tables: _Tables, own: int, mask: int, depth: int, own_completions: int) -> float:
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
    _require_playing(position)
    geometry = position.geometry
    tables = _tables(geometry)
    wins = tables.completions(position.stones[position.to_move]) & geometry.playable_cells(position.mask)
    return _columns_of(geometry, wins)[0] if wins else None


def kaggle_negamax_scores(position: Position) -> dict[int, float] | None:
    """Kaggle's negamax score of every legal root column, or None when the mover wins at once.

    Kaggle's agent returns the lowest winning column before scoring anything else in that case
    (see ``kaggle_immediate_win``).

    :param position: a position where the game is not over; the player to move is Kaggle's ``mark``
    :returns: ``{column: score}`` for every legal column, equal to Kaggle's scores
    """
    _require_playing(position)
    geometry = position.geometry
    tables = _tables(geometry)
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


# ===================================================================== alpha-beta
def _heuristic(tables: _Tables, own: int, opponent: int) -> int:
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


def _make_search(tables: _Tables, root_stones: int) -> Callable[[int, int, int, int, int, int], int]:
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


def _search_root(position: Position, depth: int) -> tuple[Geometry, _Tables, int, int, int]:
    """What both root searches start from: the geometry, its tables, the mover's stones, the mask
    and the mover's completion cells, after checking ``depth`` and that the game goes on."""
    _check_depth(depth)
    _require_playing(position)
    geometry = position.geometry
    tables = _tables(geometry)
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


def _root_scores(tables: _Tables, own: int, mask: int, depth: int, columns: list[int], exact: bool) -> list[int]:
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
        best_columns = _columns_of(geometry, wins)
    else:
        # centre first; window (best - 1, inf): a column scoring >= best gets its exact score, so ties are exact
        columns = [column for column in geometry.center_order if geometry.is_legal(mask, column)]
        scores = _root_scores(tables, own, mask, int(depth), columns, exact=False)
        best = max(scores)
        best_columns = sorted(column for column, score in zip(columns, scores) if score == best)
    if len(best_columns) == 1:
        return best_columns[0]
    return best_columns[int(rng.integers(len(best_columns)))]
