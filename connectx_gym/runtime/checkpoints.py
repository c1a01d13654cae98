"""Checkpoint files: atomic saves, integrity checks, safe loading, and a run's newest good checkpoint.

A checkpoint is SB3's zip archive plus ``connectx_gym.json``: the network's shape (every weight's
name and shape), the board and the activation, as plain JSON. It is serialised in memory and
written with ``write_atomic`` (a temporary file in the target directory, fsynced and renamed into
place), so a crash or ``kill -9`` can leave a stray temporary file but never a half-written
checkpoint under a real name. Loading checks the zip's CRCs first, so a truncated or foreign file
is reported by name instead of failing deep in SB3.

Two ways to read one:

- ``read_network`` (what playing, evaluating and exporting use) reads only that JSON and the
  policy's weights, through ``torch.load(weights_only=True)``: nothing in the file is unpickled,
  so a crafted zip cannot run code. A zip without the JSON (saved before this format, or a foreign
  SB3 model) is refused unless checkpoints are trusted (``--trust-checkpoint``, or
  ``CONNECTX_GYM_TRUST_CHECKPOINT=1``, which worker processes inherit).
- ``load_model`` is SB3's full load, which unpickles the policy class, schedules and spaces from
  the zip: for ``train --resume`` and fine-tuning, which need the optimizer, and for trusted files.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import json
import os
import re
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

from connectx_gym.errors import UserError
from connectx_gym.runtime.files import write_atomic

CHECKPOINT_DIR = "checkpoints"
CHECKPOINT_PATTERN = re.compile(r"^step_(\d+)\.zip$")
#: SB3 archives always hold these members
REQUIRED_MEMBERS = ("data", "policy.pth")
#: the plain-JSON member this project adds to every checkpoint it saves
METADATA_MEMBER = "connectx_gym.json"
METADATA_FORMAT = "connectx_gym checkpoint"
METADATA_VERSION = 1
#: set to 1 to let files without ``METADATA_MEMBER`` load through SB3's unpickling loader
TRUST_ENV = "CONNECTX_GYM_TRUST_CHECKPOINT"
TRUST_FLAG = "--trust-checkpoint"
ACTIVATION_NAMES = ("relu", "tanh", "gelu")


class CheckpointError(UserError):
    """A checkpoint file is missing, corrupt, or not an SB3 checkpoint."""


def board_of_model(model) -> dict[str, int]:
    """The board a model was trained on: recorded by the trainer, else rows/columns from its spaces."""
    board = getattr(model, "connectx_board", None)
    if board:
        return {key: int(board[key]) for key in ("rows", "columns", "inarow")}
    _, rows, columns = model.observation_space.shape
    return {"rows": int(rows), "columns": int(columns), "inarow": 4}


def activation_of_model(model) -> str:
    activation_fn = model.policy_kwargs.get("activation_fn")
    name = getattr(activation_fn, "__name__", "ReLU").lower()
    return name if name in ACTIVATION_NAMES else "relu"


def checkpoint_metadata(model) -> dict:
    """What ``read_network`` needs besides the weights, as plain JSON: the board, the activation, the
    observation shape, and the name and shape of every weight of the policy."""
    return {
        "format": METADATA_FORMAT,
        "version": METADATA_VERSION,
        "board": board_of_model(model),
        "activation": activation_of_model(model),
        "observation_shape": [int(n) for n in model.observation_space.shape],
        "weights": {name: list(tensor.shape) for name, tensor in model.policy.state_dict().items()},
        "num_timesteps": int(model.num_timesteps),
    }


def save_model(model, path: os.PathLike | str) -> Path:
    """Save an SB3 model atomically to ``path`` (a ``.zip``), with its ``connectx_gym.json``."""
    buffer = io.BytesIO()
    model.save(buffer)
    with zipfile.ZipFile(buffer, "a", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(METADATA_MEMBER, json.dumps(checkpoint_metadata(model), indent=1))
    write_atomic(path, buffer.getvalue())
    return Path(path)


def verify_checkpoint(path: os.PathLike | str) -> Path:
    """Check that ``path`` is a readable, intact SB3 checkpoint; returns it as a ``Path``.

    :raises CheckpointError: naming the path and what is wrong with it
    """
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"checkpoint '{path}' does not exist")
    if not path.is_file():
        raise CheckpointError(f"checkpoint '{path}' is not a file")
    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
            names = set(archive.namelist())
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as error:
        raise CheckpointError(f"checkpoint '{path}' is not a valid SB3 checkpoint zip ({error})") from None
    if bad is not None:
        raise CheckpointError(f"checkpoint '{path}' is corrupt (bad CRC in member '{bad}')")
    missing = [member for member in REQUIRED_MEMBERS if member not in names]
    if missing:
        raise CheckpointError(
            f"checkpoint '{path}' is truncated, or not an SB3 checkpoint (it lacks {', '.join(missing)})"
        )
    return path


def checkpoint_path(run_dir: os.PathLike | str, step: int) -> Path:
    return Path(run_dir) / CHECKPOINT_DIR / f"step_{step:012d}.zip"


def list_checkpoints(run_dir: os.PathLike | str) -> list[tuple[int, Path]]:
    """``(step, path)`` of every checkpoint in a run, oldest first (not verified)."""
    folder = Path(run_dir) / CHECKPOINT_DIR
    if not folder.is_dir():
        return []
    found = []
    for entry in folder.iterdir():
        match = CHECKPOINT_PATTERN.match(entry.name)
        if match:
            found.append((int(match.group(1)), entry))
    return sorted(found)


def newest_valid_checkpoint(run_dir: os.PathLike | str) -> tuple[int, Path] | None:
    """The newest ``(step, path)`` that passes ``verify_checkpoint``; corrupt ones are skipped."""
    for step, path in reversed(list_checkpoints(run_dir)):
        try:
            verify_checkpoint(path)
        except CheckpointError:
            continue
        return step, path
    return None


def prune_checkpoints(run_dir: os.PathLike | str, keep: int) -> None:
    """Delete all but the newest ``keep`` checkpoints of a run."""
    for _, path in list_checkpoints(run_dir)[:-keep]:
        try:
            path.unlink()
        except FileNotFoundError:
            pass


#: modules that checkpoints saved by earlier versions name in their pickled policy settings (the
#: features extractor class), and where those modules live now
MOVED_MODULES = {"connectx_gym.policy": "connectx_gym.training.policy"}


def _alias_moved_modules() -> None:
    """Let the old module names of ``MOVED_MODULES`` resolve, so older checkpoints still unpickle."""
    for old, new in MOVED_MODULES.items():
        if old not in sys.modules:
            sys.modules[old] = importlib.import_module(new)


def load_model(path: os.PathLike | str, env=None, device: str = "cpu", algorithm=None):
    """Load a MaskablePPO checkpoint after ``verify_checkpoint``; any failure is a ``CheckpointError``.

    :param algorithm: the class to load it as (default ``MaskablePPO``; the trainer passes its subclass)
    """
    # deferred: stable-baselines3 and torch take seconds to import, and the command's argument checks come first
    from connectx_gym.runtime.quiet import quiet_import_sb3

    path = verify_checkpoint(path)
    quiet_import_sb3()
    from sb3_contrib import MaskablePPO

    _alias_moved_modules()

    try:
        return (algorithm or MaskablePPO).load(path, env=env, device=device)
    except Exception as error:  # SB3 raises many kinds of errors for foreign archives
        raise CheckpointError(
            f"checkpoint '{path}' could not be loaded as a MaskablePPO model ({type(error).__name__}: {error})"
        ) from None


TRUST_HELP = (
    f"load checkpoints that lack {METADATA_MEMBER} (older or foreign SB3 zips) with SB3's full loader, which "
    "unpickles objects from the file and so can run code from it: only for files you trust"
)


def add_trust_option(parser) -> None:
    """The ``--trust-checkpoint`` flag of every command that opens checkpoints."""
    parser.add_argument(TRUST_FLAG, dest="trust_checkpoint", action="store_true", help=TRUST_HELP)


@contextlib.contextmanager
def trusted_checkpoints(enabled: bool = True) -> Iterator[None]:
    """While open (and ``enabled``), let this process and the workers it starts load checkpoints without
    ``connectx_gym.json`` through SB3's unpickling loader: ``--trust-checkpoint``."""
    if not enabled:
        yield
        return
    before = os.environ.get(TRUST_ENV)
    os.environ[TRUST_ENV] = "1"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(TRUST_ENV, None)
        else:
            os.environ[TRUST_ENV] = before


def checkpoints_trusted() -> bool:
    return os.environ.get(TRUST_ENV, "") not in ("", "0")


def read_metadata(path: os.PathLike | str) -> dict | None:
    """The checkpoint's ``connectx_gym.json`` (after ``verify_checkpoint``), ``None`` if it has none.

    :raises CheckpointError: if the JSON is malformed or of an unknown format
    """
    path = verify_checkpoint(path)
    with zipfile.ZipFile(path) as archive:
        if METADATA_MEMBER not in archive.namelist():
            return None
        return _parse_metadata(path, archive.read(METADATA_MEMBER))


def _parse_metadata(path: Path, raw: bytes) -> dict:
    try:
        metadata = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as error:
        raise CheckpointError(f"checkpoint '{path}': {METADATA_MEMBER} is not valid JSON ({error})") from None
    if not isinstance(metadata, dict) or metadata.get("format") != METADATA_FORMAT:
        raise CheckpointError(f"checkpoint '{path}': {METADATA_MEMBER} is not connectx_gym checkpoint metadata")
    if metadata.get("version") != METADATA_VERSION:
        raise CheckpointError(
            f"checkpoint '{path}': {METADATA_MEMBER} has version {metadata.get('version')!r}; "
            f"this connectx_gym reads version {METADATA_VERSION}"
        )
    return metadata


class UntrustedCheckpointError(CheckpointError):
    """A checkpoint without ``connectx_gym.json``: only SB3's unpickling loader can read it."""


def untrusted_error(path: os.PathLike | str) -> UntrustedCheckpointError:
    return UntrustedCheckpointError(
        f"checkpoint '{path}' has no {METADATA_MEMBER} (saved before connectx_gym wrote one, or not by "
        f"connectx_gym): loading it would unpickle objects from the file, which can run code; if you trust "
        f"it, pass {TRUST_FLAG} (or set {TRUST_ENV}=1)"
    )


def _policy_weights(path: Path, raw: bytes) -> dict:
    """``policy.pth`` as numpy arrays, read with ``torch.load(weights_only=True)``, which refuses anything
    but tensors and plain containers.

    :raises CheckpointError: if the member is not a plain state dict of tensors
    """
    # deferred: stable-baselines3 and torch take seconds to import, and the command's argument checks come first
    import torch

    try:
        state = torch.load(io.BytesIO(raw), map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises UnpicklingError, RuntimeError, ... for what it refuses
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise CheckpointError(
            f"checkpoint '{path}': policy.pth is not plain weights ({type(error).__name__}: {first})"
        ) from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"checkpoint '{path}': policy.pth is not a mapping of weight names to tensors")
    return {str(name): tensor.detach().cpu().numpy() for name, tensor in state.items()}


def read_network(path: os.PathLike | str) -> tuple[dict, dict]:
    """``(metadata, weights)`` of a checkpoint, without unpickling anything from it (the file verified
    and opened once): the weights' names and shapes must be those its metadata lists.

    :raises UntrustedCheckpointError: if the file has no metadata (naming ``--trust-checkpoint``)
    :raises CheckpointError: if the file is not an intact checkpoint, or its weights do not match the metadata
    """
    path = verify_checkpoint(path)
    with zipfile.ZipFile(path) as archive:
        if METADATA_MEMBER not in archive.namelist():
            raise untrusted_error(path)
        metadata = _parse_metadata(path, archive.read(METADATA_MEMBER))
        weights = _policy_weights(path, archive.read("policy.pth"))
    listed = metadata.get("weights")
    if not isinstance(listed, dict):
        raise CheckpointError(f"checkpoint '{path}': {METADATA_MEMBER} lists no weights")
    for name in sorted(set(listed) | set(weights)):
        if name not in weights:
            raise CheckpointError(f"checkpoint '{path}': policy.pth lacks the weight {name!r} its metadata lists")
        if name not in listed:
            raise CheckpointError(f"checkpoint '{path}': policy.pth has the weight {name!r} its metadata does not list")
        if list(weights[name].shape) != listed[name]:
            raise CheckpointError(
                f"checkpoint '{path}': weight {name!r} has shape {list(weights[name].shape)}, "
                f"its metadata says {listed[name]}"
            )
    return metadata, weights


#: the archive member that holds the optimizer's state (Adam's moments: twice the weights' size)
OPTIMIZER_MEMBER = "policy.optimizer.pth"


def strip_optimizer(path: os.PathLike | str, output: os.PathLike | str) -> tuple[int, int]:
    """Write a copy of a checkpoint whose optimizer state is a fresh one (its settings kept, no moments),
    for shipping: every other member is copied as it is, so SB3, ``train.init_from`` and every reader
    of weights load it as before, and nothing is unpickled (the optimizer's state is read with
    ``torch.load(weights_only=True)``). Returns the sizes in bytes before and after.

    :raises CheckpointError: if it is not an intact checkpoint with its metadata, or its optimizer state is
        not plain data
    """
    # deferred: stable-baselines3 and torch take seconds to import, and the command's argument checks come first
    import torch

    try:
        read_network(path)  # an intact checkpoint with its metadata, whose weights match it
    except UntrustedCheckpointError:
        raise CheckpointError(
            f"checkpoint '{path}' has no {METADATA_MEMBER}: write a copy with it first ({TRUST_FLAG} "
            "--upgrade-checkpoint NEW.zip)"
        ) from None
    path = Path(path)
    buffer = io.BytesIO()
    with zipfile.ZipFile(path) as source, zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as target:
        for info in source.infolist():
            raw = source.read(info)
            if info.filename == OPTIMIZER_MEMBER:
                try:
                    state = torch.load(io.BytesIO(raw), map_location="cpu", weights_only=True)
                    fresh = {"state": {}, "param_groups": state["param_groups"]}
                except Exception as error:  # torch raises many kinds of errors for what it refuses
                    raise CheckpointError(
                        f"checkpoint '{path}': {OPTIMIZER_MEMBER} is not a plain optimizer state "
                        f"({type(error).__name__})"
                    ) from None
                member = io.BytesIO()
                torch.save(fresh, member)
                raw = member.getvalue()
            target.writestr(info, raw)
    write_atomic(output, buffer.getvalue())
    return path.stat().st_size, Path(output).stat().st_size


def upgrade_checkpoint(path: os.PathLike | str, output: os.PathLike | str) -> dict[str, int]:
    """Load a trusted checkpoint with SB3's full loader and save it to ``output`` with its metadata, so that
    it loads safely from then on; returns its board."""
    model = load_model(path)
    save_model(model, output)
    return board_of_model(model)
