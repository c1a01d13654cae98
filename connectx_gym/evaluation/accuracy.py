"""Solver-graded move accuracy on the shipped labelled positions (``connectx_gym/data/positions-6x7.jsonl``).

An agent answers every position; its move is **perfect** when it is among the columns with the best
exact score, and **good** when it keeps the position's game-theoretic class (its score has the sign
of the best score: a won position stays won, a drawn one drawn; in a lost position every move is
good). Rates come overall and per phase (plies 0-8, 9-20, 21+), each with a 95% Wilson interval.
Grading needs only the labels, not the solver. A move that is illegal or raises counts as neither.

For an agent built on a network, ``value_accuracy`` grades its value head the same way: on won and
lost positions its sign must match the result, on drawn ones it must lie within
``VALUE_DRAW_THRESHOLD`` of 0.
"""

from __future__ import annotations

import csv
import io
import json
import multiprocessing as mp
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from connectx_gym.cli import format_table
from connectx_gym.data import DATA_BOARD, PHASES, POSITIONS_FILE, phase_of
from connectx_gym.errors import UserError
from connectx_gym.evaluation.ratings import wilson_interval
from connectx_gym.rules.bitboard import Position, geometry
from connectx_gym.rules.planes import encode_position, legal_mask
from connectx_gym.runtime.processes import single_threaded_children

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


def classify_moves(scores: np.ndarray, moves: Sequence[int | None]) -> list[str]:
    """One grade per move: ``"perfect"`` (among the best exact scores), ``"kept"`` (not perfect, but the
    score's sign, the game's result, is the best's: a slower win or a quicker loss), ``"changed"`` (a
    legal move that gives the result away) or ``"illegal"`` (``None``, out of range or a full column).
    ``scores`` is the solver's score per position and column (NaN for a full column)."""
    if len(moves) != len(scores):
        raise ValueError(f"{len(moves)} moves for {len(scores)} positions")
    best = np.nanmax(scores, axis=1)
    grades = []
    for row, move in enumerate(moves):
        if move is None or not 0 <= move < scores.shape[1] or np.isnan(scores[row, move]):
            grades.append("illegal")
        elif scores[row, move] == best[row]:
            grades.append("perfect")
        elif np.sign(scores[row, move]) == np.sign(best[row]):
            grades.append("kept")
        else:
            grades.append("changed")
    return grades


def grade(labels: LabelledPositions, moves: Sequence[int | None], agent: str = "agent") -> AccuracyResult:
    """Grade one move per position (``None`` or an illegal column: neither perfect nor good)."""
    overall, phases, illegal = Tally(), {name: Tally() for name in PHASE_NAMES}, 0
    for row, which in enumerate(classify_moves(labels.scores, moves)):
        illegal += which == "illegal"
        for tally in (overall, phases[labels.phases[row]]):
            tally.positions += 1
            tally.perfect += which == "perfect"
            tally.good += which in ("perfect", "kept")
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
def searched_moves(agent: Any, labels: LabelledPositions, seed: int = 0) -> list:
    """Each position's move by an agent that searches many positions together (``act_many(positions,
    rngs)``, e.g. an ``mcts:`` agent); position ``i`` gets ``default_rng(seed + i)``. A batch that
    raises answers nothing (its moves are ``None``)."""
    positions = [position.copy() for position in labels.positions()]
    rngs = [np.random.default_rng(seed + i) for i in range(len(positions))]
    try:
        return [int(move) for move in agent.act_many(positions, rngs)]
    except Exception:  # a failing agent answers nothing; it is graded, not fatal
        return [None] * len(positions)


def _answer_chunk(job: tuple[Any, LabelledPositions, int]) -> list[int | None]:
    agent, labels, seed = job
    if callable(getattr(agent, "act_many", None)):
        return searched_moves(agent, labels, seed)
    return agent_moves(agent, labels, seed)


#: positions per job of a searching agent, rounded up to a multiple of its lockstep ``group``: the jobs are a
#: fixed size, so the jobs and the moves are the same for any number of processes
SEARCH_SLICE = 64


def answer_positions(
    agent: Any, labels: LabelledPositions, seed: int = 0, num_processes: int = 1, progress: bool = False
) -> list:
    """Every position's move by ``agent``: one batched forward pass for a trained policy; for a searching
    agent (``act_many``), its lockstep search in slices of about ``SEARCH_SLICE``; else ``act`` per position.
    Both of the latter run on ``num_processes`` processes, and the moves do not depend on how they are split.

    :param progress: show a progress bar (on a terminal) while the slices are answered
    """
    searching = callable(getattr(agent, "act_many", None))
    policy = getattr(agent, "policy", None)
    if not searching and policy is not None and callable(getattr(policy, "act", None)) and hasattr(policy, "logits"):
        return batch_policy_moves(labels, lambda planes, masks: policy.act(planes, masks, deterministic=True))
    if searching:
        group = max(1, int(getattr(agent, "group", 1)))
        size = group * -(-SEARCH_SLICE // group)
    elif num_processes <= 1 or len(labels) < 64:
        return agent_moves(agent, labels, seed)
    else:
        size = max(1, len(labels) // (num_processes * 8))
    # contiguous slices, each shipped alone: position ``start + j`` of the set is position ``j`` of its
    # slice, so it draws from ``default_rng(seed + start + j)`` as in one process
    jobs = [(agent, labels.slice(start, start + size), seed + start) for start in range(0, len(labels), size)]
    # deferred: tqdm loads only when a bar is drawn (the evaluate command's import stays light)
    from tqdm import tqdm

    bar = tqdm(total=len(labels), desc="positions", unit="pos", disable=None if progress else True, leave=False)
    out: list[int | None] = []
    with bar:
        if num_processes <= 1:
            for job in jobs:
                out.extend(_answer_chunk(job))
                bar.update(len(job[1]))
            return out
        method = "forkserver" if "forkserver" in mp.get_all_start_methods() else "spawn"
        with single_threaded_children(), ProcessPoolExecutor(num_processes, mp_context=mp.get_context(method)) as pool:
            for (_, chunk_labels, _), chunk in zip(jobs, pool.map(_answer_chunk, jobs)):
                out.extend(chunk)
                bar.update(len(chunk_labels))
    return out


# ---------------------------------------------------------------------- the value head
#: a value within this distance of 0 reads as a draw when drawn positions are graded
VALUE_DRAW_THRESHOLD = 0.2
#: the classes of a position, by the sign of its best exact score
RESULT_CLASSES = (("won", 1), ("drawn", 0), ("lost", -1))


@dataclass
class ValueAccuracy:
    """How often a value head agrees with the solver, overall and per phase.

    Each part is ``{"won", "drawn", "lost", "decided", "all": [correct, positions]}``: on won and lost
    positions the value's sign must match (``decided`` is both together), on drawn ones
    ``|value| <= threshold``; ``all`` grades every position three ways with the same threshold.
    """

    agent: str
    threshold: float
    overall: dict[str, list[int]]
    phases: dict[str, dict[str, list[int]]]
    mean: dict[str, float]

    def rate(self, part: dict[str, list[int]], key: str) -> float:
        correct, positions = part[key]
        return correct / positions if positions else float("nan")

    def to_dict(self) -> dict[str, Any]:
        def block(part: dict[str, list[int]]) -> dict[str, Any]:
            out: dict[str, Any] = {}
            for key, (correct, positions) in part.items():
                low, high = wilson_interval(correct, positions)
                out[key] = {
                    "positions": positions,
                    "rate": round(correct / positions, 6) if positions else None,
                    "ci95": [round(low, 6), round(high, 6)] if positions else None,
                }
            return out

        return {
            "agent": self.agent,
            "draw_threshold": self.threshold,
            "overall": block(self.overall),
            "phases": {name: block(part) for name, part in self.phases.items()},
            "mean_value": {key: round(value, 6) for key, value in self.mean.items()},
        }


def value_accuracy(
    labels: LabelledPositions, values: np.ndarray, agent: str = "agent", threshold: float = VALUE_DRAW_THRESHOLD
) -> ValueAccuracy:
    """Grade one value per position (from the side to move) against the sign of its best exact score."""
    values = np.asarray(values, dtype=np.float64).reshape(-1)
    if len(values) != len(labels):
        raise ValueError(f"{len(values)} values for {len(labels)} positions")
    truth = np.sign(np.nanmax(labels.scores, axis=1))
    predicted = np.where(values > threshold, 1, np.where(values < -threshold, -1, 0))

    def empty() -> dict[str, list[int]]:
        return {key: [0, 0] for key in ("decided", "won", "drawn", "lost", "all")}

    overall, phases = empty(), {name: empty() for name in PHASE_NAMES}
    names = {result: name for name, result in RESULT_CLASSES}
    for row in range(len(values)):
        result = int(truth[row])
        sign_right = bool(np.sign(values[row]) == result)
        right = sign_right if result else bool(predicted[row] == 0)
        for part in (overall, phases[labels.phases[row]]):
            for key, hit in ((names[result], right), ("all", predicted[row] == result)):
                part[key][0] += bool(hit)
                part[key][1] += 1
            if result:
                part["decided"][0] += sign_right
                part["decided"][1] += 1
    mean = {name: float(values[truth == result].mean()) for name, result in RESULT_CLASSES if (truth == result).any()}
    used = {name: part for name, part in phases.items() if part["all"][1]}
    return ValueAccuracy(agent, threshold, overall, used, mean)


def network_values(agent: Any, labels: LabelledPositions) -> np.ndarray | None:
    """The value head's output on every position, for an agent built on a network (``checkpoint:``,
    ``mcts:``); ``None`` for agents without one."""
    policy = getattr(agent, "policy", None)
    if policy is None or not callable(getattr(policy, "values", None)):
        return None
    return policy_values(policy, labels)


def policy_values(policy: Any, labels: LabelledPositions) -> np.ndarray:
    """A network's (``NumpyPolicy``'s) value of every position, from the side to move."""
    planes, _ = labels.planes_and_masks()
    return np.concatenate([policy.values(planes[start : start + 1024]) for start in range(0, len(planes), 1024)])


def value_table(result: ValueAccuracy) -> str:
    """One row per phase: the value head's sign accuracy on decided positions, on won, drawn and lost ones."""
    rows = []
    for phase, part in [("all", result.overall), *result.phases.items()]:
        cells = [phase if phase == "all" else f"{phase} ({PHASE_PLIES[phase]})", str(part["all"][1])]
        for key in ("decided", "won", "drawn", "lost", "all"):
            correct, positions = part[key]
            if positions:
                low, high = wilson_interval(correct, positions)
                cells.append(f"{100 * correct / positions:5.1f}% [{100 * low:.1f}, {100 * high:.1f}] of {positions}")
            else:
                cells.append("-")
        rows.append(cells)
    headers = [
        "phase (plies)",
        "positions",
        "decided: sign right",
        "won: value > 0",
        f"drawn: |value| <= {result.threshold:g}",
        "lost: value < 0",
        "all three classes",
    ]
    return format_table(headers, rows, right=[False] + [True] * 6)


def move_and_value_rates(labels: LabelledPositions, moves: Sequence[int | None], values: Any) -> dict[str, float]:
    """The perfect- and good-move rates of one move per position and the sign accuracy of one value per
    position, as one flat dict (``perfect``, ``good``, ``value_decided``, ``value_lost``)."""
    accuracy, signs = grade(labels, moves), value_accuracy(labels, values)
    return {
        "perfect": accuracy.overall.rate("perfect"),
        "good": accuracy.overall.rate("good"),
        "value_decided": signs.rate(signs.overall, "decided"),
        "value_lost": signs.rate(signs.overall, "lost"),
    }


def greedy_rates(network: Any, labels: LabelledPositions | None = None) -> dict[str, float]:
    """``move_and_value_rates`` of a network's (``NumpyPolicy``'s) greedy moves and value on the labelled
    positions (default: the shipped ones; 6x7 boards with 4 in a row)."""
    labels = load_positions() if labels is None else labels

    def act(planes: np.ndarray, masks: np.ndarray) -> np.ndarray:
        return np.where(masks, network.logits(planes), -np.inf).argmax(axis=1)

    return move_and_value_rates(labels, batch_policy_moves(labels, act), policy_values(network, labels))
