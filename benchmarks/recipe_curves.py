"""Accuracy against wall-clock time of training runs: the perfect-move and good-move rates of the
greedy policy on the shipped solver-labelled positions at every evaluation of each run (its
``progress.csv``), plotted against the run's wall time, and the win rate against ``alphabeta:2`` where
the runs evaluated against it. A resumed run restarts SB3's ``time/time_elapsed`` at 0; each
restart is added to the time reached before it, so the minutes are training time summed over the
run's sessions (the time between a segment's last logged rollout and its interruption is lost).
AlphaZero's runs (``train.algorithm: alphazero``) log the same clock once a generation; a log
without it counts the generations' own self-play, fit and callback seconds.

    python benchmarks/recipe_curves.py default=models/default strong=models/strong \\
        --plot models/pretrained/accuracy_curves.png

A run that started from another's model (``train.init_from``) is drawn after it with
``--continues LABEL=EARLIER``: its minutes start where the earlier run's last evaluation is.

The last line printed is one JSON object with each run's evaluations (minutes, steps, rates).
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

RATES = (("perfect", "eval/perfect_move_rate"), ("good", "eval/good_move_rate"))
#: the parts of an AlphaZero generation's time in its log row
GENERATION_PARTS = ("selfplay", "fit", "callback")


def curve(run_dir: Path) -> list[dict[str, float]]:
    """``{minutes, steps, perfect, good[, alphabeta2, value_sign]}`` at every evaluation of a run."""
    with open(run_dir / "progress.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    points, offset, last, generations = [], 0.0, 0.0, 0.0
    for row in rows:
        if row.get("alphazero/selfplay_seconds"):  # AlphaZero's generations: the time each one took
            generations += sum(float(row[f"alphazero/{part}_seconds"] or 0) for part in GENERATION_PARTS)
        if not row.get("time/time_elapsed"):
            if not row.get("alphazero/selfplay_seconds"):
                continue
            row["time/time_elapsed"] = generations  # a log without the clock: the generations' own time
        elapsed = float(row["time/time_elapsed"])
        if elapsed < last:  # a resumed segment starts its clock again
            offset += last
        last = elapsed
        if not row.get("eval/perfect_move_rate"):
            continue
        point = {"minutes": round((offset + elapsed) / 60, 2), "steps": int(row["time/total_timesteps"])}
        point.update({name: float(row[column]) for name, column in RATES})
        if row.get("eval/win_rate/alphabeta:2"):
            point["alphabeta2"] = float(row["eval/win_rate/alphabeta:2"])
        if row.get("eval/value_sign_decided"):
            point["value_sign"] = float(row["eval/value_sign_decided"])
        points.append(point)
    return points


def plot(curves: dict[str, list[dict[str, float]]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 2, figsize=(11, 5.6))
    for label, points in curves.items():
        minutes = [p["minutes"] for p in points]
        line = axes[0].plot(minutes, [100 * p["perfect"] for p in points], marker="o", ms=3, label=f"{label}: perfect")
        axes[0].plot(
            minutes, [100 * p["good"] for p in points], ls="--", color=line[0].get_color(), label=f"{label}: good"
        )
        signed = [p for p in points if "value_sign" in p]
        if signed:
            axes[0].plot(
                [p["minutes"] for p in signed],
                [100 * p["value_sign"] for p in signed],
                ls=":",
                color=line[0].get_color(),
                label=f"{label}: value sign right (decided)",
            )
        ladder = [p for p in points if "alphabeta2" in p]
        if ladder:
            axes[1].plot(
                [p["minutes"] for p in ladder], [100 * p["alphabeta2"] for p in ladder], marker="o", ms=3, label=label
            )
    axes[0].set_ylabel("% of the 3,500 shipped positions")
    axes[1].set_ylabel("win rate vs alphabeta:2,\nthe trainer's evaluation (%)")
    for axis in axes:
        axis.set_xlabel("wall-clock minutes of training (2 CPU cores)")
        axis.grid(alpha=0.3)
        if axis.get_legend_handles_labels()[0]:
            # below the plot, so that no curve hides under it
            axis.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.15), ncol=2)
    figure.suptitle("Solver-graded accuracy of the greedy policy against training time")
    figure.tight_layout()
    figure.savefig(path, dpi=100)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", help="LABEL=RUN_DIR, one per run")
    parser.add_argument("--plot", required=True, help="the PNG to write")
    parser.add_argument(
        "--continues",
        action="append",
        default=[],
        metavar="LABEL=EARLIER",
        help="the run LABEL started from EARLIER's model: its minutes count on from EARLIER's last evaluation",
    )
    args = parser.parse_args()
    curves = {}
    for item in args.runs:
        label, _, directory = item.partition("=")
        if not directory:
            parser.error(f"expected LABEL=RUN_DIR, got {item!r}")
        curves[label] = curve(Path(directory))
    for item in args.continues:
        label, _, earlier = item.partition("=")
        if label not in curves or earlier not in curves or not curves[earlier]:
            parser.error(f"--continues {item!r}: expected LABEL=EARLIER, two labels of runs given")
        start = curves[earlier][-1]["minutes"]
        for point in curves[label]:
            point["minutes"] = round(point["minutes"] + start, 2)
    plot(curves, Path(args.plot))
    print(f"plot: {args.plot}")
    print(json.dumps(curves))


if __name__ == "__main__":
    main()
