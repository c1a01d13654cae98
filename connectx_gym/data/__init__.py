"""Data shipped with the package, for 6x7 boards with 4 in a row (evaluation data and the Kaggle submission's
opening book); never read by training.

- ``positions-6x7.jsonl``: labelled positions, one JSON object a line: ``moves`` (the 0-based
  columns played from the empty board), ``ply``, ``phase`` (``opening`` 0-8, ``middle`` 9-20,
  ``late`` 21+), ``scores`` (every column's exact solver score for the player to move, ``null``
  for a full column; see ``connectx_gym.search.solver``) and ``source`` (the game it came from).
- ``openings-6x7.jsonl``: the opening suite of matches, tournaments and the ladder: ``moves``,
  ``ply`` and ``score`` (the solver's score of the position for the player to move).
- ``ladder-6x7.json``: the ladder's rungs and their games against each other, played once so
  that ``evaluate --ladder`` only plays the agent's games.
- ``openings-5x6.jsonl`` and ``ladder-5x6.json``: the same for 5x6 boards with 4 in a row, where
  no perfect solver is at hand: the openings are the positions an alpha-beta search finds most
  balanced (``evaluation.openings.balanced_openings``), the rungs random, negamax and alphabeta:1-6.
- ``book-6x7.bin``: the Kaggle submission's opening book, the perfect moves of every position up to
  10 stones (``connectx_gym.data.book`` builds and reads it; made with the solver alone).

The positions and openings are rebuilt by ``python -m connectx_gym.data.generate``, the ladder's
games by ``python -m connectx_gym.evaluation.ladder --rebuild``, the book by ``python -m
connectx_gym.data.book`` (all need the ``[solver]`` extra).
"""

from pathlib import Path

from connectx_gym.search.solver import SOLVER_BOARD

DATA_DIR = Path(__file__).resolve().parent
POSITIONS_FILE = DATA_DIR / "positions-6x7.jsonl"
OPENINGS_FILE = DATA_DIR / "openings-6x7.jsonl"
LADDER_FILE = DATA_DIR / "ladder-6x7.json"

#: the board of every shipped file: the solver's, 6 rows, 7 columns, 4 in a row
DATA_BOARD = SOLVER_BOARD
#: the phases the labelled positions are drawn and graded by: ``(name, first ply, last ply)``
PHASES = (("opening", 0, 8), ("middle", 9, 20), ("late", 21, 41))


#: the boards with a shipped opening suite and ladder, as ``(rows, columns, inarow)``
SUITE_BOARDS = ((6, 7, 4), (5, 6, 4))


def board_key(board: dict[str, int]) -> tuple[int, int, int]:
    return int(board["rows"]), int(board["columns"]), int(board["inarow"])


def openings_file(board: dict[str, int]) -> Path | None:
    """The shipped opening suite of ``board``, ``None`` for a board without one."""
    key = board_key(board)
    return DATA_DIR / f"openings-{key[0]}x{key[1]}.jsonl" if key in SUITE_BOARDS else None


def ladder_file(board: dict[str, int]) -> Path | None:
    """The shipped ladder rung file of ``board``, ``None`` for a board without one."""
    key = board_key(board)
    return DATA_DIR / f"ladder-{key[0]}x{key[1]}.json" if key in SUITE_BOARDS else None


def phase_of(ply: int) -> str:
    """The phase of a position with ``ply`` stones on the board."""
    return next(name for name, low, high in PHASES if low <= ply <= high)
