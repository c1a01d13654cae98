"""Planning an evaluation: which agents play (specs checked, then built; or every checkpoint of a
training run), which pairs of them meet, on which board, from which openings and how many games,
before any game is played. Bad input is a ``UserError`` naming the spec, the run directory, the
board or the option."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from connectx_gym.agents.checkpoint import CheckpointOpponent, agent_board, board_text, bound_board_text
from connectx_gym.agents.specs import make_agent, parse_spec
from connectx_gym.errors import UserError
from connectx_gym.evaluation.match import DEFAULT_BOARD
from connectx_gym.evaluation.openings import OpeningSuite, resolve_openings
from connectx_gym.runtime.checkpoints import CHECKPOINT_DIR, CheckpointError, list_checkpoints

DEFAULT_OPPONENTS = ("random", "negamax")
#: games per pairing from the empty board (``--openings none``) when ``--games`` is not given;
#: with an opening suite the default is every opening in both seats (2 x the suite's size)
DEFAULT_GAMES = 100
#: spec kinds that only make sense inside a training run
TRAINING_ONLY_KINDS = ("selfplay",)


@dataclass
class AgentEntry:
    """An agent that plays, with the label it is reported under (its training step for a checkpoint of a run)."""

    label: str
    agent: Any
    step: int | None = None


@dataclass
class Plan:
    """Everything an evaluation plays: the agents, the ``(agent index, opponent index)`` pairs, the board.

    :param mode: ``match``, ``run``, ``tournament`` or ``ladder`` (a match against the ladder's rungs)
    :param run_dir: in ``run`` mode, the run directory; its checkpoints are ``entries[:checkpoints]``
    :param openings: the opening suite the games start from (``settle_games``), ``None``: the empty board
    :param ladder: in ``ladder`` mode, the rung file's contents (``evaluation.ladder.Ladder``)
    """

    mode: str
    entries: list[AgentEntry]
    pairs: list[tuple[int, int]]
    board: dict[str, int]
    run_dir: str | None = None
    checkpoints: int = 0
    labels: list[str] = field(init=False)
    openings: OpeningSuite | None = None
    ladder: Any = None

    def __post_init__(self) -> None:
        self.labels = [entry.label for entry in self.entries]

    @property
    def opening_moves(self) -> list[tuple[int, ...]] | None:
        """Each opening's columns for the game loops, or ``None`` for games from the empty board."""
        return self.openings.moves() if self.openings is not None else None


def evaluation_mode(agent: str | None, tournament: Sequence[str] | None) -> tuple[str, str | None]:
    """``(mode, run directory or None)``: ``tournament`` (a round robin), ``run`` (every checkpoint of a
    training run against the opponents) or ``match`` (one agent against the opponents)."""
    if tournament:
        return "tournament", None
    if agent is not None and is_run_directory(agent.strip()):
        return "run", agent.strip()
    return "match", None


def make_plan(
    mode: str,
    specs: Sequence[str],
    run_dir: str | None = None,
    rows: int | None = None,
    columns: int | None = None,
    inarow: int | None = None,
) -> Plan:
    """Check every spec's syntax first (cheap), then build the agents (files, checkpoints), pair them up
    and settle the board.

    :param specs: in ``match`` (and ``ladder``) mode the agent then its opponents; in ``run`` mode the
        opponents of the run's checkpoints; in ``tournament`` mode every agent
    :param rows: explicit board rows (``columns``, ``inarow`` likewise), else the checkpoints' board
    """
    for spec in specs:
        if not os.path.isdir(spec.strip()):
            check_spec(spec)
    checkpoints = run_checkpoints(run_dir) if mode == "run" else []
    entries = checkpoints + [build_agent(spec) for spec in specs]
    if mode == "run":
        pairs = [(c, len(checkpoints) + o) for c in range(len(checkpoints)) for o in range(len(specs))]
    elif mode in ("match", "ladder"):
        pairs = [(0, o) for o in range(1, len(entries))]
    else:
        pairs = [(a, b) for a in range(len(entries)) for b in range(a + 1, len(entries))]
    board = resolve_board(entries, rows, columns, inarow)
    return Plan(mode, entries, pairs, board, run_dir=run_dir, checkpoints=len(checkpoints))


def settle_games(plan: Plan, openings: str | None, games: int | None) -> int:
    """Set ``plan.openings`` from ``--openings`` and return the games per pairing ``--games`` asks for.

    :param openings: ``suite``, ``none``, a suite file, or ``None``: the suite on 6x7 boards with 4 in
        a row, the empty board elsewhere (``openings.resolve_openings``)
    :param games: ``--games``, or ``None``: 2 x the suite's openings with a suite, else ``DEFAULT_GAMES``
    :raises UserError: for an odd ``--games`` with openings (each opening is played in both seats),
        or a bad ``--openings``
    """
    plan.openings = resolve_openings(openings, plan.board)
    if plan.openings is None:
        return DEFAULT_GAMES if games is None else games
    if games is None:
        return 2 * len(plan.openings)
    if games % 2:
        raise UserError(
            f"--games must be even with openings (each opening is played twice, seats swapped), got {games}; "
            f"the suite has {len(plan.openings)} openings (default --games {2 * len(plan.openings)}), "
            "or use --openings none"
        )
    return games


def build_agent(spec: str) -> AgentEntry:
    """Check a spec's syntax, then build the agent (loads checkpoints and agent files)."""
    if not isinstance(spec, str) or not spec.strip():
        raise UserError(f"empty agent spec {spec!r}")
    if os.path.isdir(spec.strip()):
        raise UserError(
            f"{spec.strip()!r} is a directory; only the evaluated agent may be a run directory "
            f"(name a checkpoint in it instead, e.g. {os.path.join(spec.strip(), 'final_model.zip')})"
        )
    return AgentEntry(label=spec.strip(), agent=make_agent(check_spec(spec)))


def check_spec(spec: str) -> Any:
    """``parse_spec(spec, agent=True)``, with a plain message for a path that names nothing, and without the kinds
    that exist only inside training."""
    text = spec.strip()
    looks_like_path = ("/" in text or os.sep in text) and not text.lower().endswith((".zip", ".py"))
    if looks_like_path and ":" not in text and not os.path.exists(text):
        raise UserError(f"agent {text!r} is neither an agent spec nor an existing run directory")
    parsed = parse_spec(spec, agent=True)
    if parsed.kind in TRAINING_ONLY_KINDS:
        raise UserError(
            f"{text!r} exists only inside training (it plays snapshots of the learner); name a checkpoint instead"
        )
    return parsed


def is_run_directory(path: str) -> bool:
    return os.path.isdir(path)


def run_checkpoints(run_dir: str) -> list[AgentEntry]:
    """Every loadable checkpoint of a run, oldest first; unreadable ones are skipped with a warning."""
    found = list_checkpoints(run_dir)
    if not found:
        pattern = os.path.join(run_dir, CHECKPOINT_DIR, "step_*.zip")
        raise UserError(f"'{run_dir}' is a directory without checkpoints ({pattern}); is it a run directory?")
    entries = []
    for step, path in found:
        try:
            entries.append(AgentEntry(label=f"step {step}", agent=CheckpointOpponent.from_file(path), step=step))
        except CheckpointError as error:
            print(f"warning: skipping {error}", file=sys.stderr)
    if not entries:
        raise UserError(f"no loadable checkpoint in '{os.path.join(run_dir, CHECKPOINT_DIR)}'")
    return entries


def resolve_board(
    entries: Sequence[AgentEntry], rows: int | None, columns: int | None, inarow: int | None
) -> dict[str, int]:
    """The board to play on: explicit values, else the checkpoints' board, else 6x7 with 4 in a row.

    :raises UserError: if checkpoints disagree with each other or with the board asked for
    """
    bound = [(entry.label, agent_board(entry.agent)) for entry in entries]
    bound = [(label, b) for label, b in bound if b is not None]
    base = dict(bound[0][1]) if bound else dict(DEFAULT_BOARD)
    for key, value in (("rows", rows), ("columns", columns), ("inarow", inarow)):
        if value is not None:
            if value < 1:
                raise UserError(f"--{key} must be an integer >= 1, got {value}")
            base[key] = value
    agents = {entry.label: entry.agent for entry in entries}
    for label, b in bound:
        if b != base:
            raise UserError(
                f"agent {label!r} {bound_board_text(agents[label], b)}, but the evaluation board is {board_text(base)}"
            )
    return base
