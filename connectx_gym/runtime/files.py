"""Files that are never half-written: every file the package writes for a user (checkpoints, configs,
run state, submissions, results) goes through ``write_atomic``, so a crash or ``kill -9`` can leave
a stray temporary file but never a truncated file under a real name.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def write_atomic(path: os.PathLike | str, payload: bytes) -> None:
    """Write ``payload`` to ``path`` via a fsynced temporary file and ``os.replace``."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
