"""What an evaluation found: the games of each pairing, summed up as W/D/L per seat, win rate with its
Wilson interval, forfeits, the JSON form of a pairing, and the score matrices a tournament is rated on."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from connectx_gym.evaluation.match import GameRecord, SeatRecord
from connectx_gym.evaluation.ratings import wilson_interval

#: distinct forfeit messages kept per pairing
MAX_ERRORS_KEPT = 5


@dataclass
class PairingResult:
    """All games of ``agent`` against ``opponent``, from the agent's side."""

    agent: str
    opponent: str
    agent_index: int
    opponent_index: int
    records: list[GameRecord] = field(default_factory=list)
    step: int | None = None

    @property
    def seats(self) -> dict[str, SeatRecord]:
        seats = {"first": SeatRecord(), "second": SeatRecord()}
        for record in self.records:
            seats[record.seat].add(record.outcome)
        return seats

    @property
    def total(self) -> SeatRecord:
        total = SeatRecord()
        for record in self.records:
            total.add(record.outcome)
        return total

    @property
    def games(self) -> int:
        return len(self.records)

    @property
    def win_rate(self) -> float:
        total = self.total
        return total.wins / total.games if total.games else math.nan

    @property
    def win_rate_ci(self) -> tuple[float, float]:
        total = self.total
        return wilson_interval(total.wins, total.games)

    @property
    def score(self) -> float:
        total = self.total
        return (total.wins + 0.5 * total.draws) / total.games if total.games else math.nan

    def forfeits(self, side: str) -> int:
        return sum(1 for record in self.records if record.forfeit == side)

    def errors(self) -> list[str]:
        """Distinct forfeit messages (at most ``MAX_ERRORS_KEPT``), naming the side and its first game."""
        first_game: dict[tuple[str, str], int] = {}
        for record in self.records:
            if record.forfeit and record.error:
                first_game.setdefault((record.forfeit, record.error), record.index)
        return [
            f"{self.agent if side == 'agent' else self.opponent} forfeited (first in game {index}): {error}"
            for (side, error), index in list(first_game.items())[:MAX_ERRORS_KEPT]
        ]

    def to_dict(self) -> dict[str, Any]:
        total, seats = self.total, self.seats
        low, high = self.win_rate_ci
        out: dict[str, Any] = {"agent": self.agent, "opponent": self.opponent}
        if self.step is not None:
            out["step"] = self.step
        out.update(
            games=total.games,
            wins=total.wins,
            draws=total.draws,
            losses=total.losses,
            win_rate=_finite(self.win_rate),
            win_rate_ci95=[_finite(low), _finite(high)],
            score=_finite(self.score),
            seats={
                seat: {"games": r.games, "wins": r.wins, "draws": r.draws, "losses": r.losses}
                for seat, r in seats.items()
            },
            forfeits={"agent": self.forfeits("agent"), "opponent": self.forfeits("opponent")},
            errors=self.errors(),
        )
        return out


def _finite(value: float) -> float | None:
    """JSON has no NaN: a missing rate is ``null``; rates are rounded to 6 digits."""
    return None if value is None or math.isnan(value) else round(float(value), 6)


def pairing_results(
    labels: Sequence[str],
    steps: Sequence[int | None],
    pairs: Sequence[tuple[int, int]],
    records: Sequence[list[GameRecord]],
) -> list[PairingResult]:
    """One ``PairingResult`` per ``(agent index, opponent index)`` pair, named by ``labels``.

    :param steps: per agent, its training step (``None`` for agents that are not checkpoints of a run)
    """
    return [
        PairingResult(labels[a], labels[b], a, b, pair_records, step=steps[a])
        for (a, b), pair_records in zip(pairs, records)
    ]


def score_matrices(results: Sequence[PairingResult], n: int) -> tuple[np.ndarray, np.ndarray]:
    """``(scores, games)`` for ``bradley_terry``: points (draws as halves) and games of ``i`` against ``j``."""
    scores, games = np.zeros((n, n)), np.zeros((n, n))
    for result in results:
        total = result.total
        a, b = result.agent_index, result.opponent_index
        scores[a, b] += total.wins + 0.5 * total.draws
        scores[b, a] += total.losses + 0.5 * total.draws
        games[a, b] += total.games
        games[b, a] += total.games
    return scores, games
