"""AlphaZero's self-play: games in which the PUCT search plays both seats, and the training targets
they leave behind.

``play_games`` plays ``games`` games at once on one board with one network. Every move of every
game is a search of ``simulations`` (the tree of the previous move is kept: after a move, the
subtree of the position reached carries its visits into the next search); the live games' roots
advance together in :meth:`~connectx_gym.search.puct.TreeSearch.run`, which collects up to
``batch`` leaves per tree per round (spread by a virtual loss) and evaluates all of them in one
forward pass of the numpy network. So a worker's network calls are batches of about
``games * batch`` positions, which is what keeps the bare forward pass the bottleneck.

Exploration: Dirichlet noise on every root's priors, and for the first ``temperature_moves`` plies
of a game the move is drawn in proportion to the visit counts (then the most visited move). With
Gumbel targets the Gumbel noise at the root takes the Dirichlet noise's place, and the first
``temperature_moves`` moves are drawn from the improved policy (then sequential halving's winner).

Each searched position leaves a sample: the position (the mover's stones and all stones, in the
search's bitboard layout), the policy target (the visit distribution; all mass on the chosen move
where the tree proved the position), the search's root value ``q`` (exact where proven) and, once
the game ends, its outcome ``z`` for the mover. The value target is chosen later
(:func:`value_targets`): ``z``, ``q`` or their mean; a proven position always carries its exact
value. With ``length_weight`` > 0, a decided game's outcome (and a proven position's exact value)
shrinks with the game's length: +-(1 - length_weight * L / C) after L of the board's C cells, so
the targets tell a quicker win from a slower one and a slower loss from a quicker one, as the
solver's scores do. The search itself still backs up +-1 for the positions it proves inside the
tree. Randomness comes from one ``numpy`` generator per game, seeded from ``seed``, so a chunk of
games is a function of its network, settings and seed.

Imports: numpy and the search only (the worker processes stay free of torch).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from connectx_gym.search.puct import TreeSearch
from connectx_gym.search.puct_board import SearchBoard
from connectx_gym.search.targets import search_targets
from connectx_gym.training.gumbel import GumbelSearch

#: the per-sample arrays of ``Samples``
FIELDS = ("stones", "policy", "q", "z", "proven")
#: what ``Samples.stats`` counts
STATS = ("games", "positions", "evaluations", "seconds")
#: how the value target is made from the game's outcome z and the search's root value q
VALUE_TARGETS = ("z", "q", "mix")


@dataclass(frozen=True)
class SelfPlaySettings:
    """How self-play searches and explores (the ``alphazero`` config section's search keys)."""

    simulations: int = 64
    c_puct: float = 2.0
    batch: int = 8
    fpu_reduction: float = 0.2
    noise_alpha: float = 1.0
    noise_fraction: float = 0.25
    temperature_moves: int = 8
    #: ``visits`` (PUCT at the root, the visit distribution) or ``gumbel`` (Gumbel AlphaZero's root)
    policy_target: str = "visits"
    #: Gumbel: the moves kept for sequential halving
    considered: int = 16
    #: a game decided after L of the board's C cells counts +-(1 - length_weight * L / C) (0: +-1)
    length_weight: float = 0.0


@dataclass
class Samples:
    """Positions searched in self-play and their targets (parallel arrays, one row per position)."""

    stones: np.ndarray  # uint8 (n, 2, rows, columns): the mover's and the other's, top row first
    policy: np.ndarray  # float32 (n, columns): the search's move distribution
    q: np.ndarray  # float32: the search's root value for the mover (exact where proven)
    z: np.ndarray  # float32: the game's outcome for the mover
    proven: np.ndarray  # bool: the tree proved the position
    stats: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.stones)

    @classmethod
    def join(cls, parts: list[Samples]) -> Samples:
        """One ``Samples`` of several (at least one), in order; their ``stats`` are summed."""
        joined = cls(*(np.concatenate([getattr(p, name) for p in parts]) for name in FIELDS))
        for part in parts:
            for key, value in part.stats.items():
                joined.stats[key] = joined.stats.get(key, 0) + value
        return joined


def value_targets(samples: Samples, kind: str) -> np.ndarray:
    """The value target of each sample: the outcome ``z``, the root value ``q`` or their mean ``mix``;
    a proven position's is its exact value whatever the kind."""
    if kind not in VALUE_TARGETS:
        raise ValueError(f"value target must be one of {'|'.join(VALUE_TARGETS)}, got {kind!r}")
    target = {"z": samples.z, "q": samples.q, "mix": (samples.z + samples.q) / 2}[kind]
    return np.where(samples.proven, samples.q, target).astype(np.float32)


class _Game:
    __slots__ = ("own", "mask", "plies", "root", "rng", "rows", "winner", "index")

    def __init__(self, index: int, rng: np.random.Generator) -> None:
        self.index = index
        self.own = self.mask = self.plies = 0
        self.root = None
        self.rng = rng
        # own, mask, policy target, q, plies to the proven end (None: not proven)
        self.rows: list[tuple[int, int, np.ndarray, float, int | None]] = []
        self.winner: int | None = None  # parity of the winner's plies (0: first player), -1 draw


def play_games(
    evaluate, board: tuple[int, int, int], games: int, settings: SelfPlaySettings, seed: Any, parallel: int = 32
) -> Samples:
    """``games`` self-play games searched with ``evaluate`` (``planes -> (logits, values)``, e.g. a numpy
    ``Network.policy_value``) on the board ``(rows, columns, inarow)``, ``parallel`` of them at a time (a
    finished game's place goes to the next); returns their samples, game after game in the order the
    games were started, and ``stats``: games, positions, leaf evaluations and the seconds spent."""
    started = time.perf_counter()
    search_board = SearchBoard(*board)
    gumbel = settings.policy_target == "gumbel"
    search = (GumbelSearch if gumbel else TreeSearch)(
        search_board,
        evaluate,
        c_puct=settings.c_puct,
        batch=settings.batch,
        fpu_reduction=settings.fpu_reduction,
        max_batch=max(64, games * settings.batch),
    )
    seeds = np.random.SeedSequence(seed).spawn(games)
    waiting = [_Game(i, np.random.default_rng(s)) for i, s in enumerate(seeds)][::-1]
    live = [waiting.pop() for _ in range(min(max(1, parallel), games))]
    done: list[_Game] = []
    noise = (settings.noise_alpha, settings.noise_fraction) if settings.noise_fraction > 0 else None
    while live:
        roots = []
        for game in live:
            if game.root is None:
                game.root = search.root(game.own, game.mask)
            roots.append(game.root)
        if gumbel:
            chosen = _gumbel_moves(search, live, settings)
        else:
            rngs = [g.rng for g in live] if noise else None
            search.run(roots, simulations=settings.simulations, noise=noise, rngs=rngs)
        still = []
        for game in live:
            if gumbel:
                column, policy, q, exact = chosen[game.index]
            else:
                temperature = 1.0 if game.plies < settings.temperature_moves else 0.0
                result = search.result(game.root, temperature=temperature, rng=game.rng)
                policy, q = search_targets(result)
                column, exact = result.move, (result.plies if result.proven is not None else None)
            game.rows.append((game.own, game.mask, policy, q, exact))
            bit = (game.mask + search_board.bottom_cells[column]) & search_board.column_masks[column]
            mover = game.own | bit
            game.plies += 1
            if search_board.has_line(mover):
                game.winner = (game.plies - 1) % 2
            elif game.mask | bit == search_board.full:
                game.winner = -1
            if game.winner is not None:
                done.append(game)
                if waiting:
                    still.append(waiting.pop())
                continue
            game.root = search.advance(game.root, [column])
            if game.root is not None and game.root.proven is not None:
                game.root = None  # a proven subtree is not searched again: a fresh root re-derives its facts
            game.own, game.mask = game.mask ^ game.own, game.mask | bit
            still.append(game)
        live = still
    done.sort(key=lambda game: game.index)
    return _samples(done, search_board, search.evaluations, time.perf_counter() - started, settings.length_weight)


def _gumbel_moves(search: GumbelSearch, live: list[_Game], settings: SelfPlaySettings) -> dict:
    """Per game index ``(column, policy target, value target, plies to the proven end or None)`` of a Gumbel search of
    every live root."""
    search.run([game.root for game in live], simulations=0)  # evaluates the fresh roots, nothing more
    chosen, open_games = {}, []
    for game in live:
        if game.root.proven is not None:  # the proof decides: all the mass on the proven move
            result = search.result(game.root)
            policy, q = search_targets(result)
            chosen[game.index] = (result.move, policy, q, result.plies)
        else:
            open_games.append(game)
    if open_games:
        found = search.search_roots(
            [g.root for g in open_games], settings.simulations, [g.rng for g in open_games], settings.considered
        )
        for game, (column, improved, value) in zip(open_games, found):
            policy = np.zeros(search.board.columns, dtype=np.float32)
            policy[game.root.moves] = improved
            if game.plies < settings.temperature_moves:  # the opening's exploration: a draw from the target
                column = int(game.root.moves[game.rng.choice(len(improved), p=improved / improved.sum())])
            chosen[game.index] = (column, policy, value, None)
    return chosen


def _samples(games: list[_Game], board: SearchBoard, evaluations: int, seconds: float, length_weight: float) -> Samples:
    cells = board.rows * board.columns
    own, mask, policy, q, z, proven = [], [], [], [], [], []
    for game in games:
        won = 1.0 - length_weight * len(game.rows) / cells  # a decided game's outcome, for its winner
        for ply, (o, m, p, value, exact) in enumerate(game.rows):
            own.append(o)
            mask.append(m)
            policy.append(p)
            if exact is not None and length_weight and value:  # a proven result, reached exact plies from here
                value = float(np.sign(value)) * (1.0 - length_weight * (ply + exact) / cells)
            q.append(value)
            z.append(0.0 if game.winner == -1 else (won if ply % 2 == game.winner else -won))
            proven.append(exact is not None)
    stones = (
        board.planes(own, mask)[:, :2].astype(np.uint8)
        if own
        else np.zeros((0, 2, board.rows, board.columns), np.uint8)
    )
    samples = Samples(
        stones,
        np.array(policy, dtype=np.float32).reshape(-1, board.columns),
        np.array(q, dtype=np.float32),
        np.array(z, dtype=np.float32),
        np.array(proven, dtype=bool),
    )
    samples.stats = dict(zip(STATS, (len(games), len(samples), evaluations, seconds)))
    return samples
