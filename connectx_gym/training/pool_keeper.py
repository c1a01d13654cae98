"""The trainer's side of self-play: whether a run needs a pool, and the pool's bytes, results and state.

Workers hold decoded copies of the snapshots (``connectx_gym.agents.selfplay.SnapshotPool``); the
trainer keeps the bytes so a snapshot reaches each worker once, counts each snapshot's results for
prioritized sampling, and saves the pool with the run's checkpoints so it survives a restart.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any


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
        self.snapshots: list[tuple[int, bytes]] = []
        self.results: dict[int, list[int]] = {}  # id -> [learner losses, games]

    def ids(self) -> list[int]:
        return [snapshot_id for snapshot_id, _ in self.snapshots]

    def add(self, snapshot_id: int, payload: bytes) -> None:
        self.snapshots = [s for s in self.snapshots if s[0] != snapshot_id] + [(snapshot_id, payload)]
        self.snapshots.sort(key=lambda item: item[0])
        for dropped, _ in self.snapshots[: max(0, len(self.snapshots) - self.pool_size)]:
            self.results.pop(dropped, None)
        del self.snapshots[: max(0, len(self.snapshots) - self.pool_size)]

    def record(self, label: str | None, outcome: str | None) -> None:
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

    def weights(self) -> dict[int, float]:
        """Sampling weights of the snapshots: the snapshot's estimated win rate against the
        learner (Laplace-smoothed), so snapshots that still beat it come back more often."""
        if not self.prioritized:
            return {}
        weights = {}
        for snapshot_id, _ in self.snapshots:
            losses, games = self.results.get(snapshot_id, (0, 0))
            weights[snapshot_id] = (losses + 1.0) / (games + 2.0)
        return weights

    def send_to(self, venv, snapshot_ids: Sequence[int] | None = None) -> None:
        """Ship snapshots (default: all) and the current weights to every env's process."""
        for snapshot_id, payload in self.snapshots:
            if snapshot_ids is None or snapshot_id in snapshot_ids:
                venv.env_method("add_snapshot", snapshot_id, payload, self.pool_size, self.latest_probability)
        venv.env_method("set_snapshot_weights", self.weights())

    def state(self) -> dict[str, Any]:
        return {"snapshots": list(self.snapshots), "results": {k: list(v) for k, v in self.results.items()}}

    def restore(self, state: Mapping[str, Any]) -> None:
        self.snapshots = [(int(i), bytes(p)) for i, p in state["snapshots"]][-self.pool_size :]
        self.results = {int(k): list(v) for k, v in state["results"].items()}
