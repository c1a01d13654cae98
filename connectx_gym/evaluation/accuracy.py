"""Solver-graded move accuracy on the shipped labelled positions (``connectx_gym/data/positions-6x7.jsonl``).

An agent answers every position; its move is **perfect** when it is among the columns with the best
exact score, and **good** when it keeps the position's game-theoretic class (its score has the sign
of the best score: a won position stays won, a drawn one drawn; in a lost position every move is
good). Rates come overall and per phase (plies 0-8, 9-20, 21+), each with a 95% Wilson interval.
Grading needs only the labels, not the solver. A move that is illegal or raises counts as neither.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from connectx_gym.data import DATA_BOARD, PHASES, POSITIONS_FILE, phase_of
from connectx_gym.errors import UserError
from connectx_gym.evaluation.ratings import wilson_interval
from connectx_gym.game.bitboard import Position, geometry

PHASE_NAMES = tuple(name for name, _, _ in PHASES)
#: each phase's plies as the tables show them: 0-8, 9-20, 21+
PHASE_PLIES = {name: f"{low}+" if name == PHASE_NAMES[-1] else f"{low}-{high}" for name, low, high in PHASES}
#: the board of the labelled positions
LABEL_BOARD = DATA_BOARD


@dataclass
class LabelledPositions:
    """Positions (as move lists from the empty board) with every column's exact score (NaN: full column)."""

    moves: list[list[int]]
    scores: np.ndarray
    phases: list[str]
    path: str = ""
    _positions: list[Position] | None = field(default=None, repr=False)
    _planes_and_masks: tuple[np.ndarray, np.ndarray] | None = field(default=None, repr=False)

    def __len__(self) -> int:
        return len(self.moves)

    def slice(self, start: int, stop: int) -> LabelledPositions:
        """Positions ``start`` to ``stop - 1`` as a set of their own."""
        return LabelledPositions(self.moves[start:stop], self.scores[start:stop], self.phases[start:stop], self.path)

    def positions(self) -> list[Position]:
        if self._positions is None:
            shape = geometry(**LABEL_BOARD)
            built = []
            for line in self.moves:
                position = Position(shape)
                for column in line:
                    position.play(column)
                built.append(position)
            self._positions = built
        return self._positions

    def planes_and_masks(self) -> tuple[np.ndarray, np.ndarray]:
        """Every position's observation planes (as the env's) and legal-column mask, for one batched forward
        pass; encoded once (a training run grades the same positions at every evaluation)."""
        if self._planes_and_masks is None:
            from connectx_gym.game.planes import encode_position, legal_mask

            positions = self.positions()
            planes = np.stack([encode_position(p) for p in positions])
            masks = np.stack([legal_mask(p.geometry, p.mask) for p in positions])
            self._planes_and_masks = planes, masks
        return self._planes_and_masks


def load_positions(path: str | Path | None = None) -> LabelledPositions:
    """Read a labelled-positions file (JSON lines: ``moves``, ``scores``; see ``connectx_gym.data``).

    :raises UserError: naming the file and line of anything unreadable or inconsistent
    """
    path = Path(path) if path is not None else POSITIONS_FILE
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise UserError(f"cannot read the positions file '{path}': {error.strerror or error}") from None
    moves, scores, phases = [], [], []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        line_moves, line_scores = _parse_line(line, f"'{path}' line {number}")
        moves.append(line_moves)
        scores.append([np.nan if s is None else float(s) for s in line_scores])
        phases.append(phase_of(len(line_moves)))
    if not moves:
        raise UserError(f"the positions file '{path}' has no positions")
    return LabelledPositions(moves, np.array(scores, dtype=np.float64), phases, str(path))


def _parse_line(line: str, where: str) -> tuple[list[int], list[int | None]]:
    try:
        item = json.loads(line)
        moves, scores = item["moves"], item["scores"]
    except (ValueError, TypeError, KeyError) as error:
        raise UserError(f"{where}: not a labelled position ({type(error).__name__}: {error})") from None
    columns = LABEL_BOARD["columns"]
    if not isinstance(scores, list) or len(scores) != columns:
        raise UserError(f"{where}: 'scores' must list {columns} column scores (null for a full column)")
    position = Position(geometry(**LABEL_BOARD))
    try:
        for column in moves:
            if position.done:
                raise ValueError("the game is already over")
            position.play(column)
    except (ValueError, TypeError) as error:
        raise UserError(f"{where}: the moves {moves} are not a game in progress ({error})") from None
    if position.done:
        raise UserError(f"{where}: the moves {moves} end the game; there is no move to grade")
    legal = set(position.legal_moves())
    for column, score in enumerate(scores):
        if (score is None) == (column in legal) or not (score is None or isinstance(score, int)):
            raise UserError(f"{where}: column {column} has score {score!r}; legal columns need integer scores")
    return list(moves), scores


# ---------------------------------------------------------------------- grading
@dataclass
class Tally:
    """Perfect and good moves out of the positions answered."""

    positions: int = 0
    perfect: int = 0
    good: int = 0

    def rate(self, which: str) -> float:
        return getattr(self, which) / self.positions if self.positions else float("nan")

    def interval(self, which: str) -> tuple[float, float]:
        return wilson_interval(getattr(self, which), self.positions)


@dataclass
class AccuracyResult:
    """An agent's accuracy, overall and per phase; ``illegal``: moves that were illegal or raised."""

    agent: str
    overall: Tally
    phases: dict[str, Tally]
    illegal: int = 0

    def to_dict(self) -> dict[str, Any]:
        def tally(t: Tally) -> dict[str, Any]:
            out: dict[str, Any] = {"positions": t.positions}
            for which in ("perfect", "good"):
                low, high = t.interval(which)
                out[f"{which}_rate"] = round(t.rate(which), 6) if t.positions else None
                out[f"{which}_ci95"] = [round(low, 6), round(high, 6)] if t.positions else None
            return out

        return {
            "agent": self.agent,
            "overall": tally(self.overall),
            "phases": {name: tally(t) for name, t in self.phases.items()},
            "illegal_moves": self.illegal,
        }


def grade(labels: LabelledPositions, moves: Sequence[int | None], agent: str = "agent") -> AccuracyResult:
    """Grade one move per position (``None`` or an illegal column: neither perfect nor good)."""
    if len(moves) != len(labels):
        raise ValueError(f"{len(moves)} moves for {len(labels)} positions")
    scores = labels.scores
    best = np.nanmax(scores, axis=1)
    overall, phases, illegal = Tally(), {name: Tally() for name in PHASE_NAMES}, 0
    for row, move in enumerate(moves):
        legal = move is not None and 0 <= move < scores.shape[1] and not np.isnan(scores[row, move])
        chosen = scores[row, move] if legal else np.nan
        perfect = bool(legal and chosen == best[row])
        good = bool(legal and np.sign(chosen) == np.sign(best[row]))
        illegal += not legal
        for tally in (overall, phases[labels.phases[row]]):
            tally.positions += 1
            tally.perfect += perfect
            tally.good += good
    return AccuracyResult(agent, overall, {k: v for k, v in phases.items() if v.positions}, illegal)


def batch_policy_moves(
    labels: LabelledPositions, act: Callable[[np.ndarray, np.ndarray], np.ndarray], batch: int = 1024
) -> list[int]:
    """Moves of a batched policy ``act(planes, masks) -> columns`` (a trained model: one forward pass per batch)."""
    planes, masks = labels.planes_and_masks()
    out: list[int] = []
    for start in range(0, len(planes), batch):
        out.extend(int(c) for c in np.asarray(act(planes[start : start + batch], masks[start : start + batch])))
    return out


def agent_moves(agent: Any, labels: LabelledPositions, seed: int = 0) -> list:
    """Each position's move by an agent with ``act(position, rng)``.

    Position ``i`` draws from ``default_rng(seed + i)``; a move that raises is ``None`` (graded as
    neither perfect nor good).
    """
    positions = labels.positions()
    moves: list[int | None] = []
    for i in range(len(positions)):
        try:
            move = agent.act(positions[i].copy(), np.random.default_rng(seed + i))
            moves.append(int(move) if isinstance(move, (int, np.integer)) else None)
        except Exception:  # a failing agent answers nothing; it is graded, not fatal
            moves.append(None)
    return moves


# ---------------------------------------------------------------------- reports
def accuracy_table(results: Sequence[AccuracyResult]) -> str:
    """One row per agent and phase: positions, perfect-move and good-move rates with 95% intervals."""
    from connectx_gym.cli import format_table

    rows = []
    for result in results:
        for phase, tally in [("all", result.overall), *result.phases.items()]:
            rows.append(
                [
                    result.agent,
                    phase if phase == "all" else f"{phase} ({PHASE_PLIES[phase]})",
                    str(tally.positions),
                    _rate_text(tally, "perfect"),
                    _rate_text(tally, "good"),
                ]
            )
    headers = ["agent", "phase (plies)", "positions", "perfect move [95% CI]", "good move [95% CI]"]
    return format_table(headers, rows, right=[False, False, True, True, True])


def _rate_text(tally: Tally, which: str) -> str:
    low, high = tally.interval(which)
    return f"{100 * tally.rate(which):5.1f}% [{100 * low:.1f}, {100 * high:.1f}]"


def accuracy_csv(results: Sequence[AccuracyResult]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    header = ["agent", "phase", "positions"]
    for which in ("perfect", "good"):
        header += [f"{which}_rate", f"{which}_ci95_low", f"{which}_ci95_high"]
    writer.writerow(header)
    for result in results:
        for phase, tally in [("all", result.overall), *result.phases.items()]:
            row: list[Any] = [result.agent, phase, tally.positions]
            for which in ("perfect", "good"):
                low, high = tally.interval(which)
                row += [f"{tally.rate(which):.6f}", f"{low:.6f}", f"{high:.6f}"]
            writer.writerow(row)
    return buffer.getvalue()


# ---------------------------------------------------------------------- answering
def _answer_chunk(job: tuple[Any, LabelledPositions, int]) -> list[int | None]:
    agent, labels, seed = job
    return agent_moves(agent, labels, seed)


def answer_positions(agent: Any, labels: LabelledPositions, seed: int = 0, num_processes: int = 1) -> list:
    """Every position's move by ``agent``: one batched forward pass for a trained policy, else ``act``
    per position on ``num_processes`` processes (the moves do not depend on how they are split)."""
    policy = getattr(agent, "policy", None)
    if policy is not None and callable(getattr(policy, "act", None)) and hasattr(policy, "logits"):
        return batch_policy_moves(labels, lambda planes, masks: policy.act(planes, masks, deterministic=True))
    if num_processes <= 1 or len(labels) < 64:
        return agent_moves(agent, labels, seed)
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    # contiguous slices, each shipped alone: position ``start + j`` of the set is position ``j`` of its
    # slice, so it draws from ``default_rng(seed + start + j)`` as in one process
    size = max(1, len(labels) // (num_processes * 8))
    jobs = [(agent, labels.slice(start, start + size), seed + start) for start in range(0, len(labels), size)]
    method = "forkserver" if "forkserver" in mp.get_all_start_methods() else "spawn"
    with ProcessPoolExecutor(num_processes, mp_context=mp.get_context(method)) as pool:
        return [move for chunk in pool.map(_answer_chunk, jobs) for move in chunk]
