"""An Elo ladder: an agent rated against fixed rungs (``random``, ``negamax``, ``alphabeta:1`` to
``alphabeta:6`` and, with the ``[solver]`` extra, the perfect ``solver``), with ``random`` at exactly
0 Elo.

The rungs' games against each other are played once, from the opening suite, and shipped in
``connectx_gym/data/ladder-6x7.json`` (the rungs, the seed, the suite's size and per rung pair its
games, W/D/L, distinct games and per-opening score). ``evaluate AGENT --ladder`` then plays only the
agent against each rung (every suite opening in both seats by default, ``--games`` overrides) and
fits Bradley-Terry ratings on the combined matrix (``fit_ladder``): every pairing counts one trial
per opening played (the mean of its seat-swapped games), the fitted ratings are shifted so that
``random`` is 0, and each interval is that of the difference to ``random`` (``ratings.bradley_terry``
with ``anchor``). Ratings of players that win or lose every game are held finite by the prior
(``--elo-prior`` virtual draws against a 0-rated player) and are only bounds.

Games per rung pair (``rung_games``): every suite opening in both seats (240 games) for rungs at
most two apart in ``RUNGS``, 80 games (the first 40 openings) three apart, 40 (the first 20) further
apart, where the results are nearly all one-sided. Rebuild the shipped file with::

    python -m connectx_gym.evaluation.ladder --rebuild      # all usable cores

(its time is in ``docs/benchmarks.md``; the ``alphabeta:5``/``alphabeta:6``/``solver`` pairs take
most of it). Without bitbully the file has no ``solver`` rung, and a file that has one
drops it where bitbully is missing. The rungs are not in strength order beyond ``alphabeta:1``:
``alphabeta:2`` holds its own against depths 3 and 4, and depths 2-6 lie within about 200 Elo.
``python -m connectx_gym.evaluation.ladder`` alone prints the rungs' own ratings from the file.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from connectx_gym.agents.checkpoint import agent_board, board_text
from connectx_gym.cli import ArgumentParser, format_table, run_command
from connectx_gym.data import LADDER_FILE, ladder_file, openings_file
from connectx_gym.errors import UserError
from connectx_gym.evaluation.match import SeatRecord
from connectx_gym.evaluation.openings import SUITE, SUITE_BOARD, load_openings, suite_boards_text, suite_digest
from connectx_gym.evaluation.parallel import play_pairings
from connectx_gym.evaluation.plan import Plan, build_agent, is_run_directory
from connectx_gym.evaluation.ratings import Ratings, bradley_terry
from connectx_gym.evaluation.report import interval_note, pairings_table, ratings_document, ratings_note
from connectx_gym.evaluation.results import SCORE_POINTS, PairingResult, pairing_results, score_matrices
from connectx_gym.runtime.processes import usable_cpu_count
from connectx_gym.search.solver import SOLVER_BOARD, solver_available

#: the rungs, weakest first (as far as known); ``solver`` only where bitbully is installed
RUNGS = ("random", "negamax", *(f"alphabeta:{depth}" for depth in range(1, 7)), "solver")
#: the rung fixed at 0 Elo
ANCHOR = "random"
SOLVER_RUNG = "solver"
RUNG_SCHEDULE = (
    "every suite opening in both seats for rungs at most 2 apart in the rung list, "
    "the first 40 openings (80 games) for rungs 3 apart, the first 20 (40 games) further apart"
)


def rung_games(i: int, j: int, suite_size: int) -> int:
    """Games between rungs ``i`` and ``j`` (indices in ``RUNGS``) in the rung file: see ``RUNG_SCHEDULE``."""
    distance = abs(i - j)
    if distance <= 2:
        return 2 * suite_size
    return 2 * min(suite_size, 40 if distance == 3 else 20)


@dataclass(frozen=True)
class RungPair:
    """The games of rung ``a`` against rung ``b``, from ``a``'s side."""

    a: str
    b: str
    games: int
    wins: int
    draws: int
    losses: int
    distinct_games: int
    openings: int
    opening_score: float

    @property
    def score(self) -> float:
        return self.wins + 0.5 * self.draws

    def trials(self) -> tuple[float, int]:
        """``(points, trials)`` for the fit: per opening (as ``PairingResult.trials``), else per game."""
        return (self.opening_score, self.openings) if self.openings else (self.score, self.games)


@dataclass
class Ladder:
    """A rung file: the rungs, their pairs' results, the seed and suite size they were played with."""

    rungs: list[str]
    pairs: list[RungPair]
    seed: int
    suite_size: int
    source: str = str(LADDER_FILE)
    suite_digest: str = field(default_factory=lambda: suite_digest(load_openings(openings_file(SUITE_BOARD))))
    started: float = field(default_factory=time.perf_counter)
    board: dict = field(default_factory=lambda: dict(SUITE_BOARD))


# ---------------------------------------------------------------------- the rung file
def shipped_ladder(board: dict) -> Path | None:
    """The shipped rung file of ``board`` (``LADDER_FILE`` on 6x7 with 4 in a row), ``None`` if none is."""
    return Path(LADDER_FILE) if board == SUITE_BOARD else ladder_file(board)


def load_ladder(path: str | Path | None = None, with_solver: bool | None = None, board: dict | None = None) -> Ladder:
    """The rung file of ``board`` (default 6x7 with 4 in a row) at ``path`` (default the shipped one),
    without the ``solver`` rung and its pairs unless ``with_solver`` (default: whether bitbully is
    installed).

    :raises UserError: naming the file if it cannot be read, is malformed, is for another board, or was
        played from another opening suite than the board's shipped one (then it must be rebuilt)
    """
    board = dict(SUITE_BOARD if board is None else board)
    path = shipped_ladder(board) if path is None else path
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        rungs = [str(rung) for rung in data["rungs"]]
        pairs = [RungPair(**{k: v for k, v in pair.items() if k != "score"}) for pair in data["pairs"]]
        seed, suite_size, file_board = int(data["seed"]), int(data["suite_size"]), dict(data["board"])
        digest = str(data["suite_digest"])
    except OSError as error:
        raise UserError(f"cannot read the ladder file '{path}': {error.strerror or error}") from None
    except (ValueError, KeyError, TypeError) as error:
        raise UserError(f"the ladder file '{path}' is malformed ({type(error).__name__}: {error})") from None
    _check_ladder(path, rungs, pairs, file_board, (suite_size, digest), board)
    if not (solver_available() if with_solver is None else with_solver):
        rungs = [rung for rung in rungs if rung != SOLVER_RUNG]
        pairs = [pair for pair in pairs if SOLVER_RUNG not in (pair.a, pair.b)]
    return Ladder(rungs, pairs, seed, suite_size, str(path), digest, board=board)


def _check_ladder(path, rungs: list[str], pairs: list[RungPair], board: dict, suite: tuple, expected: dict) -> None:
    """A ``UserError`` naming the file unless it is for the ``expected`` board, lists its rungs and the
    pairs of them once, and was played from that board's shipped suite (``suite``: the file's ``(size,
    digest)``)."""
    if board != expected:
        raise UserError(f"the ladder file '{path}' is for a {board_text(board)} board, not {board_text(expected)}")
    if len(set(rungs)) != len(rungs) or ANCHOR not in rungs:
        raise UserError(f"the ladder file '{path}' must list distinct rungs including {ANCHOR!r}, got {rungs}")
    shipped = load_openings(openings_file(expected), expected)
    if suite != (len(shipped), suite_digest(shipped)):
        raise UserError(
            f"the ladder file '{path}' was played from another opening suite ({suite[0]} openings, digest "
            f"{suite[1]}) than the shipped one ({len(shipped)}, {suite_digest(shipped)}); rebuild it: "
            "python -m connectx_gym.evaluation.ladder --rebuild (with the board's --rows/--columns/--inarow)"
        )
    for pair in pairs:
        if pair.a not in rungs or pair.b not in rungs or pair.a == pair.b:
            raise UserError(f"the ladder file '{path}' has a pair {pair.a!r} vs {pair.b!r} of unknown rungs")
        if pair.wins + pair.draws + pair.losses != pair.games or not 0 <= pair.opening_score <= pair.openings:
            raise UserError(f"the ladder file '{path}' has inconsistent counts for {pair.a!r} vs {pair.b!r}")


def ladder_file_document(ladder: Ladder) -> dict[str, Any]:
    """The rung file's JSON content."""
    return {
        "description": "games between the Elo ladder's rungs, played once from the opening suite; "
        "results from the side of a; rebuild: python -m connectx_gym.evaluation.ladder --rebuild",
        "board": dict(ladder.board),
        "rungs": list(ladder.rungs),
        "seed": ladder.seed,
        "suite_size": ladder.suite_size,
        "suite_digest": ladder.suite_digest,
        "schedule": RUNG_SCHEDULE,
        "pairs": [{**asdict(pair), "score": pair.score} for pair in ladder.pairs],
    }


def rung_pair(result: PairingResult) -> RungPair:
    """A played pairing of two rungs as a rung file entry."""
    total = result.total
    points, openings = result.trials(SCORE_POINTS) if result.openings else (0.0, 0)
    return RungPair(
        result.agent, result.opponent, total.games, total.wins, total.draws, total.losses,
        result.distinct_games, openings, round(points, 6),
    )  # fmt: skip


# ---------------------------------------------------------------------- evaluate --ladder
def ladder_plan(
    agent: str,
    rows: int | None = None,
    columns: int | None = None,
    inarow: int | None = None,
    openings: str | None = None,
    path: str | Path | None = None,
) -> Plan:
    """The agent against every rung of its board's rung file (or the one at ``path``): the board asked,
    else the agent's own (a checkpoint's), else 6x7 with 4 in a row; shipped for the ``SUITE_BOARDS``.

    :raises UserError: for a run directory, a board without a rung file, an agent bound to another board,
        or ``--openings`` other than the suite (the rungs played it)
    """
    started = time.perf_counter()
    if openings is not None and openings != SUITE:
        raise UserError(f"--ladder plays the shipped opening suite (as its rung games did), not --openings {openings}")
    if is_run_directory(agent.strip()):
        raise UserError(f"--ladder rates one agent, not the run directory {agent.strip()!r}; name a checkpoint in it")
    entry = build_agent(agent)
    bound = agent_board(entry.agent)
    asked = {"rows": rows, "columns": columns, "inarow": inarow}
    base = bound if bound is not None else SUITE_BOARD
    board = {key: base[key] if value is None else value for key, value in asked.items()}
    if path is None and shipped_ladder(board) is None:
        raise UserError(
            f"--ladder plays {suite_boards_text()} boards only (its rung games were played there), "
            f"not {board_text(board)}"
        )
    if bound is not None and bound != board:
        raise UserError(
            f"--ladder on {board_text(board)}: agent {entry.label!r} was trained on a {board_text(bound)} board"
        )
    ladder = load_ladder(path, board=board)
    if entry.label in ladder.rungs:
        entry.label = f"{entry.label} (agent)"
    entries = [entry] + [build_agent(rung) for rung in ladder.rungs]
    ladder.started = started
    plan = Plan("ladder", entries, [(0, o) for o in range(1, len(entries))], board, ladder=ladder)
    return plan


def ladder_matrices(labels: Sequence[str], ladder: Ladder, results: Sequence[PairingResult]) -> tuple[Any, Any]:
    """``(scores, trials)`` for ``bradley_terry``: the rung file's pairs plus the played ``results``."""
    scores, trials = score_matrices(results, len(labels))
    index = {label: i for i, label in enumerate(labels)}
    for pair in ladder.pairs:
        points, count = pair.trials()
        a, b = index[pair.a], index[pair.b]
        scores[a, b] += points
        scores[b, a] += count - points
        trials[a, b] += count
        trials[b, a] += count
    return scores, trials


def fit_ladder(labels: Sequence[str], scores: Any, trials: Any, prior_draws: float) -> Ratings:
    """Bradley-Terry ratings with ``ANCHOR`` (random) at exactly 0 and intervals relative to it."""
    try:
        return bradley_terry(scores, trials, prior_draws=prior_draws, anchor=list(labels).index(ANCHOR))
    except ValueError as error:
        raise UserError(f"{error} (--elo-prior)") from None


def report_ladder(plan: Plan, results: Sequence[PairingResult], prior_draws: float, document: dict) -> None:
    """Fit and print the ladder (table, notes, the agent's pairings, run time); add ``elo`` and
    ``ladder`` to the JSON ``document``."""
    ladder: Ladder = plan.ladder
    scores, trials = ladder_matrices(plan.labels, ladder, results)
    ratings = fit_ladder(plan.labels, scores, trials, prior_draws)
    print()
    print(ladder_table(plan.labels, ratings, ladder, results))
    suite = len(plan.openings) if plan.openings is not None else None
    print(f"\n{ratings_note(prior_draws, f'{ANCHOR} = 0', openings=bool(suite))}")
    rung_games_total = sum(pair.games for pair in ladder.pairs)
    print(
        f"rung games: {rung_games_total} in {len(ladder.pairs)} pairs from {Path(ladder.source).name} "
        f"(seed {ladder.seed}; {RUNG_SCHEDULE})\n"
    )
    print(pairings_table(results, show_agent=False))
    print(interval_note(suite))
    elapsed = time.perf_counter() - ladder.started
    print(f"\nladder run time: {elapsed:.1f} s wall clock (loading the agents, the agent's games, the fit)")
    document["elo"] = ratings_document(plan.labels, ratings, prior_draws)
    document["ladder"] = {
        "file": ladder.source,
        "rungs": list(ladder.rungs),
        "rung_seed": ladder.seed,
        "rung_games": rung_games_total,
        "rung_schedule": RUNG_SCHEDULE,
        "wall_clock_s": round(elapsed, 3),
    }


def ladder_table(labels: Sequence[str], ratings: Ratings, ladder: Ladder, results: Sequence[PairingResult]) -> str:
    """Rank, player, Elo with its 95% interval, games in the fit, and the agent's W-D-L and distinct
    games against each rung (the agent's own row: its totals)."""
    games = dict.fromkeys(labels, 0)
    for pair in ladder.pairs:
        games[pair.a] += pair.games
        games[pair.b] += pair.games
    against: dict[str, PairingResult] = {}
    for result in results:
        games[result.agent] += result.games
        games[result.opponent] += result.games
        against[result.opponent] = result
    agent_total, agent_distinct = SeatRecord(), sum(result.distinct_games for result in results)
    for result in results:
        for record in result.records:
            agent_total.add(record.outcome)
    rows = []
    for rank, i in enumerate(sorted(range(len(labels)), key=lambda k: -ratings.elo[k]), 1):
        label = labels[i]
        if label in against:
            record, distinct = against[label].total, str(against[label].distinct_games)
            wdl = f"{record.wins}-{record.draws}-{record.losses}"
        else:
            wdl, distinct = f"{agent_total.wins}-{agent_total.draws}-{agent_total.losses} (all)", str(agent_distinct)
            label = f"{label} <- agent"
        rows.append([
            str(rank), label, f"{ratings.elo[i]:+.0f}", f"[{ratings.low[i]:+.0f}, {ratings.high[i]:+.0f}]",
            str(games[labels[i]]), wdl, distinct,
        ])  # fmt: skip
    headers = ["rank", "player", "Elo", "95% CI", "games", "agent W-D-L", "distinct"]
    return format_table(headers, rows, [True, False, True, True, True, True, True])


# ---------------------------------------------------------------------- rebuilding the rung file
def rebuild(
    path: str | Path, seed: int = 0, num_processes: int = 1, with_solver: bool | None = None, board: dict | None = None
) -> Ladder:
    """Play every pair of rungs (``rung_games`` games each, from the board's suite) and write the rung file.

    Pairs with the same number of games are played together, in parallel on ``num_processes``. The
    ``solver`` rung plays only on its board (6x7 with 4 in a row).
    """
    board = dict(SUITE_BOARD if board is None else board)
    suite_file = openings_file(board)
    if suite_file is None:
        raise UserError(f"no opening suite is shipped for {board_text(board)} boards (only {suite_boards_text()})")
    with_solver = (solver_available() if with_solver is None else with_solver) and board == SOLVER_BOARD
    rungs = [rung for rung in RUNGS if with_solver or rung != SOLVER_RUNG]
    suite = load_openings(suite_file, board)
    openings = [opening.moves for opening in suite]
    agents = [build_agent(rung).agent for rung in rungs]
    order = {rung: RUNGS.index(rung) for rung in rungs}
    groups: dict[int, list[tuple[int, int]]] = {}
    for a in range(len(rungs)):
        for b in range(a + 1, len(rungs)):
            groups.setdefault(rung_games(order[rungs[a]], order[rungs[b]], len(openings)), []).append((a, b))
    pairs: list[RungPair] = []
    for games, group in sorted(groups.items(), reverse=True):
        started = time.perf_counter()
        records = play_pairings(agents, group, games, seed, board, num_processes, openings=openings)
        results = pairing_results(rungs, [None] * len(rungs), group, records)
        pairs += [rung_pair(result) for result in results]
        print(f"{len(group)} pairs x {games} games in {time.perf_counter() - started:.1f} s", file=sys.stderr)
    pairs.sort(key=lambda pair: (rungs.index(pair.a), rungs.index(pair.b)))
    ladder = Ladder(rungs, pairs, seed, len(suite), str(path), suite_digest(suite), board=board)
    Path(path).write_text(json.dumps(ladder_file_document(ladder), indent=1) + "\n", encoding="utf-8")
    return ladder


def rung_ratings_table(ladder: Ladder, prior_draws: float = 1.0) -> str:
    """The rungs' own ratings from the rung file (random = 0)."""
    scores, trials = ladder_matrices(ladder.rungs, ladder, [])
    ratings = fit_ladder(ladder.rungs, scores, trials, prior_draws)
    games = dict.fromkeys(ladder.rungs, 0)
    for pair in ladder.pairs:
        games[pair.a] += pair.games
        games[pair.b] += pair.games
    rows = [
        [label, f"{ratings.elo[i]:+.0f}", f"[{ratings.low[i]:+.0f}, {ratings.high[i]:+.0f}]", str(games[label])]
        for i, label in sorted(enumerate(ladder.rungs), key=lambda item: -ratings.elo[item[0]])
    ]
    return format_table(["rung", "Elo", "95% CI", "games"], rows, [False, True, True, True])


def main(argv: Sequence[str] | None = None) -> int:
    parser = ArgumentParser(
        prog="python -m connectx_gym.evaluation.ladder",
        description="The Elo ladder's rung file: print the rungs' ratings, or --rebuild it by playing every rung pair.",
    )
    parser.add_argument("--rebuild", action="store_true", help="play the rung games and write the file")
    parser.add_argument("--output", default=None, help="the rung file (default: the board's shipped one)")
    for name, default in (("rows", 6), ("columns", 7), ("inarow", 4)):
        parser.add_argument(f"--{name}", type=int, default=default, help=f"the board's {name} (default: {default})")
    parser.add_argument("--seed", type=int, default=0, help="game i of every rung pair uses seed SEED + i")
    parser.add_argument("--num-processes", type=int, default=None, help="default: all usable cores")

    def command() -> None:
        args = parser.parse_args(argv)
        board = {"rows": args.rows, "columns": args.columns, "inarow": args.inarow}
        if args.output is None:
            if shipped_ladder(board) is None:
                raise UserError(f"no ladder is shipped for {board_text(board)} boards; name one with --output")
            args.output = str(shipped_ladder(board))
        if args.rebuild:
            if args.num_processes is not None and args.num_processes < 1:
                raise UserError(f"--num-processes must be >= 1, got {args.num_processes}")
            processes = args.num_processes or usable_cpu_count()
            started = time.perf_counter()
            ladder = rebuild(args.output, args.seed, processes, board=board)
            games = sum(pair.games for pair in ladder.pairs)
            print(f"wrote {args.output}: {len(ladder.pairs)} pairs, {games} games in "
                  f"{time.perf_counter() - started:.0f} s with {processes} process(es)")  # fmt: skip
        print(rung_ratings_table(load_ladder(args.output, board=board)))

    return run_command(command)


if __name__ == "__main__":
    sys.exit(main())
