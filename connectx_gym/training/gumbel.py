"""Gumbel AlphaZero's root (Danihelka et al., ICLR 2022; DeepMind's ``mctx``): policy improvement that holds
with few simulations, for the self-play of :mod:`connectx_gym.training.az_selfplay`.

At each root the search samples Gumbel noise ``g`` for the moves, keeps the ``considered`` moves with
the largest ``g + logit``, and shares the simulations out by sequential halving: in each of
``ceil(log2(considered))`` phases every surviving move gets the same number of new visits (its child is
searched as a root of its own, PUCT below it, the children of all live games in one batched call),
and the better half by ``g + logit + sigma(q)`` survives. The move played is the last survivor.

The policy target is the improved policy ``softmax(logit + sigma(completed q))``: ``q`` of a visited
(or proven) move is its child's value from the root's side; an unvisited move's is ``v_mix``, the
network's root value mixed with the visited moves' values weighted by their priors. ``sigma`` scales
the completed values, min-max normalised over the root's moves, by ``(c_visit + max visits) * c_scale``
(``mctx``'s defaults: 50 and 0.1). The value target ``q`` is ``v_mix``.
"""

from __future__ import annotations

import math

import numpy as np

from connectx_gym.search.puct import DRAW, LOSS, WIN, TreeSearch

#: mctx's defaults of the completed-Q transform (``qtransform_completed_by_mix_value``)
C_VISIT, C_SCALE = 50.0, 0.1
#: a proven child's value from the root's side
PROVEN_Q = {WIN: -1.0, DRAW: 0.0, LOSS: 1.0}


class GumbelSearch(TreeSearch):
    """``TreeSearch`` with Gumbel AlphaZero's root: :meth:`search_roots`."""

    def children(self, root):
        """The child nodes of an evaluated, unproven root, built where they were not yet."""
        if not root.children:  # evaluated, never walked through
            self._open(root)
        for i, child in enumerate(root.children):
            if child is None:
                root.children[i] = self._child(root, i)
        return root.children

    def search_roots(self, roots, simulations, rngs, considered=16):
        """Sequential halving at each evaluated, unproven root (all roots share each phase's batched calls).

        :returns: per root ``(column played, improved policy over the root's moves, v_mix)``
        """
        states = []
        for root, rng in zip(roots, rngs):
            children = self.children(root)
            logits = np.log(np.maximum(np.asarray(root.priors, dtype=np.float64), 1e-30))
            gumbel = rng.gumbel(size=len(children))
            m = min(considered, len(children))
            survivors = list(np.argsort(-(gumbel + logits))[:m])
            phases = max(1, math.ceil(math.log2(m))) if m > 1 else 1
            states.append(
                {
                    "root": root,
                    "children": children,
                    "logits": logits,
                    "gumbel": gumbel,
                    "survivors": survivors,
                    "phases": phases,
                    "target": 0,
                }
            )
        for phase in range(max(s["phases"] for s in states)):
            by_target = {}
            for state in states:
                survivors = state["survivors"]
                if phase >= state["phases"]:
                    continue
                per_move = max(1, simulations // (state["phases"] * len(survivors)))
                state["target"] += per_move
                open_children = [state["children"][i] for i in survivors if state["children"][i].proven is None]
                by_target.setdefault(state["target"], []).extend(open_children)
            for target, nodes in by_target.items():
                if nodes:
                    self.run(nodes, simulations=target)
            for state in states:
                if phase < state["phases"] and len(state["survivors"]) > 1:
                    scores = self._scores(state)
                    ranked = sorted(state["survivors"], key=lambda i: -scores[i])
                    state["survivors"] = ranked[: max(2, len(ranked) // 2)]  # as mctx: halving stops at 2
        out = []
        for state in states:
            scores = self._scores(state)
            move_index = max(state["survivors"], key=lambda i: scores[i])
            q, v_mix, visits = self._completed(state)
            improved = state["logits"] + self._sigma(q, visits)
            improved = np.exp(improved - improved.max())
            improved /= improved.sum()
            out.append((state["root"].moves[move_index], improved, v_mix))
        return out

    # ------------------------------------------------------------------ completed Q
    @staticmethod
    def _q(child):
        """A child's value from the root's side, and whether it is known (visited or proven)."""
        if child.proven is not None:
            return PROVEN_Q[child.proven], True
        if child.total:
            return -sum(child.values) / child.total, True
        if child.value is not None:
            return -child.value, True
        return 0.0, False

    def _completed(self, state):
        """The completed Q of every move from the root's side, ``v_mix``, and the visits per move."""
        root, children = state["root"], state["children"]
        priors = np.asarray(root.priors, dtype=np.float64)
        q, known = np.zeros(len(children)), np.zeros(len(children), dtype=bool)
        visits = np.zeros(len(children))
        for i, child in enumerate(children):
            q[i], known[i] = self._q(child)
            visits[i] = child.total + (1 if child.value is not None else 0)
        total = visits.sum()
        value = 0.0 if root.value is None else root.value
        if known.any() and priors[known].sum() > 0:
            weighted = (priors[known] * q[known]).sum() / priors[known].sum()
            v_mix = (value + total * weighted) / (1 + total)
        else:
            v_mix = value
        q = np.where(known, q, v_mix)
        return q, float(np.clip(v_mix, -1.0, 1.0)), visits

    @staticmethod
    def _sigma(q, visits):
        low, high = q.min(), q.max()
        scaled = (q - low) / (high - low) if high > low else np.zeros_like(q)
        return (C_VISIT + visits.max()) * C_SCALE * scaled

    def _scores(self, state):
        """Sequential halving's score of every move: ``g + logit + sigma(completed q)``."""
        q, _, visits = self._completed(state)
        return state["gumbel"] + state["logits"] + self._sigma(q, visits)
