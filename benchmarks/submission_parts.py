"""The exported Kaggle file graded on the shipped labelled positions, part by part: which part chose each
move (the opening book, the tree's exact rules, the alpha-beta proof, the PUCT tree, or the policy as a
fallback), how often each part was right, and how long the moves took.

The file is loaded as Kaggle's loader does (executed in a fresh namespace) in each of ``--processes``
worker processes, each on one BLAS thread, and answers every ``--every``-th position, one move per
call, as in a game. Its ``LAST_MOVE`` record names the part that chose. Prints the accuracy table (per
phase) and the parts table, then one JSON object as the last line.

    python -m connectx_gym.export models/pretrained/model.zip --search-ms 500 -o submission.py
    python benchmarks/submission_parts.py submission.py [--every 1] [--processes 2]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import statistics
import time
from collections import Counter, defaultdict
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from connectx_gym.evaluation.accuracy import accuracy_table, grade, load_positions
from connectx_gym.runtime.processes import single_threaded_children

_WORKER: dict = {}


def _init(path: str) -> None:
    from connectx_gym.submission.build import load_submission

    _WORKER["namespace"] = load_submission(Path(path).read_text(encoding="utf-8"), path)


def _answer(job: list[tuple[list[int], int]]) -> list[tuple[int, str, int, float]]:
    """``(column, part, simulations, seconds)`` for each ``(board, mark)`` of the job."""
    namespace = _WORKER["namespace"]
    agent, record = namespace["agent"], namespace["LAST_MOVE"]
    out = []
    for board, mark in job:
        record.update(source=None, simulations=0)
        namespace["_STATE"].clear()  # each position stands alone: no tree from the last one
        started = time.perf_counter()
        column = agent({"board": board, "mark": mark}, namespace["BOARD"])
        out.append((int(column), str(record["source"]), int(record["simulations"]), time.perf_counter() - started))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("submission", help="an exported submission file (export --search-ms N)")
    parser.add_argument("--every", type=int, default=1, help="use every N-th labelled position (default 1: all 3,500)")
    parser.add_argument("--processes", type=int, default=2)
    args = parser.parse_args()
    labels = load_positions()
    keep = list(range(0, len(labels), args.every))
    labels = type(labels)(
        [labels.moves[i] for i in keep], labels.scores[keep], [labels.phases[i] for i in keep], labels.path
    )
    boards = [(p.to_kaggle(), p.to_move) for p in labels.positions()]
    jobs = [boards[start : start + 25] for start in range(0, len(boards), 25)]
    started = time.perf_counter()
    method = "forkserver" if "forkserver" in mp.get_all_start_methods() else "spawn"
    with (
        single_threaded_children(),
        ProcessPoolExecutor(
            args.processes, mp_context=mp.get_context(method), initializer=_init, initargs=(args.submission,)
        ) as pool,
    ):
        answers = [answer for chunk in pool.map(_answer, jobs) for answer in chunk]
    elapsed = time.perf_counter() - started
    moves = [column for column, _, _, _ in answers]
    result = grade(labels, moves, agent=Path(args.submission).name)
    print(f"{len(labels)} positions on {args.processes} processes in {elapsed:.0f} s\n")
    print(accuracy_table([result]))
    best = np.nanmax(labels.scores, axis=1)
    parts: dict[str, Counter] = defaultdict(Counter)
    seconds: dict[str, list[float]] = defaultdict(list)
    for row, (column, part, simulations, took) in enumerate(answers):
        score = labels.scores[row, column]
        for name in (part, "all"):
            tally = parts[name]
            tally["moves"] += 1
            tally["perfect"] += bool(score == best[row])
            tally["good"] += bool(np.sign(score) == np.sign(best[row]))
            tally["simulations"] += simulations
            seconds[name].append(took)
    columns = ("moves", 5), ("share", 6), ("perfect", 7), ("good", 6), ("sims/move", 9), ("median ms", 9), ("max ms", 7)
    print("\n" + f"{'part':>7}  " + "  ".join(f"{name:>{width}}" for name, width in columns))
    summary: dict = {"positions": len(labels), "elapsed_s": round(elapsed, 1), "parts": {}}
    total = parts["all"]["moves"]
    for name in ("book", "rules", "proof", "tree", "policy", "all"):
        tally = parts.get(name)
        if not tally:
            continue
        moves_ = tally["moves"]
        row = {
            "moves": moves_,
            "share": round(moves_ / total, 4),
            "perfect": round(tally["perfect"] / moves_, 4),
            "good": round(tally["good"] / moves_, 4),
            "simulations_per_move": round(tally["simulations"] / moves_, 1),
            "median_ms": round(1000 * statistics.median(seconds[name]), 1),
            "max_ms": round(1000 * max(seconds[name]), 1),
        }
        summary["parts"][name] = row
        print(
            f"{name:>7}  {moves_:>5}  {100 * row['share']:5.1f}%  {100 * row['perfect']:6.1f}%  "
            f"{100 * row['good']:5.1f}%  {row['simulations_per_move']:>9.0f}  {row['median_ms']:>9.1f}  "
            f"{row['max_ms']:>7.1f}"
        )
    summary["accuracy"] = result.to_dict()
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
