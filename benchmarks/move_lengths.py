"""Where an agent's moves lose the solver's "perfect" grade: by changing the result, or by keeping it at
another length. The solver's score counts moves, so among winning moves the quickest win is the perfect
one and among losing moves the slowest loss; a value target of the bare outcome (AlphaZero's loop) does
not tell them apart. Each agent answers the 3,500 shipped labelled positions as ``evaluate --accuracy``
does (the same moves), and each of its moves is counted as perfect, kept (the result, not the length:
a slower win or a quicker loss) or changed (a win or draw given away).

    python benchmarks/move_lengths.py models/pretrained/model.zip mcts:models/pretrained/model.zip:800

Prints one line per agent, then one JSON object as the last line.
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Sequence

import numpy as np

from connectx_gym.agents.specs import make_agent
from connectx_gym.evaluation.accuracy import answer_positions, classify_moves, load_positions


def split_moves(scores: np.ndarray, moves: Sequence[int | None]) -> dict[str, int]:
    """Count the moves that are perfect, that keep the result at another length (in won and in lost
    positions) and that change it (an illegal or missing move counts as changed). ``scores`` is the
    solver's score per position and column (NaN for a full column)."""
    best = np.nanmax(scores, axis=1)
    counts = {"positions": len(moves), "perfect": 0, "kept_won": 0, "kept_lost": 0, "changed": 0}
    for row, which in enumerate(classify_moves(scores, moves)):
        if which == "kept":
            which = "kept_won" if best[row] > 0 else "kept_lost"
        counts["changed" if which == "illegal" else which] += 1
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("agents", nargs="+", help="agent specs, as evaluate takes them")
    parser.add_argument("--num-processes", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()
    labels = load_positions()
    best = np.nanmax(labels.scores, axis=1)
    won, lost = int((best > 0).sum()), int((best < 0).sum())
    report = {"positions": len(labels), "won_positions": won, "lost_positions": lost, "agents": {}}
    for spec in args.agents:
        moves = answer_positions(make_agent(spec), labels, num_processes=args.num_processes)
        counts = split_moves(labels.scores, moves)
        share = {key: counts[key] / counts["positions"] for key in ("perfect", "kept_won", "kept_lost", "changed")}
        print(
            f"{spec}: perfect {share['perfect']:.1%}; the result kept at another length "
            f"{share['kept_won'] + share['kept_lost']:.1%} (a slower win in {counts['kept_won']} of {won} won "
            f"positions, a quicker loss in {counts['kept_lost']} of {lost} lost); "
            f"the result changed {share['changed']:.1%}"
        )
        report["agents"][spec] = counts
    print(json.dumps(report))


if __name__ == "__main__":
    main()
