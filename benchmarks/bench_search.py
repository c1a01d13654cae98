"""Search speed: moves/s of ``alphabeta:<depth>`` with the compiled (numba) search and the pure-Python
search, side by side on one fixed position set, with identical moves required.

The positions are every ``--every``-th of the shipped labelled 6x7 positions (all phases); move ``i``
draws its tie-break from ``default_rng(i)``. Each depth is timed with the Python search
(``CONNECTX_PURE_PYTHON=1``), then the compiled one (already compiled: the first call is warmed up
outside the timing). Prints a table, then one JSON object as the last line: per depth the two rates
and their ratio, and ``alphabeta_speedup`` (depth 4).

    python benchmarks/bench_search.py [--depths 1 2 3 4 5] [--every 10]
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np

from connectx_gym.evaluation.accuracy import load_positions
from connectx_gym.search.alphabeta import alphabeta_move


def timed_moves(positions, depth: int, pure_python: bool) -> tuple[float, list[int]]:
    os.environ["CONNECTX_PURE_PYTHON"] = "1" if pure_python else "0"
    started = time.perf_counter()
    moves = [alphabeta_move(p, depth, np.random.default_rng(i)) for i, p in enumerate(positions)]
    return time.perf_counter() - started, moves


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--depths", type=int, nargs="+", default=[1, 2, 3, 4, 5])
    parser.add_argument("--every", type=int, default=10, help="use every N-th labelled position (default 10: 350)")
    args = parser.parse_args()
    positions = load_positions().positions()[:: args.every]
    timed_moves(positions[:3], 2, pure_python=False)  # compile, or load the compiled kernels
    summary: dict = {"positions": len(positions)}
    print(f"{len(positions)} positions; moves identical between the two searches at every depth")
    print(f"{'depth':>5}  {'python moves/s':>14}  {'compiled moves/s':>16}  {'speedup':>7}")
    for depth in args.depths:
        slow_s, slow = timed_moves(positions, depth, pure_python=True)
        fast_s, fast = timed_moves(positions, depth, pure_python=False)
        if fast != slow:
            raise SystemExit(f"depth {depth}: the compiled search chose other moves than the Python search")
        slow_rate, fast_rate = len(positions) / slow_s, len(positions) / fast_s
        print(f"{depth:>5}  {slow_rate:>14.0f}  {fast_rate:>16.0f}  {fast_rate / slow_rate:>6.1f}x")
        summary[f"depth_{depth}"] = {
            "python_moves_per_s": round(slow_rate, 1),
            "compiled_moves_per_s": round(fast_rate, 1),
            "speedup": round(fast_rate / slow_rate, 2),
        }
    if "depth_4" in summary:
        summary["alphabeta_speedup"] = summary["depth_4"]["speedup"]
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
