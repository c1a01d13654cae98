"""Reporting an evaluation: the pairings and Elo tables printed on the terminal, the JSON form of the
ratings, one CSV row per pairing, the win-rate-vs-step plot of a training run, and writing files
with a one-line ``UserError`` when a path cannot be written."""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from connectx_gym.cli import format_table
from connectx_gym.errors import UserError
from connectx_gym.evaluation.match import SEATS, SeatRecord
from connectx_gym.evaluation.ratings import Ratings
from connectx_gym.evaluation.results import PairingResult

CSV_FIELDS = [
    "agent", "opponent", "step", "games", "wins", "draws", "losses", "win_rate", "ci95_low", "ci95_high", "score",
    "first_wins", "first_draws", "first_losses", "second_wins", "second_draws", "second_losses",
    "agent_forfeits", "opponent_forfeits",
]  # fmt: skip
ELO_METHOD = "Bradley-Terry maximum likelihood, draws as half wins, Newton's method"


def _percent(value: float | None) -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{100 * value:.1f}%"


def _wdl(record: SeatRecord) -> str:
    return f"{record.wins}-{record.draws}-{record.losses}"


def pairings_table(results: Sequence[PairingResult], show_agent: bool = True, show_step: bool = False) -> str:
    """W/D/L, win rate with its 95% interval, per-seat W-D-L and forfeits: one row per pairing."""
    headers: list[str] = []
    right: list[bool] = []
    if show_step:
        headers.append("step")
        right.append(True)
    if show_agent:
        headers.append("agent")
        right.append(False)
    headers += ["opponent", "games", "W", "D", "L", "win rate", "95% CI", "first W-D-L", "second W-D-L", "forfeits"]
    right += [False, True, True, True, True, True, False, True, True, True]
    rows = []
    for result in results:
        total, seats = result.total, result.seats
        low, high = result.win_rate_ci
        row: list[str] = []
        if show_step:
            row.append(str(result.step))
        if show_agent:
            row.append(result.agent)
        row += [
            result.opponent,
            str(total.games),
            str(total.wins),
            str(total.draws),
            str(total.losses),
            _percent(result.win_rate),
            f"[{_percent(low)}, {_percent(high)}]",
            _wdl(seats["first"]),
            _wdl(seats["second"]),
            f"{result.forfeits('agent')}/{result.forfeits('opponent')}",
        ]
        rows.append(row)
    return format_table(headers, rows, right)


def ratings_table(labels: Sequence[str], ratings: Ratings, results: Sequence[PairingResult]) -> str:
    """Agents ranked by Elo, with the interval, points won of games played and the score."""
    points = {label: 0.0 for label in labels}
    played = {label: 0 for label in labels}
    for result in results:
        total = result.total
        points[result.agent] += total.wins + 0.5 * total.draws
        points[result.opponent] += total.losses + 0.5 * total.draws
        played[result.agent] += total.games
        played[result.opponent] += total.games
    rows = []
    for rank, i in enumerate(_by_rating(ratings), 1):
        label = labels[i]
        score = points[label] / played[label] if played[label] else math.nan
        rows.append([
            str(rank),
            label,
            f"{ratings.elo[i]:+.0f}",
            f"[{ratings.low[i]:+.0f}, {ratings.high[i]:+.0f}]",
            f"{points[label]:g}/{played[label]}",
            _percent(score),
        ])  # fmt: skip
    return format_table(
        ["rank", "agent", "Elo", "95% CI", "points", "score"], rows, [True, False, True, True, True, True]
    )


def ratings_note(prior_draws: float) -> str:
    """How the Elo ratings were fitted, printed under their table."""
    return (
        "Elo: Bradley-Terry maximum likelihood (draws = half wins), mean 0, "
        f"95% CI from the Fisher information; prior {prior_draws:g} virtual draw(s) per agent"
    )


def ratings_document(labels: Sequence[str], ratings: Ratings, prior_draws: float) -> dict[str, Any]:
    """The ``elo`` entry of the JSON document: the method and every agent's rating, best first."""
    return {
        "method": ELO_METHOD,
        "anchor": "mean 0",
        "prior_draws": prior_draws,
        "ratings": [
            {
                "agent": labels[i],
                "elo": round(float(ratings.elo[i]), 2),
                "ci95": [round(float(ratings.low[i]), 2), round(float(ratings.high[i]), 2)],
                "stderr": round(float(ratings.stderr[i]), 2),
            }
            for i in _by_rating(ratings)
        ],
    }


def _by_rating(ratings: Ratings) -> list[int]:
    return sorted(range(len(ratings.elo)), key=lambda i: -ratings.elo[i])


def forfeit_lines(results: Sequence[PairingResult]) -> list[str]:
    """The forfeits section (empty when no side forfeited)."""
    errors = [message for result in results for message in result.errors()]
    if not errors:
        return []
    return ["\nforfeits (agent/opponent counts in the table):"] + [f"  {message}" for message in errors]


def csv_text(results: Sequence[PairingResult]) -> str:
    """One CSV row per pairing (``CSV_FIELDS``), the numbers as in the JSON document."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, CSV_FIELDS, lineterminator="\n")
    writer.writeheader()
    for result in results:
        data = result.to_dict()
        seats = data["seats"]
        writer.writerow({
            "agent": data["agent"],
            "opponent": data["opponent"],
            "step": data.get("step", ""),
            **{key: data[key] for key in ("games", "wins", "draws", "losses", "win_rate")},
            "ci95_low": data["win_rate_ci95"][0],
            "ci95_high": data["win_rate_ci95"][1],
            "score": data["score"],
            **{f"{seat}_{key}": seats[seat][key] for seat in SEATS for key in ("wins", "draws", "losses")},
            "agent_forfeits": data["forfeits"]["agent"],
            "opponent_forfeits": data["forfeits"]["opponent"],
        })  # fmt: skip
    return buffer.getvalue()


def write_text(path: str, text: str, what: str) -> None:
    """Write ``text`` to ``path`` (making its folder); a ``UserError`` naming ``what`` if that fails."""
    try:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(text, encoding="utf-8")
    except OSError as error:
        raise UserError(f"cannot write {what} '{path}': {error.strerror or error}") from None


def plot_progress(results: Sequence[PairingResult], path: str, title: str) -> None:
    """Win rate vs training step, one line per opponent, with 95% Wilson bands (matplotlib, Agg)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import PercentFormatter

    opponents: dict[str, list[PairingResult]] = {}
    for result in results:
        opponents.setdefault(result.opponent, []).append(result)
    games = max((r.games for r in results), default=0)
    figure, axes = plt.subplots(figsize=(8, 5), dpi=120)
    for index, (opponent, series) in enumerate(opponents.items()):
        series = sorted(series, key=lambda r: r.step)
        steps = np.array([r.step for r in series], dtype=float)
        rates = np.array([r.win_rate for r in series])
        lows = np.array([r.win_rate_ci[0] for r in series])
        highs = np.array([r.win_rate_ci[1] for r in series])
        color = f"C{index % 10}"
        axes.plot(steps, rates, marker="o", color=color, label=f"vs {opponent}")
        axes.fill_between(steps, lows, highs, color=color, alpha=0.18, linewidth=0)
        axes.errorbar(steps, rates, yerr=[rates - lows, highs - rates], fmt="none", ecolor=color, alpha=0.6, capsize=3)
    axes.set_xlabel("training step")
    axes.set_ylabel("win rate")
    axes.yaxis.set_major_formatter(PercentFormatter(1.0))
    axes.set_ylim(-0.02, 1.02)
    axes.grid(True, alpha=0.3)
    axes.set_title(f"{title}\nwin rate vs training step ({games} games per point, 95% Wilson intervals)")
    axes.legend(title="opponent", loc="best")
    figure.tight_layout()
    try:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        figure.savefig(path)
    except OSError as error:
        raise UserError(f"cannot write plot '{path}': {error.strerror or error}") from None
    finally:
        plt.close(figure)
