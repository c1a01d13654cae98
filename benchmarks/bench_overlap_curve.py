"""Learning against wall-clock time, synchronous vs overlapped (``train.overlap``): two runs of the
default recipe of ``--minutes`` each, one after the other, stopped by SIGTERM (which the trainer
handles as Ctrl-C: it saves and exits) and plotted together from their ``progress.csv``: the
perfect-move rate on the shipped labelled positions and the win rate against negamax at every
evaluation, against the run's wall time.

Writes ``--plot`` (default ``benchmarks/overlap_curves.png``); the last line printed is one JSON
object with each run's steps, steps/s and its curve points. ``--plot-only DIR`` redraws the plot
from the runs an earlier call left in DIR; ``--out DIR --modes overlap`` runs one mode into DIR.
Evaluations after ``--minutes`` are left out of the plot.

    python benchmarks/bench_overlap_curve.py [--minutes 15] [--eval-every 100000]
"""

from __future__ import annotations

import argparse
import csv
import json
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MODES = ("sync", "overlap")


def train_for(mode: str, minutes: float, eval_every: int, out: Path) -> None:
    command = [sys.executable, "-m", "connectx_gym.train", "--config", str(ROOT / "configs" / "default.yaml")]
    for override in (
        f"train.overlap={'true' if mode == 'overlap' else 'false'}",
        f"train.eval_every={eval_every}",
        "train.total_timesteps=100000000",
        f"train.output_dir={out}",
        f"train.run_name={mode}",
        "logging.progress_bar=false",
        "logging.tensorboard=false",
    ):
        command += ["--set", override]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL)
    try:
        process.wait(timeout=minutes * 60)
    except subprocess.TimeoutExpired:
        # SIGTERM, not SIGINT: a process started in the background ignores SIGINT
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=120)


def curve(run_dir: Path) -> list[dict[str, float]]:
    """``{seconds, steps, perfect, negamax}`` at every evaluation of a run."""
    with open(run_dir / "progress.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    points = []
    for row in rows:
        if row.get("eval/perfect_move_rate"):
            points.append(
                {
                    "seconds": float(row["time/time_elapsed"]),
                    "steps": int(row["time/total_timesteps"]),
                    "perfect": float(row["eval/perfect_move_rate"]),
                    "negamax": float(row["eval/win_rate/negamax"]),
                }
            )
    return points


def plot(curves: dict[str, list[dict[str, float]]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 2, figsize=(10, 4))
    for mode, points in curves.items():
        minutes = [p["seconds"] / 60 for p in points]
        axes[0].plot(minutes, [100 * p["perfect"] for p in points], marker="o", label=mode)
        axes[1].plot(minutes, [100 * p["negamax"] for p in points], marker="o", label=mode)
    axes[0].set_ylabel("perfect moves, shipped positions (%)")
    axes[1].set_ylabel("win rate vs negamax, 100 games (%)")
    for axis in axes:
        axis.set_xlabel("wall-clock minutes (2 cores)")
        axis.grid(alpha=0.3)
        axis.legend()
    figure.suptitle("Default recipe: synchronous vs overlapped acting and learning")
    figure.tight_layout()
    figure.savefig(path, dpi=100)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=15.0, help="wall-clock minutes per run")
    parser.add_argument("--eval-every", type=int, default=100_000, help="steps between evaluations")
    parser.add_argument("--plot", default=str(ROOT / "benchmarks" / "overlap_curves.png"))
    parser.add_argument("--plot-only", default=None, help="redraw from the runs in this directory")
    parser.add_argument("--out", default=None, help="directory of the runs (default: a new temporary one)")
    parser.add_argument("--modes", nargs="+", default=list(MODES), choices=MODES, help="the runs to train")
    args = parser.parse_args()
    out = Path(args.plot_only or args.out or tempfile.mkdtemp(prefix="bench-overlap-curve-"))
    if not args.plot_only:
        for mode in args.modes:
            started = time.perf_counter()
            train_for(mode, args.minutes, args.eval_every, out)
            print(f"{mode}: {time.perf_counter() - started:.0f} s in {out / mode}", flush=True)
    curves = {mode: [p for p in curve(out / mode) if p["seconds"] <= args.minutes * 60] for mode in MODES}
    plot(curves, Path(args.plot))
    summary = {}
    for mode, points in curves.items():
        last = points[-1] if points else {"seconds": 0, "steps": 0}
        summary[mode] = {
            "evaluations": len(points),
            "steps_at_last_eval": last["steps"],
            "steps_per_s": round(last["steps"] / max(last["seconds"], 1e-9), 1),
            "best_perfect": max((p["perfect"] for p in points), default=None),
            "best_negamax": max((p["negamax"] for p in points), default=None),
            "points": points,
        }
    print(f"plot: {args.plot}")
    print(json.dumps({"runs": str(out), **summary}))


if __name__ == "__main__":
    main()
