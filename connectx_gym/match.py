"""Seeded games between a batched policy and an opponent, all games stepped together.

``play_games`` runs ``games`` episodes of ``ConnectXEnv`` at once, half with the agent in each
seat, and asks the policy for all pending moves in one batch per ply, so a neural policy pays
one forward pass per ply instead of one per game. Game ``i`` is reset with seed ``seed + i``,
so results depend only on the seed, never on how the games are scheduled.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List

import numpy as np

from .env import ConnectXEnv

#: policy interface: (observations [n, planes, rows, columns], legal masks [n, columns]) -> columns [n]
BatchPolicy = Callable[[np.ndarray, np.ndarray], np.ndarray]

SEATS = ("first", "second")


@dataclass
class SeatRecord:
    """Wins, draws and losses of the agent in one seat."""

    wins: int = 0
    draws: int = 0
    losses: int = 0

    @property
    def games(self) -> int:
        return self.wins + self.draws + self.losses

    def add(self, outcome: str) -> None:
        if outcome == "win":
            self.wins += 1
        elif outcome == "draw":
            self.draws += 1
        else:
            self.losses += 1


@dataclass
class MatchResult:
    """Outcome of a match from the agent's side, overall and per seat."""

    opponent: str
    seats: Dict[str, SeatRecord] = field(default_factory=lambda: {seat: SeatRecord() for seat in SEATS})
    opponent_errors: List[str] = field(default_factory=list)

    @property
    def total(self) -> SeatRecord:
        total = SeatRecord()
        for record in self.seats.values():
            total.wins += record.wins
            total.draws += record.draws
            total.losses += record.losses
        return total

    @property
    def win_rate(self) -> float:
        total = self.total
        return total.wins / total.games if total.games else math.nan

    @property
    def score(self) -> float:
        """Wins plus half the draws, per game."""
        total = self.total
        return (total.wins + 0.5 * total.draws) / total.games if total.games else math.nan


def play_games(
    policy: BatchPolicy,
    opponent: Any,
    games: int,
    seed: int = 0,
    env_kwargs: Dict[str, Any] | None = None,
) -> MatchResult:
    """Play ``games`` games of ``policy`` against ``opponent``; the first half as first player.

    :param policy: batched policy, see ``BatchPolicy``
    :param opponent: opponent spec string or object with ``act(position, rng)``
    :param games: number of games (the agent is first in ``ceil(games / 2)`` of them)
    :param seed: game ``i`` is reset with ``seed + i``
    :param env_kwargs: board size and rewards for ``ConnectXEnv`` (``opponent``/``agent_seat`` are set here)
    """
    kwargs = dict(env_kwargs or {})
    kwargs.pop("opponent", None)
    kwargs.pop("agent_seat", None)
    kwargs["info_board"] = False
    if isinstance(opponent, str):
        from .opponents import make_opponent

        opponent = make_opponent(opponent)
    name = getattr(opponent, "name", type(opponent).__name__)
    result = MatchResult(opponent=name)
    first_games = (games + 1) // 2
    envs, observations, seats = [], [], []
    for index in range(games):
        seat = "first" if index < first_games else "second"
        env = ConnectXEnv(opponent=opponent, agent_seat=seat, **kwargs)
        obs, _ = env.reset(seed=seed + index)
        envs.append(env)
        observations.append(obs)
        seats.append(seat)
    active = list(range(games))
    while active:
        batch = np.stack([observations[i] for i in active])
        masks = np.stack([envs[i].action_masks() for i in active])
        actions = policy(batch, masks)
        still_active = []
        for i, action in zip(active, actions):
            obs, _, terminated, _, info = envs[i].step(int(action))
            if "opponent_error" in info:
                result.opponent_errors.append(info["opponent_error"])
            if terminated:
                result.seats[seats[i]].add(info["outcome"])
            else:
                observations[i] = obs
                still_active.append(i)
        active = still_active
    return result


def sb3_batch_policy(model: Any, deterministic: bool = True) -> BatchPolicy:
    """A ``BatchPolicy`` from a MaskablePPO model (greedy by default)."""

    def act(observations: np.ndarray, masks: np.ndarray) -> np.ndarray:
        actions, _ = model.predict(observations, action_masks=masks, deterministic=deterministic)
        return np.asarray(actions)

    return act
