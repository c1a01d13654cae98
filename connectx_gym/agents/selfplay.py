"""Self-play opponents: a bounded pool of frozen policy snapshots in each worker process.

The trainer freezes its policy every ``selfplay.snapshot_every`` steps into a ``NumpyPolicy`` and
ships the snapshot's bytes to every worker once (``ConnectXEnv.add_snapshot``, deduplicated by
snapshot id, so all envs of a process share one ``SnapshotPool``). At the start of each episode
a ``SelfPlayOpponent`` draws a snapshot: the latest with probability ``latest_probability``,
otherwise an older one, uniformly or weighted by how often it beats the learner (the trainer's
side, ``training.pool_keeper``, sends those weights). Everything random comes from the env's rng.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from connectx_gym.inference.numpy_policy import NumpyPolicy
from connectx_gym.rules.bitboard import Position

DEFAULT_POOL = "default"


class SnapshotPool:
    """Frozen policies by snapshot id, newest last, at most ``max_size`` of them.

    :param max_size: snapshots kept; adding more drops the oldest
    :param latest_probability: chance that an episode faces the newest snapshot
    """

    def __init__(self, max_size: int = 20, latest_probability: float = 0.5) -> None:
        self.max_size = max_size
        self.latest_probability = latest_probability
        self.snapshots: list[tuple[int, NumpyPolicy]] = []
        self.weights: dict[int, float] = {}

    def __len__(self) -> int:
        return len(self.snapshots)

    def ids(self) -> list[int]:
        return [snapshot_id for snapshot_id, _ in self.snapshots]

    def add(self, snapshot_id: int, policy: NumpyPolicy | bytes) -> bool:
        """Add a snapshot unless its id is already here; returns whether it was added."""
        if any(existing == snapshot_id for existing, _ in self.snapshots):
            return False
        if isinstance(policy, (bytes, bytearray)):
            policy = NumpyPolicy.from_bytes(bytes(policy))
        self.snapshots.append((snapshot_id, policy))
        self.snapshots.sort(key=lambda item: item[0])
        del self.snapshots[: max(0, len(self.snapshots) - self.max_size)]
        return True

    def configure(self, max_size: int | None = None, latest_probability: float | None = None) -> None:
        if max_size is not None:
            self.max_size = max_size
            del self.snapshots[: max(0, len(self.snapshots) - self.max_size)]
        if latest_probability is not None:
            self.latest_probability = latest_probability

    def set_weights(self, weights: Mapping[int, float]) -> None:
        """Sampling weights of the older snapshots (missing ids weigh 1; all uniform if empty)."""
        self.weights = {int(k): float(v) for k, v in weights.items()}

    def sample(self, rng: np.random.Generator) -> tuple[int, NumpyPolicy] | None:
        """The snapshot for one episode, or None while the pool is empty."""
        if not self.snapshots:
            return None
        if len(self.snapshots) == 1 or rng.random() < self.latest_probability:
            return self.snapshots[-1]
        older = self.snapshots[:-1]
        weights = np.array([self.weights.get(snapshot_id, 1.0) for snapshot_id, _ in older], dtype=np.float64)
        total = weights.sum()
        if not np.isfinite(total) or total <= 0:
            return older[int(rng.integers(len(older)))]
        return older[int(rng.choice(len(older), p=weights / total))]


_POOLS: dict[str, SnapshotPool] = {}


def pool(name: str = DEFAULT_POOL) -> SnapshotPool:
    """This process's pool called ``name`` (created empty on first use)."""
    found = _POOLS.get(name)
    if found is None:
        found = _POOLS[name] = SnapshotPool()
    return found


def reset_pools() -> None:
    """Forget every pool of this process (tests, and a fresh training run in the same process)."""
    _POOLS.clear()


class SelfPlayOpponent:
    """Plays a snapshot drawn from this process's pool at the start of each episode.

    Until the pool has a snapshot it plays uniformly random legal moves. Moves are sampled from
    the snapshot's masked softmax (``greedy=False``, more varied games) or its best logit.
    """

    name = "selfplay"

    def __init__(self, pool_name: str = DEFAULT_POOL, greedy: bool = False) -> None:
        self.pool_name = pool_name
        self.greedy = greedy
        self._current: tuple[int, NumpyPolicy] | None = None

    @classmethod
    def from_spec(cls, argument: str | None = None) -> SelfPlayOpponent:
        """The opponent of the spec ``selfplay`` or ``selfplay:greedy`` (the argument is already checked)."""
        return cls(greedy=argument == "greedy")

    @property
    def episode_label(self) -> str:
        return f"selfplay:{self._current[0]}" if self._current else "selfplay:none"

    def start_episode(self, rng: np.random.Generator) -> None:
        self._current = pool(self.pool_name).sample(rng)

    def batch_policy(self, position: Position) -> tuple[NumpyPolicy, bool] | None:
        """The snapshot that answers ``position`` and whether it plays greedily (None: random moves)."""
        return (self._current[1], self.greedy) if self._current is not None else None

    def act(self, position: Position, rng: np.random.Generator) -> int:
        if self._current is None:
            legal = position.legal_moves()
            return legal[int(rng.integers(len(legal)))]
        return self._current[1].move(position, deterministic=self.greedy, rng=rng)

    def __getstate__(self) -> dict[str, Any]:
        # the pool lives in each process; only how to find it travels
        return {"pool_name": self.pool_name, "greedy": self.greedy, "_current": None}
