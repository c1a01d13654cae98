"""Builds a training run's objects from its config: env arguments, the vec env, the model, the logger.

stable-baselines3 and torch are imported inside the functions that need them, so importing this
module (and the train command's argument checks) stays fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gymnasium import spaces

from connectx_gym.agents.specs import make_opponent
from connectx_gym.config import Config, config_to_dict
from connectx_gym.envs.teachers import make_teacher
from connectx_gym.errors import ConfigError
from connectx_gym.inference.numpy_policy import load_checkpoint
from connectx_gym.rules.planes import NUM_PLANES
from connectx_gym.runtime.checkpoints import CheckpointError, load_model, read_metadata, read_network

#: the ``env`` section's keys that are ``ConnectXEnv`` arguments of the same name
ENV_ARGUMENTS = (
    "rows",
    "columns",
    "inarow",
    "opponent",
    "agent_seat",
    "reward_win",
    "reward_loss",
    "reward_draw",
    "illegal_action",
)


def env_board(config: Config) -> dict[str, int]:
    """The trained board as ``{"rows", "columns", "inarow"}``."""
    return {"rows": config.env.rows, "columns": config.env.columns, "inarow": config.env.inarow}


def env_kwargs(config: Config, info_board: bool = False, opponent: Any = None) -> dict[str, Any]:
    """``ConnectXEnv`` keyword arguments from the ``env`` section (``opponent`` overrides it)."""
    kwargs = {name: getattr(config.env, name) for name in ENV_ARGUMENTS}
    if opponent is not None:
        kwargs["opponent"] = opponent
    kwargs["info_board"] = info_board
    return kwargs


def build_teacher(config: Config) -> Any:
    """The training envs' kickstarting teacher of the ``kickstart`` section, when it is on (None for the
    ``mcts`` teacher, which the learner sends once it has a network to search)."""
    kickstart = config.kickstart
    if kickstart.coef <= 0:
        return None
    return make_teacher(kickstart.teacher, env_board(config))


def ppo_kwargs(config: Config) -> dict[str, Any]:
    return dict(config_to_dict(config)["ppo"])


def build_vec_env(config: Config, seed: int, opponent: Any = None):
    """The monitored vec env of the ``multiprocessing`` section, facing ``opponent`` (default: ``env.opponent``)."""
    # deferred: stable-baselines3 and torch take seconds to import, and the command's argument checks come first
    from connectx_gym.runtime.quiet import quiet_import_sb3

    quiet_import_sb3()
    from stable_baselines3.common.vec_env import VecMonitor

    from connectx_gym.envs.vec import make_vec_env

    mp_config = config.multiprocessing
    # Built here and shipped as an object: a checkpoint opponent then travels as numpy weights
    # instead of every worker loading the checkpoint through SB3 (and importing torch).
    built = make_opponent(config.env.opponent if opponent is None else opponent)
    venv = make_vec_env(
        env_kwargs(config, opponent=built),
        parallel_episodes=mp_config.parallel_episodes,
        num_processes=mp_config.num_processes,
        use_multiprocessing=mp_config.use_multiprocessing,
        backend=mp_config.backend,
        start_method=mp_config.start_method,
        seed=seed,
        ray_address=config.ray.address,
        ray_cpus_per_worker=config.ray.num_cpus_per_worker,
        teacher=build_teacher(config),
    )
    return VecMonitor(venv)


def build_board_env(config: Config, seed: int):
    """One in-process env of the config's board: what a model needs to know its spaces when no env is stepped
    (AlphaZero's loop, ``distil``)."""
    # deferred: stable-baselines3 and torch take seconds to import, and the command's argument checks come first
    from connectx_gym.envs.vec import make_vec_env

    return make_vec_env(
        dict(env_board(config), opponent="random"),
        parallel_episodes=1,
        num_processes=1,
        use_multiprocessing=False,
        seed=seed,
    )


def build_network_model(config: Config, venv: Any, resume: tuple[int, Path] | None):
    """A ``MaskablePPO`` that holds the ``policy`` section's network for AlphaZero's loop (its PPO settings
    unused), new, from ``train.init_from``, or loaded from the checkpoint in ``resume``."""
    if resume:
        model = load_model(resume[1], env=venv, device=config.train.device)
        model.connectx_board = env_board(config)
        return model
    model = new_network_model(config, venv, config.train.seed, config.train.device)
    if config.train.init_from:
        start_from_checkpoint(model, config.train.init_from)
    return model


def new_network_model(config: Config, venv: Any, seed: int, device: str = "cpu"):
    """A fresh ``MaskablePPO`` with the ``policy`` section's network on the config's board, its PPO settings
    unused (AlphaZero's loop, ``distil``'s student)."""
    # deferred: stable-baselines3 and torch take seconds to import, and the command's argument checks come first
    from sb3_contrib import MaskablePPO

    from connectx_gym.training.policy import config_policy_kwargs

    model = MaskablePPO(
        "MlpPolicy",
        venv,
        policy_kwargs=config_policy_kwargs(config.policy),
        n_steps=config.ppo.n_steps,
        batch_size=config.ppo.n_steps,
        seed=seed,
        device=device,
        verbose=0,
    )
    model.connectx_board = env_board(config)
    return model


def build_model(config: Config, venv: Any, resume: tuple[int, Path] | None):
    """The PPO trainer (:class:`~connectx_gym.training.ppo.ConnectXPPO`, a MaskablePPO) from the ``policy``,
    ``ppo``, ``train`` and ``kickstart`` sections, new or loaded from the checkpoint in ``resume``."""
    # deferred: stable-baselines3 and torch take seconds to import, and the command's argument checks come first
    from connectx_gym.training.policy import config_policy_kwargs
    from connectx_gym.training.ppo import ConnectXPPO

    if resume:
        model = load_model(resume[1], env=venv, device=config.train.device, algorithm=ConnectXPPO)
    else:
        model = ConnectXPPO(
            "MlpPolicy",
            venv,
            policy_kwargs=config_policy_kwargs(config.policy),
            seed=config.train.seed,
            device=config.train.device,
            verbose=0,
            **ppo_kwargs(config),
        )
        if config.train.init_from:
            start_from_checkpoint(model, config.train.init_from)
    model.configure(config.train.overlap, config.kickstart, config.train.mirror)
    # recorded in the checkpoint, so export and evaluation know the board (inarow included)
    model.connectx_board = env_board(config)
    return model


def policy_shapes(config: Config) -> dict[str, list[int]]:
    """The name and shape of every weight of the policy the ``policy`` section builds on the ``env`` board."""
    # deferred: stable-baselines3 and torch take seconds to import, and the command's argument checks come first
    from connectx_gym.runtime.quiet import quiet_import_sb3

    quiet_import_sb3()
    from sb3_contrib.common.maskable.policies import MaskableActorCriticPolicy

    from connectx_gym.training.policy import config_policy_kwargs

    env = config.env
    built = MaskableActorCriticPolicy(
        spaces.Box(0.0, 1.0, (NUM_PLANES, env.rows, env.columns)),
        spaces.Discrete(env.columns),
        lambda _: 0.0,
        **config_policy_kwargs(config.policy),
    )
    return {name: list(tensor.shape) for name, tensor in built.state_dict().items()}


def check_init_from(config: Config) -> None:
    """Fail unless ``train.init_from`` (if set) is a checkpoint of this board whose network has this config's
    shape (read safely, nothing unpickled).

    :raises ConfigError: naming the checkpoint and what does not fit
    """
    path = config.train.init_from
    if not path:
        return
    try:
        metadata = read_metadata(path)
    except CheckpointError as error:
        raise ConfigError(f"train.init_from: {error}") from None
    if metadata is None:
        raise ConfigError(
            f"train.init_from={path!r} has no connectx_gym.json: re-save it with export --upgrade-checkpoint"
        )
    board = env_board(config)
    if metadata.get("board") != board:
        raise ConfigError(
            f"train.init_from={path!r} was trained on the board {metadata.get('board')}, this config trains on {board}"
        )
    expected, found = policy_shapes(config), metadata.get("weights", {})
    for name in sorted(set(expected) | set(found)):
        if expected.get(name) != found.get(name):
            raise ConfigError(
                f"train.init_from={path!r}: its network is not this config's policy section's shape (weight "
                f"{name!r}: {found.get(name)} there, {expected.get(name)} here)"
            )


def check_teacher_network(config: Config) -> None:
    """Fail unless ``kickstart.teacher.network`` (if set) is a checkpoint of this board with its metadata
    (read safely; any network shape).

    :raises ConfigError: naming the checkpoint and what does not fit
    """
    path = getattr(config.kickstart.teacher, "network", None)
    if not path:
        return
    try:
        board = load_checkpoint(path).board
    except CheckpointError as error:
        raise ConfigError(f"kickstart.teacher.network: {error}") from None
    if board != env_board(config):
        raise ConfigError(
            f"kickstart.teacher.network={path!r} was trained on the board {board}, "
            f"this config trains on {env_board(config)}"
        )


def start_from_checkpoint(model: Any, path: str) -> None:
    """Load a checkpoint's network weights (``train.init_from``, checked by ``check_init_from``) into ``model``."""
    # deferred: stable-baselines3 and torch take seconds to import, and the command's argument checks come first
    import torch

    _, weights = read_network(path)
    model.policy.load_state_dict({name: torch.as_tensor(array) for name, array in weights.items()})


def make_logger(config: Config, run_dir: Path, resuming: bool):
    """SB3's logger with the outputs of the ``logging`` section (stdout, progress.csv, TensorBoard)."""
    # deferred: stable-baselines3 and torch take seconds to import, and the command's argument checks come first
    from stable_baselines3.common.logger import Logger, make_output_format

    formats: list[Any] = []
    if config.logging.verbose:
        formats.append(make_output_format("stdout", str(run_dir)))
    if config.logging.csv:
        formats.append(_csv_output(run_dir / "progress.csv", resuming))
    if config.logging.tensorboard:
        formats.append(make_output_format("tensorboard", str(run_dir / "tensorboard")))
    return Logger(str(run_dir), formats)


def _csv_output(path: Path, resuming: bool):
    """SB3's CSV writer; when resuming, it continues the existing file: SB3 opens it afresh, and the rows
    written so far go back in before anything else (SB3 rewrites the file itself when a new key shows up)."""
    # deferred: stable-baselines3 and torch take seconds to import, and the command's argument checks come first
    from stable_baselines3.common.logger import CSVOutputFormat

    kept = path.read_text() if resuming and path.is_file() else ""
    writer = CSVOutputFormat(str(path))
    if kept:
        writer.file.write(kept if kept.endswith("\n") else kept + "\n")
        writer.file.flush()
        header = kept.split("\n", 1)[0]
        writer.keys = header.split(",") if header else []
    return writer
