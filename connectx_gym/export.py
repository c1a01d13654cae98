"""``python -m connectx_gym.export``: a trained checkpoint as one self-contained Kaggle submission file.

The submission imports only the standard library and numpy. It embeds the policy's weights (a
base64 compressed ``.npz``, decoded once at import), its own copy of the forward pass and of the
observation planes, and ends with ``agent(observation, configuration)``: Kaggle plays the last
callable of the file. The agent plays the greedy policy over the legal columns; with
``--search-ms N`` it first takes an immediate win or blocks an immediate loss, then runs a
policy-ordered alpha-beta search on bitboards for up to N ms per move and plays the policy's
favourite among the moves the search has not proven lost (or a forced win it found).

The file is rendered and test-run in memory (its logits must match ``NumpyPolicy``'s) and then
written atomically, so a failure never leaves a partial file. ``--check`` plays it through
``kaggle_environments`` against ``random`` and ``negamax`` in both seats and fails (exit 1) on
any invalid move, error or timeout; bad input is one ``error:`` line and exit 2.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import io
import os
import random
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence

import numpy as np

from connectx_gym.cli import ArgumentParser
from connectx_gym.errors import UserError

#: Kaggle's ConnectX gives an agent 2 s per move (``actTimeout``); the search budget stays far below it
MAX_SEARCH_MS = 1500
DEFAULT_CHECK_GAMES = 10
CHECK_OPPONENTS = ("random", "negamax")
#: base64 characters per line of the embedded weights
_B64_LINE = 4096
_BAD_STATUSES = ("INVALID", "ERROR", "TIMEOUT")

# The submission. ``@@NAME@@`` markers are filled in by ``render_submission``; nothing else is
# substituted, so the template is plain Python. ``agent`` must stay the last callable defined.
SUBMISSION_TEMPLATE = r'''"""ConnectX agent for Kaggle, exported by connectx_gym.export from @@SOURCE@@.

A MaskablePPO policy (@@ARCH@@) trained on a @@ROWS@@x@@COLUMNS@@ board with
inarow @@INAROW@@, evaluated in numpy; the weights are embedded below. Kaggle plays the last
callable of this file: ``agent(observation, configuration) -> column``.

Search: @@SEARCH_DOC@@
"""

import base64
import io
import time

import numpy as np

BOARD = {"rows": @@ROWS@@, "columns": @@COLUMNS@@, "inarow": @@INAROW@@}
ACTIVATION = "@@ACTIVATION@@"
#: per-move search budget in milliseconds; None plays the greedy policy alone
SEARCH_MS = @@SEARCH_MS@@

_WEIGHTS_B64 = (
@@WEIGHTS@@
)


def _load_weights():
    """(conv layers, hidden layers, action head) from the embedded compressed npz."""
    with np.load(io.BytesIO(base64.b64decode(_WEIGHTS_B64)), allow_pickle=False) as archive:
        arrays = {key: np.ascontiguousarray(archive[key], dtype=np.float32) for key in archive.files}

    def stack(prefix):
        layers, i = [], 0
        while prefix + str(i) + ".weight" in arrays:
            layers.append((arrays[prefix + str(i) + ".weight"], arrays[prefix + str(i) + ".bias"]))
            i += 1
        return layers

    return stack("conv"), stack("hidden"), (arrays["head.weight"], arrays["head.bias"])


_CONV, _HIDDEN, _HEAD = _load_weights()
del _WEIGHTS_B64


# ---------------------------------------------------------------- forward pass (numpy)
def _erf(x):
    """Error function, Abramowitz & Stegun 7.1.26 (|error| < 1.5e-7)."""
    sign = np.sign(x)
    a = np.abs(x)
    t = 1.0 / (1.0 + 0.3275911 * a)
    poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))))
    return sign * (1.0 - poly * np.exp(-a * a))


def _activate(x):
    if ACTIVATION == "relu":
        return np.maximum(x, 0.0)
    if ACTIVATION == "tanh":
        return np.tanh(x)
    return 0.5 * x * (1.0 + _erf(x * np.float32(0.7071067811865476)))  # gelu (exact, erf-based)


def _conv_same(x, weight, bias):
    """torch.nn.Conv2d(padding=k // 2) for odd k: (N, C, H, W) -> (N, O, H, W), by im2col."""
    count, channels, height, width = x.shape
    out_channels, _, kernel, _ = weight.shape
    pad = kernel // 2
    padded = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    columns = np.empty((count, channels, kernel, kernel, height, width), dtype=np.float32)
    for i in range(kernel):
        for j in range(kernel):
            columns[:, :, i, j] = padded[:, :, i:i + height, j:j + width]
    columns = columns.reshape(count, channels * kernel * kernel, height * width)
    out = np.matmul(weight.reshape(out_channels, -1), columns) + bias[None, :, None]
    return out.reshape(count, out_channels, height, width)


def logits(planes):
    """Unmasked action logits (N, columns) for planes (N, 4, rows, columns) or (4, rows, columns)."""
    x = np.asarray(planes, dtype=np.float32)
    if x.ndim == 3:
        x = x[None]
    for weight, bias in _CONV:
        x = _activate(_conv_same(x, weight, bias))
    x = x.reshape(x.shape[0], -1)
    for weight, bias in _HIDDEN:
        x = _activate(x @ weight.T + bias)
    weight, bias = _HEAD
    return x @ weight.T + bias


def encode(grid, mark):
    """Planes for the player ``mark`` to move on ``grid`` (rows, columns; top row first):
    own stones, the other player's stones, playable cells, 1 if ``mark`` moves first."""
    rows, columns = grid.shape
    planes = np.zeros((4, rows, columns), dtype=np.float32)
    planes[0] = grid == mark
    planes[1] = grid == 3 - mark
    supported = np.ones((rows, columns), dtype=bool)
    supported[:-1] = grid[1:] != 0
    planes[2] = (grid == 0) & supported
    planes[3] = 1.0 if mark == 1 else 0.0
    return planes


# ---------------------------------------------------------------- reading Kaggle's arguments
def _field(obj, key, default=None):
    """``obj[key]`` or ``obj.key``: Kaggle passes Structs (dicts with attribute access)."""
    try:
        return obj[key]
    except (KeyError, TypeError, IndexError):
        return getattr(obj, key, default)


def read_position(observation, configuration):
    """(grid, mark) from Kaggle's observation, after checking the board matches the model's."""
    size = {}
    for key in ("rows", "columns", "inarow"):
        value = _field(configuration, key) if configuration is not None else None
        size[key] = BOARD[key] if value is None else int(value)
    if size != BOARD:
        raise ValueError(
            "this agent was trained on %(rows)dx%(columns)d inarow %(inarow)d" % BOARD
            + ", got %(rows)dx%(columns)d inarow %(inarow)d" % size
            + "; export a model trained on this board size"
        )
    board = _field(observation, "board")
    mark = _field(observation, "mark")
    if board is None or mark is None:
        raise ValueError("observation needs 'board' and 'mark', got %r" % (observation,))
    mark = int(mark)
    if mark not in (1, 2):
        raise ValueError("observation.mark must be 1 or 2, got %r" % (mark,))
    grid = np.asarray(board, dtype=np.int64).ravel()
    if grid.size != BOARD["rows"] * BOARD["columns"]:
        raise ValueError("observation.board has %d cells, expected %d" % (grid.size, BOARD["rows"] * BOARD["columns"]))
    return grid.reshape(BOARD["rows"], BOARD["columns"]), mark


# ---------------------------------------------------------------- search (bitboards)
WIN = 1 << 20  # a win at ply p (the root move is ply 1) scores WIN - p


class _Timeout(Exception):
    pass


class _Tables:
    """Bit masks of the board: column-major, one sentinel bit on top of every column."""

    def __init__(self, rows, columns, inarow):
        height = rows + 1
        self.rows, self.columns, self.inarow, self.height = rows, columns, inarow, height
        self.bottom = sum(1 << (c * height) for c in range(columns))
        self.full = sum(((1 << rows) - 1) << (c * height) for c in range(columns))
        self.steps = (1, height, height + 1, height - 1)  # vertical, horizontal, both diagonals
        middle = (columns - 1) / 2.0
        center = sorted(range(columns), key=lambda c: (abs(c - middle), c))
        self.center_masks = [((1 << rows) - 1) << (c * height) for c in center]

    def completions(self, stones):
        """Cells where one more of ``stones`` completes ``inarow`` in a line (occupied ones too)."""
        need = self.inarow - 1
        if need == 0:
            return self.full
        result = 0
        for step in self.steps:
            behind, run = [-1], -1
            for i in range(1, need + 1):
                run &= stones << (i * step)
                if not run:
                    break
                behind.append(run)
            ahead, run = [-1], -1
            for i in range(1, need + 1):
                run &= stones >> (i * step)
                if not run:
                    break
                ahead.append(run)
            for i in range(len(behind)):
                if need - i < len(ahead):
                    result |= behind[i] & ahead[need - i]
        return result & self.full

    def bitboards(self, grid, mark):
        """(stones of ``mark``, all stones) of a (rows, columns) grid, top row first."""
        own = mask = 0
        rows, height = self.rows, self.height
        for c in range(self.columns):
            for h in range(rows):
                value = grid[rows - 1 - h, c]
                if value == 0:
                    break
                bit = 1 << (c * height + h)
                mask |= bit
                if value == mark:
                    own |= bit
        return own, mask


_TABLES = {}


def _search(tables, deadline, root_stones):
    """A fail-soft alpha-beta negamax scoring only proven results: WIN - ply, -(WIN - ply) or 0."""
    full, bottom, completions = tables.full, tables.bottom, tables.completions
    center_masks = tables.center_masks
    transpositions = {}
    clock = time.perf_counter

    def negamax(own, mask, depth, alpha, beta, own_wins):
        if clock() > deadline:
            raise _Timeout()
        if mask == full:
            return 0
        ply = bin(mask).count("1") - root_stones
        playable = (mask + bottom) & full
        if own_wins & playable:
            return WIN - ply - 1
        other = mask ^ own
        other_wins = completions(other)
        candidates = playable
        threats = other_wins & playable
        if threats:
            if threats & (threats - 1):
                return -(WIN - ply - 2)  # two threats: one cannot block both
            candidates = threats
        candidates &= ~(other_wins >> 1)  # never play under the opponent's winning cell
        if not candidates:
            return -(WIN - ply - 2)
        if depth <= 1:
            return 0
        key = (own, mask)
        entry = transpositions.get(key)
        first = 0
        if entry is not None:
            entry_depth, flag, stored, first = entry
            if entry_depth >= depth and (flag == 0 or (flag > 0 and stored >= beta) or (flag < 0 and stored <= alpha)):
                return stored
        alpha_in = alpha
        order = [candidates & m for m in center_masks if candidates & m]
        if first & candidates:
            order.remove(first)
            order.insert(0, first)
        best, best_bit = -WIN - 1, 0
        for bit in order:
            score = -negamax(other, mask | bit, depth - 1, -beta, -alpha, other_wins)
            if score > best:
                best, best_bit = score, bit
                if score > alpha:
                    alpha = score
                    if alpha >= beta:
                        break
        flag = -1 if best <= alpha_in else (1 if best >= beta else 0)
        transpositions[key] = (depth, flag, best, best_bit)
        return best

    return negamax


def search_move(grid, mark, order, deadline):
    """The column to play: ``order`` lists the legal columns by policy preference.

    An immediate win, else a block of the opponent's immediate win, else iterative deepening
    until ``deadline``: a forced win found is played at once; otherwise the first column of
    ``order`` the search has not proven lost (the policy's move if depth 1 never completed);
    if every column is lost, the one lost latest.
    """
    key = (BOARD["rows"], BOARD["columns"], BOARD["inarow"])
    tables = _TABLES.get(key)
    if tables is None:
        tables = _TABLES[key] = _Tables(*key)
    own, mask = tables.bitboards(grid, mark)
    other = mask ^ own
    height = tables.height
    drop = {c: (mask + (1 << (c * height))) & (((1 << tables.rows) - 1) << (c * height)) for c in order}
    own_wins, other_wins = tables.completions(own), tables.completions(other)
    for column in order:
        if drop[column] & own_wins:
            return column
    for column in order:
        if drop[column] & other_wins:
            return column  # the only block, or (two threats) the policy's favourite block
    if len(order) == 1:
        return order[0]
    negamax = _search(tables, deadline, bin(mask).count("1"))
    lost_at = {}
    empty = tables.rows * tables.columns - bin(mask).count("1")
    depth = 1
    try:
        while depth < empty:
            depth += 1
            for column in order:
                if column in lost_at:
                    continue
                score = -negamax(other, mask | drop[column], depth - 1, -1, 1, other_wins)
                if score > 0:
                    return column
                if score < 0:
                    lost_at[column] = depth
            if len(lost_at) >= len(order) - 1:
                break
    except _Timeout:
        pass
    for column in order:
        if column not in lost_at:
            return column
    return max(order, key=lambda c: (lost_at[c], -order.index(c)))


# ---------------------------------------------------------------- the agent (keep it last)
def agent(observation, configuration):
    """Kaggle ConnectX agent: the column (0-based) to drop a stone into."""
    start = time.perf_counter()
    grid, mark = read_position(observation, configuration)
    legal = grid[0] == 0
    if not legal.any():
        raise ValueError("the board is full: there is no legal move")
    scores = logits(encode(grid, mark))[0]
    if SEARCH_MS is None:
        return int(np.argmax(np.where(legal, scores, -np.inf)))
    order = sorted(np.flatnonzero(legal).tolist(), key=lambda c: -scores[c])
    return int(search_move(grid, mark, order, start + SEARCH_MS / 1000.0))
'''


# ====================================================================== rendering
def _describe_architecture(policy) -> str:
    if policy.conv_layers:
        channels = [int(weight.shape[0]) for weight, _ in policy.conv_layers]
        kernel = int(policy.conv_layers[0][0].shape[-1])
        features = f"cnn {channels} kernel {kernel}"
    else:
        features = "mlp"
    hidden = [int(weight.shape[0]) for weight, _ in policy.policy_layers]
    return f"{features}, net_arch {hidden}, {policy.activation}"


def check_policy_shape(policy, source: str) -> None:
    """Reject weights that are not a 4-plane connectx_gym policy for their recorded board."""
    rows, columns = policy.board["rows"], policy.board["columns"]
    planes = 4
    if policy.conv_layers:
        first = policy.conv_layers[0][0]
        if first.ndim != 4 or first.shape[1] != planes or first.shape[2] % 2 == 0:
            raise UserError(f"checkpoint '{source}' has a first conv layer of shape {tuple(first.shape)}; "
                            f"expected ({planes} input planes, odd kernel): not a connectx_gym policy")
        features = int(policy.conv_layers[-1][0].shape[0]) * rows * columns
    else:
        features = planes * rows * columns
    width = policy.policy_layers[0][0].shape[1] if policy.policy_layers else policy.action_head[0].shape[1]
    if width != features:
        raise UserError(f"checkpoint '{source}' expects {width} input features, but a {rows}x{columns} board gives "
                        f"{features}: not a connectx_gym policy for the board it records")
    if policy.action_head[0].shape[0] != columns:
        raise UserError(f"checkpoint '{source}' has {policy.action_head[0].shape[0]} actions for a board of "
                        f"{columns} columns: not a connectx_gym policy")


def weights_payload(policy) -> bytes:
    """The policy half of the network (no value net) as a compressed npz."""
    arrays: Dict[str, np.ndarray] = {}
    for prefix, layers in (("conv", policy.conv_layers), ("hidden", policy.policy_layers)):
        for i, (weight, bias) in enumerate(layers):
            arrays[f"{prefix}{i}.weight"] = np.asarray(weight, dtype=np.float32)
            arrays[f"{prefix}{i}.bias"] = np.asarray(bias, dtype=np.float32)
    arrays["head.weight"] = np.asarray(policy.action_head[0], dtype=np.float32)
    arrays["head.bias"] = np.asarray(policy.action_head[1], dtype=np.float32)
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    return buffer.getvalue()


def check_search_ms(value: Any) -> Optional[int]:
    """``None`` (no search) or an integer budget 1..MAX_SEARCH_MS; anything else is a ``UserError``."""
    if value is None:
        return None
    try:
        number = int(str(value).strip())
    except ValueError:
        raise UserError(f"--search-ms must be an integer number of milliseconds, got {value!r}") from None
    if not 1 <= number <= MAX_SEARCH_MS:
        raise UserError(f"--search-ms must be from 1 to {MAX_SEARCH_MS} ms (Kaggle allows 2 s per move), got {number}")
    return number


def render_submission(policy, search_ms: Optional[int] = None, source: str = "a checkpoint") -> str:
    """The submission file's text for a ``NumpyPolicy``."""
    search_ms = check_search_ms(search_ms)
    encoded = base64.b64encode(weights_payload(policy)).decode("ascii")
    lines = "\n".join(f'    "{encoded[i:i + _B64_LINE]}"' for i in range(0, len(encoded), _B64_LINE))
    if search_ms is None:
        search_doc = "off (greedy policy over the legal columns)."
    else:
        search_doc = (f"{search_ms} ms per move: an immediate win or block first, then policy-ordered\n"
                      "alpha-beta on bitboards; plays a forced win it finds, else the policy's favourite\n"
                      "among the moves not proven lost.")
    board = policy.board
    values = {
        "SOURCE": os.path.basename(str(source)).replace('"', "'"),
        "ARCH": _describe_architecture(policy),
        "ROWS": str(board["rows"]),
        "COLUMNS": str(board["columns"]),
        "INAROW": str(board["inarow"]),
        "ACTIVATION": policy.activation,
        "SEARCH_MS": repr(search_ms),
        "SEARCH_DOC": search_doc,
        "WEIGHTS": lines,
    }
    text = SUBMISSION_TEMPLATE
    for name, value in values.items():
        text = text.replace(f"@@{name}@@", value)
    return text


def load_submission(text: str, path: str = "<submission>") -> Dict[str, Any]:
    """Execute a submission's text in a fresh namespace (as Kaggle's loader does) and return it."""
    namespace: Dict[str, Any] = {}
    exec(compile(text, path, "exec"), namespace)
    return namespace


def last_callable(namespace: Dict[str, Any]) -> Callable:
    """What Kaggle plays: the last callable value defined in the file's namespace."""
    return [value for value in namespace.values() if callable(value)][-1]


# ====================================================================== export
@dataclass
class ExportResult:
    path: Path
    size_bytes: int
    load_seconds: float
    board: Dict[str, int]
    architecture: str
    search_ms: Optional[int]


def _check_output(output: Path, checkpoint: Path) -> None:
    """Refuse outputs that cannot be written, before any work (nothing is ever half-written)."""
    if output.is_dir():
        raise UserError(f"output '{output}' is a directory; give a file name such as {output / 'submission.py'}")
    parent = output.parent
    if not parent.exists():
        raise UserError(f"output '{output}': directory '{parent}' does not exist")
    if not parent.is_dir():
        raise UserError(f"output '{output}': '{parent}' is not a directory")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise UserError(f"output '{output}': directory '{parent}' is not writable")
    if output.exists() and checkpoint.exists() and os.path.samefile(output, checkpoint):
        raise UserError(f"output '{output}' is the checkpoint itself; choose another file name")


def _self_test(policy, namespace: Dict[str, Any], text_path: str) -> None:
    """The rendered file must load, compute the same logits as ``NumpyPolicy`` and answer a legal move."""
    rng = np.random.default_rng(0)
    board = policy.board
    planes = (rng.random((8, 4, board["rows"], board["columns"])) < 0.3).astype(np.float32)
    expected = policy.logits(planes)
    got = namespace["logits"](planes)
    error = float(np.max(np.abs(expected - got)))
    if not error <= 1e-4 * max(1.0, float(np.max(np.abs(expected)))):
        raise RuntimeError(f"exported forward pass differs from NumpyPolicy by {error:g} in {text_path}")
    agent = last_callable(namespace)
    empty = {"board": [0] * (board["rows"] * board["columns"]), "mark": 1}
    column = agent(empty, dict(board))
    if not (isinstance(column, int) and 0 <= column < board["columns"]):
        raise RuntimeError(f"exported agent answered {column!r} on the empty board")


def export(checkpoint, output, search_ms: Optional[int] = None) -> ExportResult:
    """Write the submission for ``checkpoint`` to ``output`` atomically.

    :raises UserError: bad checkpoint, output path or search budget (nothing is written)
    """
    from connectx_gym.training.checkpoints import verify_checkpoint, write_atomic
    from connectx_gym.game.numpy_policy import load_checkpoint

    search_ms = check_search_ms(search_ms)
    checkpoint, output = Path(checkpoint), Path(output)
    _check_output(output, checkpoint)
    verify_checkpoint(checkpoint)
    try:
        policy = load_checkpoint(checkpoint)
    except UserError:
        raise
    except ValueError as error:  # NumpyPolicy: weights of some other network
        raise UserError(f"checkpoint '{checkpoint}' is not a connectx_gym policy: {error}") from None
    check_policy_shape(policy, str(checkpoint))
    text = render_submission(policy, search_ms, source=checkpoint.name)
    started = time.perf_counter()
    namespace = load_submission(text, str(output))
    load_seconds = time.perf_counter() - started
    _self_test(policy, namespace, str(output))
    payload = text.encode("utf-8")
    try:
        write_atomic(output, payload)
    except OSError as error:
        raise UserError(f"output '{output}' could not be written: {error.strerror or error}") from None
    return ExportResult(output, len(payload), load_seconds, dict(policy.board), _describe_architecture(policy), search_ms)


# ====================================================================== --check
@dataclass
class SeatTally:
    wins: int = 0
    draws: int = 0
    losses: int = 0

    def add(self, reward: Optional[float]) -> None:
        if reward is not None and reward > 0:
            self.wins += 1
        elif reward == 0:
            self.draws += 1
        else:
            self.losses += 1

    @property
    def games(self) -> int:
        return self.wins + self.draws + self.losses

    def __str__(self) -> str:
        rate = 100.0 * self.wins / self.games if self.games else 0.0
        return f"{self.wins:>3} won {self.draws:>2} drawn {self.losses:>3} lost ({rate:3.0f}%)"


@dataclass
class CheckReport:
    board: Dict[str, int]
    games: int = 0
    tallies: Dict[str, Dict[str, SeatTally]] = field(default_factory=dict)
    latencies_ms: List[float] = field(default_factory=list)
    failures: List[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.failures and self.games > 0

    def latency(self) -> Dict[str, float]:
        values = np.asarray(self.latencies_ms, dtype=float)
        if not len(values):
            return {"median": 0.0, "p99": 0.0, "max": 0.0}
        return {"median": float(np.median(values)), "p99": float(np.percentile(values, 99)), "max": float(values.max())}

    def lines(self) -> List[str]:
        board = self.board
        out = [f"check: {self.games} games through kaggle_environments connectx "
               f"{board['rows']}x{board['columns']} inarow {board['inarow']}"]
        for opponent, seats in self.tallies.items():
            out.append(f"  vs {opponent:<8} as first: {seats['first']}   as second: {seats['second']}")
        stats = self.latency()
        out.append(f"  our move time (n={len(self.latencies_ms)}): median {stats['median']:.2f} ms, "
                   f"p99 {stats['p99']:.2f} ms, max {stats['max']:.2f} ms")
        if self.passed:
            out.append("check passed: every episode DONE, no invalid move, error or timeout")
        else:
            out.append(f"check FAILED: {len(self.failures)} problem(s)")
            out.extend(f"  {failure}" for failure in self.failures[:10])
        return out


def _import_kaggle():
    with contextlib.redirect_stderr(io.StringIO()):
        import kaggle_environments
        from kaggle_environments.agent import get_last_callable
        from kaggle_environments.utils import Struct
    return kaggle_environments, get_last_callable, Struct


def check_submission(
    path,
    board: Dict[str, int],
    games_per_seat: int = DEFAULT_CHECK_GAMES,
    opponents: Sequence[str] = CHECK_OPPONENTS,
    seed: int = 0,
) -> CheckReport:
    """Play the submission file through ``kaggle_environments`` against each opponent in both seats.

    Every episode must end with both agents DONE and no INVALID/ERROR/TIMEOUT status. Our agent's
    move time is measured by calling the file's last callable (loaded with Kaggle's own
    ``get_last_callable``) on every position it faced in the games.
    """
    kaggle_environments, get_last_callable, Struct = _import_kaggle()
    path = os.path.abspath(str(path))
    with open(path, encoding="utf-8") as handle:
        source = handle.read()
    our_agent = get_last_callable(source, path=path)
    configuration = {key: int(board[key]) for key in ("rows", "columns", "inarow")}
    env = kaggle_environments.make("connectx", configuration=configuration, debug=False)
    report = CheckReport(board=dict(configuration))
    game = 0
    for opponent in opponents:
        report.tallies[opponent] = {"first": SeatTally(), "second": SeatTally()}
        for seat_index, seat in enumerate(("first", "second")):
            for _ in range(games_per_seat):
                random.seed(seed * 1_000_003 + game)
                np.random.seed((seed * 1_000_003 + game) % 2**32)
                agents = [path, opponent] if seat_index == 0 else [opponent, path]
                env.run(agents)
                game += 1
                label = f"game {game} vs {opponent} (ours {seat})"
                for step, states in enumerate(env.steps):
                    for index, state in enumerate(states):
                        if state.status in _BAD_STATUSES:
                            who = "our agent" if index == seat_index else opponent
                            report.failures.append(f"{label}: {who} status {state.status} at step {step}")
                final = env.steps[-1]
                if any(state.status != "DONE" for state in final):
                    report.failures.append(f"{label}: episode ended with statuses {[s.status for s in final]}")
                report.tallies[opponent][seat].add(final[seat_index].reward)
                # time our agent on each position it faced (it is ACTIVE in the step before its move)
                for states in env.steps[:-1]:
                    if states[seat_index].status != "ACTIVE":
                        continue
                    observation = Struct(board=list(states[0].observation.board), mark=seat_index + 1,
                                         step=states[0].observation.step, remainingOverageTime=60)
                    started = time.perf_counter()
                    try:
                        column = our_agent(observation, env.configuration)
                    except Exception as error:  # noqa: BLE001 - reported, not raised
                        report.failures.append(f"{label}: our agent raised {type(error).__name__}: {error}")
                        continue
                    report.latencies_ms.append(1000.0 * (time.perf_counter() - started))
                    if not (isinstance(column, int) and 0 <= column < configuration["columns"]
                            and observation.board[column] == 0):
                        report.failures.append(f"{label}: our agent answered illegal column {column!r}")
    report.games = game
    return report


# ====================================================================== CLI
def parse_args(argv: Optional[Sequence[str]]) -> argparse.Namespace:
    parser = ArgumentParser(
        prog="python -m connectx_gym.export",
        description="Write a trained checkpoint as one self-contained Kaggle ConnectX submission file "
                    "(standard library + numpy only).",
    )
    parser.add_argument("checkpoint", help="MaskablePPO checkpoint .zip, e.g. models/<run>/best_model.zip")
    parser.add_argument("-o", "--output", default="submission.py", help="submission file to write (default: submission.py)")
    parser.add_argument("--search-ms", default=None, metavar="N",
                        help=f"per-move alpha-beta search budget in ms (1..{MAX_SEARCH_MS}); default: greedy policy only")
    parser.add_argument("--check", action="store_true",
                        help="play the written file through kaggle_environments vs random and negamax, both seats")
    parser.add_argument("--check-games", default=str(DEFAULT_CHECK_GAMES), metavar="N",
                        help=f"games per opponent per seat for --check (default: {DEFAULT_CHECK_GAMES})")
    parser.add_argument("--seed", default="0", metavar="N", help="seed of Python's random for --check (default: 0)")
    args = parser.parse_args(argv)
    args.search_ms = check_search_ms(args.search_ms)
    for name, option, minimum in (("check_games", "--check-games", 1), ("seed", "--seed", 0)):
        value = getattr(args, name)
        try:
            number = int(str(value).strip())
        except ValueError:
            number = None
        if number is None or number < minimum:
            raise UserError(f"{option} must be an integer >= {minimum}, got {value!r}")
        setattr(args, name, number)
    return args


def _format_size(size: int) -> str:
    return f"{size / 1e6:.2f} MB" if size >= 100_000 else f"{size / 1e3:.1f} kB"


def main(argv: Optional[Sequence[str]] = None) -> int:
    try:
        args = parse_args(argv)
        result = export(args.checkpoint, args.output, args.search_ms)
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    board = result.board
    search = "off" if result.search_ms is None else f"{result.search_ms} ms/move"
    print(f"wrote {result.path}: {_format_size(result.size_bytes)}, loads in {1000 * result.load_seconds:.0f} ms "
          f"(policy {result.architecture}; board {board['rows']}x{board['columns']} inarow {board['inarow']}; "
          f"search {search})")
    if not args.check:
        return 0
    started = time.perf_counter()
    report = check_submission(result.path, board, args.check_games, seed=args.seed)
    for line in report.lines():
        print(line)
    print(f"check took {time.perf_counter() - started:.1f} s")
    return 0 if report.passed else 1


if __name__ == "__main__":
    sys.exit(main())
