"""How right is the value the ``mcts`` teacher gives the value head? The sign of the network's own value
and of the PUCT search's root value (``teacher.search_targets``: +1/0/-1 where the search proves the
root) against the solver, on every ``--every``-th shipped labelled position, for each ``--simulations``
(0 is the network's value head alone). The search is the one ``kickstart.teacher.kind: mcts`` runs in the
env workers, on one thread here.

    python benchmarks/search_values.py models/pretrained/model.zip [--simulations 0 64 800] [--every 5]

Prints a table (the sign right on decided, won and lost positions; a drawn one counts as right when
|value| <= 0.2), then one JSON object as the last line.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from connectx_gym.agents.mcts import MctsAgent
from connectx_gym.evaluation.accuracy import LabelledPositions, load_positions, policy_values, value_accuracy
from connectx_gym.inference.numpy_policy import load_checkpoint
from connectx_gym.runtime.processes import single_threaded_blas
from connectx_gym.search.targets import search_targets


def root_values(policy, labels: LabelledPositions, simulations: int, group: int = 16) -> np.ndarray:
    """The search's root value of every position (from the side to move), ``group`` searched in lockstep."""
    if simulations == 0:
        return policy_values(policy, labels)
    agent = MctsAgent(policy, simulations=simulations, group=group)
    positions = labels.positions()
    values = []
    for start in range(0, len(positions), group):
        values.extend(search_targets(result)[1] for result in agent.search(positions[start : start + group]))
    return np.asarray(values)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint")
    parser.add_argument("--simulations", type=int, nargs="+", default=[0, 64, 800])
    parser.add_argument("--every", type=int, default=5, help="grade every N-th shipped position (default: 5)")
    args = parser.parse_args()
    if args.every < 1 or any(s < 0 for s in args.simulations):
        parser.error(f"--every must be >= 1 and --simulations >= 0, got {args.every} and {args.simulations}")
    policy = load_checkpoint(args.checkpoint)
    full = load_positions()
    labels = LabelledPositions(full.moves[:: args.every], full.scores[:: args.every], full.phases[:: args.every])
    rows = []
    with single_threaded_blas():
        for simulations in args.simulations:
            start = time.perf_counter()
            graded = value_accuracy(labels, root_values(policy, labels, simulations), f"{simulations} simulations")
            rate = {key: graded.rate(graded.overall, key) for key in ("decided", "won", "drawn", "lost")}
            rows.append({"simulations": simulations, **rate, "seconds": round(time.perf_counter() - start, 1)})
    print(f"{args.checkpoint}: {len(labels)} positions (every {args.every}-th)")
    print("simulations  decided   won      drawn    lost     seconds")
    for row in rows:
        rates = "  ".join(f"{100 * row[key]:6.1f}%" for key in ("decided", "won", "drawn", "lost"))
        print(f"{row['simulations']:>11}  {rates}  {row['seconds']:>7}")
    print(json.dumps({"checkpoint": args.checkpoint, "positions": len(labels), "rows": rows}))


if __name__ == "__main__":
    main()
