"""Every agent is an opponent: trained checkpoints join the one spec syntax of ``opponents``.

Importing this module registers the kind ``checkpoint:<path/to/model.zip>``: a MaskablePPO
checkpoint played greedily by its numpy twin (``NumpyPolicy``) on the planes of the player to move,
with illegal columns masked out. ``resolve_agent_spec`` also reads a bare path ending in ``.zip`` as
``checkpoint:<path>`` and one ending in ``.py`` as ``kaggle:<path>`` (a Kaggle submission file),
so ``models/x/final_model.zip`` or ``submission.py`` work wherever an agent is named.

A ``CheckpointOpponent`` pickles as its compressed weights (no torch, no SB3), so it can be shipped
to worker processes that import neither; only building it from a file imports SB3.
"""

from __future__ import annotations

import os
from typing import Any, Dict, Optional, Union

import numpy as np

from connectx_gym.game.bitboard import Position
from connectx_gym.errors import SpecError
from connectx_gym.game.numpy_policy import NumpyPolicy
from connectx_gym.game.opponents import (
    OpponentKind,
    OpponentSpec,
    make_opponent,
    parse_spec,
    register_opponent_kind,
    resolve_bare_path,
)

CHECKPOINT_KIND = "checkpoint"
BARE_PATH_NOTE = "a bare path ending in .zip is read as checkpoint:<path>, one ending in .py as kaggle:<path>"


class BoardMismatchError(ValueError):
    """A policy was asked to play on a board other than the one it was trained on."""


def board_text(board: Dict[str, int]) -> str:
    return f"{board['rows']}x{board['columns']} with {board['inarow']} in a row"


class CheckpointOpponent:
    """A trained policy as an opponent: the greedy (highest-logit legal) column of ``NumpyPolicy``.

    ``act`` raises ``BoardMismatchError`` on a board of another size (rows, columns or inarow)
    than the checkpoint was trained on; in a game that forfeits, as any raising opponent does.

    :param policy: the numpy policy
    :param name: how the opponent is named (default ``"checkpoint"``)
    """

    def __init__(self, policy: NumpyPolicy, name: str = CHECKPOINT_KIND) -> None:
        self.policy = policy
        self.name = name
        self.board: Dict[str, int] = dict(policy.board)

    @classmethod
    def from_file(cls, path: Union[str, os.PathLike]) -> "CheckpointOpponent":
        """Load a checkpoint ``.zip`` (imports SB3 here only).

        :raises connectx_gym.training.checkpoints.CheckpointError: if it is missing or not a checkpoint
        """
        from connectx_gym.game.numpy_policy import load_checkpoint

        return cls(load_checkpoint(path), name=f"{CHECKPOINT_KIND}:{os.fspath(path)}")

    def check_board(self, rows: int, columns: int, inarow: int) -> None:
        """Raise ``BoardMismatchError`` unless the board is the one the policy was trained on."""
        if (rows, columns, inarow) != (self.board["rows"], self.board["columns"], self.board["inarow"]):
            raise BoardMismatchError(
                f"{self.name} was trained on a {board_text(self.board)} board and cannot play on a "
                f"{board_text({'rows': rows, 'columns': columns, 'inarow': inarow})} board"
            )

    def act(self, position: Position, rng: np.random.Generator) -> int:
        geometry = position.geometry
        self.check_board(geometry.rows, geometry.columns, geometry.inarow)
        return self.policy.move(position)

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other.name == self.name  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash((type(self), self.name))

    def __repr__(self) -> str:
        return f"CheckpointOpponent({self.name!r}, board={self.board})"


def _check_checkpoint_argument(argument: str) -> None:
    if not argument.lower().endswith(".zip"):
        raise SpecError(f"a checkpoint path must end in .zip, got {argument!r}")


def register() -> None:
    """Register the ``checkpoint`` kind with ``opponents`` (done on import; idempotent)."""
    register_opponent_kind(
        OpponentKind(
            CHECKPOINT_KIND,
            "checkpoint:<path/to/model.zip>",
            lambda argument: CheckpointOpponent.from_file(argument),  # type: ignore[arg-type]
            argument="required",
            check_argument=_check_checkpoint_argument,
            argument_name="the path of a checkpoint .zip",
        )
    )


register()


def resolve_agent_spec(spec: str) -> str:
    """The spec string with bare paths made explicit: ``*.zip`` -> ``checkpoint:``, ``*.py`` -> ``kaggle:``."""
    if not isinstance(spec, str):
        return spec
    return resolve_bare_path(spec)


def parse_agent_spec(spec: str) -> OpponentSpec:
    """``parse_spec`` after ``resolve_agent_spec``; the error also explains bare paths."""
    try:
        return parse_spec(resolve_agent_spec(spec))
    except SpecError as error:
        raise SpecError(f"{error}; {BARE_PATH_NOTE}") from None


def make_agent(spec: Union[str, OpponentSpec, Any]) -> Any:
    """Build an agent (an opponent) from a spec, bare ``.zip``/``.py`` paths included."""
    if isinstance(spec, str):
        spec = parse_agent_spec(spec)
    return make_opponent(spec)


def agent_board(agent: Any) -> Optional[Dict[str, int]]:
    """The board an agent is bound to (a checkpoint's training board), or ``None`` if it plays any."""
    board = getattr(agent, "board", None)
    return dict(board) if isinstance(board, dict) else None
