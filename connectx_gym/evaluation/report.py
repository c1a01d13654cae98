"""Reporting an evaluation: the pairings and Elo tables printed on the terminal, the JSON form of the
ratings, one CSV row per pairing, the win-rate-vs-step plot of a training run, the Elo plot of a
tournament or ladder, and writing files with a one-line ``UserError`` when a path cannot be written.
Every win rate comes with the number of distinct games behind it and an interval over independent
trials: games from the empty board, openings with an opening suite (``interval_note``)."""

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
    "agent", "opponent", "step", "games", "distinct_games", "openings", "wins", "draws", "losses",
    "win_rate", "ci95_low", "ci95_high", "score", "score_ci95_low", "score_ci95_high",
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
    headers += [
        "opponent", "games", "distinct", "W", "D", "L", "win rate", "95% CI", "first W-D-L", "second W-D-L", "forfeits"
    ]  # fmt: skip
    right += [False, True, True, True, True, True, True, False, True, True, True]
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
            str(result.distinct_games),
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


def games_note(games: int, openings: int | None, source: str = "suite") -> str:
    """How each pairing's games start: ``N games per pairing (...)``, for the header line."""
    if not openings:
        return f"{games} games per pairing (from the empty board, half in each seat)"
    played = min(openings, games // 2)
    where = "the opening suite" if source == "suite" else f"the openings of {source}"
    return f"{games} games per pairing ({played} openings of {openings} from {where}, each played in both seats)"


def interval_note(openings: int | None) -> str:
    """How the 95% intervals were computed: over games, or over openings with an opening suite."""
    if not openings:
        return "95% CI: Wilson interval over games (each game one trial); distinct: distinct move lists among the games"
    return (
        "95% CI: over openings, not games: each opening played is one trial scoring the mean of its two "
        "seat-swapped games (Wilson intervals of win rate and score over the openings; Elo fits count openings "
        "too); distinct: distinct move lists among the games"
    )


def _anchor_text(labels: Sequence[str], ratings: Ratings) -> str:
    return "mean 0" if ratings.anchor is None else f"{labels[ratings.anchor]} = 0"


def ratings_note(prior_draws: float, anchor: str = "mean 0", openings: bool | None = None) -> str:
    """How the Elo ratings were fitted, printed under their table.

    :param anchor: ``mean 0`` or ``<player> = 0`` (then every interval is relative to that player)
    :param openings: whether the pairings were played from an opening suite (one trial per opening),
        ``None``: say nothing about the trials (the header's ``interval_note`` does)
    """
    relative = "" if anchor == "mean 0" else f" (intervals relative to {anchor.split(' = ')[0]})"
    trials = {None: "", True: "; trials are openings (each the mean of its seat-swapped games)"}.get(
        openings, "; trials are games"
    )
    return (
        f"Elo: Bradley-Terry maximum likelihood (draws = half wins), {anchor}, "
        f"95% CI from the Fisher information{relative}{trials}; prior {prior_draws:g} virtual draw(s) per agent"
    )


def ratings_document(labels: Sequence[str], ratings: Ratings, prior_draws: float) -> dict[str, Any]:
    """The ``elo`` entry of the JSON document: the method and every agent's rating, best first."""
    return {
        "method": ELO_METHOD,
        "anchor": _anchor_text(labels, ratings),
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
            **{key: data[key] for key in ("games", "distinct_games", "openings", "wins", "draws", "losses")},
            "win_rate": data["win_rate"],
            "ci95_low": data["win_rate_ci95"][0],
            "ci95_high": data["win_rate_ci95"][1],
            "score": data["score"],
            "score_ci95_low": data["score_ci95"][0],
            "score_ci95_high": data["score_ci95"][1],
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
    # deferred: matplotlib takes a second to import and only the report's plots need it
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
    _save_figure(plt, figure, path)


def plot_ratings(elo: dict[str, Any], path: str, title: str, highlight: Sequence[str] = ()) -> None:
    """Elo ratings with their 95% interval bars, best at the top, from the JSON ``elo`` entry
    (``ratings_document``); the ``highlight`` agents (the evaluated one) in colour."""
    # deferred: matplotlib takes a second to import and only the report's plots need it
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    entries = list(elo["ratings"])[::-1]  # best first; matplotlib draws the first row at the bottom
    figure, axes = plt.subplots(figsize=(8, 1.2 + 0.45 * len(entries)), dpi=120)
    for row, entry in enumerate(entries):
        marked = entry["agent"] in highlight
        color = "C3" if marked else "C0"
        rating, (low, high) = entry["elo"], entry["ci95"]
        axes.errorbar(rating, row, xerr=[[rating - low], [high - rating]], fmt="o", color=color, capsize=4,
                      markersize=8 if marked else 6)  # fmt: skip
        axes.annotate(f"{rating:+.0f}", (rating, row), textcoords="offset points", xytext=(0, 7), ha="center",
                      fontsize=8, color=color)  # fmt: skip
    axes.set_yticks(range(len(entries)))
    axes.set_yticklabels([entry["agent"] for entry in entries])
    for tick, entry in zip(axes.get_yticklabels(), entries):
        if entry["agent"] in highlight:
            tick.set_color("C3")
            tick.set_fontweight("bold")
    axes.set_ylim(-0.7, len(entries) - 0.3)
    axes.set_xlabel(f"Elo ({elo['anchor']}; bars: 95% interval)")
    axes.grid(True, axis="x", alpha=0.3)
    axes.set_title(title)
    _save_figure(plt, figure, path)


def _save_figure(plt: Any, figure: Any, path: str) -> None:
    figure.tight_layout()
    try:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        figure.savefig(path)
    except OSError as error:
        raise UserError(f"cannot write plot '{path}': {error.strerror or error}") from None
    finally:
        plt.close(figure)
