"""Checkpoint files: atomic saves, integrity checks, and finding a run's newest good checkpoint.

A checkpoint is SB3's zip archive. It is serialised in memory and written with ``write_atomic``
(a temporary file in the target directory, fsynced and renamed into place), so a crash or
``kill -9`` can leave a stray temporary file but never a half-written checkpoint under a real
name. Loading checks the zip's CRCs first, so a truncated or foreign file is reported by name
instead of failing deep in SB3.
"""

from __future__ import annotations

import importlib
import io
import os
import re
import sys
import zipfile
from pathlib import Path

from connectx_gym.errors import UserError
from connectx_gym.runtime.files import write_atomic

CHECKPOINT_DIR = "checkpoints"
CHECKPOINT_PATTERN = re.compile(r"^step_(\d+)\.zip$")
#: SB3 archives always hold these members
REQUIRED_MEMBERS = ("data", "policy.pth")


class CheckpointError(UserError):
    """A checkpoint file is missing, corrupt, or not an SB3 checkpoint."""


def save_model(model, path: os.PathLike | str) -> Path:
    """Save an SB3 model atomically to ``path`` (a ``.zip``)."""
    buffer = io.BytesIO()
    model.save(buffer)
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
        raise CheckpointError(f"checkpoint '{path}' is not an SB3 checkpoint (missing {', '.join(missing)})")
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


def load_model(path: os.PathLike | str, env=None, device: str = "cpu"):
    """Load a MaskablePPO checkpoint after ``verify_checkpoint``; any failure is a ``CheckpointError``."""
    from connectx_gym.runtime.quiet import quiet_import_sb3

    path = verify_checkpoint(path)
    quiet_import_sb3()
    from sb3_contrib import MaskablePPO

    _alias_moved_modules()

    try:
        return MaskablePPO.load(path, env=env, device=device)
    except Exception as error:  # SB3 raises many kinds of errors for foreign archives
        raise CheckpointError(
            f"checkpoint '{path}' could not be loaded as a MaskablePPO model ({type(error).__name__}: {error})"
        ) from None
