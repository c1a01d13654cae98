"""Evaluation speed: games/s of ``evaluation.parallel.play_pairings`` with 1 and 2 worker processes.

The same seeded games (agent vs ``alphabeta:6``, half in each seat) are played in-process and then
by two forkserver workers, each taking contiguous batches of games; the pool's start-up time is
included. The records of both runs must be identical. Prints a table, then one JSON object as the
last line: ``games_per_s_1``, ``games_per_s_2``, ``speedup_2_vs_1``.

    python benchmarks/bench_eval.py [--agent negamax] [--opponent alphabeta:6] [--games 2000]
"""

from __future__ import annotations

import argparse
import json
import time

from connectx_gym.evaluation.parallel import play_pairings
from connectx_gym.evaluation.plan import build_agent
from connectx_gym.search.lines import clear_caches


def timed(agents, games, seed, processes):
    clear_caches()  # cold search caches in every run, as in fresh worker processes
    started = time.perf_counter()
    records = play_pairings(agents, [(0, 1)], games, seed=seed, num_processes=processes)
    return time.perf_counter() - started, records[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agent", default="negamax", help="agent spec (default: negamax); a checkpoint .zip works too")
    # the compiled searches play hundreds of games a second: enough games that the pool's start-up
    # (forkserver, imports, loading the compiled kernels) does not dominate
    parser.add_argument("--opponent", default="alphabeta:6")
    parser.add_argument("--games", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    agents = [build_agent(args.agent).agent, build_agent(args.opponent).agent]
    timed(agents, 4, args.seed, 1)  # warm imports and code paths
    rows = []
    results = {}
    for processes in (1, 2):
        seconds, records = timed(agents, args.games, args.seed, processes)
        results[processes] = records
        rows.append((processes, args.games, seconds, args.games / seconds))
    if results[1] != results[2]:
        raise SystemExit("records differ between 1 and 2 processes")
    wins = sum(r.outcome == "win" for r in results[1])
    draws = sum(r.outcome == "draw" for r in results[1])
    print(
        f"{args.agent} vs {args.opponent}: {args.games} games "
        f"(agent W-D-L {wins}-{draws}-{args.games - wins - draws}); records identical for 1 and 2 processes"
    )
    print(f"{'processes':>9}  {'games':>5}  {'seconds':>7}  {'games/s':>8}")
    for processes, games, seconds, rate in rows:
        print(f"{processes:>9}  {games:>5}  {seconds:>7.2f}  {rate:>8.1f}")
    summary = {
        "agent": args.agent,
        "opponent": args.opponent,
        "games": args.games,
        "games_per_s_1": round(rows[0][3], 2),
        "games_per_s_2": round(rows[1][3], 2),
        "speedup_2_vs_1": round(rows[1][3] / rows[0][3], 3),
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
