"""The default recipe's training speed with acting and learning overlapped (``train.overlap``) and
synchronous, side by side in one run, and against the loop this project had before its searches
were compiled (synchronous, pure-Python opponents: ``CONNECTX_PURE_PYTHON=1``).

Each measurement is a fresh ``python -m connectx_gym.train`` run of ``configs/default.yaml`` (or
``--config``) cut to ``--rollouts`` rollouts, with its evaluations and checkpoints off; its rate is
the one the trainer prints when done (the learning loop: start-up and saving excluded). Runs are
interleaved over ``--repeats`` and the median is reported. The machine's CPU utilization during
each run comes from ``/proc/stat`` (every process, so a busy machine shows up). Prints a table; the
last line is one JSON object with ``sps`` per mode, ``speedup_overlap`` (overlap vs synchronous),
``speedup_vs_python_sync`` (overlap vs the pure-Python synchronous loop) and ``cpu_utilization``
per mode.

    python benchmarks/bench_overlap.py [--rollouts 10] [--repeats 2] [--opponent SPEC]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

#: the trainer's last line: steps/s over its learning loop (start-up and saving excluded)
DONE = re.compile(r"done: \d+ steps \(([\d,.]+) steps/s\)")
ROOT = Path(__file__).resolve().parent.parent
MODES = {
    "sync": ({}, ["train.overlap=false"]),
    "overlap": ({}, ["train.overlap=true"]),
    "python_sync": ({"CONNECTX_PURE_PYTHON": "1"}, ["train.overlap=false"]),
}


def busy_jiffies() -> tuple[int, int]:
    """(busy, total) jiffies of all CPUs since boot, from ``/proc/stat`` (every process counts)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + fields[4]
    return sum(fields) - idle, sum(fields)


def train_once(mode: str, config: str, steps: int, opponent: str | None, out: str) -> tuple[float, float]:
    """Steps/s of one training run in ``mode`` and the machine's busy share while it ran."""
    environment, overrides = MODES[mode]
    overrides = overrides + [
        f"train.total_timesteps={steps}",
        "train.eval_every=0",
        f"train.checkpoint_every={steps * 10}",
        f"train.output_dir={out}",
        f"train.run_name={mode}-{time.monotonic_ns()}",
        "logging.progress_bar=false",
        "logging.tensorboard=false",
    ]
    if opponent:
        overrides += [f"env.opponent={opponent}", "curriculum.stages=[]"]
    command = [sys.executable, "-m", "connectx_gym.train", "--config", config]
    for override in overrides:
        command += ["--set", override]
    before = busy_jiffies()
    done = subprocess.run(
        command, env={**os.environ, **environment}, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    after = busy_jiffies()
    match = DONE.search(done.stderr) if done.returncode == 0 else None
    if not match:
        raise SystemExit(f"exit {done.returncode}, no 'done:' line from {' '.join(command)}:\n{done.stderr[-2000:]}")
    return float(match.group(1).replace(",", "")), (after[0] - before[0]) / max(1, after[1] - before[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=str(ROOT / "configs" / "default.yaml"))
    parser.add_argument("--rollouts", type=int, default=10, help="rollouts per run")
    parser.add_argument("--repeats", type=int, default=2, help="interleaved runs per mode (median reported)")
    parser.add_argument("--opponent", default=None, help="train against this spec instead of the config's curriculum")
    parser.add_argument("--modes", nargs="+", default=list(MODES), choices=list(MODES))
    args = parser.parse_args()
    from connectx_gym.config import load_config

    base = load_config(args.config)
    steps = base.ppo.n_steps * base.multiprocessing.parallel_episodes * args.rollouts
    out = tempfile.mkdtemp(prefix="bench-overlap-")
    sps: dict[str, list[float]] = {mode: [] for mode in args.modes}
    busy: dict[str, list[float]] = {mode: [] for mode in args.modes}
    print(f"{steps} steps per run ({args.rollouts} rollouts), opponent {args.opponent or 'the config curriculum'}")
    for repeat in range(args.repeats):
        for mode in args.modes:
            rate, share = train_once(mode, args.config, steps, args.opponent, out)
            sps[mode].append(rate)
            busy[mode].append(share)
            print(f"  {mode:<12} run {repeat + 1}: {rate:>8,.0f} steps/s, machine busy {100 * share:.0f}%", flush=True)
    median = {mode: float(np.median(values)) for mode, values in sps.items()}
    utilization = {mode: float(np.median(values)) for mode, values in busy.items()}
    print(f"{'mode':<12} {'steps/s':>9} {'CPU busy':>9}")
    for mode in args.modes:
        print(f"{mode:<12} {median[mode]:>9,.0f} {100 * utilization[mode]:>8.0f}%")
    result: dict = {
        "steps_per_run": steps,
        "opponent": args.opponent or "config",
        "sps": {mode: round(value, 1) for mode, value in median.items()},
        "samples": {mode: [round(v, 1) for v in values] for mode, values in sps.items()},
        "cpu_utilization": {mode: round(value, 3) for mode, value in utilization.items()},
    }
    if "sync" in median and "overlap" in median:
        result["speedup_overlap"] = round(median["overlap"] / median["sync"], 3)
    if "python_sync" in median:
        best = max(median.get("overlap", 0.0), median.get("sync", 0.0))
        result["speedup_vs_python_sync"] = round(best / median["python_sync"], 3)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
