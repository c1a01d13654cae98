"""Replaying one evaluated game: as a plain-text move list with the final board, or stepped through
Kaggle's ``connectx`` environment and rendered as its HTML player (kaggle_environments, imported
only here and only when asked)."""

from __future__ import annotations

import contextlib
import io

from connectx_gym.agents.checkpoint import board_text
from connectx_gym.agents.kaggle import import_kaggle
from connectx_gym.evaluation.match import GameRecord
from connectx_gym.evaluation.openings import OpeningSuite
from connectx_gym.evaluation.results import PairingResult
from connectx_gym.rules.bitboard import Position, geometry


def replay_text(
    result: PairingResult, record: GameRecord, board: dict[str, int], openings: OpeningSuite | None = None
) -> str:
    """A plain-text move list and the final board of one game.

    :param openings: the suite the game's opening (``record.opening``) came from: its moves, the
        record's first moves, played for both players before they move, are marked ``(opening)``
    """
    opening_moves = None
    if record.opening is not None and openings is not None:
        opening_moves = openings.openings[record.opening].ply
    position = Position(geometry(board["rows"], board["columns"], board["inarow"]))
    names = {1: result.agent, 2: result.opponent} if record.agent_first else {1: result.opponent, 2: result.agent}
    lines = [
        f"game {record.index} of {result.agent} vs {result.opponent} (seed {record.seed}, board {board_text(board)})",
        f"player 1 (moves first): {names[1]}",
        f"player 2: {names[2]}",
    ]
    if record.opening is not None:
        count = f": moves 1-{opening_moves}" if opening_moves else ""
        lines.append(f"opening {record.opening} of the suite{count}, played for both players")
    lines.append("")
    for ply, column in enumerate(record.moves, 1):
        tag = " (opening)" if opening_moves is not None and ply <= opening_moves else ""
        lines.append(f"{ply:3d}. player {position.to_move} ({names[position.to_move]}): column {column}{tag}")
        position.play(column)
    if record.forfeit:
        mark = position.to_move
        lines.append(f"{len(record.moves) + 1:3d}. player {mark} ({names[mark]}) forfeits: {record.error}")
    lines += ["", position.render(), ""]
    outcome = {"win": f"{result.agent} wins", "loss": f"{result.opponent} wins", "draw": "draw"}[record.outcome]
    lines.append(f"result: {outcome}" + (f" ({record.forfeit} forfeited)" if record.forfeit else ""))
    return "\n".join(lines) + "\n"


def replay_html(result: PairingResult, record: GameRecord, board: dict[str, int]) -> str:
    """One game replayed in Kaggle's ``connectx`` environment and rendered as its HTML player.

    A forfeit by an illegal column is stepped as that column (Kaggle marks it invalid); a forfeit
    by an exception is stepped as column -1, which Kaggle also shows as an invalid move. The moves
    of an opening are the record's first moves, so they are stepped like the rest.
    """
    import_kaggle("--replay (Kaggle's HTML player)")  # the first, noisy import of kaggle_environments, silenced
    # optional extra [kaggle]: kaggle-environments (1.4 GB, the old gym) is imported only where it is used
    from kaggle_environments import make

    env = make("connectx", configuration=dict(board), debug=False)
    names = [result.agent, result.opponent] if record.agent_first else [result.opponent, result.agent]
    moves = list(record.moves)
    if record.forfeit:
        moves.append(record.illegal_column if record.illegal_column is not None else -1)
    sink = io.StringIO()
    with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
        for ply, column in enumerate(moves):
            if env.done:
                break
            actions = [column, None] if ply % 2 == 0 else [None, column]
            env.step(actions)
    env.info["TeamNames"] = names
    return env.render(mode="html")
