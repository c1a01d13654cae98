"""AlphaZero's replay window: the self-play samples of the last few generations, and the training set
made of them.

Positions are kept as stones (``(n, 2, rows, columns)`` uint8: the mover's and the other's, top row
first, as the observation planes), so any board size fits and mirroring is a flip of the last axis.
:meth:`ReplayWindow.training_set` mirrors every position left-right (Connect-X is symmetric: the
mirrored move in the mirrored position is worth the same) and then merges the repeats: each distinct
position appears once, with the mean of its policy targets and of its value targets (the Oracle
series' "deduplicate with averaged targets"; a symmetric position merges with its own mirror image).
The window saves atomically into one ``.npz`` and loads back to the same arrays.
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from connectx_gym.runtime.files import write_atomic


@dataclass(frozen=True)
class TrainingSet:
    """Distinct positions with averaged targets, ready to fit: planes ``(n, 4, rows, columns)`` float32, legal
    masks, policy targets, value targets; ``samples``: how many samples (mirror images included) they
    came from."""

    planes: np.ndarray
    masks: np.ndarray
    targets: np.ndarray
    values: np.ndarray
    samples: int

    @property
    def duplicate_share(self) -> float:
        """The share of the (mirrored) samples that repeated a position already in the set."""
        return 1.0 - len(self.planes) / self.samples if self.samples else 0.0


def full_planes(stones: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The observation planes (own, other, playable, mover-is-first) and legal masks of stones ``(n, 2, rows,
    columns)``: the cell above each column's stones is playable, and the mover moved first when the
    stones are even in number."""
    n, _, rows, columns = stones.shape
    occupied = stones[:, 0] | stones[:, 1]
    heights = occupied.sum(axis=1)  # (n, columns): stones per column, from the bottom
    planes = np.zeros((n, 4, rows, columns), dtype=np.float32)
    planes[:, :2] = stones
    open_columns = heights < rows
    which, column = np.nonzero(open_columns)
    planes[which, 2, rows - 1 - heights[which, column], column] = 1.0
    planes[:, 3] = (occupied.reshape(n, -1).sum(axis=1) % 2 == 0)[:, None, None]
    return planes, open_columns


class ReplayWindow:
    """The samples of the last ``generations`` generations.

    :param generations: how many generations the window holds (the oldest leaves when one more comes)
    """

    def __init__(self, generations: int) -> None:
        if generations < 1:
            raise ValueError(f"the window must hold at least one generation, got {generations}")
        self.generations = generations
        #: per generation, oldest first: (stones (n, 2, rows, columns) uint8, policy (n, columns), value (n,))
        self.parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []

    def __len__(self) -> int:
        return sum(len(part[0]) for part in self.parts)

    def add(self, stones: np.ndarray, policy: np.ndarray, values: np.ndarray) -> None:
        """One generation's samples; the oldest generation leaves when the window is full."""
        if not (len(stones) == len(policy) == len(values)):
            raise ValueError(f"samples disagree in number: {len(stones)}, {len(policy)}, {len(values)}")
        self.parts.append((stones.astype(np.uint8), policy.astype(np.float32), values.astype(np.float32)))
        del self.parts[: -self.generations]

    def training_set(self, mirror: bool = True) -> TrainingSet:
        """Every position of the window (and its mirror image) once, with its averaged targets."""
        stones = np.concatenate([part[0] for part in self.parts])
        policy = np.concatenate([part[1] for part in self.parts])
        values = np.concatenate([part[2] for part in self.parts])
        if mirror:
            stones = np.concatenate([stones, stones[..., ::-1]])
            policy = np.concatenate([policy, policy[:, ::-1]])
            values = np.concatenate([values, values])
        count = len(stones)
        keys = np.ascontiguousarray(stones.reshape(count, -1))
        _, first, inverse = np.unique(
            keys.view(np.dtype((np.void, keys.shape[1]))).ravel(), return_index=True, return_inverse=True
        )
        order = np.argsort(first)  # distinct positions in the order they first appear
        rank = np.empty_like(order)
        rank[order] = np.arange(len(order))
        group = rank[inverse.ravel()]
        unique = len(order)
        weights = np.bincount(group, minlength=unique).astype(np.float64)
        mean_values = (np.bincount(group, weights=values, minlength=unique) / weights).astype(np.float32)
        mean_policy = np.zeros((unique, policy.shape[1]), dtype=np.float64)
        np.add.at(mean_policy, group, policy)
        mean_policy = (mean_policy / weights[:, None]).astype(np.float32)
        planes, masks = full_planes(stones[first[order]])
        return TrainingSet(planes, masks, mean_policy, mean_values, count)

    def copy(self) -> ReplayWindow:
        """A window holding the same generations (the arrays are shared: they are never written in place)."""
        window = ReplayWindow(self.generations)
        window.parts = list(self.parts)
        return window

    # ------------------------------------------------------------------ saving
    def to_arrays(self, prefix: str = "") -> dict[str, np.ndarray]:
        """The window as named arrays (``prefix`` starts every name), for an ``.npz`` of its own or another's."""
        arrays = {f"{prefix}generations": np.array(self.generations)}
        for i, (stones, policy, values) in enumerate(self.parts):
            arrays[f"{prefix}stones_{i}"] = stones
            arrays[f"{prefix}policy_{i}"] = policy
            arrays[f"{prefix}values_{i}"] = values
        return arrays

    @classmethod
    def from_arrays(cls, data: Any, prefix: str = "") -> ReplayWindow:
        """The window of :meth:`to_arrays`'s names in ``data`` (a loaded ``.npz`` or a dict)."""
        window = cls(int(data[f"{prefix}generations"]))
        count = sum(1 for name in data if name.startswith(f"{prefix}stones_"))
        window.parts = [
            (data[f"{prefix}stones_{i}"], data[f"{prefix}policy_{i}"], data[f"{prefix}values_{i}"])
            for i in range(count)
        ]
        return window

    def save(self, path: str | os.PathLike) -> None:
        """Write the window to ``path`` atomically (a stop while writing leaves the previous file)."""
        write_npz(path, self.to_arrays())

    @classmethod
    def load(cls, path: str | os.PathLike) -> ReplayWindow:
        """The window saved at ``path`` (no pickles are read)."""
        with np.load(path, allow_pickle=False) as data:
            return cls.from_arrays(data)


def write_npz(path: str | os.PathLike, arrays: dict[str, np.ndarray]) -> None:
    """Write named arrays to a compressed ``.npz`` at ``path`` atomically."""
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    write_atomic(path, buffer.getvalue())
