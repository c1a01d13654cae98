"""The Kaggle file's exact proof: an alpha-beta negamax on bitboards that scores only proven results.

Before its tree search, the submission spends a share of each move's budget proving root moves won
or lost: a forced win is played at once, moves proven lost are dropped from the tree. ``prove``
deepens one ply at a time until its deadline. The search sees the board through
:class:`ProofBoard`, the tree search's own bit masks (``puct_board``) plus the columns centre first.

This module imports nothing but ``time`` and ``puct_board``, and the Kaggle submission embeds its
source from ``import time`` on without the import of ``SearchBoard`` (see
``connectx_gym.submission.build``), so nothing below the imports may name the package.
"""

import time

from connectx_gym.search.puct_board import SearchBoard

#: a win at ply p (the root move is ply 1) scores PROOF_WIN - p
PROOF_WIN = 1 << 20


class ProofTimeout(Exception):
    """The proof's deadline passed."""


class ProofBoard(SearchBoard):
    """The proof's view of the board: the tree search's masks, and the columns centre first."""

    def __init__(self, rows, columns, inarow):
        SearchBoard.__init__(self, rows, columns, inarow)
        middle = (columns - 1) / 2.0
        center = sorted(range(columns), key=lambda c: (abs(c - middle), c))
        self.center_masks = [self.column_masks[c] for c in center]

    def completions(self, stones):
        """Cells where one more of ``stones`` completes ``inarow`` in a line (occupied ones too)."""
        return self.wins(stones, 0)


# one closure keeps the negamax's locals out of attribute lookups (it runs millions of times a move)
def proof_negamax(board, deadline, root_stones):
    """A fail-soft alpha-beta negamax scoring only proven results: PROOF_WIN - ply, -(PROOF_WIN - ply) or 0.

    :return: ``negamax(own, mask, depth, alpha, beta, own_wins)`` with its own transposition table;
        it raises :class:`ProofTimeout` once ``deadline`` (``time.perf_counter``) has passed
    """
    full, bottom, completions = board.full, board.bottom, board.completions
    center_masks = board.center_masks
    transpositions = {}
    clock = time.perf_counter

    def negamax(own, mask, depth, alpha, beta, own_wins):
        if clock() > deadline:
            raise ProofTimeout()
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


def prove(board, own, mask, order, deadline):
    """Exact alpha-beta proofs of the root moves ``order`` (legal columns, none an immediate win or a
    forced block: the tree's rules take those), by iterative deepening until ``deadline``.

    :param board: the :class:`ProofBoard` of the game
    :param own: the stones of the player to move; ``mask`` all stones
    :return: ``(a column with a forced win or None, {column: plies to its proven loss})``
    """
    other = mask ^ own
    drop = {c: (mask + board.bottom_cells[c]) & board.column_masks[c] for c in order}
    other_wins = board.completions(other)
    negamax = proof_negamax(board, deadline, bin(mask).count("1"))
    lost_at = {}
    empty = board.rows * board.columns - bin(mask).count("1")
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
    except ProofTimeout:
        pass
    return None, lost_at
