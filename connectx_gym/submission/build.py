"""Render a trained policy into the submission file's text, test-run it in memory and write it atomically.

The file is the code of :mod:`connectx_gym.submission.agent` and of the modules it uses (the
forward pass, the PUCT search, the exact proof, the book's numbering: :data:`EMBEDDED`), verbatim
but for their docstrings and imports of the package, with a settings block written for the file:
the board, the network as a base64 compressed ``.npz`` (the policy half, and with a search the
value half too), the book and the search's constants. The rendered text is executed as Kaggle's
loader would, its logits (and values) must match ``NumpyPolicy``'s and its agent must answer a
legal move (with a search, also past the book, from the search itself) before anything is
written, so a failure never leaves a partial file. A bad
checkpoint, output or search budget is a ``UserError``, raised before anything is written. With a
search on a 6x7 board with 4 in a row, the solver-made opening book of :mod:`connectx_gym.data.book`
is embedded too (its compressed table, base64), unless turned off.
"""

from __future__ import annotations

import base64
import io
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from connectx_gym.agents.mcts import BATCH, C_PUCT, FPU_REDUCTION
from connectx_gym.data import DATA_BOARD, book_index
from connectx_gym.data.book import BOOK_FILE, BookFile, decode_book, read_book_file
from connectx_gym.errors import UserError
from connectx_gym.inference import network
from connectx_gym.inference.numpy_policy import load_checkpoint
from connectx_gym.rules.bitboard import Position, geometry
from connectx_gym.runtime.files import write_atomic
from connectx_gym.search import proof, puct, puct_board
from connectx_gym.submission import agent

#: Kaggle's ConnectX gives an agent 2 s per move (``actTimeout``); the search budget stays far below it
MAX_SEARCH_MS = 1500
#: share of a move's budget the file's exact alpha-beta proof may use before its tree search takes over
PROOF_SHARE = 0.6
#: base64 characters per line of the embedded weights
_B64_LINE = 4096


def describe_architecture(policy) -> str:
    """One line naming the policy's layers, for the file's docstring and the CLI's report."""
    if policy.conv_layers:
        channels = [int(weight.shape[0]) for weight, _ in policy.conv_layers]
        kernel = int(policy.conv_layers[0][0].shape[-1])
        features = f"cnn {channels} kernel {kernel}"
        if policy.blocks:
            features += f", {len(policy.blocks)} residual blocks"
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
            raise UserError(
                f"checkpoint '{source}' has a first conv layer of shape {tuple(first.shape)}; "
                f"expected ({planes} input planes, odd kernel): not a connectx_gym policy"
            )
        features = int(policy.conv_layers[-1][0].shape[0]) * rows * columns
    else:
        features = planes * rows * columns
    width = policy.policy_layers[0][0].shape[1] if policy.policy_layers else policy.action_head[0].shape[1]
    if width != features:
        raise UserError(
            f"checkpoint '{source}' expects {width} input features, but a {rows}x{columns} board gives "
            f"{features}: not a connectx_gym policy for the board it records"
        )
    if policy.action_head[0].shape[0] != columns:
        raise UserError(
            f"checkpoint '{source}' has {policy.action_head[0].shape[0]} actions for a board of "
            f"{columns} columns: not a connectx_gym policy"
        )


def weights_payload(policy, value: bool = True) -> bytes:
    """The network as a compressed npz: the shared features and the policy half, and with ``value`` (what
    the tree search needs) the value half too."""
    arrays: dict[str, np.ndarray] = {}
    stacks = [("conv", policy.conv_layers), ("hidden", policy.policy_layers)]
    heads = [("head", policy.action_head)]
    if value:
        stacks.append(("value_hidden", policy.value_layers))
        heads.append(("value_head", policy.value_head))
    for prefix, layers in stacks:
        for i, (weight, bias) in enumerate(layers):
            arrays[f"{prefix}{i}.weight"] = np.asarray(weight, dtype=np.float32)
            arrays[f"{prefix}{i}.bias"] = np.asarray(bias, dtype=np.float32)
    for i, block in enumerate(policy.blocks):
        for j, (weight, bias) in enumerate(block):
            arrays[f"block{i}.{j}.weight"] = np.asarray(weight, dtype=np.float32)
            arrays[f"block{i}.{j}.bias"] = np.asarray(bias, dtype=np.float32)
    for name, (weight, bias) in heads:
        arrays[f"{name}.weight"] = np.asarray(weight, dtype=np.float32)
        arrays[f"{name}.bias"] = np.asarray(bias, dtype=np.float32)
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    return buffer.getvalue()


def check_search_ms(value: Any) -> int | None:
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


def _b64_lines(payload: bytes) -> str:
    """``payload`` as base64 string literals, one per line, for a parenthesised constant."""
    encoded = base64.b64encode(payload).decode("ascii")
    return "\n".join(f'    "{encoded[i : i + _B64_LINE]}"' for i in range(0, len(encoded), _B64_LINE)) or '    ""'


def board_has_book(board: dict[str, int]) -> bool:
    """Whether the opening book is for ``board``: 6x7 with 4 in a row."""
    return {key: int(board[key]) for key in DATA_BOARD} == DATA_BOARD


def read_book(path=None) -> BookFile:
    """The opening book file to embed (default: the shipped one); a missing or bad one is a ``UserError``."""
    path = Path(path) if path is not None else BOOK_FILE
    try:
        data = path.read_bytes()
    except OSError as error:
        raise UserError(
            f"cannot read the opening book '{path}': {error.strerror or error}; export with --no-book, "
            "or rebuild it with: python -m connectx_gym.data.book"
        ) from None
    decode_book(data, f"the opening book '{path}'")  # a corrupt table fails here, not in the submission
    return read_book_file(data, f"the opening book '{path}'")


def embedded_size(book: BookFile) -> int:
    """Characters the book adds to the submission file (its base64 text)."""
    return 4 * ((len(book.compressed) + 2) // 3)


def render_submission(
    policy, search_ms: int | None = None, source: str = "a checkpoint", book: BookFile | None = None
) -> str:
    """The submission file's text for a ``NumpyPolicy``; ``book`` (with a search only) is embedded."""
    search_ms = check_search_ms(search_ms)
    if book is not None and search_ms is None:
        raise ValueError("the opening book is used by the search only; give search_ms")
    lines = _b64_lines(weights_payload(policy, value=search_ms is not None))
    if search_ms is None:
        search_doc = "off (greedy policy over the legal columns)."
    else:
        search_doc = (
            f"{search_ms} ms per move: an immediate win or block first; then an exact alpha-beta\n"
            f"proof for up to {PROOF_SHARE:.0%} of the budget (a forced win is played, moves proven lost are\n"
            "dropped); then a PUCT tree search over the policy and value heads until the budget\n"
            "is spent, which plays its most visited move."
        )
    if book is None:
        book_doc = "none."
    else:
        book_doc = (
            f"the perfect moves (best exact solver score) of all {book.positions:,} positions\n"
            f"of up to {book.plies} stones (a mirror pair once), {embedded_size(book) / 1e6:.2f} MB below; in a book\n"
            "position the agent plays the policy's favourite perfect move, without searching."
        )
    board = policy.board
    header = FILE_DOCSTRING.format(
        source=os.path.basename(str(source)).replace('"', "'"),
        arch=describe_architecture(policy),
        rows=board["rows"],
        columns=board["columns"],
        inarow=board["inarow"],
        search=search_doc,
        book=book_doc,
    )
    settings = {
        "BOARD": f'{{"rows": {board["rows"]}, "columns": {board["columns"]}, "inarow": {board["inarow"]}}}',
        "ACTIVATION": repr(policy.activation),
        "SEARCH_MS": repr(search_ms),
        "_WEIGHTS_B64": f"(\n{lines}\n)",
        "BOOK_PLIES": repr(None if book is None else book.plies),
        "_BOOK_B64": f"(\n{_b64_lines(b'' if book is None else book.compressed)}\n)",
        "C_PUCT": repr(C_PUCT),
        "TREE_BATCH": repr(BATCH),
        "FPU_REDUCTION": repr(FPU_REDUCTION),
        "PROOF_SHARE": repr(PROOF_SHARE),
    }
    prelude, body = agent_parts()
    parts = [header, prelude, settings_block(settings), *(embedded_source(entry) for entry in EMBEDDED), body]
    return "\n\n\n".join(part.strip("\n") for part in parts) + "\n"


#: the file's docstring: what it holds and how it plays
FILE_DOCSTRING = '''"""ConnectX agent for Kaggle, exported by connectx_gym.export from {source}.

A MaskablePPO policy ({arch}) trained on a {rows}x{columns} board with
inarow {inarow}, evaluated in numpy; the weights are embedded below. Kaggle plays the last
callable of this file: ``agent(observation, configuration) -> column``.

Search: {search}

Opening book: {book}
"""'''

#: the package modules whose code the file embeds, in this order, each from its first line of code on
EMBEDDED = (
    (network, "import math"),
    (puct_board, "import numpy as np"),
    (puct, "import math"),
    (proof, "import time"),
    (book_index, "from math import comb"),
)
SETTINGS_START = "# " + "-" * 64 + " settings (each file has its own)\n"
SETTINGS_END = "# " + "-" * 64 + " end of the settings\n"


def _code_of(module, first_line: str) -> str:
    """A module's source from ``first_line`` on (its docstring, which names the package, stays out)."""
    source = Path(module.__file__).read_text(encoding="utf-8")
    marker = "\n" + first_line + "\n"
    if marker not in source:
        raise RuntimeError(f"{module.__file__} no longer starts its code with {first_line!r}")
    return first_line + "\n" + source.split(marker, 1)[1]


def _without_package_imports(code: str, where: str) -> str:
    """``code`` less its top-level imports of the package (the file defines those names itself)."""
    kept = "\n".join(line for line in code.split("\n") if not line.startswith("from connectx_gym."))
    if "connectx_gym" in kept:
        raise RuntimeError(f"{where} names connectx_gym outside its imports: the file cannot carry it")
    return kept


def settings_block(values: dict[str, str]) -> str:
    """:mod:`connectx_gym.submission.agent`'s settings block, its comments kept, with each setting's
    value replaced by the file's (``values``: name -> Python source); every setting must be given."""
    block = _code_of(agent, "import base64").split(SETTINGS_START, 1)[1].split(SETTINGS_END, 1)[0]
    lines, given = [], set()
    for line in block.strip("\n").split("\n"):
        name, assigned, _ = line.partition(" = ")
        if assigned and not line.startswith("#"):
            if name not in values:
                raise RuntimeError(f"{agent.__file__} has a setting {name!r} the export does not write")
            line = f"{name} = {values[name]}"
            given.add(name)
        lines.append(line)
    if given != set(values):
        raise RuntimeError(f"{agent.__file__} lacks the settings {sorted(set(values) - given)}")
    return "\n".join(lines)


def embedded_source(entry: tuple[Any, str]) -> str:
    """The code of one of :data:`EMBEDDED` as the file carries it: from its first line of code, without
    its imports of the package."""
    module, first_line = entry
    return _without_package_imports(_code_of(module, first_line), module.__file__)


def agent_parts() -> tuple[str, str]:
    """:mod:`connectx_gym.submission.agent`'s code as the file carries it: (its imports, less the
    package's; its code after its settings block)."""
    code = _code_of(agent, "import base64")
    if SETTINGS_START not in code or SETTINGS_END not in code:
        raise RuntimeError(f"{agent.__file__} has lost the lines that mark its settings block")
    prelude, rest = code.split(SETTINGS_START, 1)
    body = rest.split(SETTINGS_END, 1)[1]
    return _without_package_imports(prelude, agent.__file__), _without_package_imports(body, agent.__file__)


def load_submission(text: str, path: str = "<submission>") -> dict[str, Any]:
    """Execute a submission's text in a fresh namespace (as Kaggle's loader does) and return it."""
    namespace: dict[str, Any] = {}
    exec(compile(text, path, "exec"), namespace)  # noqa: S102 - our own rendered file, run as Kaggle runs it
    return namespace


def last_callable(namespace: dict[str, Any]) -> Callable:
    """What Kaggle plays: the last callable value defined in the file's namespace."""
    return [value for value in namespace.values() if callable(value)][-1]


@dataclass
class ExportResult:
    """What :func:`export` wrote: the file, its size and load time, the policy and the opening book it holds."""

    path: Path
    size_bytes: int
    load_seconds: float
    board: dict[str, int]
    architecture: str
    search_ms: int | None
    #: the embedded opening book (None: none)
    book: BookFile | None = None
    #: why there is no book with the search: "off" (turned off) or "board" (not a 6x7x4 board)
    no_book_reason: str = ""


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


def _self_test(policy, namespace: dict[str, Any], text_path: str) -> None:
    """The rendered file must load, compute the same logits as ``NumpyPolicy`` and answer a legal move."""
    rng = np.random.default_rng(0)
    board = policy.board
    planes = (rng.random((8, 4, board["rows"], board["columns"])) < 0.3).astype(np.float32)
    expected = policy.logits(planes)
    got = namespace["logits"](planes)
    error = float(np.max(np.abs(expected - got)))
    if not error <= 1e-4 * max(1.0, float(np.max(np.abs(expected)))):
        raise RuntimeError(f"exported forward pass differs from NumpyPolicy by {error:g} in {text_path}")
    if namespace["SEARCH_MS"] is not None:
        _, values = namespace["policy_value"](planes)
        error = float(np.max(np.abs(policy.values(planes) - values)))
        if not error <= 1e-4 * max(1.0, float(np.max(np.abs(values)))):
            raise RuntimeError(f"exported value head differs from NumpyPolicy by {error:g} in {text_path}")
    agent = last_callable(namespace)
    empty = {"board": [0] * (board["rows"] * board["columns"]), "mark": 1}
    column = agent(empty, dict(board))
    if not (isinstance(column, int) and 0 <= column < board["columns"]):
        raise RuntimeError(f"exported agent answered {column!r} on the empty board")
    if namespace["SEARCH_MS"] is not None:
        # a position past any book, so the search itself runs; it must not fall back to the policy
        position = _deep_position(board, 1 + (namespace["BOOK_PLIES"] or 0))
        if position is not None:
            deep = agent({"board": position.to_kaggle(), "mark": position.to_move}, dict(board))
            source = namespace["LAST_MOVE"]["source"]
            if not (isinstance(deep, int) and position.is_legal(deep)) or source == "policy":
                raise RuntimeError(
                    f"exported agent's search failed on a test position ({deep!r}, {source}) in {text_path}"
                )
        namespace["_STATE"].clear()
    if namespace["BOOK_PLIES"] is not None:
        best = namespace["book_columns"](np.zeros((board["rows"], board["columns"]), dtype=np.int64))
        if not best or column not in best:
            raise RuntimeError(f"exported agent's opening book has no move {column!r} on the empty board ({best})")


def _deep_position(board: dict[str, int], stones: int):
    """A game in progress with about ``stones`` stones (fewer on a small board), or ``None`` if every move ends it."""
    position = Position(geometry(board["rows"], board["columns"], board["inarow"]))
    target = min(stones, position.geometry.size - 2)
    step = 0
    while position.moves_played < target and step < 10 * position.geometry.size:
        step += 1
        column = (step * 3) % board["columns"]
        if not position.is_legal(column):
            continue
        trial = position.copy()
        if trial.play(column) is None:
            position = trial
    return position if position.moves_played and position.winner is None else None


def _load_policy(checkpoint: Path):
    """The checkpoint's ``NumpyPolicy``; anything that is not a connectx_gym policy is a ``UserError``."""
    # imported on use, as before the split: --help and bad arguments need neither
    try:  # load_checkpoint verifies the file first
        policy = load_checkpoint(checkpoint)
    except UserError:
        raise
    except ValueError as error:  # NumpyPolicy: weights of some other network
        raise UserError(f"checkpoint '{checkpoint}' is not a connectx_gym policy: {error}") from None
    check_policy_shape(policy, str(checkpoint))
    return policy


def export(checkpoint, output, search_ms: int | None = None, book: bool = True, book_path=None) -> ExportResult:
    """Write the submission for ``checkpoint`` to ``output`` atomically.

    :param book: with a search on a 6x7 board with 4 in a row, embed the opening book (``book_path``,
        default the shipped one)
    :raises UserError: bad checkpoint, output path, search budget or book file (nothing is written)
    """
    search_ms = check_search_ms(search_ms)
    checkpoint, output = Path(checkpoint), Path(output)
    _check_output(output, checkpoint)
    policy = _load_policy(checkpoint)
    wanted = search_ms is not None and book and board_has_book(policy.board)
    book_file = read_book(book_path) if wanted else None
    no_book_reason = "" if book_file is not None else ("off" if not book else "board")
    text = render_submission(policy, search_ms, source=checkpoint.name, book=book_file)
    started = time.perf_counter()
    namespace = load_submission(text, str(output))
    load_seconds = time.perf_counter() - started
    _self_test(policy, namespace, str(output))
    payload = text.encode("utf-8")
    try:
        write_atomic(output, payload)
    except OSError as error:
        raise UserError(f"output '{output}' could not be written: {error.strerror or error}") from None
    return ExportResult(
        output,
        len(payload),
        load_seconds,
        dict(policy.board),
        describe_architecture(policy),
        search_ms,
        book_file,
        no_book_reason,
    )
