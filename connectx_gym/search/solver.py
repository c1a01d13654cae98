"""The perfect-play oracle: exact move scores for 6x7 Connect-4 from the ``bitbully`` solver (the
``[solver]`` extra), and the ``solver``/``solver:weak`` opponents built on them.

This is the one module that imports the solver package; everything else asks it for scores.
Scores follow Pascal Pons' convention, from the side of the player to move after the move is
played by them: 0 for a draw, ``22 - k`` for a win completed with the mover's own ``k``-th stone
(the sooner, the larger), ``-(22 - k)`` for a loss to the opponent's ``k``-th stone. So the sign
is the game-theoretic result and the size says how soon it comes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import numpy as np

from connectx_gym.errors import UserError
from connectx_gym.rules.bitboard import Geometry, Position

#: the one board size the oracle solves: rows, columns, in a row
SOLVER_BOARD = {"rows": 6, "columns": 7, "inarow": 4}
INSTALL_HINT = 'pip install -e ".[solver]"'


class SolverBoardError(ValueError):
    """The oracle was asked about a board other than 6x7 with 4 in a row."""


def board_is_supported(rows: int, columns: int, inarow: int) -> bool:
    return (rows, columns, inarow) == (SOLVER_BOARD["rows"], SOLVER_BOARD["columns"], SOLVER_BOARD["inarow"])


def check_board(rows: int, columns: int, inarow: int, what: str = "the solver") -> None:
    """Raise ``SolverBoardError`` naming the board unless it is 6x7 with 4 in a row."""
    if not board_is_supported(rows, columns, inarow):
        raise SolverBoardError(
            f"{what} plays only 6x7 boards with 4 in a row, not {rows}x{columns} with {inarow} in a row"
        )


def import_solver(what: str = "the solver") -> ModuleType:
    """The ``bitbully`` module, or a ``UserError`` saying that ``what`` needs it and how to install it."""
    try:
        # optional extra [solver]: the perfect solver bitbully
        import bitbully
    except ImportError:
        raise UserError(
            f"{what} needs the perfect Connect-4 solver bitbully, which is not installed; "
            f"install the extra with: {INSTALL_HINT}"
        ) from None
    return bitbully


def solver_available() -> bool:
    try:
        import_solver()
    except UserError:
        return False
    return True


class Oracle:
    """Exact scores of every legal column of 6x7x4 positions (one solver, its tables kept warm).

    :param opening_book: use the solver's opening book (exact scores up to 12 plies, instantly)
    """

    def __init__(self, opening_book: bool = True) -> None:
        bitbully = import_solver()
        self._board_class = bitbully.Board
        self._solver = bitbully.BitBully("default" if opening_book else None)

    def scores_of_moves(self, moves: Sequence[int]) -> list[int | None]:
        """Each column's score (``None`` for a full one) after the 0-based ``moves`` from the empty board."""
        board = self._board_class.from_moves([int(m) for m in moves])
        return self._scores(board)

    def scores(self, position: Position) -> list[int | None]:
        """Each column's score (``None`` for a full one) in ``position``, where the game goes on."""
        geometry = position.geometry
        check_board(geometry.rows, geometry.columns, geometry.inarow)
        if position.done:
            raise ValueError("the game is over; there is no move to score")
        flat = position.to_kaggle()
        rows = [flat[r * geometry.columns : (r + 1) * geometry.columns] for r in range(geometry.rows)]
        return self._scores(self._board_class.from_array(rows))

    def _scores(self, board: Any) -> list[int | None]:
        found = self._solver.score_all_moves(board)
        return [found.get(column) for column in range(SOLVER_BOARD["columns"])]


def best_columns(scores: Sequence[int | None], weak: bool = False) -> list[int]:
    """The columns a perfect player may choose: the top score, or (``weak``) any with its sign."""
    legal = [(column, score) for column, score in enumerate(scores) if score is not None]
    if not legal:
        raise ValueError("no legal column to choose")
    top = max(score for _, score in legal)
    if weak:
        return [column for column, score in legal if np.sign(score) == np.sign(top)]
    return [column for column, score in legal if score == top]


def pons_score(win_ply: int | None, stones: int, rows: int = 6, columns: int = 7) -> int:
    """The Pons score of a result seen from the player to move on a board with ``stones`` stones:
    a win of the mover on ply ``win_ply`` (1 = this move), a loss for a negative ``win_ply``, a draw for ``None``."""
    if win_ply is None:
        return 0
    total = stones + abs(win_ply)  # stones on the board when the line is completed
    score = (rows * columns) // 2 + 1 - (total + 1) // 2  # 22 - the winner's stones, on 6x7
    return score if win_ply > 0 else -score


@dataclass
class SolverOpponent:
    """Perfect play on 6x7x4 (spec ``solver``): a uniformly random column among the best-scored ones,
    drawn from the game's generator; ``weak`` (spec ``solver:weak``) picks among all columns that keep
    the position's win, draw or loss. Pickles without its solver, which each process builds on first use.
    """

    weak: bool = False
    name: str = field(default="", init=False)
    board: dict[str, int] = field(default_factory=lambda: dict(SOLVER_BOARD), init=False)

    def __post_init__(self) -> None:
        self.name = "solver:weak" if self.weak else "solver"
        self._oracle: Oracle | None = None

    @classmethod
    def from_spec(cls, argument: str | None) -> SolverOpponent:
        import_solver(f"the opponent spec 'solver{':' + argument if argument else ''}'")
        return cls(weak=argument == "weak")

    def check_board(self, rows: int, columns: int, inarow: int) -> None:
        check_board(rows, columns, inarow, f"the opponent {self.name!r}")

    def act(self, position: Position, rng: np.random.Generator) -> int:
        geometry: Geometry = position.geometry
        self.check_board(geometry.rows, geometry.columns, geometry.inarow)
        if self._oracle is None:
            self._oracle = Oracle()
        choices = best_columns(self._oracle.scores(position), weak=self.weak)
        return choices[int(rng.integers(len(choices)))] if len(choices) > 1 else choices[0]

    def __getstate__(self) -> dict[str, Any]:
        return {"weak": self.weak, "name": self.name, "board": dict(self.board)}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._oracle = None

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other.weak == self.weak

    def __hash__(self) -> int:
        return hash((type(self), self.weak))
