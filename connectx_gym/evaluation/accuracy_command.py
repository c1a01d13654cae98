"""``python -m connectx_gym.evaluate AGENT --accuracy [--positions FILE]``: grade an agent's moves on
solver-labelled positions (see ``evaluation.accuracy``) and print, and optionally write, the rates."""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

from connectx_gym.agents.checkpoint import agent_board, board_text, bound_board_text
from connectx_gym.errors import UserError
from connectx_gym.evaluation.accuracy import (
    LABEL_BOARD,
    accuracy_csv,
    accuracy_table,
    answer_positions,
    grade,
    load_positions,
    network_values,
    value_accuracy,
    value_table,
)
from connectx_gym.evaluation.plan import build_agent, is_run_directory
from connectx_gym.evaluation.report import write_text
from connectx_gym.runtime.processes import usable_cpu_count

#: options of game-playing modes that --accuracy cannot combine with
_GAME_OPTIONS = (
    ("opponents", "--opponents"),
    ("tournament", "--tournament"),
    ("ladder", "--ladder"),
    ("plot", "--plot"),
    ("replay", "--replay"),
    ("replay_text", "--replay-text"),
    ("backend", "--backend ray"),
    ("openings", "--openings"),
    ("games", "--games"),
)


def check_accuracy_args(args: argparse.Namespace) -> None:
    if not args.accuracy:
        raise UserError(f"--positions {args.positions} needs --accuracy")
    for name, flag in _GAME_OPTIONS:
        value = getattr(args, name, None)
        if value and not (name == "backend" and value == "local"):
            raise UserError(f"--accuracy grades moves on labelled positions and plays no games; drop {flag}")
    if not args.agent:
        raise UserError("--accuracy needs an agent to grade (e.g. models/<run>/final_model.zip or alphabeta:3)")
    if is_run_directory(args.agent):
        raise UserError(f"--accuracy grades one agent; name a checkpoint of '{args.agent}', not the run directory")
    asked = {"rows": args.rows, "columns": args.columns, "inarow": args.inarow}
    for key, value in asked.items():
        if value is not None and value != LABEL_BOARD[key]:
            raise UserError(f"--{key} {value}: the labelled positions are for {board_text(LABEL_BOARD)} boards only")
    if args.num_processes is not None and args.num_processes < 1:
        raise UserError(f"--num-processes must be >= 1, got {args.num_processes}")


def run_accuracy(args: argparse.Namespace) -> dict[str, Any]:
    """Check the arguments, grade the agent, print the table; returns the JSON document."""
    check_accuracy_args(args)
    labels = load_positions(args.positions)
    entry = build_agent(args.agent)
    bound = agent_board(entry.agent)
    if bound is not None and bound != LABEL_BOARD:
        raise UserError(
            f"agent {entry.label!r} {bound_board_text(entry.agent, bound)}; "
            f"the labelled positions are for {board_text(LABEL_BOARD)}"
        )
    num_processes = args.num_processes or usable_cpu_count()
    started = time.perf_counter()
    moves = answer_positions(entry.agent, labels, seed=args.seed, num_processes=num_processes, progress=True)
    elapsed = time.perf_counter() - started
    result = grade(labels, moves, agent=entry.label)
    print(
        f"accuracy on {len(labels)} solver-labelled positions ({labels.path}), seed {args.seed}; "
        f"answered in {elapsed:.1f} s\nperfect: a best-scored column; good: keeps the win, draw or loss\n"
    )
    print(accuracy_table([result]))
    if result.illegal:
        print(f"\n{result.illegal} answer(s) were illegal or raised; they count as neither perfect nor good")
    document = {
        "mode": "accuracy",
        "positions_file": labels.path,
        "seed": args.seed,
        "elapsed_s": round(elapsed, 3),
        **result.to_dict(),
    }
    values = network_values(entry.agent, labels)
    if values is not None:
        graded = value_accuracy(labels, values, agent=entry.label)
        print(
            "\nvalue head (the network's value of the side to move, no search): its sign against the solver's "
            f"result; a drawn position counts as right when |value| <= {graded.threshold:g}\n"
        )
        print(value_table(graded))
        means = ", ".join(f"{name} {mean:+.3f}" for name, mean in graded.mean.items())
        print(f"mean value on {means}")
        document["value"] = graded.to_dict()
    if args.json:
        write_text(args.json, json.dumps(document, indent=2) + "\n", "JSON")
    if args.csv:
        write_text(args.csv, accuracy_csv([result]), "CSV")
    return document
