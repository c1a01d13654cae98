"""AlphaZero self-play against the bare forward pass, on the same processes.

Both run in ``--processes`` worker processes (one BLAS thread each), one after the other, for the
same wall time each:

- **bare**: the numpy network's ``policy_value`` on batches of ``--batch`` positions, over and over,
  for each of the ``--batch`` sizes in turn (the rate of a batch size depends on the CPU's cache);
- **self-play**: chunks of ``--games`` games at ``--simulations`` per move (``play_chunk``, as the
  AlphaZero loop's workers run them), counting the positions sent to the network.

The figure of merit is self-play's leaf evaluations per second over the bare positions per second at
the fastest of the batch sizes (the issue's target: at least 0.8 on 2 cores). Also reported:
self-play's mean batch per network call and its positions per second.

    python benchmarks/bench_selfplay.py                      # the shipped network, 6x7, 2 processes
    python benchmarks/bench_selfplay.py --seconds 30 --simulations 128

Last line: a JSON object with the figures.
"""

from __future__ import annotations

import argparse
import json
import time
from multiprocessing import get_context
from pathlib import Path

import numpy as np

from connectx_gym.inference.numpy_policy import NumpyPolicy, load_checkpoint
from connectx_gym.runtime.processes import single_threaded_blas, single_threaded_children
from connectx_gym.training.az_selfplay import SelfPlaySettings, play_games

MODEL = Path(__file__).resolve().parent.parent / "models" / "pretrained" / "model.zip"


def bare(job):
    payload, batch, seconds, seed = job
    with single_threaded_blas():
        network = NumpyPolicy.from_bytes(payload)
        board = network.board
        rng = np.random.default_rng(seed)
        planes = rng.integers(0, 2, (batch, 4, board["rows"], board["columns"])).astype(np.float32)
        done, end = 0, time.perf_counter() + seconds
        while time.perf_counter() < end:
            network.policy_value(planes)
            done += batch
        return done, seconds


def selfplay(job):
    payload, games, parallel, simulations, seconds, seed = job
    with single_threaded_blas():
        network = NumpyPolicy.from_bytes(payload)
        board = network.board
        calls = [0]

        def evaluate(planes):
            calls[0] += 1
            return network.policy_value(planes)

        settings = SelfPlaySettings(simulations=simulations)
        evaluations = positions = 0
        started = time.perf_counter()
        chunk = 0
        while time.perf_counter() - started < seconds:
            samples = play_games(
                evaluate, (board["rows"], board["columns"], board["inarow"]), games, settings, [seed, chunk], parallel
            )
            evaluations += samples.stats["evaluations"]
            positions += len(samples)
            chunk += 1
        return evaluations, positions, calls[0], time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default=str(MODEL))
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=20.0, help="self-play's wall time")
    parser.add_argument("--bare-seconds", type=float, default=8.0, help="the bare pass's wall time per batch size")
    parser.add_argument(
        "--batch", type=int, nargs="+", default=[32, 64, 256], help="positions per bare forward pass (one run each)"
    )
    parser.add_argument("--games", type=int, default=64, help="games per self-play chunk")
    parser.add_argument("--parallel", type=int, default=32, help="games played at once in a chunk")
    parser.add_argument("--simulations", type=int, default=64)
    args = parser.parse_args()
    payload = load_checkpoint(args.checkpoint).to_bytes()
    with single_threaded_children():
        pool = get_context("forkserver").Pool(args.processes)
    try:
        bare_rates = {}
        for batch in args.batch:
            runs = pool.map(bare, [(payload, batch, args.bare_seconds, i) for i in range(args.processes)])
            bare_rates[batch] = sum(done / seconds for done, seconds in runs)
        jobs = [(payload, args.games, args.parallel, args.simulations, args.seconds, i) for i in range(args.processes)]
        runs = pool.map(selfplay, jobs)
    finally:
        pool.terminate()
    evaluation_rate = sum(e / s for e, _, _, s in runs)
    position_rate = sum(p / s for _, p, _, s in runs)
    mean_batch = sum(e for e, _, _, _ in runs) / max(1, sum(c for _, _, c, _ in runs))
    fastest = max(bare_rates, key=bare_rates.get)
    bare_rate = bare_rates[fastest]
    ratio = evaluation_rate / bare_rate
    for batch, rate in bare_rates.items():
        print(f"bare forward pass, batch {batch}: {rate:,.0f} positions/s on {args.processes} processes")
    print(
        f"self-play, {args.simulations} simulations: {evaluation_rate:,.0f} leaf evaluations/s "
        f"(mean batch {mean_batch:.0f}), {position_rate:,.1f} positions/s"
    )
    print(f"self-play / bare at batch {fastest}: {ratio:.2f}")
    print(
        json.dumps(
            {
                "processes": args.processes,
                "bare_positions_per_s": {str(batch): round(rate) for batch, rate in bare_rates.items()},
                "bare_fastest_batch": fastest,
                "selfplay_evaluations_per_s": round(evaluation_rate),
                "selfplay_positions_per_s": round(position_rate, 1),
                "mean_batch": round(mean_batch, 1),
                "ratio": round(ratio, 3),
            }
        )
    )


if __name__ == "__main__":
    main()
