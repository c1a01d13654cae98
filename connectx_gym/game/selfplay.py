"""Self-play: a bounded pool of frozen policy snapshots, and opponents drawn per episode.

The trainer freezes its policy every ``selfplay.snapshot_every`` steps into a ``NumpyPolicy`` and
ships the snapshot's bytes to every worker once (``ConnectXEnv.add_snapshot``, deduplicated by
snapshot id, so all envs of a process share one ``SnapshotPool``). At the start of each episode
a ``SelfPlayOpponent`` draws a snapshot: the latest with probability ``latest_probability``,
otherwise an older one, uniformly or weighted by how often it beats the learner. A
``MixtureOpponent`` draws the episode's opponent from weighted components, e.g.
``{selfplay: 0.6, negamax: 0.3, random: 0.1}``. Everything random comes from the env's rng.
"""

from __future__ import annotations

from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from connectx_gym.game.bitboard import Position
from connectx_gym.game.numpy_policy import NumpyPolicy

DEFAULT_POOL = "default"


class SnapshotPool:
    """Frozen policies by snapshot id, newest last, at most ``max_size`` of them.

    :param max_size: snapshots kept; adding more drops the oldest
    :param latest_probability: chance that an episode faces the newest snapshot
    """

    def __init__(self, max_size: int = 20, latest_probability: float = 0.5) -> None:
        self.max_size = max_size
        self.latest_probability = latest_probability
        self.snapshots: List[Tuple[int, NumpyPolicy]] = []
        self.weights: Dict[int, float] = {}

    def __len__(self) -> int:
        return len(self.snapshots)

    def ids(self) -> List[int]:
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

    def configure(self, max_size: Optional[int] = None, latest_probability: Optional[float] = None) -> None:
        if max_size is not None:
            self.max_size = max_size
            del self.snapshots[: max(0, len(self.snapshots) - self.max_size)]
        if latest_probability is not None:
            self.latest_probability = latest_probability

    def set_weights(self, weights: Mapping[int, float]) -> None:
        """Sampling weights of the older snapshots (missing ids weigh 1; all uniform if empty)."""
        self.weights = {int(k): float(v) for k, v in weights.items()}

    def sample(self, rng: np.random.Generator) -> Optional[Tuple[int, NumpyPolicy]]:
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


_POOLS: Dict[str, SnapshotPool] = {}


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
        self._current: Optional[Tuple[int, NumpyPolicy]] = None

    @property
    def episode_label(self) -> str:
        return f"selfplay:{self._current[0]}" if self._current else "selfplay:none"

    def start_episode(self, rng: np.random.Generator) -> None:
        self._current = pool(self.pool_name).sample(rng)

    def act(self, position: Position, rng: np.random.Generator) -> int:
        if self._current is None:
            legal = position.legal_moves()
            return legal[int(rng.integers(len(legal)))]
        return self._current[1].move(position, deterministic=self.greedy, rng=rng)

    def __getstate__(self) -> Dict[str, Any]:
        # the pool lives in each process; only how to find it travels
        return {"pool_name": self.pool_name, "greedy": self.greedy, "_current": None}


class MixtureOpponent:
    """Draws one of several opponents per episode, with the given weights.

    :param components: ``(weight, opponent)`` pairs; weights need not sum to 1
    """

    def __init__(self, components: Sequence[Tuple[float, Any]]) -> None:
        if not components:
            raise ValueError("a mixture needs at least one opponent")
        weights = np.array([float(weight) for weight, _ in components], dtype=np.float64)
        if (weights < 0).any() or weights.sum() <= 0:
            raise ValueError(f"mixture weights must be >= 0 with a positive sum, got {weights.tolist()}")
        self.probabilities = weights / weights.sum()
        self.opponents = [opponent for _, opponent in components]
        self.name = "{" + ", ".join(
            f"{opponent.name}: {weight:g}" for weight, opponent in components
        ) + "}"
        self.current = self.opponents[0]

    @property
    def episode_label(self) -> str:
        return getattr(self.current, "episode_label", self.current.name)

    def start_episode(self, rng: np.random.Generator) -> None:
        index = int(rng.choice(len(self.opponents), p=self.probabilities)) if len(self.opponents) > 1 else 0
        self.current = self.opponents[index]
        start = getattr(self.current, "start_episode", None)
        if start is not None:
            start(rng)

    def act(self, position: Position, rng: np.random.Generator) -> int:
        return self.current.act(position, rng)


def uses_selfplay(opponent: Any) -> bool:
    """Whether an opponent spec (string or mapping) involves self-play."""
    if isinstance(opponent, Mapping):
        return any(uses_selfplay(spec) for spec, weight in opponent.items() if weight > 0)
    return isinstance(opponent, str) and opponent.strip().split(":", 1)[0] == "selfplay"


class PoolKeeper:
    """The trainer's side of the pool: snapshot bytes, results per snapshot, persistence.

    Workers hold decoded copies; this keeps the bytes so a snapshot reaches each worker once and
    the pool survives a restart (``save``/``load`` with the run's checkpoints).

    :param pool_size: snapshots kept (the oldest dropped first)
    :param latest_probability: chance an episode faces the newest snapshot
    :param prioritized: weight older snapshots by how often they beat the learner
    """

    def __init__(self, pool_size: int, latest_probability: float, prioritized: bool) -> None:
        self.pool_size = pool_size
        self.latest_probability = latest_probability
        self.prioritized = prioritized
        self.snapshots: List[Tuple[int, bytes]] = []
        self.results: Dict[int, List[int]] = {}  # id -> [learner losses, games]

    def ids(self) -> List[int]:
        return [snapshot_id for snapshot_id, _ in self.snapshots]

    def add(self, snapshot_id: int, payload: bytes) -> None:
        self.snapshots = [s for s in self.snapshots if s[0] != snapshot_id] + [(snapshot_id, payload)]
        self.snapshots.sort(key=lambda item: item[0])
        for dropped, _ in self.snapshots[: max(0, len(self.snapshots) - self.pool_size)]:
            self.results.pop(dropped, None)
        del self.snapshots[: max(0, len(self.snapshots) - self.pool_size)]

    def record(self, label: Optional[str], outcome: Optional[str]) -> None:
        """Count a finished episode whose opponent label was ``selfplay:<id>``."""
        if not label or not label.startswith("selfplay:") or outcome is None:
            return
        try:
            snapshot_id = int(label.split(":", 1)[1])
        except ValueError:
            return
        counts = self.results.setdefault(snapshot_id, [0, 0])
        counts[0] += outcome == "loss"
        counts[1] += 1

    def weights(self) -> Dict[int, float]:
        """Sampling weights of the snapshots: the snapshot's estimated win rate against the
        learner (Laplace-smoothed), so snapshots that still beat it come back more often."""
        if not self.prioritized:
            return {}
        weights = {}
        for snapshot_id, _ in self.snapshots:
            losses, games = self.results.get(snapshot_id, (0, 0))
            weights[snapshot_id] = (losses + 1.0) / (games + 2.0)
        return weights

    def send_to(self, venv, snapshot_ids: Optional[Sequence[int]] = None) -> None:
        """Ship snapshots (default: all) and the current weights to every env's process."""
        for snapshot_id, payload in self.snapshots:
            if snapshot_ids is None or snapshot_id in snapshot_ids:
                venv.env_method("add_snapshot", snapshot_id, payload, self.pool_size, self.latest_probability)
        venv.env_method("set_snapshot_weights", self.weights())

    def state(self) -> Dict[str, Any]:
        return {"snapshots": list(self.snapshots), "results": {k: list(v) for k, v in self.results.items()}}

    def restore(self, state: Mapping[str, Any]) -> None:
        self.snapshots = [(int(i), bytes(p)) for i, p in state["snapshots"]][-self.pool_size:]
        self.results = {int(k): list(v) for k, v in state["results"].items()}
