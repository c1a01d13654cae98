"""Checks that run before a training run writes anything, and the choice of its run directory.

Everything a user can get wrong (the config, an opponent's agent file, the Ray cluster, the output
directory, the run to resume) fails here with a ``UserError`` naming it, before any file is written.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

from connectx_gym.agents.specs import make_opponent
from connectx_gym.config import Config, load_config
from connectx_gym.envs.workers import ray_chunk_actor_class
from connectx_gym.errors import ConfigError, UserError
from connectx_gym.runtime.checkpoints import newest_valid_checkpoint
from connectx_gym.training.builders import check_init_from, check_teacher_network
from connectx_gym.training.layout import CONFIG_NAME

#: the config file read when no ``--config`` is given, if it exists
DEFAULT_CONFIG = Path("configs") / "default.yaml"


def check_writable(run_dir: Path) -> None:
    """Fail before training if the run directory cannot be created and written."""
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        probe = run_dir / ".write_test"
        probe.write_bytes(b"0" * 4096)
        probe.unlink()
    except OSError as error:
        raise UserError(f"cannot write to run directory '{run_dir}': {error.strerror or error}") from None


def check_opponents(config: Config) -> None:
    """Build every configured opponent once, so a bad agent file, or an opponent bound to another board
    (a checkpoint, the solver), fails before anything is written."""
    env = config.env
    stages = [
        (f"curriculum.stages[{i}].opponent", stage["opponent"]) for i, stage in enumerate(config.curriculum.stages)
    ]
    evals = [(f"train.eval_opponents[{i}]", spec) for i, spec in enumerate(config.train.eval_opponents)]
    for key, spec in (("env.opponent", env.opponent), *stages, *evals):
        built = make_opponent(spec)
        for opponent in getattr(built, "opponents", [built]):
            check = getattr(opponent, "check_board", None)
            if check is not None:
                try:
                    check(env.rows, env.columns, env.inarow)
                except ValueError as error:
                    raise ConfigError(f"{key}: {error}") from None


def check_ray(config: Config) -> None:
    """With ``multiprocessing.backend: ray``, join (or start) the cluster now and check it has room
    for the workers, so a missing install or a wrong ``ray.address`` fails before anything is written."""
    if config.multiprocessing.backend == "ray":
        ray_chunk_actor_class(config.ray.address, config.ray.num_cpus_per_worker * config.multiprocessing.num_processes)


def config_path_or_default(path: str | Path | None) -> str | Path | None:
    """``path``, or ``configs/default.yaml`` when no path is given and that file exists (else None: the defaults)."""
    if path is None and DEFAULT_CONFIG.is_file():
        return DEFAULT_CONFIG
    return path


def prepare_run(
    config_path: str | None, overrides: Sequence[str], resume_dir: str | None
) -> tuple[Config, Path, tuple[int, Path] | None]:
    """Validate everything and decide the run directory.

    :param config_path: ``--config`` (None: ``configs/default.yaml`` if present, else the defaults)
    :param overrides: the ``--set`` values
    :param resume_dir: ``--resume`` (continue that run from its newest intact checkpoint)
    :return: ``(config, run_dir, resume)``; ``resume`` is the ``(step, checkpoint)`` to continue
        from, or None for a new run
    """
    if resume_dir:
        if config_path:
            raise UserError("--resume uses the run's own config.yaml; do not combine it with --config")
        run_dir = Path(resume_dir)
        path: str | Path | None = run_dir / CONFIG_NAME
        if not path.is_file():
            raise UserError(f"--resume '{run_dir}': no {CONFIG_NAME} there; is it a run directory?")
    else:
        path = config_path_or_default(config_path)
    config = load_config(path, overrides).resolved()
    check_opponents(config)
    if not resume_dir:
        check_init_from(config)
    check_teacher_network(config)
    check_ray(config)
    if resume_dir:
        found = newest_valid_checkpoint(run_dir)
        if found is None:
            raise UserError(f"--resume '{run_dir}': no intact checkpoint in {run_dir / 'checkpoints'}")
        return config, run_dir, found
    run_name = config.train.run_name or time.strftime("run-%Y%m%d-%H%M%S")
    run_dir = Path(config.train.output_dir) / run_name
    if (run_dir / CONFIG_NAME).exists():
        raise UserError(
            f"run directory '{run_dir}' already holds a run; use --resume {run_dir} or another train.run_name"
        )
    return config, run_dir, None
