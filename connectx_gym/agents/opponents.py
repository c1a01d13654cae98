"""The opponent protocol and the opponents that need nothing but the rules.

An opponent is any object with a ``name`` and ``act(position, rng) -> column``, called on the
position where it is to move; it returns whatever it chose, legal or not, and the environment
judges the answer (an illegal column or an ``OpponentError`` forfeits the game, as on Kaggle).
Here: random, Kaggle's negamax, alpha-beta search, and a weighted mixture drawn per episode.
Spec strings (``"alphabeta:4"``) are parsed and built in ``connectx_gym.agents.specs``; every
opponent pickles, so it can be shipped to worker processes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol, runtime_checkable

import numpy as np

from connectx_gym.rules.bitboard import Position
from connectx_gym.search.alphabeta import alphabeta_move
from connectx_gym.search.negamax import kaggle_negamax_move


class OpponentError(RuntimeError):
    """An opponent raised instead of answering; carries the opponent's name and the cause.

    :param opponent_name: the ``name`` of the opponent that failed
    :param cause: the exception it raised
    """

    def __init__(self, opponent_name: str, cause: BaseException) -> None:
        super().__init__(f"opponent {opponent_name!r} raised {type(cause).__name__}: {cause}")
        self.opponent_name = opponent_name
        self.cause = cause

    def __reduce__(self):
        return (type(self), (self.opponent_name, self.cause))


@runtime_checkable
class Opponent(Protocol):
    """Anything that picks a column for the player to move (``position.to_move``)."""

    name: str

    def act(self, position: Position, rng: np.random.Generator) -> int: ...


class SameSourceIsEqual:
    """Equality and hashing by what an opponent is loaded from (the attribute ``source_attribute``
    names), so two opponents built from the same file or name count as one agent."""

    source_attribute: ClassVar[str]

    def __eq__(self, other: object) -> bool:
        attribute = self.source_attribute
        return type(other) is type(self) and getattr(other, attribute) == getattr(self, attribute)

    def __hash__(self) -> int:
        return hash((type(self), getattr(self, self.source_attribute)))


# ====================================================================== opponents
@dataclass(frozen=True)
class RandomOpponent:
    """A uniformly random legal column (like Kaggle's ``random`` agent, seeded by ``rng``)."""

    name: str = field(default="random", init=False)

    def act(self, position: Position, rng: np.random.Generator) -> int:
        legal = position.legal_moves()
        return legal[int(rng.integers(len(legal)))]


@dataclass(frozen=True)
class NegamaxOpponent:
    """Kaggle's built-in ``negamax`` agent, re-implemented exactly on bitboards (see ``solver``)."""

    name: str = field(default="negamax", init=False)

    def act(self, position: Position, rng: np.random.Generator) -> int:
        return kaggle_negamax_move(position, rng)


@dataclass(frozen=True)
class AlphaBetaOpponent:
    """Alpha-beta search to ``depth`` plies (see ``solver.alphabeta_move``), with an optional chance
    ``epsilon`` of a uniformly random legal move instead, so a learner meets many lines, not one.

    :param depth: plies searched, the opponent's own move included (>= 1)
    :param epsilon: chance per move of a random legal column (0 <= epsilon < 1); 0 always searches
    """

    depth: int = 4
    epsilon: float = 0.0
    name: str = field(default="", init=False)

    def __post_init__(self) -> None:
        if isinstance(self.depth, bool) or not isinstance(self.depth, int) or self.depth < 1:
            raise ValueError(f"alphabeta depth must be an integer >= 1, got {self.depth!r}")
        if isinstance(self.epsilon, bool) or not isinstance(self.epsilon, (int, float)) or not 0 <= self.epsilon < 1:
            raise ValueError(f"alphabeta epsilon must be a number in [0, 1), got {self.epsilon!r}")
        suffix = f":{self.epsilon:g}" if self.epsilon else ""
        object.__setattr__(self, "name", f"alphabeta:{self.depth}{suffix}")

    def act(self, position: Position, rng: np.random.Generator) -> int:
        if self.epsilon and rng.random() < self.epsilon:
            return RandomOpponent().act(position, rng)
        return alphabeta_move(position, self.depth, rng)


class MixtureOpponent:
    """Draws one of several opponents per episode, with the given weights.

    :param components: ``(weight, opponent)`` pairs; weights need not sum to 1
    """

    def __init__(self, components: Sequence[tuple[float, Any]]) -> None:
        if not components:
            raise ValueError("a mixture needs at least one opponent")
        weights = np.array([float(weight) for weight, _ in components], dtype=np.float64)
        if (weights < 0).any() or weights.sum() <= 0:
            raise ValueError(f"mixture weights must be >= 0 with a positive sum, got {weights.tolist()}")
        self.probabilities = weights / weights.sum()
        self.opponents = [opponent for _, opponent in components]
        self.name = "{" + ", ".join(f"{opponent.name}: {weight:g}" for weight, opponent in components) + "}"
        self.current = self.opponents[0]

    @property
    def episode_label(self) -> str:
        return getattr(self.current, "episode_label", self.current.name)

    def start_episode(self, rng: np.random.Generator) -> None:
        index = int(rng.choice(len(self.opponents), p=self.probabilities)) if len(self.opponents) > 1 else 0
        self.current = self.opponents[index]
        start = getattr(self.current, "start_episode", None)
        if start is not None:
            start(rng)

    def batch_policy(self, position: Position) -> Any:
        """The drawn component's numpy policy for ``position``, when it has one (see ``envs.chunk``)."""
        batch_policy = getattr(self.current, "batch_policy", None)
        return batch_policy(position) if batch_policy is not None else None

    def act(self, position: Position, rng: np.random.Generator) -> int:
        return self.current.act(position, rng)
