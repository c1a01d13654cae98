"""The Kaggle submission as one Python source template, and nothing else.

``@@NAME@@`` markers are filled in by :func:`connectx_gym.submission.build.render_submission`;
nothing else is substituted, so the template is plain Python. The submission must be a single
file that imports only the standard library and numpy, so it carries its own copies of code the
package also has (the observation planes, the opening book's position
numbers of :mod:`connectx_gym.data.book` and the alpha-beta proof): those copies are intended. The
forward pass and the PUCT tree search are not copied: ``@@NETWORK@@`` receives the package's own
source of :mod:`connectx_gym.inference.network`, ``@@TREE_SEARCH@@`` that of
:mod:`connectx_gym.search.puct_board` and :mod:`connectx_gym.search.puct`, and nothing here may
reuse their top-level names (a test checks). ``agent`` must stay the last callable defined, since
Kaggle plays that one.
"""

from __future__ import annotations

SUBMISSION_TEMPLATE = r'''"""ConnectX agent for Kaggle, exported by connectx_gym.export from @@SOURCE@@.

A MaskablePPO policy (@@ARCH@@) trained on a @@ROWS@@x@@COLUMNS@@ board with
inarow @@INAROW@@, evaluated in numpy; the weights are embedded below. Kaggle plays the last
callable of this file: ``agent(observation, configuration) -> column``.

Search: @@SEARCH_DOC@@

Opening book: @@BOOK_DOC@@
"""

import base64
import io
import time
import zlib

import numpy as np

BOARD = {"rows": @@ROWS@@, "columns": @@COLUMNS@@, "inarow": @@INAROW@@}
ACTIVATION = "@@ACTIVATION@@"
#: per-move search budget in milliseconds; None plays the greedy policy alone
SEARCH_MS = @@SEARCH_MS@@

_WEIGHTS_B64 = (
@@WEIGHTS@@
)


def _load_weights():
    """(conv layers, policy hidden layers, action head, value hidden layers, value head) from the embedded
    compressed npz."""
    with np.load(io.BytesIO(base64.b64decode(_WEIGHTS_B64)), allow_pickle=False) as archive:
        arrays = {key: np.ascontiguousarray(archive[key], dtype=np.float32) for key in archive.files}

    def stack(prefix):
        layers, i = [], 0
        while prefix + str(i) + ".weight" in arrays:
            layers.append((arrays[prefix + str(i) + ".weight"], arrays[prefix + str(i) + ".bias"]))
            i += 1
        return layers

    heads = [(arrays[name + ".weight"], arrays[name + ".bias"]) if name + ".weight" in arrays else None
             for name in ("head", "value_head")]  # a file without search carries no value head
    return stack("conv"), stack("hidden"), heads[0], stack("value_hidden"), heads[1]


_CONV, _HIDDEN, _HEAD, _VALUE_HIDDEN, _VALUE_HEAD = _load_weights()
del _WEIGHTS_B64

#: the opening book's depth: it holds every position with up to this many stones (None: no book)
BOOK_PLIES = @@BOOK_PLIES@@

_BOOK_B64 = (
@@BOOK@@
)


def _binomials(size):
    """Pascal's triangle as a square table: ``table[n][k]`` is C(n, k), 0 for k > n."""
    table = [[1] + [0] * (size - 1)]
    for n in range(1, size):
        table.append([1] + [table[n - 1][k - 1] + table[n - 1][k] for k in range(1, size)])
    return table


_C = _binomials(48)


def _load_book():
    """(best-column bits by position number, first number of each stone count), or None without a book."""
    if BOOK_PLIES is None:
        return None
    table = zlib.decompress(base64.b64decode(_BOOK_B64))
    columns = BOARD["columns"]
    offsets = [0]
    for stones in range(BOOK_PLIES + 1):
        offsets.append(offsets[-1] + _C[stones + columns - 1][columns - 1] * _C[stones][(stones + 1) // 2])
    if len(table) != offsets[-1]:
        raise ValueError("the embedded opening book has %d entries, expected %d" % (len(table), offsets[-1]))
    return table, offsets


_BOOK = _load_book()
del _BOOK_B64


# ---------------------------------------------------------------- forward pass (numpy)
@@NETWORK@@


_NETWORK = Network(_CONV, _HIDDEN, _HEAD, _VALUE_HIDDEN, _VALUE_HEAD, ACTIVATION)
#: unmasked action logits (N, columns) for planes (N, 4, rows, columns) or (4, rows, columns)
logits = _NETWORK.logits
#: logits (N, columns) and values of the side to move (N,) from one pass of the shared features
policy_value = _NETWORK.policy_value


def encode(grid, mark):
    """Planes for the player ``mark`` to move on ``grid`` (rows, columns; top row first):
    own stones, the other player's stones, playable cells, 1 if ``mark`` moves first."""
    rows, columns = grid.shape
    planes = np.zeros((4, rows, columns), dtype=np.float32)
    planes[0] = grid == mark
    planes[1] = grid == 3 - mark
    supported = np.ones((rows, columns), dtype=bool)
    supported[:-1] = grid[1:] != 0
    planes[2] = (grid == 0) & supported
    planes[3] = 1.0 if mark == 1 else 0.0
    return planes


# ---------------------------------------------------------------- reading Kaggle's arguments
def _field(obj, key, default=None):
    """``obj[key]`` or ``obj.key``: Kaggle passes Structs (dicts with attribute access)."""
    try:
        return obj[key]
    except (KeyError, TypeError, IndexError):
        return getattr(obj, key, default)


def read_position(observation, configuration):
    """(grid, mark) from Kaggle's observation, after checking the board matches the model's."""
    size = {}
    for key in ("rows", "columns", "inarow"):
        value = _field(configuration, key) if configuration is not None else None
        size[key] = BOARD[key] if value is None else int(value)
    if size != BOARD:
        raise ValueError(
            "this agent was trained on %(rows)dx%(columns)d inarow %(inarow)d" % BOARD
            + ", got %(rows)dx%(columns)d inarow %(inarow)d" % size
            + "; export a model trained on this board size"
        )
    board = _field(observation, "board")
    mark = _field(observation, "mark")
    if board is None or mark is None:
        raise ValueError("observation needs 'board' and 'mark', got %r" % (observation,))
    mark = int(mark)
    if mark not in (1, 2):
        raise ValueError("observation.mark must be 1 or 2, got %r" % (mark,))
    grid = np.asarray(board, dtype=np.int64).ravel()
    if grid.size != BOARD["rows"] * BOARD["columns"]:
        raise ValueError("observation.board has %d cells, expected %d" % (grid.size, BOARD["rows"] * BOARD["columns"]))
    return grid.reshape(BOARD["rows"], BOARD["columns"]), mark


# ---------------------------------------------------------------- opening book
def _book_number(stacks, offsets):
    """A position's number in the book: ``stacks`` holds each column's marks, bottom up. Positions of
    ``k`` stones are numbered by the rank of their column heights among all ways to put ``k`` stones
    into the columns, then by the rank of the places of mark 1 in the stones read column by column."""
    stones = sum(len(stack) for stack in stacks)
    last = len(stacks) - 1
    heights_rank, rest = 0, stones
    for c in range(last):
        parts = last - c
        for taken in range(len(stacks[c])):
            heights_rank += _C[rest - taken + parts - 1][parts - 1]
        rest -= len(stacks[c])
    colours_rank = firsts = place = 0
    for stack in stacks:
        for mark in stack:
            if mark == 1:
                firsts += 1
                colours_rank += _C[place][firsts]
            place += 1
    return offsets[stones] + heights_rank * _C[stones][(stones + 1) // 2] + colours_rank


def book_columns(grid):
    """The opening book's perfect moves (columns with the best exact score) on ``grid``, or None when
    the position is not in the book. A position and its mirror image are stored once, under the
    smaller of their numbers."""
    if _BOOK is None:
        return None
    table, offsets = _BOOK
    rows, columns = grid.shape
    stacks = []
    for column in grid[::-1].T.tolist():
        height = column.index(0) if 0 in column else rows
        if any(column[height:]) or any(mark not in (1, 2) for mark in column[:height]):
            return None  # a floating or unknown stone: not a position of a game
        stacks.append(column[:height])
    stones = sum(len(stack) for stack in stacks)
    if stones > BOOK_PLIES or sum(stack.count(1) for stack in stacks) != (stones + 1) // 2:
        return None
    own, mirrored = _book_number(stacks, offsets), _book_number(stacks[::-1], offsets)
    bits = table[min(own, mirrored)]
    if mirrored < own:
        bits = sum(1 << (columns - 1 - c) for c in range(columns) if bits >> c & 1)
    return [c for c in range(columns) if bits >> c & 1] or None


# ---------------------------------------------------------------- PUCT tree search (the package's, verbatim)
@@TREE_SEARCH@@


# ---------------------------------------------------------------- exact proof (alpha-beta on bitboards)
PROOF_WIN = 1 << 20  # a win at ply p (the root move is ply 1) scores PROOF_WIN - p


class _Timeout(Exception):
    pass


class _Tables(SearchBoard):
    """The alpha-beta proof's view of the board: the tree search's masks, and columns centre first."""

    def __init__(self, rows, columns, inarow):
        SearchBoard.__init__(self, rows, columns, inarow)
        middle = (columns - 1) / 2.0
        center = sorted(range(columns), key=lambda c: (abs(c - middle), c))
        self.center_masks = [self.column_masks[c] for c in center]

    def completions(self, stones):
        """Cells where one more of ``stones`` completes ``inarow`` in a line (occupied ones too)."""
        return self.wins(stones, 0)

    def bitboards(self, grid, mark):
        """(stones of ``mark``, all stones) of a (rows, columns) grid, top row first."""
        own = mask = 0
        rows, height = self.rows, self.height
        for c in range(self.columns):
            for h in range(rows):
                value = grid[rows - 1 - h, c]
                if value == 0:
                    break
                bit = 1 << (c * height + h)
                mask |= bit
                if value == mark:
                    own |= bit
        return own, mask


def _search(tables, deadline, root_stones):
    """A fail-soft alpha-beta negamax scoring only proven results: PROOF_WIN - ply, -(PROOF_WIN - ply) or 0."""
    full, bottom, completions = tables.full, tables.bottom, tables.completions
    center_masks = tables.center_masks
    transpositions = {}
    clock = time.perf_counter

    def negamax(own, mask, depth, alpha, beta, own_wins):
        if clock() > deadline:
            raise _Timeout()
        if mask == full:
            return 0
        ply = bin(mask).count("1") - root_stones
        playable = (mask + bottom) & full
        if own_wins & playable:
            return PROOF_WIN - ply - 1
        other = mask ^ own
        other_wins = completions(other)
        candidates = playable
        threats = other_wins & playable
        if threats:
            if threats & (threats - 1):
                return -(PROOF_WIN - ply - 2)  # two threats: one cannot block both
            candidates = threats
        candidates &= ~(other_wins >> 1)  # never play under the opponent's winning cell
        if not candidates:
            return -(PROOF_WIN - ply - 2)
        if depth <= 1:
            return 0
        key = (own, mask)
        entry = transpositions.get(key)
        first = 0
        if entry is not None:
            entry_depth, flag, stored, first = entry
            if entry_depth >= depth and (flag == 0 or (flag > 0 and stored >= beta) or (flag < 0 and stored <= alpha)):
                return stored
        alpha_in = alpha
        order = [candidates & m for m in center_masks if candidates & m]
        if first & candidates:
            order.remove(first)
            order.insert(0, first)
        best, best_bit = -PROOF_WIN - 1, 0
        for bit in order:
            score = -negamax(other, mask | bit, depth - 1, -beta, -alpha, other_wins)
            if score > best:
                best, best_bit = score, bit
                if score > alpha:
                    alpha = score
                    if alpha >= beta:
                        break
        flag = -1 if best <= alpha_in else (1 if best >= beta else 0)
        transpositions[key] = (depth, flag, best, best_bit)
        return best

    return negamax


def prove(tables, own, mask, order, deadline):
    """Exact alpha-beta proofs of the root moves ``order`` (legal columns, none an immediate win or a
    forced block: the tree's rules take those), by iterative deepening until ``deadline``.

    Returns ``(a column with a forced win or None, {column: plies to its proven loss})``.
    """
    other = mask ^ own
    drop = {c: (mask + tables.bottom_cells[c]) & tables.column_masks[c] for c in order}
    other_wins = tables.completions(other)
    negamax = _search(tables, deadline, bin(mask).count("1"))
    lost_at = {}
    empty = tables.rows * tables.columns - bin(mask).count("1")
    depth = 1
    try:
        while depth < empty:
            depth += 1
            for column in order:
                if column in lost_at:
                    continue
                score = -negamax(other, mask | drop[column], depth - 1, -1, 1, other_wins)
                if score > 0:
                    return column, lost_at
                if score < 0:
                    lost_at[column] = depth
            if len(lost_at) >= len(order) - 1:
                break
    except _Timeout:
        pass
    return None, lost_at


# ---------------------------------------------------------------- the agent (keep it last)
#: the tree search's constants (prior weight, leaves per round, first-play reduction)
C_PUCT = @@C_PUCT@@
TREE_BATCH = @@TREE_BATCH@@
FPU_REDUCTION = @@FPU_REDUCTION@@
#: share of the move's budget the exact alpha-beta proof may use before the tree search takes over
PROOF_SHARE = @@PROOF_SHARE@@
#: how the last move was chosen: "book", "rules" (an immediate win, a forced block, a proven root),
#: "proof" (alpha-beta), "tree" (the PUCT search's most visited move), "policy" (a fallback), "greedy"
LAST_MOVE = {"source": None, "simulations": 0}
_STATE = {}


def _tree_search():
    """The search and the alpha-beta tables of this board (one board object serves both), built once."""
    if not _STATE:
        tables = _STATE["tables"] = _Tables(BOARD["rows"], BOARD["columns"], BOARD["inarow"])
        _STATE["search"] = TreeSearch(
            tables, policy_value, c_puct=C_PUCT, batch=TREE_BATCH, fpu_reduction=FPU_REDUCTION, cache_size=100000
        )
        _STATE["previous"] = None
    return _STATE["search"], _STATE["tables"]


def _reused_root(search, own, mask):
    """The last move's tree, two plies on, when it holds this position (its visits then count)."""
    previous = _STATE.get("previous")
    if previous is None:
        return None
    after = search.advance(previous[0], [previous[1]])
    for child in (after.children if after is not None else []):
        if child is not None and child.own == own and child.mask == mask:
            return child
    return None


def search_move(grid, mark, deadline):
    """The column to play after the book: the tree's rules, an exact proof, then PUCT until ``deadline``."""
    search, tables = _tree_search()
    own, mask = tables.bitboards(grid, mark)
    root = _reused_root(search, own, mask)
    if root is None:
        root = search.root(own, mask)
    search.run([root], simulations=0)  # the root's priors and value (nothing more)
    source = "rules"
    if root.proven is None and len(root.moves) > 1:
        order = sorted(root.moves, key=lambda c: -root.priors[root.moves.index(c)])
        proof_deadline = time.perf_counter() + PROOF_SHARE * max(0.0, deadline - time.perf_counter())
        won, lost = prove(tables, own, mask, order, proof_deadline)
        if won is not None:
            _STATE["previous"] = None
            LAST_MOVE.update(source="proof", simulations=root.total)
            return won
        search.exclude(root, lost)
        source = "proof" if root.proven is not None else "tree"
        if root.proven is None:
            search.run([root], seconds=max(0.0, deadline - time.perf_counter()))
    result = search.result(root)
    _STATE["previous"] = (root, result.move)
    LAST_MOVE.update(source=source, simulations=root.total)
    return result.move


def agent(observation, configuration):
    """Kaggle ConnectX agent: the column (0-based) to drop a stone into."""
    start = time.perf_counter()
    grid, mark = read_position(observation, configuration)
    legal = grid[0] == 0
    if not legal.any():
        raise ValueError("the board is full: there is no legal move")
    scores = logits(encode(grid, mark))[0]
    greedy = int(np.argmax(np.where(legal, scores, -np.inf)))
    if SEARCH_MS is None:
        LAST_MOVE.update(source="greedy", simulations=0)
        return greedy
    best = book_columns(grid)
    if best:
        order = sorted(np.flatnonzero(legal).tolist(), key=lambda c: -scores[c])
        for column in order:
            if column in best:
                LAST_MOVE.update(source="book", simulations=0)
                return int(column)  # the policy's favourite perfect move
    try:
        column = int(search_move(grid, mark, start + SEARCH_MS / 1000.0))
        if legal[column]:
            return column
    except Exception:  # never forfeit over the search: the policy's move is always legal
        _STATE.clear()
    LAST_MOVE.update(source="policy", simulations=0)
    return greedy
'''
