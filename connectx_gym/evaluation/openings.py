"""Opening suites: games of a match start from a fixed list of short, balanced positions instead of
the empty board, as engine testing does, so that deterministic players do not replay a handful of
games (of 200 greedy games against ``alphabeta:2`` from the empty board only 28 were distinct).

A suite file has one JSON object a line, ``{"moves": [0, 3], "ply": 2, "score": -2}``: the 0-based
columns played from the empty board (``ply`` and ``score`` are optional; ``ply``, when given, must
equal the number of moves). Blank lines are skipped. Every opening must be legal on the board
played, leave the game unfinished, and appear once. Suites are shipped for 6x7 boards with 4 in a
row (``connectx_gym.data.OPENINGS_FILE``, balanced by the perfect solver) and 5x6 boards with 4 in
a row (balanced by an alpha-beta search: ``balanced_openings``, ``python -m
connectx_gym.evaluation.openings``).

With a suite of ``N`` openings, game ``g`` of a pairing plays opening ``(g // 2) % N`` (counted from
the start of the file), the evaluated agent moving first when ``g`` is even, so every opening is
played twice with the seats swapped (see ``match.game_setup``).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from connectx_gym.agents.checkpoint import board_text
from connectx_gym.cli import ArgumentParser, run_command
from connectx_gym.data import DATA_BOARD, SUITE_BOARDS, openings_file
from connectx_gym.errors import UserError
from connectx_gym.rules.bitboard import EMPTY, Position, geometry
from connectx_gym.runtime.files import write_atomic
from connectx_gym.search.alphabeta import alphabeta_scores
from connectx_gym.search.targets import DECIDED

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
    """Whether a suite is shipped for ``board``."""
    return openings_file(board) is not None


def suite_boards_text() -> str:
    return " and ".join(f"{r}x{c} with {k} in a row" for r, c, k in SUITE_BOARDS)


def default_openings(board: dict[str, int]) -> str:
    """``suite`` on a board with a shipped suite, ``none`` (the empty board) elsewhere."""
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
        path = openings_file(board)
        if path is None:
            raise UserError(
                f"--openings suite: opening suites are shipped for {suite_boards_text()} boards, not the "
                f"{board_text(board)} board; use --openings none or a suite file for this board"
            )
        return OpeningSuite(tuple(load_openings(path, board)), SUITE)
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


def balanced_openings(board: dict[str, int], count: int, depth: int = 8, plies: Sequence[int] = (2, 3, 4)) -> list:
    """A suite for a board without a perfect solver: of every position reached in ``plies`` moves (a
    position and its mirror image counted once), the ``count`` that an alpha-beta search to ``depth``
    scores closest to even, as many from each ply (a ply with too few passes its share on to the
    next); positions it finds decided are left out.

    :return: suite file entries ``{"moves", "ply", "score"}`` (``score``: the search's, for the player to move)
    """
    shape = geometry(int(board["rows"]), int(board["columns"]), int(board["inarow"]))
    columns = shape.columns
    chosen: list[dict] = []
    for index, ply in enumerate(plies):
        quota = -(-(count - len(chosen)) // (len(plies) - index))
        seen: set[tuple[int, ...]] = set()
        scored = []
        for moves in itertools.product(range(columns), repeat=ply):
            position = Position(shape)
            if any(not position.is_legal(c) or position.play(c) is not None for c in moves):
                continue
            cells = tuple(position.to_kaggle())
            mirror = tuple(v for r in range(shape.rows) for v in reversed(cells[r * columns : (r + 1) * columns]))
            if cells in seen or mirror in seen:
                continue
            seen.add(cells)
            best = max(alphabeta_scores(position, depth).values())
            if abs(best) < DECIDED:
                scored.append((abs(best), moves, best))
        scored.sort()
        chosen += [{"moves": list(moves), "ply": ply, "score": int(best)} for _, moves, best in scored[:quota]]
    return chosen[:count]


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m connectx_gym.evaluation.openings``: write a balanced suite for a board (``balanced_openings``)."""
    parser = ArgumentParser(
        prog="python -m connectx_gym.evaluation.openings",
        description="Write an opening suite of the positions an alpha-beta search finds most balanced.",
    )
    parser.add_argument("--rows", type=int, default=5)
    parser.add_argument("--columns", type=int, default=6)
    parser.add_argument("--inarow", type=int, default=4)
    parser.add_argument("--count", type=int, default=60, help="openings (default: 60, a third each of 2, 3, 4 plies)")
    parser.add_argument("--depth", type=int, default=8, help="the search's depth (default: 8)")
    parser.add_argument("-o", "--output", required=True, help="the suite file (JSON lines)")

    def command() -> None:
        args = parser.parse_args(argv)
        for name in ("rows", "columns", "inarow", "count", "depth"):
            if getattr(args, name) < 1:
                raise UserError(f"--{name} must be an integer >= 1, got {getattr(args, name)}")
        folder = Path(args.output).resolve().parent
        if not folder.is_dir():
            raise UserError(f"-o {args.output!r}: the folder {str(folder)!r} does not exist")
        board = {"rows": args.rows, "columns": args.columns, "inarow": args.inarow}
        openings = balanced_openings(board, args.count, args.depth)
        if not openings:
            raise UserError(f"no undecided opening of 2-4 stones on the {board_text(board)} board; nothing written")
        for entry in openings:  # what is written is a valid suite
            check_opening(entry["moves"], board)
        text = "".join(json.dumps(entry) + "\n" for entry in openings)
        try:
            write_atomic(args.output, text.encode("utf-8"))
        except OSError as error:
            raise UserError(f"cannot write {args.output!r}: {error.strerror or error}") from None
        print(f"wrote {len(openings)} openings to {args.output}", file=sys.stderr)

    return run_command(command)


if __name__ == "__main__":
    raise SystemExit(main())
