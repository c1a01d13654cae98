"""What a run carries across a restart besides the model, and saving it together with a checkpoint.

The curriculum stage and the self-play pool live in ``trainer_state.pkl``; it is written
(atomically) right before every checkpoint, so the newest checkpoint never lacks its state.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

from connectx_gym.config import Config
from connectx_gym.runtime.checkpoints import checkpoint_path, save_model
from connectx_gym.runtime.files import write_atomic
from connectx_gym.training.curriculum import Curriculum
from connectx_gym.training.layout import RUN_STATE_NAME
from connectx_gym.training.pool_keeper import PoolKeeper, uses_selfplay


class RunState:
    """A run's curriculum and self-play pool, restored from ``run_dir`` when resuming.

    :param resume: the ``(step, checkpoint)`` being resumed from, or None for a fresh run
    """

    FILE = RUN_STATE_NAME

    def __init__(self, config: Config, run_dir: Path, resume: tuple[int, Path] | None) -> None:
        self.run_dir = run_dir
        saved: dict[str, Any] = {}
        if resume and (run_dir / self.FILE).is_file():
            with open(run_dir / self.FILE, "rb") as handle:
                saved = pickle.load(handle)
        stages = config.curriculum.stages
        self.curriculum = Curriculum(stages, config.curriculum.window, saved.get("stage", 0))
        opponents = [config.env.opponent] + [stage["opponent"] for stage in stages]
        self.pool: PoolKeeper | None = None
        if any(uses_selfplay(opponent) for opponent in opponents):
            sp = config.selfplay
            self.pool = PoolKeeper(sp.pool_size, sp.latest_probability, sp.prioritized)
            if "pool" in saved:
                self.pool.restore(saved["pool"])

    @property
    def opponent(self) -> Any:
        """The opponent the envs should face now."""
        return self.curriculum.opponent if self.curriculum.active else None

    def save(self, step: int | None = None) -> None:
        """Write the state atomically, before the checkpoint of ``step`` (the curriculum and the pool do not
        depend on the step)."""
        state: dict[str, Any] = {"stage": self.curriculum.stage}
        if self.pool is not None:
            state["pool"] = self.pool.state()
        write_atomic(self.run_dir / self.FILE, pickle.dumps(state))


def save_checkpoint(model: Any, run_dir: Path, state: Any) -> Path:
    """Save ``state`` (if any: a :class:`RunState` or another trainer's, with ``save(step)``), then the model as
    the checkpoint of its current step; returns its path."""
    if state is not None:
        state.save(model.num_timesteps)
    return save_model(model, checkpoint_path(run_dir, model.num_timesteps))
