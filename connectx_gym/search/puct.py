"""PUCT tree search over a policy-value network, for any Connect-X board (standard library and numpy only).

The search is AlphaZero's: every node keeps, per move, the network's prior, a visit count and a sum
of backed-up values; a simulation walks down by ``Q + c_puct * P * sqrt(N) / (1 + n)`` to a node
not yet evaluated, asks the network for that node's move priors (softmax of the policy logits over
its moves) and value (read from the side to move, as the observation planes are), and adds the
value back up the path with its sign flipped at every ply.

On top of that, the rules are exact where they are cheap:

- a node whose mover can complete a line at once is a proven win, one whose mover faces two
  immediate threats (or only moves that let the opponent win at once) a proven loss, and a full
  board a proven draw; none of them costs a forward pass;
- facing one immediate threat, the block is the only move; a move under the opponent's winning
  cell is never searched;
- proofs propagate up the tree (MCTS-solver): a node with a child proven lost for its mover is
  won, one whose children are all proven takes the best of them. Proven nodes back up their exact
  value and are never entered again, and a proven root ends the search.

Leaf evaluations are batched: one call of ``TreeSearch.run`` advances many trees in lockstep (the
positions of an evaluation, a chunk's envs) and collects up to ``batch`` leaves per tree per round,
spread over the tree by a virtual loss, so the network sees one stacked batch per round. Budgets
are simulations, a deadline in seconds, or both. Root Dirichlet noise and a visit-count
temperature serve training; with the same generator and a simulation budget, the same position
gives the same move.

This module imports nothing but ``math``, ``time``, numpy and ``puct_board`` (the rules it
needs, equally self-contained): the Kaggle submission embeds both sources as they are, from their
imports on and without the import of ``puct_board`` (see ``connectx_gym.submission.build``), so
nothing else may name the package.
"""

import math
import time

import numpy as np

from connectx_gym.search.puct_board import SearchBoard

#: proven results, from the side to move at the node
WIN, DRAW, LOSS = 1, 0, -1
#: the selection score of a move proven lost: never chosen while any other move is open
LOST = -1e9


_NONE = ()


class Node:
    """One position of a tree: the mover's stones ``own`` and all stones ``mask``.

    ``moves`` are the columns searched; per move, ``priors``, ``visits`` and ``values`` (the sum of
    backed-up values from this node's mover's side, virtual losses included while in flight),
    ``children`` (``None`` until first visited) and ``fixed`` (the exact Q of a proven child, which
    selection uses instead of the mean; ``LOST`` keeps a lost move from being chosen). ``value`` is
    the network's value (``None`` until evaluated); ``proven`` is ``WIN``/``DRAW``/``LOSS`` for the
    mover once known, with ``plies`` to the end of the game under best play.
    """

    __slots__ = tuple(
        "own mask moves priors visits values children fixed settled total value proven plies pending winning".split()
    )

    def __init__(self, own, mask):
        self.own = own
        self.mask = mask
        # the per-move lists are made when the node is evaluated (most nodes of a tree are leaves)
        self.moves = self.priors = self.visits = self.values = self.children = self.fixed = _NONE
        self.settled = False  # whether any move has a proven child (``fixed`` is made then)
        self.total = 0
        self.value = None
        self.proven = None
        self.plies = 0
        self.pending = False
        self.winning = 0  # the mover's immediately winning playable cells


class SearchResult:
    """What a search found at its root.

    :param move: the column chosen
    :param visits: visit count per column (0 for columns not searched)
    :param q: mean backed-up value per column, from the mover's side (``None`` where unvisited)
    :param priors: the network's move probabilities per column (0 for illegal columns)
    :param value: the network's value of the root, from the mover's side
    :param search_value: the root's mean backed-up value (the exact result once proven)
    :param proven: ``"win"``, ``"draw"``, ``"loss"`` for the mover, or ``None``
    :param plies: with a proof, plies to the end of the game under best play
    :param simulations: simulations run on this root (those of a reused tree included)
    :param evaluations: leaf positions sent to the network for this root in this call
    """

    __slots__ = tuple("move visits q priors value search_value proven plies simulations evaluations".split())

    def __init__(self, move, visits, q, priors, value, search_value, proven, plies, simulations, evaluations):
        self.move, self.visits, self.q, self.priors, self.value = move, visits, q, priors, value
        self.search_value, self.proven, self.plies = search_value, proven, plies
        self.simulations, self.evaluations = simulations, evaluations

    def distribution(self):
        """Visit counts as probabilities per column (the searched policy); all mass on ``move`` when no
        visits were made (a proven or forced root)."""
        total = sum(self.visits)
        if total <= 0:
            return [1.0 if c == self.move else 0.0 for c in range(len(self.visits))]
        return [v / total for v in self.visits]

    def __repr__(self):
        return (
            f"SearchResult(move={self.move}, visits={self.visits}, value={self.value:.3f}, "
            f"search_value={self.search_value:.3f}, proven={self.proven!r}, simulations={self.simulations})"
        )


_PROVEN_NAMES = {WIN: "win", DRAW: "draw", LOSS: "loss"}


class TreeSearch:
    """PUCT search over a policy-value network on one board size.

    :param board: a ``SearchBoard``, or ``(rows, columns, inarow)``
    :param evaluate: ``planes (n, 4, rows, columns) -> (logits (n, columns), values (n,))``, the
        values from the side to move (clipped to [-1, 1] here)
    :param c_puct: weight of the prior term
    :param batch: leaves collected per tree per round (virtual loss spreads them)
    :param fpu_reduction: an unvisited move's Q is the node's network value minus this
    :param max_batch: most positions per call of ``evaluate`` (bigger rounds are split)
    :param cache_size: positions whose network output is kept for transpositions (0: none)
    """

    def __init__(self, board, evaluate, c_puct=2.0, batch=8, fpu_reduction=0.2, max_batch=64, cache_size=200_000):
        if not isinstance(board, SearchBoard):
            board = SearchBoard(*board)
        if not c_puct > 0:
            raise ValueError(f"c_puct must be > 0, got {c_puct!r}")
        if int(batch) < 1 or int(max_batch) < 1:
            raise ValueError(f"batch and max_batch must be >= 1, got {batch!r} and {max_batch!r}")
        self.board = board
        self.evaluate = evaluate
        self.c_puct = float(c_puct)
        self.batch = int(batch)
        self.fpu_reduction = float(fpu_reduction)
        self.max_batch = int(max_batch)
        self.cache_size = int(cache_size)
        self.cache = {}
        #: leaf positions sent to the network since this search was made
        self.evaluations = 0

    # ------------------------------------------------------------------ nodes
    def root(self, own, mask):
        """A fresh root for the position where the mover has ``own`` and all stones are ``mask``.

        :raises ValueError: if the game is already over there (a line on the board, or no empty cell)
        """
        board = self.board
        if mask == board.full:
            raise ValueError("the board is full: the game is over and there is no move to search")
        other = mask ^ own
        for stones in (own, other):
            if board.has_line(stones):
                raise ValueError("the position has a completed line: the game is over and there is no move to search")
        return self._node(own, mask)

    def _node(self, own, mask):
        """A node with its exact facts: proven results, the forced block, the moves worth searching."""
        board = self.board
        node = Node(own, mask)
        full = board.full
        if mask == full:
            node.proven, node.plies = DRAW, 0
            return node
        playable = (mask + board.bottom) & full
        winning = board.wins(own, mask) & playable
        if winning:
            node.proven, node.plies, node.winning = WIN, 1, winning
            return node
        threats = board.wins(mask ^ own, mask)
        forced = threats & playable
        if forced & (forced - 1):
            node.proven, node.plies = LOSS, 2
            return node
        candidates = (forced or playable) & ~(threats >> 1)
        if not candidates:
            node.proven, node.plies = LOSS, 2
            return node
        node.moves = board.columns_of(candidates)
        return node

    def _child(self, node, index):
        board = self.board
        column = node.moves[index]
        bit = (node.mask + board.bottom_cells[column]) & board.column_masks[column]
        return self._node(node.mask ^ node.own, node.mask | bit)

    # ------------------------------------------------------------------ one round
    def _select(self, root):
        """Walk from ``root`` to a leaf, adding a virtual loss on the way: ``(leaf, path)``."""
        node = root
        path = []
        c_puct, fpu_reduction = self.c_puct, self.fpu_reduction
        sqrt = math.sqrt
        while node.proven is None and node.value is not None:
            if node.children is _NONE:
                self._open(node)
            visits, values = node.visits, node.values
            total = node.total
            best_index = 0
            if len(visits) > 1:  # a forced move needs no scores
                scale = c_puct * sqrt(total) if total else c_puct
                fpu = node.value - fpu_reduction
                best, i = LOST, 0
                if node.settled:  # some moves are proven: their exact Q replaces the mean
                    for prior, n, value, fixed in zip(node.priors, visits, values, node.fixed):
                        if fixed is None:
                            score = (value / n if n else fpu) + scale * prior / (1 + n)
                        else:
                            score = fixed + scale * prior / (1 + n)
                        if score > best:
                            best, best_index = score, i
                        i += 1
                else:
                    for prior, n, value in zip(node.priors, visits, values):
                        score = (value / n if n else fpu) + scale * prior / (1 + n)
                        if score > best:
                            best, best_index = score, i
                        i += 1
            children = node.children
            visits[best_index] += 1
            values[best_index] -= 1.0
            node.total = total + 1
            path.append((node, best_index))
            child = children[best_index]
            if child is None:
                child = children[best_index] = self._child(node, best_index)
            node = child
        return node, path

    @staticmethod
    def _open(node):
        """The per-move statistics of an evaluated node, made on the first walk through it."""
        count = len(node.moves)
        node.visits = [0] * count
        node.values = [0.0] * count
        node.children = [None] * count

    @staticmethod
    def _backup(path, value):
        """Add ``value`` (from the leaf's mover's side) along ``path``, removing the virtual losses."""
        for node, index in reversed(path):
            value = -value
            node.values[index] += value + 1.0

    @staticmethod
    def _undo(path):
        for node, index in path:
            node.visits[index] -= 1
            node.values[index] += 1.0
            node.total -= 1

    @staticmethod
    def _prove(path, leaf):
        """Propagate ``leaf``'s proof up ``path`` as far as it decides the nodes above."""
        child = leaf
        for node, index in reversed(path):
            if child.proven is None or node.proven is not None:
                return
            if not node.settled:  # the list is made for the first proven child (most nodes never have one)
                node.fixed = [None] * len(node.moves)
                node.settled = True
            node.fixed[index] = LOST if child.proven == WIN else float(-child.proven)
            if child.proven == LOSS:
                node.proven, node.plies = WIN, child.plies + 1
            else:
                children = node.children
                best, plies = LOSS - 1, 0
                for other in children:
                    if other is None or other.proven is None:
                        return
                    result = -other.proven
                    # the best result; among equals the quickest win, the slowest loss
                    if result > best or (result == best and (other.plies < plies) == (result == WIN)):
                        best, plies = result, other.plies
                node.proven, node.plies = best, plies + 1
            child = node

    @staticmethod
    def _expand(leaves, outputs):
        """Freshly evaluated ``leaves`` get their priors and value (``outputs``: ``(priors, value)`` each); their
        per-move statistics wait for the first walk through them (``_open``): most never see one."""
        for leaf, (priors, value) in zip(leaves, outputs):
            leaf.priors = priors
            leaf.value = value

    def _network(self, leaves):
        """``(priors over the leaf's moves, value clipped to [-1, 1])`` for each leaf, from the cache where it can:
        a position's moves are a function of the position, so its priors are too."""
        cache = self.cache
        outputs = [cache.get((leaf.own, leaf.mask)) for leaf in leaves]
        missing = [i for i, found in enumerate(outputs) if found is None]
        for start in range(0, len(missing), self.max_batch):
            part = missing[start : start + self.max_batch]
            planes = self.board.planes([leaves[i].own for i in part], [leaves[i].mask for i in part])
            logits, values = self.evaluate(planes)
            logits = np.asarray(logits, dtype=np.float64)
            weights = np.exp(logits - logits.max(axis=1, keepdims=True)).tolist()
            values = np.clip(np.asarray(values, dtype=np.float64).reshape(-1), -1.0, 1.0).tolist()
            self.evaluations += len(part)
            if self.cache_size and len(cache) + len(part) > self.cache_size:
                cache.clear()
            for i, row, value in zip(part, weights, values):
                leaf = leaves[i]
                chosen = [row[m] for m in leaf.moves]
                total = sum(chosen)
                if not total > 1e-300:  # the legal logits far below an illegal one's: recompute them alone
                    top = max(logits[i, m] for m in leaf.moves)
                    chosen = [math.exp(logits[i, m] - top) for m in leaf.moves]
                    total = sum(chosen)
                scale = 1.0 / total
                outputs[i] = ([w * scale for w in chosen], value)
                if self.cache_size:
                    cache[(leaf.own, leaf.mask)] = outputs[i]
        return outputs

    # ------------------------------------------------------------------ searching
    def run(self, roots, simulations=None, seconds=None, noise=None, rngs=None):
        """Search every root until it has ``simulations`` visits or is proven, or ``seconds`` have passed.

        The roots advance together: each round collects up to ``batch`` leaves from every unfinished
        tree and evaluates them in one stacked batch. A root is always evaluated, whatever the budget.

        :param roots: ``Node``s from :meth:`root` (a reused subtree keeps its visits)
        :param simulations: visits each root should reach (None: no limit, ``seconds`` must be given)
        :param seconds: wall-clock budget from now (None: no limit)
        :param noise: ``(alpha, fraction)``: mix Dirichlet(alpha) noise into each root's priors
        :param rngs: one ``numpy.random.Generator`` per root, for the noise
        :returns: leaf evaluations made per root in this call
        """
        if simulations is None and seconds is None:
            raise ValueError("give a budget: simulations, seconds or both")
        deadline = None if seconds is None else time.perf_counter() + seconds
        roots = list(roots)
        made = [0] * len(roots)
        fresh = [i for i, root in enumerate(roots) if root.proven is None and root.value is None]
        if fresh:
            self._evaluate_leaves([(roots[i], [], i) for i in fresh], made)
        if noise is not None:
            alpha, fraction = noise
            if rngs is None or len(rngs) != len(roots):
                raise ValueError("root noise needs one generator per root")
            for root, rng in zip(roots, rngs):
                if root.proven is None and len(root.moves) > 1:
                    sample = rng.dirichlet([alpha] * len(root.moves))
                    root.priors = [(1 - fraction) * p + fraction * float(d) for p, d in zip(root.priors, sample)]
        active = [i for i, root in enumerate(roots) if self._wants(root, simulations)]
        clock = time.perf_counter
        while active and (deadline is None or clock() < deadline):
            pending = []
            for i in active:
                root = roots[i]
                room = self.batch if simulations is None else min(self.batch, simulations - root.total)
                for _ in range(room):
                    leaf, path = self._select(root)
                    if leaf.proven is not None:
                        self._backup(path, float(leaf.proven))
                        self._prove(path, leaf)
                        if root.proven is not None:
                            break
                    elif leaf.pending:
                        self._undo(path)
                        break
                    else:
                        leaf.pending = True
                        pending.append((leaf, path, i))
            if pending:
                self._evaluate_leaves(pending, made)
            active = [i for i in active if self._wants(roots[i], simulations)]
        return made

    @staticmethod
    def _wants(root, simulations):
        return root.proven is None and (simulations is None or root.total < simulations)

    def _evaluate_leaves(self, pending, made):
        leaves = [leaf for leaf, _, _ in pending]
        self._expand(leaves, self._network(leaves))
        for leaf, path, i in pending:
            leaf.pending = False
            made[i] += 1
            self._backup(path, leaf.value)

    # ------------------------------------------------------------------ reading the root
    def result(self, root, temperature=0.0, rng=None, evaluations=0):
        """The ``SearchResult`` of a searched root: the move to play and the statistics per column.

        The move: with a proof, the quickest win, a drawing move, or the slowest loss; otherwise the
        most visited move not proven lost (ties: higher Q, then prior), or with ``temperature`` > 0
        a move drawn with probability proportional to ``visits ** (1 / temperature)`` from ``rng``.
        """
        board = self.board
        columns = board.columns
        visits, q, priors = [0] * columns, [None] * columns, [0.0] * columns
        for i, column in enumerate(root.moves):
            visits[column] = root.visits[i] if root.visits else 0
            if root.visits and root.visits[i]:
                q[column] = root.values[i] / root.visits[i]
            if root.priors:
                priors[column] = root.priors[i]
        move = self._choose(root, temperature, rng)
        value = 0.0 if root.value is None else root.value
        if root.proven is not None:
            search_value = float(root.proven)
        elif root.total:
            search_value = sum(root.values) / root.total
        else:
            search_value = value
        proven = _PROVEN_NAMES.get(root.proven)
        return SearchResult(move, visits, q, priors, value, search_value, proven, root.plies, root.total, evaluations)

    def _choose(self, root, temperature, rng):
        board = self.board
        if root.proven == WIN and root.winning:
            return board.columns_of(root.winning & -root.winning)[0]
        if root.value is not None and root.children is _NONE:
            self._open(root)  # evaluated, never searched: the moves are chosen by prior
        children = root.children
        if root.proven is not None and children and all(c is not None and c.proven is not None for c in children):
            # the best result; then the quickest win or the slowest loss; then the most visited, the lowest column
            def rank(i):
                child = children[i]
                result = -child.proven
                return (result, -child.plies if result == WIN else child.plies, root.visits[i], -i)

            best = max(range(len(children)), key=rank)
            return root.moves[best]
        if root.proven == WIN:
            for i, child in enumerate(children):
                if child is not None and child.proven == LOSS:
                    return root.moves[i]
        open_moves = [i for i, c in enumerate(children) if c is None or c.proven != WIN]
        if not open_moves:
            return self._fallback(root)
        if temperature and temperature > 0 and rng is not None and sum(root.visits[i] for i in open_moves) > 0:
            weights = np.array([root.visits[i] for i in open_moves], dtype=np.float64) ** (1.0 / temperature)
            pick = int(rng.choice(len(open_moves), p=weights / weights.sum()))
            return root.moves[open_moves[pick]]

        def score(i):
            n = root.visits[i]
            return (n, root.values[i] / n if n else -2.0, root.priors[i], -i)

        return root.moves[max(open_moves, key=score)]

    def _fallback(self, root):
        """A lost root with nothing searched: block a threat if there is one, else any legal column."""
        board = self.board
        own, mask = root.own, root.mask
        playable = (mask + board.bottom) & board.full
        threats = board.wins(mask ^ own, mask) & playable
        cells = threats or playable
        return board.columns_of(cells & -cells)[0]

    def exclude(self, root, lost):
        """Mark moves of an evaluated ``root`` as proven lost from outside (``{column: plies to the loss}``,
        e.g. from an exact alpha-beta proof), so the search never enters them again."""
        if root.value is not None and root.proven is None and root.children is _NONE:
            self._open(root)
        for i, column in enumerate(root.moves):
            if column in lost and root.children:
                child = root.children[i]
                if child is None:
                    child = root.children[i] = self._child(root, i)
                if child.proven is None:
                    child.proven, child.plies = WIN, max(0, int(lost[column]) - 1)
                self._prove([(root, i)], child)

    def advance(self, root, columns):
        """The subtree of ``root`` after ``columns`` were played, or ``None`` when it was never built
        (so its visits can serve the next search)."""
        node = root
        for column in columns:
            if node is None or column not in node.moves or not node.children:
                return None
            node = node.children[node.moves.index(column)]
        return node
