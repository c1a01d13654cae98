"""The saved work of a stopped ``distil``: its sampled positions, the labels found so far, the fit's state.

``distil -o OUT.zip`` keeps this beside its output, in ``OUT.zip.partial``, written atomically
after sampling, at least every :data:`SAVE_EVERY` seconds of labelling, after each epoch of the
fit and when a stop signal arrives; ``--resume`` continues from it and the file is removed once
``OUT.zip`` is written. It is a ``torch.save`` file of tensors, numbers and strings only, read
back with ``torch.load(weights_only=True)``. The settings that decide the result (the teacher's
bytes, the board and network, the counts, the seed) are recorded, and a resume with other settings
is refused, naming them; ``--epochs`` may grow.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from connectx_gym.errors import UserError
from connectx_gym.rules.bitboard import Position
from connectx_gym.runtime.files import write_atomic

#: the suffix of the work file beside the output
SUFFIX = ".partial"
#: seconds of labelling between two saves (a stop saves at once)
SAVE_EVERY = 60.0


def work_path(output: str | os.PathLike) -> Path:
    """Where ``distil -o output`` keeps its work."""
    return Path(str(output) + SUFFIX)


def file_digest(path: str | os.PathLike) -> str:
    """The SHA-256 of a file's bytes (the teacher checkpoint: a resume must search the same network)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass
class DistilWork:
    """What a ``distil`` run has done.

    :param settings: the settings the result depends on, by name (JSON-able)
    :param boards: the sampled positions as Kaggle flat boards ``(N, rows × columns)``; None before sampling
    :param labels: the teacher's ``(distribution, value)`` of the first positions, in order (one list,
        so that one ``extend`` adds a chunk's labels whole even when a signal arrives)
    :param fit: the fit's :meth:`~connectx_gym.training.distillation.PolicyFit.state` after its last
        epoch; None before the first
    """

    settings: dict[str, Any]
    boards: np.ndarray | None = None
    labels: list[tuple[np.ndarray, float]] = field(default_factory=list)
    fit: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        self.settings = json.loads(json.dumps(self.settings))  # as saved: tuples become lists

    @property
    def labelled(self) -> int:
        return len(self.labels)

    def positions(self, geometry) -> list[Position]:
        """The sampled positions, rebuilt from their boards."""
        assert self.boards is not None
        return [Position.from_kaggle(geometry, board.tolist()) for board in self.boards]

    def progress(self, epochs: int) -> str:
        """How far it got, in words: ``labelled 4,000/120,000 positions`` or ``fitted 3/10 epochs``."""
        if self.boards is None:
            return "nothing sampled yet"
        total = len(self.boards)
        if self.labelled < total:
            return f"labelled {self.labelled:,}/{total:,} positions"
        return f"labelled {total:,} positions, fitted {0 if self.fit is None else self.fit['epoch']}/{epochs} epochs"

    def save(self, path: str | os.PathLike) -> None:
        """Write the work atomically (a stop or crash while writing leaves the previous save)."""
        # deferred: torch takes seconds to import; callers that never fit or load weights do not pay for it
        import torch

        labels = list(self.labels)
        columns = self.settings["board"]["columns"]
        targets = np.stack([p for p, _ in labels]) if labels else np.zeros((0, columns), dtype=np.float32)
        document = {
            "settings": json.dumps(self.settings, sort_keys=True),
            "boards": None if self.boards is None else torch.as_tensor(self.boards),
            "targets": torch.as_tensor(targets),
            "values": torch.as_tensor(np.array([v for _, v in labels], dtype=np.float32)),
            "fit": self.fit,
        }
        buffer = io.BytesIO()
        torch.save(document, buffer)
        write_atomic(path, buffer.getvalue())

    @classmethod
    def load(cls, path: str | os.PathLike, settings: dict[str, Any]) -> DistilWork:
        """The work saved at ``path``, which must have been made with ``settings`` (``epochs`` aside).

        :raises UserError: no such file, not a work file, or made with other settings (named)
        """
        # deferred: torch takes seconds to import; callers that never fit or load weights do not pay for it
        import torch

        if not os.path.isfile(path):
            raise UserError(f"--resume: no saved work at '{path}' (a stopped distil -o OUT.zip leaves OUT.zip{SUFFIX})")
        try:
            document = torch.load(path, weights_only=True)
            saved = json.loads(document["settings"])
        except Exception as error:  # any unreadable file is the user's to replace
            raise UserError(f"--resume: '{path}' is not a distil work file ({type(error).__name__})") from None
        settings = json.loads(json.dumps(settings))
        differ = [name for name in sorted(settings) if saved.get(name) != settings[name]]
        if differ:
            changes = ", ".join(f"{name} {saved.get(name)!r} -> {settings[name]!r}" for name in differ)
            raise UserError(f"--resume: '{path}' was made with other settings ({changes}); run it with those")
        boards = document["boards"]
        labels = list(zip(document["targets"].numpy(), (float(v) for v in document["values"].numpy())))
        return cls(saved, None if boards is None else boards.numpy(), labels, document["fit"])
