"""The Kaggle agent, as the package's own linted and tested code: the body of every exported file.

``connectx_gym.submission.build`` writes a submission as one file that imports only the standard
library and numpy: its docstring, this module's imports less those of the package, the settings
block it writes for the file in place of the one here (the board, the embedded weights and book,
the search's constants), the sources of the modules the agent uses (the forward pass
:mod:`connectx_gym.inference.network`, the PUCT search :mod:`connectx_gym.search.puct_board` and
:mod:`connectx_gym.search.puct`, the exact proof :mod:`connectx_gym.search.proof`, the book's
numbering :mod:`connectx_gym.data.book_index`), then this module's code after the settings. So
nothing below the settings may name the package, and no two of those parts may define the same
top-level name (a test checks). ``agent`` must stay the last callable defined, since Kaggle plays
that one. Imported in the package, the settings below describe an empty file: no weights, no book.
"""

import base64
import io
import time
import zlib

import numpy as np

from connectx_gym.data.book_index import book_moves, ply_offsets
from connectx_gym.inference.network import Network
from connectx_gym.search.proof import ProofBoard, prove
from connectx_gym.search.puct import TreeSearch

# ---------------------------------------------------------------- settings (each file has its own)
BOARD = {"rows": 6, "columns": 7, "inarow": 4}
ACTIVATION = "relu"
#: per-move search budget in milliseconds; None plays the greedy policy alone
SEARCH_MS = None
#: the network's layers: base64 of a compressed npz (``conv0.weight``, ``hidden0.bias``, ``head.weight``, ...)
_WEIGHTS_B64 = ""
#: the opening book's depth: it holds every position with up to this many stones (None: no book)
BOOK_PLIES = None
#: the book's table, zlib-compressed, base64
_BOOK_B64 = ""
#: the tree search's constants (prior weight, leaves per round, first-play reduction)
C_PUCT = 1.0
TREE_BATCH = 1
FPU_REDUCTION = 0.0
#: share of the move's budget the exact alpha-beta proof may use before the tree search takes over
PROOF_SHARE = 0.5
# ---------------------------------------------------------------- end of the settings


def _load_network():
    """The embedded network (its value half only in a file with a search), or None in an empty file."""
    if not _WEIGHTS_B64:
        return None
    with np.load(io.BytesIO(base64.b64decode(_WEIGHTS_B64)), allow_pickle=False) as archive:
        arrays = {key: np.ascontiguousarray(archive[key], dtype=np.float32) for key in archive.files}

    def stack(prefix):
        layers, i = [], 0
        while prefix + str(i) + ".weight" in arrays:
            layers.append((arrays[prefix + str(i) + ".weight"], arrays[prefix + str(i) + ".bias"]))
            i += 1
        return layers

    def head(name):
        return (arrays[name + ".weight"], arrays[name + ".bias"]) if name + ".weight" in arrays else None

    blocks, i = [], 0
    while "block" + str(i) + ".0.weight" in arrays:
        blocks.append([head("block" + str(i) + "." + str(j)) for j in (0, 1)])
        i += 1
    return Network(
        stack("conv"), stack("hidden"), head("head"), stack("value_hidden"), head("value_head"), ACTIVATION, blocks
    )


def _load_book():
    """The book's table (best-column bits by position number), or None without a book."""
    if BOOK_PLIES is None:
        return None
    table = zlib.decompress(base64.b64decode(_BOOK_B64))
    expected = ply_offsets(BOARD["columns"], BOOK_PLIES)[-1]
    if len(table) != expected:
        raise ValueError(f"the embedded opening book has {len(table)} entries, expected {expected}")
    return table


_NETWORK = _load_network()
_BOOK = _load_book()
_WEIGHTS_B64 = _BOOK_B64 = None  # decoded: the text is not needed any more
#: the board's masks for the planes, the proof and the tree search: built once, on the first move
_STATE = {}
#: how the last move was chosen: "book", "rules" (an immediate win, a forced block, a proven root),
#: "proof" (alpha-beta), "tree" (the PUCT search's most visited move), "policy" (a fallback), "greedy"
LAST_MOVE = {"source": None, "simulations": 0}


# ---------------------------------------------------------------- the network
def logits(planes):
    """Unmasked action logits (N, columns) for planes (N, 4, rows, columns) or (4, rows, columns)."""
    return _NETWORK.logits(planes)


def policy_value(planes):
    """Logits (N, columns) and values of the side to move (N,) from one pass of the shared features."""
    return _NETWORK.policy_value(planes)


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
            f"this agent was trained on {BOARD['rows']}x{BOARD['columns']} inarow {BOARD['inarow']}, "
            f"got {size['rows']}x{size['columns']} inarow {size['inarow']}; export a model trained on this board size"
        )
    board = _field(observation, "board")
    mark = _field(observation, "mark")
    if board is None or mark is None:
        raise ValueError(f"observation needs 'board' and 'mark', got {observation!r}")
    mark = int(mark)
    if mark not in (1, 2):
        raise ValueError(f"observation.mark must be 1 or 2, got {mark!r}")
    grid = np.asarray(board, dtype=np.int64).ravel()
    if grid.size != BOARD["rows"] * BOARD["columns"]:
        cells = BOARD["rows"] * BOARD["columns"]
        raise ValueError(f"observation.board has {grid.size} cells, expected {cells}")
    return grid.reshape(BOARD["rows"], BOARD["columns"]), mark


def proof_board():
    """This board's masks: the proof's view, which is the tree search's plus the columns centre first."""
    if "board" not in _STATE:
        _STATE["board"] = ProofBoard(BOARD["rows"], BOARD["columns"], BOARD["inarow"])
    return _STATE["board"]


def bitboards(grid, mark):
    """(stones of ``mark``, all stones) of a (rows, columns) grid, top row first; a column's stones end
    at its first empty cell."""
    board = proof_board()
    own = mask = 0
    rows, height = board.rows, board.height
    for c in range(board.columns):
        for h in range(rows):
            value = grid[rows - 1 - h, c]
            if value == 0:
                break
            bit = 1 << (c * height + h)
            mask |= bit
            if value == mark:
                own |= bit
    return own, mask


def encode(grid, mark):
    """The network's planes (4, rows, columns) for the player ``mark`` to move on ``grid``: own stones,
    the other player's stones, playable cells, 1 if ``mark`` moves first."""
    own, mask = bitboards(grid, mark)
    return proof_board().planes([own], [mask])[0]


def book_columns(grid):
    """The opening book's perfect moves on ``grid``, or None when the position is not in the book (no
    book, too many stones, a floating or unknown stone, a finished game)."""
    if _BOOK is None:
        return None
    rows = grid.shape[0]
    stacks = []
    for column in grid[::-1].T.tolist():
        height = column.index(0) if 0 in column else rows
        if any(column[height:]) or any(mark not in (1, 2) for mark in column[:height]):
            return None  # a floating or unknown stone: not a position of a game
        stacks.append(column[:height])
    return book_moves(_BOOK, BOOK_PLIES, stacks)


# ---------------------------------------------------------------- the search
def _tree_search():
    """The tree search over the embedded network, built once."""
    if "search" not in _STATE:
        _STATE["search"] = TreeSearch(
            proof_board(),
            policy_value,
            c_puct=C_PUCT,
            batch=TREE_BATCH,
            fpu_reduction=FPU_REDUCTION,
            cache_size=100000,
        )
        _STATE["previous"] = None
    return _STATE["search"]


def _reused_root(search, own, mask):
    """The last move's tree, two plies on, when it holds this position (its visits then count)."""
    previous = _STATE.get("previous")
    if previous is None:
        return None
    after = search.advance(previous[0], [previous[1]])
    for child in after.children if after is not None else []:
        if child is not None and child.own == own and child.mask == mask:
            return child
    return None


def search_move(grid, mark, deadline):
    """The column to play after the book: the tree's rules, an exact proof, then PUCT until ``deadline``."""
    search, board = _tree_search(), proof_board()
    own, mask = bitboards(grid, mark)
    root = _reused_root(search, own, mask)
    if root is None:
        root = search.root(own, mask)
    search.run([root], simulations=0)  # the root's priors and value (nothing more)
    source = "rules"
    if root.proven is None and len(root.moves) > 1:
        order = sorted(root.moves, key=lambda c: -root.priors[root.moves.index(c)])
        proof_deadline = time.perf_counter() + PROOF_SHARE * max(0.0, deadline - time.perf_counter())
        won, lost = prove(board, own, mask, order, proof_deadline)
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


# ---------------------------------------------------------------- the agent (keep it last)
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
        for key in ("search", "previous"):
            _STATE.pop(key, None)
    LAST_MOVE.update(source="policy", simulations=0)
    return greedy
