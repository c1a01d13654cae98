"""The ray backend against the subprocess backend on this machine, side by side in one run.

Both run the same chunks (``chunk.EnvChunk``) with the same number of workers; only the transport
differs (a pipe to a forkserver child vs a Ray actor method call). Measured:

- ``startup``: seconds to build the vec env and get its first observations (Ray: a local instance
  is started first, once, and timed separately as ``ray_init_s``);
- ``round_trip``: steps/s of the bare vec env with random legal actions and 1 env per worker, i.e.
  the per-message cost of each transport with next to no game work;
- ``stepping``: the same with the config's ``parallel_episodes`` (many envs per message);
- ``training``: MaskablePPO steps/s with the config's PPO settings (``bench_train.measure``), for
  the opponents given by ``--opponents`` (``random``: the env is cheap, so overhead shows most;
  ``negamax``: the default recipe's opponent, where the env dominates).

Modes are measured ``--repeats`` times, interleaved, and the median is reported. Prints a table;
the last line is one JSON object.

    python benchmarks/bench_ray.py [--repeats 3] [--rollouts 2] [--opponents random negamax]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from bench_train import measure

from connectx_gym.config import load_config
from connectx_gym.envs.vec import make_vec_env
from connectx_gym.runtime.ray_cluster import connect
from connectx_gym.training.builders import env_kwargs

BACKENDS = ("chunked", "ray")


def bare_steps_per_s(venv, steps: int, seed: int = 0) -> float:
    """Steps/s (env steps, all envs counted) of random legal actions on ``venv`` (closed after)."""
    rng = np.random.default_rng(seed)
    venv.reset()
    masks = venv.env_method("action_masks")
    started = time.perf_counter()
    for _ in range(steps):
        actions = np.array([rng.choice(np.flatnonzero(mask)) for mask in masks])
        venv.step(actions)
        masks = venv.env_method("action_masks")
    elapsed = time.perf_counter() - started
    count = venv.num_envs
    venv.close()
    return steps * count / elapsed


def median_of(repeats: int, runs: dict[str, Callable[[], float]], label: str) -> dict[str, dict[str, Any]]:
    """Run every entry of ``runs`` ``repeats`` times, interleaved; median and samples per entry."""
    samples: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(repeats):
        for name, run in runs.items():
            value = run()
            samples[name].append(value)
            print(f"{label:<22}{name:<10}{value:>12,.1f}", flush=True)
    return {
        name: {"median": round(float(np.median(values)), 1), "samples": [round(v, 1) for v in values]}
        for name, values in samples.items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(description="ray backend vs subprocess backend")
    parser.add_argument("--config", default=None, help="config file (default: built-in defaults)")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved repeats per mode (median reported)")
    parser.add_argument("--rollouts", type=int, default=2, help="timed PPO rollouts per training sample")
    parser.add_argument("--opponents", nargs="+", default=["random", "negamax"], help="training opponents")
    parser.add_argument("--steps", type=int, default=400, help="vec-env steps per bare stepping sample")
    args = parser.parse_args()

    config = load_config(args.config).resolved()
    mp_config = config.multiprocessing
    n_envs, processes = mp_config.parallel_episodes, mp_config.num_processes
    started = time.perf_counter()
    ray = connect("", num_cpus=processes)
    ray_init_s = time.perf_counter() - started
    print(
        f"n_envs={n_envs} num_processes={processes} ray {ray.__version__} local instance "
        f"({ray.cluster_resources().get('CPU', 0):g} CPUs) started in {ray_init_s:.1f} s"
    )

    def build(backend: str, opponent: str, envs: int):
        return make_vec_env(env_kwargs(config, opponent=opponent), envs, processes, True, backend, seed=0)

    def startup(backend: str) -> float:
        began = time.perf_counter()
        venv = build(backend, "random", n_envs)
        venv.reset()
        elapsed = time.perf_counter() - began
        venv.close()
        return elapsed

    result: dict[str, Any] = {
        "n_envs": n_envs,
        "num_processes": processes,
        "ray_version": ray.__version__,
        "ray_init_s": round(ray_init_s, 2),
    }
    result["startup_s"] = median_of(args.repeats, {b: (lambda b=b: startup(b)) for b in BACKENDS}, "startup s")
    result["round_trip_sps"] = median_of(
        args.repeats,
        {b: (lambda b=b: bare_steps_per_s(build(b, "random", processes), args.steps)) for b in BACKENDS},
        f"bare, {processes} envs",
    )
    result["stepping_sps"] = median_of(
        args.repeats,
        {b: (lambda b=b: bare_steps_per_s(build(b, "random", n_envs), args.steps)) for b in BACKENDS},
        f"bare, {n_envs} envs",
    )
    result["training_sps"] = {}
    for opponent in args.opponents:
        result["training_sps"][opponent] = median_of(
            args.repeats,
            {
                b: (lambda b=b, opponent=opponent: measure_quietly(build(b, opponent, n_envs), config, args.rollouts))
                for b in BACKENDS
            },
            f"train vs {opponent}",
        )

    def ratio(entry: dict[str, dict[str, Any]]) -> float:
        return round(entry["ray"]["median"] / entry["chunked"]["median"], 3)

    round_trip = result["round_trip_sps"]
    per_message_ms = {b: round(1000.0 / (round_trip[b]["median"] / processes), 3) for b in BACKENDS}
    result["summary"] = {
        "ray_vs_subprocess_round_trip": ratio(round_trip),
        "round_trip_ms": per_message_ms,
        "ray_vs_subprocess_stepping": ratio(result["stepping_sps"]),
        **{
            f"ray_vs_subprocess_training_{opponent}": ratio(entry) for opponent, entry in result["training_sps"].items()
        },
    }
    print(json.dumps(result))


def measure_quietly(venv, config, rollouts: int) -> float:
    """``bench_train.measure`` without its own line (this script prints its own table)."""
    with contextlib.redirect_stdout(io.StringIO()):
        return measure("", venv, config, rollouts)


if __name__ == "__main__":
    main()
