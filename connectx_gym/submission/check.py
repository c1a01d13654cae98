"""Play a written submission file through ``kaggle_environments`` and report whether Kaggle would accept it.

The file plays ``random`` and ``negamax`` in both seats; any INVALID, ERROR or TIMEOUT status, an
episode not ending DONE, or an illegal answer fails the check. Our agent's move time is measured
by calling the file's last callable, loaded with Kaggle's own loader, on every position it faced.
``kaggle_environments`` is imported only when a check runs (through ``agents.kaggle``, which
silences what it prints on import): it is slow to import.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from connectx_gym.agents.kaggle import import_kaggle

DEFAULT_CHECK_GAMES = 10
CHECK_OPPONENTS = ("random", "negamax")
_BAD_STATUSES = ("INVALID", "ERROR", "TIMEOUT")


@dataclass
class SeatTally:
    """Wins, draws and losses of our agent in one seat against one opponent."""

    wins: int = 0
    draws: int = 0
    losses: int = 0

    def add(self, reward: float | None) -> None:
        if reward is not None and reward > 0:
            self.wins += 1
        elif reward == 0:
            self.draws += 1
        else:
            self.losses += 1

    @property
    def games(self) -> int:
        return self.wins + self.draws + self.losses

    def __str__(self) -> str:
        rate = 100.0 * self.wins / self.games if self.games else 0.0
        return f"{self.wins:>3} won {self.draws:>2} drawn {self.losses:>3} lost ({rate:3.0f}%)"


@dataclass
class CheckReport:
    """The outcome of :func:`check_submission`: tallies per opponent and seat, move times, failures."""

    board: dict[str, int]
    games: int = 0
    tallies: dict[str, dict[str, SeatTally]] = field(default_factory=dict)
    latencies_ms: list[float] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.failures and self.games > 0

    def latency(self) -> dict[str, float]:
        values = np.asarray(self.latencies_ms, dtype=float)
        if not len(values):
            return {"median": 0.0, "p99": 0.0, "max": 0.0}
        return {"median": float(np.median(values)), "p99": float(np.percentile(values, 99)), "max": float(values.max())}

    def lines(self) -> list[str]:
        board = self.board
        header = (
            f"check: {self.games} games through kaggle_environments connectx "
            f"{board['rows']}x{board['columns']} inarow {board['inarow']}"
        )
        out = [header]
        for opponent, seats in self.tallies.items():
            out.append(f"  vs {opponent:<8} as first: {seats['first']}   as second: {seats['second']}")
        stats = self.latency()
        out.append(
            f"  our move time (n={len(self.latencies_ms)}): median {stats['median']:.2f} ms, "
            f"p99 {stats['p99']:.2f} ms, max {stats['max']:.2f} ms"
        )
        if self.passed:
            out.append("check passed: every episode DONE, no invalid move, error or timeout")
        else:
            out.append(f"check FAILED: {len(self.failures)} problem(s)")
            out.extend(f"  {failure}" for failure in self.failures[:10])
        return out


def check_submission(
    path,
    board: dict[str, int],
    games_per_seat: int = DEFAULT_CHECK_GAMES,
    opponents: Sequence[str] = CHECK_OPPONENTS,
    seed: int = 0,
) -> CheckReport:
    """Play the submission file through ``kaggle_environments`` against each opponent in both seats.

    Every episode must end with both agents DONE and no INVALID/ERROR/TIMEOUT status. Our agent's
    move time is measured by calling the file's last callable (loaded with Kaggle's own
    ``get_last_callable``) on every position it faced in the games.
    """
    # the first, noisy import of kaggle_environments, silenced
    _, get_last_callable, Struct = import_kaggle("export --check")
    # optional extra [kaggle]: kaggle-environments (1.4 GB, the old gym) is imported only where it is used
    import kaggle_environments

    path = os.path.abspath(str(path))
    with open(path, encoding="utf-8") as handle:
        source = handle.read()
    our_agent = get_last_callable(source, path=path)
    configuration = {key: int(board[key]) for key in ("rows", "columns", "inarow")}
    env = kaggle_environments.make("connectx", configuration=configuration, debug=False)
    report = CheckReport(board=dict(configuration))
    game = 0
    for opponent in opponents:
        report.tallies[opponent] = {"first": SeatTally(), "second": SeatTally()}
        for seat_index, seat in enumerate(("first", "second")):
            for _ in range(games_per_seat):
                random.seed(seed * 1_000_003 + game)
                np.random.seed((seed * 1_000_003 + game) % 2**32)
                env.run([path, opponent] if seat_index == 0 else [opponent, path])
                game += 1
                label = f"game {game} vs {opponent} (ours {seat})"
                _judge_episode(env.steps, report, label, opponent, seat_index)
                report.tallies[opponent][seat].add(env.steps[-1][seat_index].reward)
                _time_our_moves(env, our_agent, Struct, report, label, seat_index, configuration["columns"])
    report.games = game
    return report


def _judge_episode(steps: list, report: CheckReport, label: str, opponent: str, seat_index: int) -> None:
    """Record every bad status of the episode, and an episode that did not end DONE for both."""
    for step, states in enumerate(steps):
        for index, state in enumerate(states):
            if state.status in _BAD_STATUSES:
                who = "our agent" if index == seat_index else opponent
                report.failures.append(f"{label}: {who} status {state.status} at step {step}")
    final = steps[-1]
    if any(state.status != "DONE" for state in final):
        report.failures.append(f"{label}: episode ended with statuses {[s.status for s in final]}")


def _time_our_moves(
    env, our_agent: Callable, struct: Callable[..., Any], report: CheckReport, label: str, seat_index: int, columns: int
) -> None:
    """Time our agent on each position it faced (it is ACTIVE in the step before its move); record
    what it raises and any illegal column it answers."""
    for states in env.steps[:-1]:
        if states[seat_index].status != "ACTIVE":
            continue
        observation = struct(
            board=list(states[0].observation.board),
            mark=seat_index + 1,
            step=states[0].observation.step,
            remainingOverageTime=60,
        )
        started = time.perf_counter()
        try:
            column = our_agent(observation, env.configuration)
        except Exception as error:  # noqa: BLE001 - reported, not raised
            report.failures.append(f"{label}: our agent raised {type(error).__name__}: {error}")
            continue
        report.latencies_ms.append(1000.0 * (time.perf_counter() - started))
        if not (isinstance(column, int) and 0 <= column < columns and observation.board[column] == 0):
            report.failures.append(f"{label}: our agent answered illegal column {column!r}")
