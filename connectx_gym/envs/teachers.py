"""The kickstarting teachers the training envs carry: one object, set on an env as ``env.teacher``.

A teacher labels the position an observation shows, for the learner's kickstarting term
(``training.kickstart``): ``label(position, rng)`` returns ``{"teacher": distribution}`` and, for
a search over a network, ``"teacher_value"``; the env adds it to the ``info`` returned with the
observation while the game goes on. The trainer builds the teacher of its ``kickstart`` section
(:func:`make_teacher`), the vec env hands every env of a worker the same object (``set_attr``), and
the ``mcts`` teacher's search is replaced the same way when the trainer refreshes its network. A
Gymnasium user never sees one: ``ConnectXEnv`` takes no teacher argument.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from connectx_gym.envs.solver_teacher import solver_distribution
from connectx_gym.rules.bitboard import Position
from connectx_gym.search.solver import check_board
from connectx_gym.search.targets import search_distribution, search_targets


class AlphaBetaTeacher:
    """The move distribution of the alpha-beta search to ``depth`` plies at ``temperature``
    (``search.targets.search_distribution``), on every position."""

    def __init__(self, depth: int, temperature: float = 0.1) -> None:
        if isinstance(depth, bool) or not isinstance(depth, (int, np.integer)) or depth < 1:
            raise ValueError(f"the teacher's depth must be an integer >= 1, got {depth!r}")
        if not temperature >= 0:
            raise ValueError(f"the teacher's temperature must be >= 0, got {temperature!r}")
        self.depth, self.temperature = int(depth), float(temperature)

    def label(self, position: Position, rng: np.random.Generator) -> dict[str, Any]:
        return {"teacher": search_distribution(position, self.depth, self.temperature)}


class SolverTeacher(AlphaBetaTeacher):
    """Perfect moves where they are cheap to know (the opening book, and the perfect solver from
    ``solver_from`` stones on), the alpha-beta teacher in between (``envs.solver_teacher``); 6x7
    boards with 4 in a row only."""

    def __init__(self, depth: int, temperature: float = 0.1, solver_from: int = 20) -> None:
        super().__init__(depth, temperature)
        self.solver_from = int(solver_from)

    def label(self, position: Position, rng: np.random.Generator) -> dict[str, Any]:
        return {"teacher": solver_distribution(position, self.depth, self.temperature, self.solver_from)}


class SearchTeacher:
    """The ``mcts`` teacher: on a ``share`` of the positions (drawn from the env's ``rng``), the visit
    distribution and root value of a PUCT search (``agent``: an ``MctsAgent`` over a snapshot of the
    learner's network)."""

    def __init__(self, agent: Any, share: float = 1.0) -> None:
        if not 0 < share <= 1:
            raise ValueError(f"the teacher's share must be in (0, 1], got {share!r}")
        self.agent, self.share = agent, float(share)

    def label(self, position: Position, rng: np.random.Generator) -> dict[str, Any]:
        if self.share < 1 and rng.random() >= self.share:
            return {}
        distribution, value = search_targets(self.agent.search([position])[0])
        return {"teacher": distribution, "teacher_value": value}


def make_teacher(config: Any, board: dict[str, int]) -> Any:
    """The ``alphabeta`` or ``solver`` teacher of a ``kickstart.teacher`` config (its ``kind`` and that kind's
    keys; the ``mcts`` one is built by the trainer around its network: None here).

    :raises ValueError: an unknown kind, a bad depth or temperature, or the solver on another board
    """
    if config.kind == "alphabeta":
        return AlphaBetaTeacher(config.depth, config.temperature)
    if config.kind == "solver":
        check_board(board["rows"], board["columns"], board["inarow"], "the solver teacher")
        return SolverTeacher(config.depth, config.temperature, config.solver_from)
    if config.kind == "mcts":
        return None
    raise ValueError(f"teacher must be one of alphabeta|solver|mcts, got {config.kind!r}")
