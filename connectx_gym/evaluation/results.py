"""What an evaluation found: the games of each pairing, summed up as W/D/L per seat, win rate and score
with their Wilson intervals, distinct games, forfeits, the JSON form of a pairing, and the score
matrices a tournament is rated on.

The intervals count independent trials, not replicated games. From the empty board (no openings)
every game is a trial: the 95% Wilson interval of the win rate is over ``n`` = games with the wins
as successes (the score's: wins + draws / 2). With an opening suite the two seat-swapped games of an
opening are one trial: ``n`` = the number of distinct openings played, and the successes are the sum
over openings of that opening's mean result (win 1, draw 1/2, loss 0 for the score; wins only for
the win rate). Deterministic players replay the same game whenever the seed does not matter, so
counting games would overstate what was learned; the distinct games (distinct full move lists)
are reported next to every win rate to show it.
"""

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
#: points per outcome for the score and for the win rate
SCORE_POINTS = {"win": 1.0, "draw": 0.5, "loss": 0.0}
WIN_POINTS = {"win": 1.0, "draw": 0.0, "loss": 0.0}


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
    def openings(self) -> int:
        """The number of distinct openings played (0 for games from the empty board)."""
        return len({record.opening for record in self.records if record.opening is not None})

    @property
    def distinct_games(self) -> int:
        """The number of distinct games: distinct full move lists (a forfeit's side counts too)."""
        return len({(tuple(record.moves), record.forfeit, record.illegal_column) for record in self.records})

    def trials(self, points: dict[str, float]) -> tuple[float, int]:
        """``(successes, n)`` of the intervals: per game without openings, per opening with them.

        :param points: each outcome's points (``SCORE_POINTS`` or ``WIN_POINTS``)
        """
        if not self.openings:
            return sum(points[record.outcome] for record in self.records), len(self.records)
        by_opening: dict[int, list[float]] = {}
        for record in self.records:
            by_opening.setdefault(record.opening, []).append(points[record.outcome])  # type: ignore[arg-type]
        return sum(sum(results) / len(results) for results in by_opening.values()), len(by_opening)

    @property
    def win_rate_ci(self) -> tuple[float, float]:
        """95% Wilson interval of the win rate, over games or openings (see the module's docstring)."""
        return wilson_interval(*self.trials(WIN_POINTS))

    @property
    def score(self) -> float:
        total = self.total
        return (total.wins + 0.5 * total.draws) / total.games if total.games else math.nan

    @property
    def score_ci(self) -> tuple[float, float]:
        """95% Wilson interval of the score, over games or openings (see the module's docstring)."""
        return wilson_interval(*self.trials(SCORE_POINTS))

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
        score_low, score_high = self.score_ci
        out: dict[str, Any] = {"agent": self.agent, "opponent": self.opponent}
        if self.step is not None:
            out["step"] = self.step
        out.update(
            games=total.games,
            distinct_games=self.distinct_games,
            openings=self.openings,
            wins=total.wins,
            draws=total.draws,
            losses=total.losses,
            win_rate=_finite(self.win_rate),
            win_rate_ci95=[_finite(low), _finite(high)],
            score=_finite(self.score),
            score_ci95=[_finite(score_low), _finite(score_high)],
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
    """``(scores, games)`` for ``bradley_terry``: points (draws as halves) and trials of ``i`` against ``j``.

    A pairing counts as its ``trials``: one per game from the empty board, one per opening (the mean
    of its seat-swapped games) with an opening suite, so the ratings' intervals count openings too.
    """
    scores, games = np.zeros((n, n)), np.zeros((n, n))
    for result in results:
        points, trials = result.trials(SCORE_POINTS)
        a, b = result.agent_index, result.opponent_index
        scores[a, b] += points
        scores[b, a] += trials - points
        games[a, b] += trials
        games[b, a] += trials
    return scores, games
