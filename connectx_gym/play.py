"""``python -m connectx_gym.play AGENT``: play a game against any agent in the terminal.

AGENT is any agent spec the evaluation takes: a checkpoint (``model.zip``), a checkpoint searched by
PUCT (``mcts:model.zip[:800]``), an exported submission (``submission.py``), ``random``,
``negamax``, ``alphabeta:N``, ``solver`` (with the ``[solver]`` extra). You move first unless
``--second``; you type a column number (0 is the leftmost), ``q`` or Ctrl-D quits, Ctrl-C stops at
once. A full or off-board column, or anything but a number, is refused and asked again. A trained
checkpoint also shows, before each of its moves, its value estimate of the position and its move
probabilities; an ``mcts:`` agent then shows its search: simulations, root value (or the proven
result) and visits per column. ``--replay FILE.html`` saves the game as
Kaggle's HTML replay when it ends (or is quit). ``--web`` plays in the browser instead
(:mod:`connectx_gym.web.server`, on 127.0.0.1 unless ``--host``). Checkpoints are read without
unpickling (``--trust-checkpoint`` for older files). Bad input is one ``error:`` line and exit 2.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from connectx_gym.agents.checkpoint import board_text, network_view
from connectx_gym.agents.kaggle import require_kaggle
from connectx_gym.agents.mcts import MctsAgent
from connectx_gym.cli import ArgumentParser, run_command
from connectx_gym.errors import UserError
from connectx_gym.evaluation.match import GameRecord
from connectx_gym.evaluation.plan import build_agent, resolve_board
from connectx_gym.evaluation.replay import replay_html
from connectx_gym.evaluation.results import PairingResult
from connectx_gym.rules.bitboard import EMPTY, FIRST_MARK, Position, geometry
from connectx_gym.runtime.checkpoints import add_trust_option, trusted_checkpoints
from connectx_gym.runtime.files import write_atomic
from connectx_gym.web.server import LOOPBACK, GameSession, serve

QUIT = ("q", "quit", "exit")
#: each player's stone: the symbol and its ANSI colour (red moves first, as on Kaggle's board)
STONES = {FIRST_MARK: ("X", "\033[1;31m"), 3 - FIRST_MARK: ("O", "\033[1;33m")}
RESET = "\033[0m"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = ArgumentParser(
        prog="python -m connectx_gym.play",
        description="Play ConnectX against an agent in the terminal. Agent specs: random, negamax, "
        "alphabeta:<depth>[:<epsilon>], solver, kaggle:<name|file.py>, checkpoint:<model.zip>, "
        "mcts:<model.zip>[:<simulations>|:<N>ms]; a bare path "
        "ending in .zip is a checkpoint, one ending in .py a Kaggle agent file (e.g. an exported submission).",
    )
    parser.add_argument("agent", help="the agent to play against (a spec)")
    seat = parser.add_mutually_exclusive_group()
    seat.add_argument("--first", action="store_true", help="you move first (the default)")
    seat.add_argument("--second", action="store_true", help="the agent moves first")
    for name in ("rows", "columns", "inarow"):
        parser.add_argument(
            f"--{name}", type=int, default=None, help=f"board {name} (default: the checkpoint's board, else 6x7x4)"
        )
    parser.add_argument("--seed", type=int, default=0, help="seed of the agent's random choices (default: 0)")
    parser.add_argument("--replay", metavar="FILE.html", help="save the game as Kaggle's HTML replay")
    parser.add_argument("--no-color", action="store_true", help="plain text (also when NO_COLOR is set)")
    parser.add_argument(
        "--web", action="store_true", help="play in the browser: serve a page at http://localhost:PORT/"
    )
    parser.add_argument("--port", type=int, default=8000, help="with --web: the port (default: 8000; 0: any free one)")
    parser.add_argument(
        "--host",
        default=None,
        help="with --web: the address to serve on (default: 127.0.0.1, this machine only); any other host prints "
        "a URL with a random token, which every API call must carry",
    )
    add_trust_option(parser)
    args = parser.parse_args(argv)
    if args.seed < 0:
        raise UserError(f"--seed must be an integer >= 0, got {args.seed}")
    if args.replay is not None:
        _check_replay_path(args.replay)
    if not args.web and (args.host is not None or args.port != 8000):
        raise UserError("--host and --port are for --web")
    if args.web and args.replay is not None:
        raise UserError("--replay is for the terminal game, not --web")
    if not 0 <= args.port <= 65535:
        raise UserError(f"--port must be 0..65535, got {args.port}")
    return args


def _check_replay_path(path: str) -> None:
    """Refuse a replay file that could not be written, before the game starts."""
    if not path.lower().endswith((".html", ".htm")):
        raise UserError(f"--replay must name an .html file, got {path!r}")
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder) or not os.access(folder, os.W_OK):
        raise UserError(f"--replay {path!r}: cannot write to the folder {folder!r}")
    require_kaggle("--replay (Kaggle's HTML player)")


def render(position: Position, color: bool) -> str:
    """The board, top row first, with the column numbers under it."""
    rows, columns = position.geometry.rows, position.geometry.columns
    width = len(str(columns - 1))
    board = position.to_kaggle()

    def cell(value: int) -> str:
        if value == EMPTY:
            return ".".rjust(width)
        symbol, code = STONES[value]
        return (code + symbol.rjust(width) + RESET) if color else symbol.rjust(width)

    lines = [" ".join(cell(v) for v in board[r * columns : (r + 1) * columns]) for r in range(rows)]
    lines.append(" ".join(str(c).rjust(width) for c in range(columns)))
    return "\n".join(lines)


def read_move(position: Position, read: Callable[[str], str], say: Callable[[str], None]) -> int | None:
    """Ask for a column until a legal one is typed; ``None`` when the player quits (``q`` or end of input)."""
    columns = position.geometry.columns
    while True:
        try:
            text = read(f"your move (0-{columns - 1}, q quits): ").strip()
        except EOFError:
            return None
        if text.lower() in QUIT:
            return None
        try:
            column = int(text)
        except ValueError:
            say(f"{text!r} is not a column: type a number from 0 to {columns - 1}, or q to quit")
            continue
        if not 0 <= column < columns:
            say(f"column {column} is off the board: the columns are 0 to {columns - 1}")
        elif not position.is_legal(column):
            say(f"column {column} is full; the free columns are {' '.join(map(str, position.legal_moves()))}")
        else:
            return column


def policy_view(agent: Any, position: Position) -> str | None:
    """A trained network's value estimate and move probabilities in ``position`` (a checkpoint, or one wrapped
    in the tree search); ``None`` for other agents."""
    view = network_view(agent, position)
    if view is None:
        return None
    probabilities, value = view
    shown = "  ".join(f"{c}:{100 * p:.0f}%" for c, p in enumerate(probabilities) if p is not None)
    return f"agent's value estimate {value:+.2f} (-1: it expects to lose, +1: to win); move probabilities {shown}"


def search_view(agent: Any) -> str | None:
    """What an ``mcts:`` agent's last search found: its simulations, root value and visits per column."""
    result = agent.last_result if isinstance(agent, MctsAgent) else None
    if result is None:
        return None
    if result.proven is not None:
        outcome = {"win": "a win", "draw": "a draw", "loss": "a loss"}[result.proven]
        value = f"proven {outcome} for it in {result.plies} plies"
    else:
        value = f"root value {result.search_value:+.2f}"
    visits = "  ".join(f"{c}:{n}" for c, n in enumerate(result.visits) if n)
    kept = agent.last_kept
    fresh = result.simulations - kept
    simulations = f"{fresh} simulations" + (f" (+{kept} kept from the last move's tree)" if kept else "")
    return f"search: {simulations}, {value}; visits {visits or '(none needed)'}"


def agent_move(agent: Any, label: str, position: Position, rng: np.random.Generator) -> tuple[int | None, str]:
    """The agent's column, or ``None`` and the reason when it forfeits (it raised or chose an illegal column)."""
    started = time.perf_counter()
    try:
        column = agent.act(position, rng)
    except Exception as error:  # a failing agent forfeits, as on Kaggle
        return None, f"{label} raised {type(error).__name__}: {error}"
    if not isinstance(column, (int, np.integer)) or not position.is_legal(int(column)):
        return None, f"{label} chose the illegal column {column!r}"
    return int(column), f"{label} plays column {int(column)} ({time.perf_counter() - started:.2f} s)"


# long: one turn-by-turn loop reads clearest whole
def play_game(
    agent: Any,
    label: str,
    board: dict[str, int],
    human_first: bool,
    seed: int,
    color: bool,
    read: Callable[[str], str] = input,
    say: Callable[[str], None] = print,
) -> GameRecord:
    """Play one game; returns its record from your side (``outcome`` ``win``, ``loss``, ``draw`` or ``quit``)."""
    position = Position(geometry(board["rows"], board["columns"], board["inarow"]))
    rng = np.random.default_rng(seed)
    record = GameRecord(index=0, seed=seed, agent_first=human_first)
    you = FIRST_MARK if human_first else 3 - FIRST_MARK
    yours, theirs = STONES[you][0], STONES[3 - you][0]
    first = "you move" if human_first else "it moves"
    say(f"you ({yours}) vs {label} ({theirs}) on {board_text(board)}; {first} first")
    say(render(position, color))
    while position.winner is None:
        if position.to_move == you:
            column = read_move(position, read, say)
            if column is None:
                record.outcome = "quit"
                say("quit")
                return record
        else:
            view = policy_view(agent, position)
            if view:
                say(view)
            column, line = agent_move(agent, label, position, rng)
            view = search_view(agent)
            if view and column is not None:
                say(view)
            say(line)
            if column is None:
                record.outcome, record.forfeit, record.error = "win", "opponent", line
                say("you win: the agent forfeits")
                return record
        position.play(column)
        record.moves.append(column)
        say("\n" + render(position, color))
    record.outcome = "draw" if position.winner == EMPTY else ("win" if position.winner == you else "loss")
    say({"win": "you win", "loss": f"{label} wins", "draw": "draw: the board is full"}[record.outcome])
    return record


def save_replay(path: str, record: GameRecord, label: str, board: dict[str, int]) -> None:
    """Kaggle's HTML replay of the game, written atomically."""
    if record.outcome == "quit":  # an unfinished game is replayed as far as it went
        record = GameRecord(index=0, seed=record.seed, agent_first=record.agent_first, moves=list(record.moves))
    result = PairingResult(agent="you", opponent=label, agent_index=0, opponent_index=1, records=[record])
    write_atomic(path, replay_html(result, record, board).encode("utf-8"))


def _run(argv: Sequence[str] | None) -> int:
    args = parse_args(argv)
    with trusted_checkpoints(args.trust_checkpoint):
        entry = build_agent(args.agent)
    if isinstance(entry.agent, MctsAgent):
        entry.agent.reuse = True  # one game: the tree of the last move serves the next
    board = resolve_board([entry], args.rows, args.columns, args.inarow)
    if args.web:
        serve(
            GameSession(entry.agent, entry.label, board, args.seed, not args.second), args.host or LOOPBACK, args.port
        )
        return 0
    color = not args.no_color and "NO_COLOR" not in os.environ and sys.stdout.isatty()
    record = play_game(entry.agent, entry.label, board, not args.second, args.seed, color)
    if args.replay is not None:
        save_replay(args.replay, record, entry.label, board)
        print(f"saved the replay to {args.replay}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return run_command(lambda: _run(argv))


if __name__ == "__main__":
    sys.exit(main())
