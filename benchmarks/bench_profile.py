"""Where each core's time goes in a short default-recipe training run: the learner process and every
env worker, as shares of the run's wall time, and the machine's CPU utilization.

The run is ``configs/default.yaml`` (or ``--config``) cut to ``--rollouts`` rollouts, with one
evaluation halfway (its games and, on 6x7, its accuracy grading) and no progress bar. Learner
categories come from timing SB3's own methods: ``rollout inference`` (the policy's forward passes
and the rollout buffer: collect_rollouts minus what follows), ``waiting for workers``
(``step_wait``), ``sending actions`` (``step_async``), ``PPO update`` (``train``), ``callbacks``
and ``evaluation``. Worker categories come from the workers' own timers (``CONNECTX_PROFILE=1``,
``connectx_gym.envs.profiling``): ``opponent <kind>`` moves, ``teacher search`` (kickstarting),
``env stepping`` (the rest of a step: rules, observations, resets), ``IPC send`` and ``waiting for
actions``. Utilization is the CPU seconds of all of them over wall time x usable cores, and the
machine's busy share from ``/proc/stat`` (other processes included). Prints a table; the last line is one JSON object.

    python benchmarks/bench_profile.py [--rollouts 6] [--config configs/default.yaml] [--set KEY=VALUE ...]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

os.environ["CONNECTX_PROFILE"] = "1"  # before the package (and the workers it starts) is imported

from connectx_gym.runtime.quiet import quiet_import_sb3  # noqa: E402

from bench_overlap import busy_jiffies  # noqa: E402 (no package import: the profile switch above holds)

from connectx_gym.config import load_config  # noqa: E402
from connectx_gym.runtime.processes import usable_cpu_count  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
LEARNER: defaultdict[str, float] = defaultdict(float)
WORKERS: list[dict] = []


def timed(cls, name: str, label: str) -> None:
    """Add the seconds spent in ``cls.name`` to ``LEARNER[label]``."""
    original = getattr(cls, name)

    def wrapper(self, *args, **kwargs):
        started = time.perf_counter()
        try:
            return original(self, *args, **kwargs)
        finally:
            LEARNER[label] += time.perf_counter() - started

    setattr(cls, name, wrapper)


def instrument() -> None:
    quiet_import_sb3()
    from sb3_contrib import MaskablePPO
    from stable_baselines3.common.callbacks import CallbackList

    from connectx_gym.envs.vec import ChunkedVecEnv
    from connectx_gym.training.evaluation_callback import EvaluationCallback

    timed(MaskablePPO, "collect_rollouts", "rollout")
    timed(MaskablePPO, "train", "PPO update")
    timed(ChunkedVecEnv, "step_wait", "waiting for workers")
    timed(ChunkedVecEnv, "step_async", "sending actions")
    timed(CallbackList, "on_step", "callbacks")
    timed(EvaluationCallback, "evaluate", "evaluation")
    close = ChunkedVecEnv.close

    def close_after_profiles(self):
        if not WORKERS and not self.closed:
            WORKERS.extend(self.worker_profiles())
        close(self)

    ChunkedVecEnv.close = close_after_profiles


def learner_rows(wall: float) -> list[tuple[str, str, float]]:
    callbacks_in_rollouts = LEARNER["callbacks"]
    inference = LEARNER["rollout"] - LEARNER["waiting for workers"] - LEARNER["sending actions"] - callbacks_in_rollouts
    other = wall - LEARNER["rollout"] - LEARNER["PPO update"]
    rows = [
        ("learner", "rollout inference", inference),
        ("learner", "waiting for workers", LEARNER["waiting for workers"]),
        ("learner", "sending actions", LEARNER["sending actions"]),
        ("learner", "PPO update", LEARNER["PPO update"]),
        ("learner", "callbacks (without evaluation)", callbacks_in_rollouts - LEARNER["evaluation"]),
        ("learner", "evaluation", LEARNER["evaluation"]),
        ("learner", "set-up, saving, other", other),
    ]
    return rows


def worker_rows(profile: dict, index: int) -> list[tuple[str, str, float]]:
    timers = profile["timers"]
    opponents = {k: v for k, v in timers.items() if k.startswith("opponent:")}
    teacher = timers.get("teacher", 0.0)
    stepping = timers.get("step", 0.0) - sum(opponents.values()) - teacher
    rows = [(f"worker {index}", f"opponent {k.split(':', 1)[1]}", v) for k, v in sorted(opponents.items())]
    if teacher:
        rows.append((f"worker {index}", "teacher search (kickstart)", teacher))
    rows += [
        (f"worker {index}", "env stepping", stepping),
        (f"worker {index}", "IPC send", timers.get("send", 0.0)),
        (f"worker {index}", "waiting for actions", timers.get("wait", 0.0)),
    ]
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=str(ROOT / "configs" / "default.yaml"))
    parser.add_argument("--rollouts", type=int, default=6)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="a config override")
    args = parser.parse_args()
    base = load_config(args.config)
    rollout = base.ppo.n_steps * base.multiprocessing.parallel_episodes
    steps = rollout * args.rollouts
    out = tempfile.mkdtemp(prefix="bench-profile-")
    overrides = [
        f"train.total_timesteps={steps}",
        f"train.eval_every={rollout * (args.rollouts // 2)}",
        f"train.checkpoint_every={steps * 10}",
        f"train.output_dir={out}",
        "train.run_name=profile",
        "logging.progress_bar=false",
        *args.set,
    ]
    config = load_config(args.config, overrides).resolved()
    instrument()
    from connectx_gym.training.loop import run

    cpu_before, busy_before = time.process_time(), busy_jiffies()
    started = time.perf_counter()
    run(config, Path(out) / "profile", None)
    wall = time.perf_counter() - started
    learner_cpu = time.process_time() - cpu_before
    busy_after = busy_jiffies()
    machine = (busy_after[0] - busy_before[0]) / max(1, busy_after[1] - busy_before[1])
    rows = learner_rows(wall)
    for index, profile in enumerate(WORKERS):
        rows += worker_rows(profile, index)
    cores = usable_cpu_count()
    processes_cpu = learner_cpu + sum(profile["cpu_s"] for profile in WORKERS)
    print(f"{steps} steps ({args.rollouts} rollouts, one evaluation) in {wall:.1f} s: {steps / wall:,.0f} steps/s")
    print(f"{'process':<9} {'where the time goes':<32} {'seconds':>8} {'share of wall':>13}")
    for process, label, seconds in rows:
        print(f"{process:<9} {label:<32} {seconds:>8.1f} {100 * seconds / wall:>12.1f}%")
    print(
        f"CPU: learner {learner_cpu:.1f} s, workers {processes_cpu - learner_cpu:.1f} s "
        f"(worker CPU counts their start-up); {100 * processes_cpu / (wall * cores):.0f}% of {cores} cores; "
        f"machine busy {100 * machine:.0f}% (/proc/stat, every process)"
    )
    summary = {
        "steps": steps,
        "wall_s": round(wall, 2),
        "steps_per_s": round(steps / wall, 1),
        "cores": cores,
        "cpu_utilization": round(processes_cpu / (wall * cores), 3),
        "machine_busy": round(machine, 3),
        "shares": {f"{p}/{label}": round(seconds / wall, 4) for p, label, seconds in rows},
    }
    print(json.dumps(summary))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
