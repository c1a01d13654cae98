"""The numba kernels of the compiled alpha-beta search (see ``compiled``); importing this module
imports numba, so ``compiled`` imports it only when a search first needs it."""

from __future__ import annotations

import numba
import numpy as np
from numba import types
from numba.typed import Dict

_KEY = types.UniTuple(types.uint64, 2)
_VALUE = types.UniTuple(types.int64, 4)
_jit = numba.njit(cache=True, nogil=True)


@_jit
def _popcount(x):
    x = x - ((x >> np.uint64(1)) & np.uint64(0x5555555555555555))
    x = (x & np.uint64(0x3333333333333333)) + ((x >> np.uint64(2)) & np.uint64(0x3333333333333333))
    x = (x + (x >> np.uint64(4))) & np.uint64(0x0F0F0F0F0F0F0F0F)
    return np.int64((x * np.uint64(0x0101010101010101)) >> np.uint64(56))


@_jit
def _completions(stones, board_mask, directions, need):
    """Cells where one more of ``stones`` completes a line (as ``LineTables.completions``)."""
    if need == 0:
        return board_mask
    ones = ~np.uint64(0)
    result = np.uint64(0)
    behind = np.empty(need + 1, dtype=np.uint64)
    ahead = np.empty(need + 1, dtype=np.uint64)
    for d in range(directions.shape[0]):
        step = np.uint64(directions[d])
        behind[0] = ones
        n_behind = 1
        run = ones
        for i in range(1, need + 1):
            run &= stones << (np.uint64(i) * step)
            if run == 0:
                break
            behind[n_behind] = run
            n_behind += 1
        if directions[d] == 1:
            if n_behind > need:
                result |= behind[need]
            continue
        ahead[0] = ones
        n_ahead = 1
        run = ones
        for i in range(1, need + 1):
            run &= stones >> (np.uint64(i) * step)
            if run == 0:
                break
            ahead[n_ahead] = run
            n_ahead += 1
        for i in range(max(0, need + 1 - n_ahead), min(n_behind, need + 1)):
            result |= behind[i] & ahead[need - i]
    return result & board_mask


@_jit
def _heuristic(own, opponent, board_mask, directions, starts, weights, inarow, limit):
    """Weighted count of opponent-free windows by own stones, mover minus opponent (as ``alphabeta._heuristic``)."""
    total = np.int64(0)
    planes = np.empty(inarow + 1, dtype=np.uint64)
    for side in range(2):
        stones = own if side == 0 else opponent
        blockers = opponent if side == 0 else own
        sign = 1 if side == 0 else -1
        open_cells = board_mask ^ blockers
        for d in range(directions.shape[0]):
            step = np.uint64(directions[d])
            windows = starts[d]
            for i in range(inarow):
                windows &= open_cells >> (np.uint64(i) * step)
                if windows == 0:
                    break
            if windows == 0:
                continue
            n_planes = 0
            for i in range(inarow):
                carry = (stones >> (np.uint64(i) * step)) & windows
                for b in range(n_planes):
                    if carry == 0:
                        break
                    plane = planes[b]
                    planes[b] = plane ^ carry
                    carry &= plane
                if carry != 0:
                    planes[n_planes] = carry
                    n_planes += 1
            for w in range(weights.shape[0]):
                count = weights[w, 0]
                if count >> n_planes:
                    continue
                exact = windows
                for b in range(n_planes):
                    exact &= planes[b] if (count >> b) & 1 else ~planes[b]
                    if exact == 0:
                        break
                if exact != 0:
                    total += sign * weights[w, 1] * _popcount(exact)
    if total > limit:
        return limit
    if total < -limit:
        return -limit
    return total


@_jit
def _search(own, mask, depth, alpha, beta, own_completions, root_stones, g, table):
    board_mask, bottom_mask, directions, starts, weights, center, inarow, win, limit = g
    if mask == board_mask:
        return np.int64(0)
    ply = _popcount(mask) - root_stones
    playable = (mask + bottom_mask) & board_mask
    if own_completions & playable:
        return win - ply
    opponent = mask ^ own
    opponent_completions = _completions(opponent, board_mask, directions, inarow - 1)
    candidates = playable
    forced = opponent_completions & playable
    if forced:
        if forced & (forced - np.uint64(1)):
            return -(win - ply - 1)
        candidates = forced
    candidates &= ~(opponent_completions >> np.uint64(1))
    if candidates == 0:
        return -(win - ply - 1)
    if depth <= 0:
        return _heuristic(own, opponent, board_mask, directions, starts, weights, inarow, limit)
    upper = win - ply - 2
    if beta > upper:
        beta = upper
        if alpha >= beta:
            return beta
    key = (own, mask)
    first = np.uint64(0)
    if key in table:
        entry_depth, flag, stored, stored_first = table[key]
        first = np.uint64(stored_first)
        if entry_depth >= depth:
            if flag == 0:
                return stored
            if flag == 1 and stored >= beta:
                return stored
            if flag == 2 and stored <= alpha:
                return stored
    alpha_in = alpha
    best = -win - 1
    best_bit = np.uint64(0)
    order = np.empty(center.shape[0] + 1, dtype=np.uint64)
    n = 0
    if first & candidates:
        order[0] = first
        n = 1
        for m in center:
            if candidates & m and not first & m:
                order[n] = candidates & m
                n += 1
    else:
        for m in center:
            if candidates & m:
                order[n] = candidates & m
                n += 1
    for k in range(n):
        bit = order[k]
        score = -_search(opponent, mask | bit, depth - 1, -beta, -alpha, opponent_completions, root_stones, g, table)
        if score > best:
            best = score
            best_bit = bit
            if score > alpha:
                alpha = score
                if alpha >= beta:
                    break
    flag = 2 if best <= alpha_in else (1 if best >= beta else 0)
    table[key] = (np.int64(depth), np.int64(flag), best, np.int64(best_bit))
    return best


@_jit
def root_scores(own, mask, depth, bits, exact, g):
    """Scores of the root moves ``bits`` (in order) sharing one transposition table.

    ``exact``: every move gets a full window (``alphabeta_scores``); otherwise a move is searched
    with the window (best - 1, inf), so that every score >= the best so far is exact
    (``alphabeta_move``'s tie-break needs exact ties only).
    """
    board_mask, bottom_mask, directions, starts, weights, center, inarow, win, limit = g
    table = Dict.empty(key_type=_KEY, value_type=_VALUE)
    root_stones = _popcount(mask)
    opponent = mask ^ own
    opponent_completions = _completions(opponent, board_mask, directions, inarow - 1)
    infinity = win + 1
    scores = np.empty(bits.shape[0], dtype=np.int64)
    best = -infinity
    for k in range(bits.shape[0]):
        floor = -infinity if exact or k == 0 or best == -infinity else best - 1
        scores[k] = -_search(
            opponent, mask | bits[k], depth - 1, -infinity, -floor, opponent_completions, root_stones, g, table
        )
        if scores[k] > best:
            best = scores[k]
    return scores


@_jit
def _kaggle_value(own, mask, depth, own_completions, k):
    """Kaggle's ``negamax`` node value for the mover with ``own`` stones (as ``negamax._kaggle_node_value``)."""
    board_mask, bottom_mask, directions, need, size, height, below_cells = k
    if mask == board_mask:
        return 0.0
    playable = (mask + bottom_mask) & board_mask
    base = (size + 1 - _popcount(mask)) / 2
    if own_completions & playable:
        return base
    if depth <= 0:
        left = (own << np.uint64(height)) & playable
        right = (own >> np.uint64(height)) & playable
        below = (own << np.uint64(1)) & playable & below_cells
        if left & right & below:
            bonus = 3
        elif (left & right) | (left & below) | (right & below):
            bonus = 2
        elif left | right | below:
            bonus = 1
        else:
            bonus = 0
        return base + bonus
    opponent = mask ^ own
    opponent_completions = _completions(opponent, board_mask, directions, need)
    best = float(-size)
    rest = playable
    while rest:
        bit = rest & (~rest + np.uint64(1))
        rest ^= bit
        score = -_kaggle_value(opponent, mask | bit, depth - 1, opponent_completions, k)
        if score > best:
            best = score
    return best


@_jit
def kaggle_scores(own, mask, depth, bits, k):
    """Kaggle's negamax score of each root move ``bits`` searched ``depth`` plies below the root."""
    board_mask, bottom_mask, directions, need, size, height, below_cells = k
    opponent = mask ^ own
    opponent_completions = _completions(opponent, board_mask, directions, need)
    scores = np.empty(bits.shape[0], dtype=np.float64)
    for i in range(bits.shape[0]):
        scores[i] = 0.0 - _kaggle_value(opponent, mask | bits[i], depth, opponent_completions, k)
    return scores
