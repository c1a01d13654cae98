"""Opening suites: games of a match start from a fixed list of short, balanced positions instead of
the empty board, as engine testing does, so that deterministic players do not replay a handful of
games (of 200 greedy games against ``alphabeta:2`` from the empty board only 28 were distinct).

A suite file has one JSON object a line, ``{"moves": [0, 3], "ply": 2, "score": -2}``: the 0-based
columns played from the empty board (``ply`` and ``score`` are optional; ``ply``, when given, must
equal the number of moves). Blank lines are skipped. Every opening must be legal on the board
played, leave the game unfinished, and appear once. The shipped suite (``connectx_gym.data.OPENINGS_FILE``)
is for 6x7 boards with 4 in a row.

With a suite of ``N`` openings, game ``g`` of a pairing plays opening ``(g // 2) % N`` (counted from
the start of the file), the evaluated agent moving first when ``g`` is even, so every opening is
played twice with the seats swapped (see ``match.game_setup``).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from connectx_gym.data import DATA_BOARD, OPENINGS_FILE
from connectx_gym.errors import UserError
from connectx_gym.game.bitboard import EMPTY, Position, geometry
from connectx_gym.game.checkpoint_opponent import board_text

#: the values of ``--openings`` that are not a path
SUITE, NONE = "suite", "none"
#: the board of the shipped suite
SUITE_BOARD = DATA_BOARD


@dataclass(frozen=True)
class Opening:
    """One opening: the columns played from the empty board (both sides), its ply and solver score."""

    moves: tuple[int, ...]
    score: int | None = None

    @property
    def ply(self) -> int:
        return len(self.moves)


@dataclass(frozen=True)
class OpeningSuite:
    """The openings a match starts from and where they came from (``suite`` or the file given)."""

    openings: tuple[Opening, ...]
    source: str

    def __len__(self) -> int:
        return len(self.openings)

    def moves(self) -> list[tuple[int, ...]]:
        """Each opening's moves: what the game loops take (``match.play_opponent_games``)."""
        return [opening.moves for opening in self.openings]


def suite_digest(openings: Sequence[Opening]) -> str:
    """A short fingerprint of the openings' moves, in order (what a game plays from the suite)."""
    text = json.dumps([list(opening.moves) for opening in openings], separators=(",", ":"))
    return hashlib.sha256(text.encode("ascii")).hexdigest()[:16]


def is_suite_board(board: dict[str, int]) -> bool:
    return all(int(board[key]) == value for key, value in SUITE_BOARD.items())


def default_openings(board: dict[str, int]) -> str:
    """``suite`` on the shipped suite's 6x7 board with 4 in a row, ``none`` (the empty board) elsewhere."""
    return SUITE if is_suite_board(board) else NONE


def resolve_openings(choice: str | None, board: dict[str, int]) -> OpeningSuite | None:
    """The suite that ``--openings choice`` names on ``board``; ``None`` for the empty start position.

    :param choice: ``suite``, ``none``, a path to a suite file, or ``None`` for the board's default
    :raises UserError: for ``suite`` on another board, or a bad suite file
    """
    choice = default_openings(board) if choice is None else choice
    if choice == NONE:
        return None
    if choice == SUITE:
        if not is_suite_board(board):
            raise UserError(
                f"--openings suite: the shipped opening suite is for 6x7 boards with 4 in a row, not the "
                f"{board_text(board)} board; use --openings none or a suite file for this board"
            )
        return OpeningSuite(tuple(load_openings(OPENINGS_FILE, board)), SUITE)
    return OpeningSuite(tuple(load_openings(choice, board)), choice)


def load_openings(path: str | Path, board: dict[str, int] | None = None) -> list[Opening]:
    """The openings of a suite file, checked on ``board`` (default 6x7 with 4 in a row).

    :raises UserError: naming the file and line of the first bad entry (not JSON, no ``moves`` list,
        an illegal column, a finished game, a ``ply`` that is not the number of moves, a repeat),
        or naming the file if it cannot be read or holds no opening
    """
    board = dict(board or SUITE_BOARD)
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        reason = error.strerror if isinstance(error, OSError) and error.strerror else error
        raise UserError(f"cannot read the opening suite '{path}': {reason}") from None
    openings: list[Opening] = []
    seen: dict[tuple[int, ...], int] = {}
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            opening = _parse_line(line, board)
        except ValueError as error:
            raise UserError(f"opening suite '{path}', line {number}: {error}") from None
        if opening.moves in seen:
            raise UserError(f"opening suite '{path}', line {number}: repeats the opening of line {seen[opening.moves]}")
        seen[opening.moves] = number
        openings.append(opening)
    if not openings:
        raise UserError(f"opening suite '{path}' holds no opening")
    return openings


def _parse_line(line: str, board: dict[str, int]) -> Opening:
    """One line's opening; a ``ValueError`` saying what is wrong with it."""
    try:
        entry = json.loads(line)
    except json.JSONDecodeError as error:
        raise ValueError(f"not JSON ({error.msg})") from None
    if not isinstance(entry, dict) or "moves" not in entry:
        raise ValueError('expected an object with a "moves" list, e.g. {"moves": [3, 3]}')
    moves = entry["moves"]
    if not isinstance(moves, list) or not all(isinstance(m, int) and not isinstance(m, bool) for m in moves):
        raise ValueError(f'"moves" must be a list of column numbers, got {moves!r}')
    ply = entry.get("ply", len(moves))
    if ply != len(moves):
        raise ValueError(f'"ply" is {ply!r} but there are {len(moves)} moves')
    score = entry.get("score")
    if score is not None and (not isinstance(score, int) or isinstance(score, bool)):
        raise ValueError(f'"score" must be an integer, got {score!r}')
    check_opening(moves, board)
    return Opening(tuple(moves), score)


def check_opening(moves: Sequence[int], board: dict[str, int]) -> None:
    """A ``ValueError`` unless ``moves`` are legal columns on ``board`` that leave the game unfinished."""
    position = Position(geometry(int(board["rows"]), int(board["columns"]), int(board["inarow"])))
    for ply, column in enumerate(moves, 1):
        if not position.is_legal(column):
            raise ValueError(
                f"move {ply} (column {column}) is illegal on the {board_text(board)} board; "
                f"legal columns were {position.legal_moves()}"
            )
        if position.play(column) is not None:
            finished = "a draw" if position.winner == EMPTY else f"won by player {position.winner}"
            raise ValueError(f"the game is over after move {ply} ({finished}); an opening must leave it unfinished")
