"""A trained checkpoint as an opponent (spec ``checkpoint:<path/to/model.zip>``).

A MaskablePPO checkpoint plays greedily through its numpy twin (``NumpyPolicy``) on the planes of
the player to move, with illegal columns masked out. A ``CheckpointOpponent`` pickles as its
compressed weights (no torch, no SB3), so it can be shipped to worker processes that import
neither. Building it from a file reads only the file's JSON metadata and weights (nothing unpickled).
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from connectx_gym.agents.opponents import SameSourceIsEqual
from connectx_gym.inference.numpy_policy import NumpyPolicy, load_checkpoint
from connectx_gym.rules.bitboard import Position
from connectx_gym.rules.planes import encode_position

CHECKPOINT_KIND = "checkpoint"


class BoardMismatchError(ValueError):
    """A policy was asked to play on a board other than the one it was trained on."""


def board_text(board: dict[str, int]) -> str:
    return f"{board['rows']}x{board['columns']} with {board['inarow']} in a row"


def check_trained_board(name: str, board: dict[str, int], rows: int, columns: int, inarow: int) -> None:
    """Raise ``BoardMismatchError`` unless ``rows`` x ``columns`` with ``inarow`` is ``board``, the one the
    network of the agent ``name`` was trained on (a checkpoint, searched or not)."""
    if (rows, columns, inarow) != (board["rows"], board["columns"], board["inarow"]):
        raise BoardMismatchError(
            f"{name} was trained on a {board_text(board)} board and cannot play on a "
            f"{board_text({'rows': rows, 'columns': columns, 'inarow': inarow})} board"
        )


class CheckpointOpponent(SameSourceIsEqual):
    """A trained policy as an opponent: the greedy (highest-logit legal) column of ``NumpyPolicy``.

    ``act`` raises ``BoardMismatchError`` on a board of another size (rows, columns or inarow)
    than the checkpoint was trained on; in a game that forfeits, as any raising opponent does.

    :param policy: the numpy policy
    :param name: how the opponent is named (default ``"checkpoint"``)
    """

    source_attribute = "name"  # the checkpoint path is part of the name

    def __init__(self, policy: NumpyPolicy, name: str = CHECKPOINT_KIND) -> None:
        self.policy = policy
        self.name = name
        self.board: dict[str, int] = dict(policy.board)

    @classmethod
    def from_file(cls, path: str | os.PathLike) -> CheckpointOpponent:
        """Load a checkpoint ``.zip`` safely (``numpy_policy.load_checkpoint``).

        :raises connectx_gym.runtime.checkpoints.CheckpointError: if it is missing, not a checkpoint, or
            has no metadata and checkpoints are not trusted
        """
        return cls(load_checkpoint(path), name=f"{CHECKPOINT_KIND}:{os.fspath(path)}")

    def check_board(self, rows: int, columns: int, inarow: int) -> None:
        """Raise ``BoardMismatchError`` unless the board is the one the policy was trained on."""
        check_trained_board(self.name, self.board, rows, columns, inarow)

    def batch_policy(self, position: Position) -> tuple[NumpyPolicy, bool] | None:
        """The policy that answers ``position``, greedily (None on another board: ``act`` raises there)."""
        geometry = position.geometry
        board = (geometry.rows, geometry.columns, geometry.inarow)
        if board != (self.board["rows"], self.board["columns"], self.board["inarow"]):
            return None
        return self.policy, True

    def act(self, position: Position, rng: np.random.Generator) -> int:
        geometry = position.geometry
        self.check_board(geometry.rows, geometry.columns, geometry.inarow)
        return self.policy.move(position)

    def __repr__(self) -> str:
        return f"CheckpointOpponent({self.name!r}, board={self.board})"


def bound_board_text(agent: Any, board: dict[str, int]) -> str:
    """How an agent is bound to ``board``: a network (a checkpoint, searched or not) "was trained on" it, a
    solver "plays only on" it."""
    if isinstance(agent, CheckpointOpponent) or isinstance(getattr(agent, "policy", None), NumpyPolicy):
        return f"was trained on a {board_text(board)} board"
    return f"plays only on {board_text(board)} boards"


def network_view(agent: Any, position: Position) -> tuple[list[float | None], float] | None:
    """What a network agent (a checkpoint, searched or not) thinks of ``position``: its move probabilities
    (the softmax of its logits over the legal columns; ``None`` for full columns) and its value estimate
    (-1: the player to move expects to lose, +1: to win). ``None`` for agents without a network."""
    policy = getattr(agent, "policy", None)
    if not isinstance(policy, NumpyPolicy):
        return None
    logits, values = policy.policy_value(encode_position(position)[None])
    legal = position.legal_moves()
    chosen = logits[0, legal].astype(np.float64)
    weights = np.exp(chosen - chosen.max())
    probabilities: list[float | None] = [None] * position.geometry.columns
    for column, weight in zip(legal, weights / weights.sum()):
        probabilities[column] = float(weight)
    return probabilities, float(values[0])


def agent_board(agent: Any) -> dict[str, int] | None:
    """The board an agent is bound to (a checkpoint's training board), or ``None`` if it plays any."""
    board = getattr(agent, "board", None)
    return dict(board) if isinstance(board, dict) else None
