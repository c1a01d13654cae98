"""``python -m connectx_gym.evaluate``: how strong is an agent, with honest error bars. The command
reads its arguments, plans the evaluation (``evaluation.plan``: a match of one agent against
opponents, a ``--tournament`` round robin rated by Bradley-Terry Elo, or every checkpoint of a run
directory), plays the seeded games on local processes or Ray tasks (``evaluation.parallel``: the
same records either way) and reports them (``evaluation.report``, ``evaluation.replay``: tables with
95% Wilson intervals, JSON, CSV, a win-rate plot, a Kaggle HTML replay). Bad input is one
``error: ...`` line on stderr and exit code 2; a worker or Ray task that fails is one ``error: ...``
line and exit code 1.

On 6x7 and 5x6 boards with 4 in a row the games start from the shipped opening suite (``--openings``,
``evaluation.openings``): each opening twice, seats swapped, and the intervals count openings, not
games (``evaluation.results``). ``--ladder`` rates the agent against fixed rungs (random = 0 Elo;
``evaluation.ladder``); for the shipped checkpoint models/pretrained/model.zip it took 65 s wall
clock on 2 cores (2160 games against 9 rungs, bitbully installed; an agent that lasts longer
against alphabeta:6 and the solver takes a few minutes).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from connectx_gym.agents.checkpoint import board_text
from connectx_gym.agents.kaggle import require_kaggle
from connectx_gym.agents.specs import BARE_PATH_NOTE
from connectx_gym.cli import ArgumentParser, run_command
from connectx_gym.errors import UserError, WorkerError
from connectx_gym.evaluation.accuracy_command import run_accuracy
from connectx_gym.evaluation.ladder import ladder_plan, report_ladder
from connectx_gym.evaluation.match import GameRecord
from connectx_gym.evaluation.openings import NONE
from connectx_gym.evaluation.parallel import connect_ray, play_pairings, play_pairings_ray
from connectx_gym.evaluation.plan import DEFAULT_OPPONENTS, Plan, evaluation_mode, make_plan, settle_games
from connectx_gym.evaluation.ratings import bradley_terry
from connectx_gym.evaluation.replay import replay_html, replay_text
from connectx_gym.evaluation.report import (
    csv_text,
    forfeit_lines,
    games_note,
    interval_note,
    pairings_table,
    plot_progress,
    plot_ratings,
    ratings_document,
    ratings_note,
    ratings_table,
    write_text,
)
from connectx_gym.evaluation.results import PairingResult, pairing_results, score_matrices
from connectx_gym.runtime.checkpoints import add_trust_option, trusted_checkpoints
from connectx_gym.runtime.processes import usable_cpu_count
from connectx_gym.runtime.ray_cluster import cluster_cpus, import_ray

#: where games are played: processes on this machine, or tasks on a Ray cluster
BACKENDS = ("local", "ray")

Progress = Callable[[int], None]


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = ArgumentParser(
        prog="python -m connectx_gym.evaluate",
        description=(
            "Evaluate ConnectX agents: matches with 95% Wilson intervals, Elo tournaments, "
            "win rate vs training step of a run, Kaggle replays. Agent specs: random, negamax, "
            "alphabeta:<depth>[:<epsilon>], kaggle:<name|file.py>, checkpoint:<model.zip>, "
            "mcts:<model.zip>[:<simulations>|:<N>ms] (the checkpoint searched by PUCT); " + BARE_PATH_NOTE + "."
        ),
    )
    add = parser.add_argument
    add("agent", nargs="?", help="the agent to evaluate (a spec), or a run directory models/<run>")
    add("--opponents", nargs="+", metavar="SPEC",
        help=f"opponents of the agent (default: {' '.join(DEFAULT_OPPONENTS)})")  # fmt: skip
    add("--tournament", nargs="+", metavar="SPEC", help="round robin between these agents, with Elo ratings")
    add("--ladder", action="store_true",
        help="rate the agent on the Elo ladder: against random (0 Elo), negamax, alphabeta:1..6 and solver "
             "(with bitbully, 6x7 only), their games against each other read from connectx_gym/data/ladder-6x7.json "
             "or ladder-5x6.json; 6x7 and 5x6 boards with 4 in a row (the agent's board, or --rows/--columns); "
             "about 1 minute for models/pretrained/model.zip on 2 cores")  # fmt: skip
    add("--openings", metavar="{suite,none,PATH}",
        help="start positions: suite (the shipped openings, each played in both seats: 120 on 6x7, 60 on 5x6 "
             "boards with 4 in a row, where it is the default), none (the empty board; the default elsewhere) or a "
             "suite file "
             "(JSON lines with a moves list)")  # fmt: skip
    add("--games", type=int, default=None,
        help="games per pairing (default: 2 x the openings with a suite, even; 100 from the empty board, "
             "half in each seat)")  # fmt: skip
    add("--seed", type=int, default=0, help="game i of every pairing uses seed SEED + i (default: 0)")
    add("--num-processes", type=int, default=None,
        help="processes playing games, this one included (default: all usable cores; "
             "not used with --backend ray, whose tasks (1 CPU each) fill every CPU of the cluster)")  # fmt: skip
    add("--backend", choices=BACKENDS, default="local",
        help="where games are played: local (processes on this machine; default) or ray "
             "(Ray tasks, 1 CPU each; needs the ray extra); the records are the same")  # fmt: skip
    add("--ray-address", default="", metavar="ADDRESS",
        help="with --backend ray: 'auto' (the cluster 'ray start' runs on this machine) or host:port to join "
             "a cluster (default: start a local Ray instance on this machine's usable cores)")  # fmt: skip
    add("--rows", type=int, help="board rows (default: the checkpoints' board, else 6)")
    add("--columns", type=int, help="board columns (default: the checkpoints' board, else 7)")
    add("--inarow", type=int, help="stones in a row to win (default: the checkpoints' board, else 4)")
    add("--elo-prior", type=float, default=1.0, metavar="DRAWS",
        help="virtual draws of each agent against a reference player of rating 0, keeping ratings finite "
             "(default: 1; 0: plain MLE)")  # fmt: skip
    add("--json", metavar="PATH", help="write the results as JSON")
    add("--csv", metavar="PATH", help="write one CSV row per pairing")
    add(
        "--plot",
        metavar="PATH",
        help="with a run directory: win rate vs training step; with --tournament or --ladder: the Elo ratings (PNG)",
    )
    add("--replay", metavar="PATH", help="write one game as Kaggle's HTML player")
    add("--replay-text", metavar="PATH", help="write that game's move list and final board")
    add("--replay-pairing", type=int, default=0, metavar="K",
        help="replay a game of the K-th pairing (0-based, table order; default 0)")  # fmt: skip
    add("--replay-game", type=int, default=0, metavar="I", help="replay game I of that pairing (default 0)")
    add("--accuracy", action="store_true",
        help="grade the agent's moves on solver-labelled 6x7 positions instead of playing games: perfect-move "
             "and good-move rates, overall and per phase, with 95%% Wilson intervals")  # fmt: skip
    add(
        "--positions",
        metavar="FILE",
        help="with --accuracy: a labelled-positions file (default: the shipped connectx_gym/data/positions-6x7.jsonl)",
    )
    add_trust_option(parser)
    return parser.parse_args(argv)


def _check_args(args: argparse.Namespace) -> None:
    if args.ladder and args.tournament:
        raise UserError("--ladder rates one agent against the ladder's rungs; it does not combine with --tournament")
    if args.ladder and args.opponents:
        raise UserError("--ladder plays the agent against the ladder's rungs; drop --opponents (or --ladder)")
    if args.tournament and args.agent:
        raise UserError("give either an agent (with --opponents) or --tournament, not both")
    if args.tournament and args.opponents:
        raise UserError("--opponents does not apply to --tournament; list every agent after --tournament")
    if not args.tournament and not args.agent:
        raise UserError("name an agent to evaluate (e.g. models/<run>/final_model.zip) or use --tournament A B ...")
    if args.tournament and len(args.tournament) < 2:
        raise UserError("--tournament needs at least two agents")
    if args.games is not None and args.games < 1:
        raise UserError(f"--games must be >= 1, got {args.games}")
    if args.num_processes is not None and args.num_processes < 1:
        raise UserError(f"--num-processes must be >= 1, got {args.num_processes}")
    if args.ray_address and args.backend != "ray":
        raise UserError(f"--ray-address {args.ray_address} needs --backend ray (got --backend {args.backend})")
    if args.elo_prior < 0 or not math.isfinite(args.elo_prior):
        raise UserError(f"--elo-prior must be a number >= 0, got {args.elo_prior}")
    if args.replay:
        require_kaggle("--replay (Kaggle's HTML player)")
    if args.replay_game < 0:
        raise UserError(f"--replay-game must be >= 0, got {args.replay_game}")
    if args.games is not None and args.replay_game >= args.games:  # else checked once the games are settled
        raise UserError(f"--replay-game must be in 0..{args.games - 1}, got {args.replay_game}")
    if args.tournament:
        labels = [spec.strip() for spec in args.tournament]
        duplicates = sorted({label for label in labels if labels.count(label) > 1})
        if duplicates:
            raise UserError(f"--tournament lists {', '.join(map(repr, duplicates))} more than once")


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Validate, plan, play, print and write everything; returns the JSON document."""
    if args.accuracy or args.positions:
        return run_accuracy(args)
    _check_args(args)
    if args.backend == "ray":
        import_ray("--backend ray")  # before loading any agent: say at once that Ray is missing
    plan = _plan(args)
    played = _play(args, plan)
    results = pairing_results(plan.labels, [entry.step for entry in plan.entries], plan.pairs, played.records)
    document = _report(args, plan, played, results)
    _write_files(args, plan, results, document)
    return document


# ---------------------------------------------------------------------- plan
def _plan(args: argparse.Namespace) -> Plan:
    if args.ladder:
        plan = ladder_plan(args.agent, args.rows, args.columns, args.inarow, args.openings)
    else:
        mode, run_dir = evaluation_mode(args.agent, args.tournament)
        if args.plot and mode == "match":
            raise UserError(
                "--plot needs a run directory as the agent, --tournament or --ladder "
                "(python -m connectx_gym.evaluate models/<run> --plot out.png)"
            )
        specs = list(args.tournament or args.opponents or DEFAULT_OPPONENTS)
        if mode == "match":
            specs = [args.agent] + specs
        plan = make_plan(mode, specs, run_dir, args.rows, args.columns, args.inarow)
    args.games = settle_games(plan, args.openings, args.games)  # the board decides the default openings
    if args.replay_game >= args.games:
        raise UserError(f"--replay-game must be in 0..{args.games - 1}, got {args.replay_game}")
    if not 0 <= args.replay_pairing < len(plan.pairs):
        raise UserError(f"--replay-pairing must be in 0..{len(plan.pairs) - 1}, got {args.replay_pairing}")
    return plan


# ---------------------------------------------------------------------- play
@dataclass
class Played:
    """The records of every pairing, how long they took, and who played them (for the header line)."""

    records: list[list[GameRecord]]
    elapsed: float
    workers: str
    num_processes: int | None
    ray_cpus: int | None = None


def _play(args: argparse.Namespace, plan: Plan) -> Played:
    agents = [entry.agent for entry in plan.entries]
    total_games = len(plan.pairs) * args.games
    if args.backend == "ray":
        return _play_on_ray(args, plan, agents, total_games)
    num_processes = args.num_processes or usable_cpu_count()

    def play(progress: Progress | None) -> list[list[GameRecord]]:
        return play_pairings(
            agents, plan.pairs, args.games, args.seed, plan.board, num_processes, progress, plan.opening_moves
        )

    try:
        records, elapsed = _timed_play(total_games, play)
    except BrokenProcessPool as error:
        raise WorkerError(f"a worker process died ({error}); try --num-processes 1") from None
    workers = f"with {min(num_processes, max(1, total_games))} process(es)"
    return Played(records, elapsed, workers, num_processes)


def _play_on_ray(args: argparse.Namespace, plan: Plan, agents: list[Any], total_games: int) -> Played:
    ray, started_ray = connect_ray(args.ray_address)

    def play(progress: Progress | None) -> list[list[GameRecord]]:
        return play_pairings_ray(
            ray, agents, plan.pairs, args.games, args.seed, plan.board, progress, plan.opening_moves
        )

    try:
        ray_cpus = cluster_cpus(ray)
        records, elapsed = _timed_play(total_games, play)
    finally:
        if started_ray:
            ray.shutdown()
    workers = f"on Ray ({ray_cpus} CPU{'s' if ray_cpus != 1 else ''})"
    return Played(records, elapsed, workers, None, ray_cpus)


def _progress_bar(total: int):
    if not sys.stderr.isatty():
        return None
    # deferred: tqdm loads only when a bar is drawn (the evaluate command's import stays light)
    from tqdm import tqdm

    return tqdm(total=total, unit="game", desc="evaluate", dynamic_ncols=True, file=sys.stderr, leave=False)


def _timed_play(
    total_games: int, play: Callable[[Progress | None], list[list[GameRecord]]]
) -> tuple[list[list[GameRecord]], float]:
    """``play(progress)`` under a progress bar (on a terminal); its records and the seconds it took."""
    bar = _progress_bar(total_games)
    started = time.perf_counter()
    try:
        records = play(bar.update if bar is not None else None)
    finally:
        if bar is not None:
            bar.close()
    return records, time.perf_counter() - started


# ---------------------------------------------------------------------- report
def _report(args: argparse.Namespace, plan: Plan, played: Played, results: list[PairingResult]) -> dict[str, Any]:
    """Print the header, the tables and the forfeits; returns the JSON document."""
    total_games = len(plan.pairs) * args.games
    suite = len(plan.openings) if plan.openings is not None else None
    source = plan.openings.source if plan.openings is not None else NONE
    print(
        f"board {board_text(plan.board)}; {games_note(args.games, suite, source)}, seed {args.seed}; "
        f"{total_games} games in {played.elapsed:.1f} s {played.workers}\n{interval_note(suite)}"
    )
    document: dict[str, Any] = {
        "mode": plan.mode,
        "board": plan.board,
        "games_per_pairing": args.games,
        "openings": {"source": source, "count": suite} if suite else None,
        "seed": args.seed,
        "backend": args.backend,
        "num_processes": played.num_processes,
        "elapsed_s": round(played.elapsed, 3),
        "agents": plan.labels,
        "pairings": [result.to_dict() for result in results],
    }
    if played.ray_cpus is not None:
        document["ray_cpus"] = played.ray_cpus
    if plan.mode == "match":
        print(f"agent: {plan.labels[0]}\n")
        print(pairings_table(results, show_agent=False))
    elif plan.mode == "run":
        document["run_dir"] = plan.run_dir
        print(f"run: {plan.run_dir} ({plan.checkpoints} checkpoints)\n")
        print(pairings_table(results, show_agent=False, show_step=True))
    elif plan.mode == "ladder":
        print(f"agent: {plan.labels[0]}")
        report_ladder(plan, results, args.elo_prior, document)
    else:
        document["elo"] = _report_ratings(plan.labels, results, args.elo_prior)
    for line in forfeit_lines(results):
        print(line)
    return document


def _report_ratings(labels: list[str], results: list[PairingResult], prior_draws: float) -> dict[str, Any]:
    """Fit and print the tournament's Elo ratings and its pairings; returns the ratings' JSON entry."""
    scores, games = score_matrices(results, len(labels))
    try:
        ratings = bradley_terry(scores, games, prior_draws=prior_draws)
    except ValueError as error:
        raise UserError(f"{error} (--elo-prior)") from None
    print()
    print(ratings_table(labels, ratings, results))
    print(f"\n{ratings_note(prior_draws)}\n")
    print(pairings_table(results))
    return ratings_document(labels, ratings, prior_draws)


def _write_files(args: argparse.Namespace, plan: Plan, results: list[PairingResult], document: dict[str, Any]) -> None:
    """The replay (printed too), the plot, JSON and CSV, then one line naming the files written."""
    if args.replay or args.replay_text:
        result = results[args.replay_pairing]
        record = result.records[args.replay_game]
        text = replay_text(result, record, plan.board, plan.openings)
        print("\n" + text, end="")
        if args.replay_text:
            write_text(args.replay_text, text, "replay text")
        if args.replay:
            write_text(args.replay, replay_html(result, record, plan.board), "replay")
    if args.plot and plan.mode == "run":
        plot_progress(results, args.plot, title=f"run {Path(plan.run_dir).name}")
    elif args.plot:
        title = f"Elo ladder of {plan.labels[0]}" if plan.mode == "ladder" else "tournament Elo"
        plot_ratings(document["elo"], args.plot, title, highlight=plan.labels[:1] if plan.mode == "ladder" else ())
    if args.json:
        write_text(args.json, json.dumps(document, indent=2) + "\n", "JSON")
    if args.csv:
        write_text(args.csv, csv_text(results), "CSV")
    written = [path for path in (args.json, args.csv, args.plot, args.replay, args.replay_text) if path]
    if written:
        print("\nwrote " + ", ".join(written))


def main(argv: Sequence[str] | None = None) -> int:
    def command() -> None:
        args = parse_args(argv)
        with trusted_checkpoints(args.trust_checkpoint):
            run(args)

    return run_command(command)


if __name__ == "__main__":
    sys.exit(main())
