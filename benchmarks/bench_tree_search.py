"""Tree search speed: simulations/s and leaf evaluations/s of the PUCT search over the shipped network,
against the bare batched forward pass on the very same leaf batches, side by side in one run.

Two ways of batching are timed, each on one thread (BLAS included), over every ``--every``-th shipped
labelled position with ``--simulations`` per position:

- ``one tree``: one position at a time, ``BATCH`` leaves per round spread by virtual loss (play);
- ``lockstep``: ``--group`` positions at once, ``LOCKSTEP_BATCH`` leaves of every tree stacked into
  one batch per round (what ``MctsAgent(group=...)`` and ``TreeSearch.run`` over many roots do).

Each search runs once to record the batches it sends to the network, then again timed; the recorded
batches are then timed through ``NumpyPolicy.policy_value`` alone. ``forward share`` is the bare
forward time over the search time: the leaf evaluations/s of the search over those of the bare
forward pass. Prints a table, then one JSON object as the last line.

    python benchmarks/bench_tree_search.py [--every 50] [--simulations 800] [--group 4]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from connectx_gym.agents.mcts import BATCH, C_PUCT, FPU_REDUCTION, LOCKSTEP_BATCH
from connectx_gym.evaluation.accuracy import load_positions
from connectx_gym.inference.numpy_policy import load_checkpoint
from connectx_gym.runtime.processes import single_threaded_blas
from connectx_gym.search.puct import TreeSearch

#: the shipped model (the benchmarks run from a checkout)
PRETRAINED_MODEL = Path(__file__).resolve().parent.parent / "models" / "pretrained" / "model.zip"


def search_all(
    policy, positions, simulations: int, group: int, batch: int, record: list | None
) -> tuple[float, int, int]:
    """Search every position (``group`` at a time); ``(seconds, simulations, leaf evaluations)``."""

    def evaluate(planes):
        if record is not None:
            record.append(planes.copy())
        return policy.policy_value(planes)

    search = TreeSearch((6, 7, 4), evaluate, c_puct=C_PUCT, batch=batch, fpu_reduction=FPU_REDUCTION)
    total = 0
    started = time.perf_counter()
    for start in range(0, len(positions), group):
        search.cache.clear()
        roots = [search.root(p.stones[p.to_move], p.mask) for p in positions[start : start + group]]
        search.run(roots, simulations=simulations)
        total += sum(root.total for root in roots)
    return time.perf_counter() - started, total, search.evaluations


def bare_forward(policy, batches: list[np.ndarray], repeats: int = 2) -> float:
    """Seconds for the recorded batches through the forward pass alone (the best of ``repeats``)."""
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        for planes in batches:
            policy.policy_value(planes)
        best = min(best, time.perf_counter() - started)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--every", type=int, default=50, help="use every N-th labelled position (default 50: 70)")
    parser.add_argument("--simulations", type=int, default=800)
    parser.add_argument("--group", type=int, default=4, help="trees searched in lockstep (default 4)")
    parser.add_argument("--checkpoint", default=str(PRETRAINED_MODEL))
    args = parser.parse_args()
    policy = load_checkpoint(args.checkpoint)
    positions = load_positions().positions()[:: args.every]
    summary: dict = {"positions": len(positions), "simulations_per_position": args.simulations}
    print(f"{len(positions)} positions, {args.simulations} simulations each, one thread; network {args.checkpoint}")
    header = f"{'batching':>9}  {'sims/s':>7}  {'ms/move':>7}  {'leaf evals/s':>12}  {'bare forward evals/s':>20}"
    print(header + f"  {'mean batch':>10}  {'forward share':>13}")
    with single_threaded_blas():
        for name, group, batch in (("one tree", 1, BATCH), ("lockstep", args.group, LOCKSTEP_BATCH)):
            batches: list[np.ndarray] = []
            search_all(policy, positions, args.simulations, group, batch, batches)
            seconds, simulations, evaluations = search_all(policy, positions, args.simulations, group, batch, None)
            forward = bare_forward(policy, batches)
            row = {
                "simulations_per_s": round(simulations / seconds, 1),
                "ms_per_move": round(1000 * seconds / len(positions), 2),
                "leaf_evaluations_per_s": round(evaluations / seconds, 1),
                "bare_forward_evaluations_per_s": round(evaluations / forward, 1),
                "mean_batch": round(evaluations / len(batches), 1),
                "forward_share": round(forward / seconds, 3),
            }
            summary[name.replace(" ", "_")] = row
            print(
                f"{name:>9}  {row['simulations_per_s']:>7.0f}  {row['ms_per_move']:>7.1f}  "
                f"{row['leaf_evaluations_per_s']:>12.0f}  {row['bare_forward_evaluations_per_s']:>20.0f}  "
                f"{row['mean_batch']:>10.1f}  {row['forward_share']:>13.2f}"
            )
    summary["forward_share"] = summary["lockstep"]["forward_share"]
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
