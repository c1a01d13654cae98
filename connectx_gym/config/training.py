"""The training configuration's schema: one frozen dataclass per section of the YAML file
(env, multiprocessing, ppo, policy, train, selfplay, curriculum, ray, logging; kickstart is in
:mod:`connectx_gym.config.kickstart`) whose fields carry
their help and value rules (see :mod:`connectx_gym.config.schema`), the rules that involve several
fields of a section, and :class:`Config`, the whole validated configuration of a training run.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from connectx_gym.agents.specs import parse_mixture, parse_spec
from connectx_gym.config.alphazero import AlphaZeroConfig
from connectx_gym.config.kickstart import KickstartConfig
from connectx_gym.config.schema import Section, config_field, is_directory_name, show
from connectx_gym.errors import ConfigError, UserError, did_you_mean
from connectx_gym.runtime.processes import usable_cpu_count
from connectx_gym.search.solver import INSTALL_HINT, board_is_supported, solver_available


def _check_opponent(path: str, spec: Any) -> None:
    """Validate an opponent spec (or a ``{spec: weight}`` mixture) with ``connectx_gym.agents.specs``."""
    try:
        parse_mixture(spec) if isinstance(spec, Mapping) else parse_spec(spec)
    except UserError as exc:  # SpecError (or a ConfigError raised by the parser)
        raise ConfigError(f"{path}={show(spec)} is not a valid opponent spec: {exc}") from None


def _run_name(value: str | None) -> bool:
    return value is None or is_directory_name(value)


#: how the training envs are vectorized (``connectx_gym.envs.vec.make_vec_env`` takes the same names)
VecBackend = Literal["chunked", "ray", "sb3_subproc", "sb3_dummy"]


@dataclass(frozen=True)
class EnvConfig(Section):
    """The ConnectX game the agent is trained on."""

    section: ClassVar[str] = "env"

    rows: int = config_field(6, "Board height in cells (Kaggle accepts any integer >= 1).", ge=1)
    columns: int = config_field(7, "Board width in cells; also the size of the action space.", ge=1)
    inarow: int = config_field(4, "Stones in a line (row, column or diagonal) needed to win.", ge=1)
    opponent: str | dict = config_field(
        {
            "random": 0.1,
            "negamax": 0.2,
            "alphabeta:1:0.2": 0.2,
            "alphabeta:2:0.2": 0.2,
            "alphabeta:3:0.1": 0.15,
            "alphabeta:4:0.1": 0.15,
        },
        "Training opponent: a spec (random, negamax, alphabeta:N[:EPSILON], kaggle:FILE, selfplay, model.zip) "
        "or a mixture {spec: weight} drawn per episode.",
    )
    agent_seat: Literal["first", "second", "random"] = config_field(
        "random", "Seat the agent plays: always first, always second, or a random seat each episode."
    )
    reward_win: float = config_field(1.0, "Reward for winning a game.")
    reward_loss: float = config_field(-1.0, "Reward for losing a game (including by an illegal move).")
    reward_draw: float = config_field(0.0, "Reward for a draw (full board, no winner).")
    illegal_action: Literal["lose", "raise"] = config_field(
        "lose", "What an illegal move does: lose the game (as on Kaggle) or raise an error."
    )

    def _validate(self) -> None:
        if self.inarow > max(self.rows, self.columns):
            # Kaggle (and ConnectXEnv) accept such a board, but every game on it is a draw: nothing to learn
            raise ConfigError(
                f"{self.section}.inarow={self.inarow} is larger than both board dimensions ({self.section}.rows="
                f"{self.rows}, {self.section}.columns={self.columns}): no line can be completed and every game "
                "would be a draw; use an inarow of at most max(rows, columns)"
            )
        _check_opponent(f"{self.section}.opponent", self.opponent)


@dataclass(frozen=True)
class MultiprocessingConfig(Section):
    """How the parallel_episodes environments are split into chunks and worker processes."""

    section: ClassVar[str] = "multiprocessing"

    use_multiprocessing: bool = config_field(
        True, "Run the chunks in worker processes; false runs the same chunks in the main process."
    )
    backend: VecBackend = config_field(
        "chunked",
        "Vec env: chunked (several envs per worker), ray (the same chunks as Ray actors; see the ray "
        "section), SB3 SubprocVecEnv or SB3 DummyVecEnv.",
    )
    num_processes: int | Literal["auto"] = config_field(
        "auto",
        "Number of chunks (worker processes); auto = the largest divisor of parallel_episodes <= usable cores.",
        ge=1,
    )
    parallel_episodes: int = config_field(64, "Environments stepped in parallel (SB3's n_envs).", ge=1)
    chunk_size: int | None = config_field(
        None, "Environments per chunk; null derives parallel_episodes / num_processes.", ge=1
    )
    start_method: Literal["forkserver", "spawn", "fork"] = config_field(
        "forkserver", "Start method of the worker processes (Python multiprocessing)."
    )

    def auto_processes(self) -> int:
        """What ``num_processes: auto`` means here: the largest divisor of ``parallel_episodes`` that
        does not exceed :func:`usable_cpu_count`, so the default config splits evenly on any machine."""
        cap = min(usable_cpu_count(), self.parallel_episodes)
        return max(n for n in range(1, cap + 1) if self.parallel_episodes % n == 0)

    def resolved_counts(self) -> tuple[int, int]:
        """``(num_processes, chunk_size)`` as ints; raises ConfigError if they cannot be made to fit."""
        p = self.section
        episodes = self.parallel_episodes
        if self.num_processes == "auto":
            processes = self.auto_processes()
            shown = f"{p}.num_processes=auto (resolved to {processes})"
        else:
            processes = self.num_processes
            shown = f"{p}.num_processes={processes}"
            if processes > episodes:
                raise ConfigError(f"{shown} must be <= {p}.parallel_episodes={episodes} (every process needs an env)")
        if self.chunk_size is None:
            if episodes % processes:
                raise ConfigError(
                    f"{p}.parallel_episodes={episodes} must be divisible by {shown} to derive "
                    f"{p}.chunk_size=null (chunk_size = parallel_episodes / num_processes)"
                )
            return processes, episodes // processes
        if processes * self.chunk_size != episodes:
            raise ConfigError(
                f"{shown} × {p}.chunk_size={self.chunk_size} must equal {p}.parallel_episodes={episodes}, "
                f"got {processes} × {self.chunk_size} = {processes * self.chunk_size}"
            )
        return processes, self.chunk_size

    def resolved(self) -> MultiprocessingConfig:
        """A copy with ``num_processes`` and ``chunk_size`` resolved to ints."""
        processes, chunk = self.resolved_counts()
        return dataclasses.replace(self, num_processes=processes, chunk_size=chunk)

    def _validate(self) -> None:
        self.resolved_counts()


@dataclass(frozen=True)
class PPOConfig(Section):
    """MaskablePPO hyperparameters (names as in stable-baselines3)."""

    section: ClassVar[str] = "ppo"

    n_steps: int = config_field(128, "Steps collected per environment per rollout.", ge=1)
    batch_size: int = config_field(
        1024, "Minibatch size; must divide n_steps × parallel_episodes (the rollout size).", gt=1
    )
    n_epochs: int = config_field(4, "Optimisation passes over each rollout.", ge=1)
    learning_rate: float = config_field(1e-3, "Adam learning rate.", gt=0)
    gamma: float = config_field(0.99, "Discount factor.", gt=0, le=1)
    gae_lambda: float = config_field(
        0.95, "GAE lambda (bias/variance trade-off of the advantage estimate).", ge=0, le=1
    )
    ent_coef: float = config_field(0.01, "Entropy bonus coefficient of the loss.", ge=0)
    vf_coef: float = config_field(0.5, "Value loss coefficient of the loss.", ge=0)
    clip_range: float = config_field(0.2, "PPO clipping range of the policy ratio.", gt=0)
    max_grad_norm: float = config_field(0.5, "Gradient norm clipping threshold.", gt=0)
    target_kl: float | None = config_field(
        None, "Stop an update's epochs early once the approximate KL exceeds this; null disables.", gt=0
    )


def _is_odd(value: int) -> bool:
    return value % 2 == 1


def _is_even(value: int) -> bool:
    return value % 2 == 0


@dataclass(frozen=True)
class PolicyConfig(Section):
    """The policy/value network."""

    section: ClassVar[str] = "policy"

    features: Literal["cnn", "mlp"] = config_field(
        "cnn", "Feature extractor: cnn over the board planes or mlp on them flattened."
    )
    cnn_channels: tuple[int, ...] = config_field(
        (64, 64),
        "Output channels of each conv layer of the cnn feature extractor.",
        ge=1,
        check=bool,
        rule="a non-empty list of integers >= 1",
    )
    kernel_size: int = config_field(
        3,
        "Conv kernel size (odd, so 'same' padding keeps the board shape).",
        ge=1,
        check=_is_odd,
        rule="an odd integer >= 1",
    )
    res_blocks: int = config_field(
        0,
        "Residual blocks after the cnn layers (a small ResNet): two convolutions of the last layer's width "
        "each, added back to the block's input, no normalisation; 0 = a plain CNN.",
        ge=0,
    )
    net_arch: tuple[int, ...] = config_field(
        (128,), "Hidden layer sizes of the shared MLP head after the feature extractor.", ge=1
    )
    activation: Literal["relu", "tanh", "gelu"] = config_field("relu", "Activation function of every layer.")


@dataclass(frozen=True)
class TrainConfig(Section):
    """Run length, outputs, checkpoints and evaluation."""

    section: ClassVar[str] = "train"

    total_timesteps: int = config_field(
        3_000_000, "Environment steps to train for (summed over all environments).", ge=1
    )
    seed: int = config_field(0, "Random seed of the run (environments, opponents and torch).", ge=0)
    run_name: str | None = config_field(
        None,
        "Run directory name under output_dir; null = a timestamp name chosen by the trainer.",
        check=_run_name,
        rule="a directory name (no '/') or null",
    )
    output_dir: str = config_field(
        "models", "Directory holding one subdirectory per run.", check=bool, rule="a non-empty string"
    )
    checkpoint_every: int = config_field(200_000, "Save a checkpoint every this many steps.", ge=1)
    keep_checkpoints: int = config_field(3, "Number of most recent checkpoints kept on disk.", ge=1)
    eval_every: int = config_field(200_000, "Evaluate against eval_opponents every this many steps; 0 disables.", ge=0)
    eval_games: int = config_field(
        100,
        "Games per evaluation opponent, half in each seat.",
        ge=2,
        check=_is_even,
        rule="an even integer >= 2",
    )
    eval_opponents: tuple[str, ...] = config_field(
        ("random", "negamax", "alphabeta:2"), "Opponent specs to evaluate against."
    )
    eval_accuracy: bool = config_field(
        True,
        "Each evaluation also grades the greedy policy on the shipped solver-labelled positions (perfect-move "
        "and good-move rates); best_model.zip is then chosen by (mean win rate + perfect-move rate) / 2. "
        "6x7 boards with 4 in a row only; skipped on other boards.",
    )
    eval_openings: bool = config_field(
        True,
        "Evaluation games start from the shipped opening suite, each opening played in both seats and the "
        "openings spread evenly over the suite, so that greedy players do not replay a few lines from the empty "
        "board. 6x7 and 5x6 boards with 4 in a row (the shipped suites); other boards start from the empty board.",
    )
    algorithm: Literal["ppo", "alphazero"] = config_field(
        "ppo",
        "The trainer: ppo (MaskablePPO against the env's opponents, with the kickstart, curriculum and selfplay "
        "sections) or alphazero (self-play with search for both seats and supervised fitting: the alphazero "
        "section; steps are self-play positions).",
    )
    device: Literal["cpu", "cuda", "auto"] = config_field("cpu", "Torch device; auto = cuda when available.")
    overlap: bool = config_field(
        False,
        "Collect each rollout in a thread with the policy from before the running PPO update, so acting and "
        "learning overlap (one update of policy lag, logged as train/policy_lag_kl); false collects between "
        "updates, as SB3's loop does. Checkpoints of either mode resume in the other.",
    )
    init_from: str | None = config_field(
        None,
        "A checkpoint whose network weights start a new run (read safely: its metadata and weights, not its "
        "optimizer); its board and network shape must be this config's. null = random weights.",
    )
    mirror: bool = config_field(
        False,
        "Mirror augmentation: each PPO minibatch sample is flipped left-right with probability 1/2 (board, action, "
        "mask and teacher; advantage, return and old log-probability kept, as the game is symmetric), so the "
        "policy learns both images of every position it visits.",
    )

    def _validate(self) -> None:
        if self.eval_every > 0 and not self.eval_opponents:
            raise ConfigError(
                f"{self.section}.eval_opponents=[] must list at least one opponent when "
                f"{self.section}.eval_every={self.eval_every} (set eval_every=0 to disable evaluation)"
            )
        for i, spec in enumerate(self.eval_opponents):
            _check_opponent(f"{self.section}.eval_opponents[{i}]", spec)


@dataclass(frozen=True)
class SelfPlayConfig(Section):
    """The self-play pool used by the selfplay opponent."""

    section: ClassVar[str] = "selfplay"

    snapshot_every: int = config_field(200_000, "Freeze the current policy into the pool every this many steps.", ge=1)
    pool_size: int = config_field(20, "Snapshots kept in the pool; the oldest is dropped first.", ge=1)
    latest_probability: float = config_field(
        0.5, "Chance that a self-play episode faces the newest snapshot (else an older one).", ge=0, le=1
    )
    prioritized: bool = config_field(
        True, "Pick older snapshots by how often they beat the learner (true) or uniformly (false)."
    )


_STAGE_KEYS = ("opponent", "promote_at", "min_episodes")


@dataclass(frozen=True)
class CurriculumConfig(Section):
    """Opponent stages that advance as the training win rate passes thresholds."""

    section: ClassVar[str] = "curriculum"

    stages: tuple[dict, ...] = config_field(
        (),
        "Stages {opponent, promote_at, min_episodes}; "
        "each replaces env.opponent until its win rate reaches promote_at.",
    )
    window: int = config_field(2000, "Episodes over which a stage's win rate is measured.", ge=1)

    def _validate(self) -> None:
        for i, stage in enumerate(self.stages):
            path = f"{self.section}.stages[{i}]"
            for key in stage:
                if key not in _STAGE_KEYS:
                    raise ConfigError(f"unknown key '{path}.{key}'{did_you_mean(key, _STAGE_KEYS)}")
            if "opponent" not in stage:
                raise ConfigError(f"{path} needs an opponent (a spec or a mixture {{spec: weight}})")
            _check_opponent(f"{path}.opponent", stage["opponent"])
            last = i == len(self.stages) - 1
            promote_at = stage.get("promote_at")
            if promote_at is None and not last:
                raise ConfigError(f"{path}.promote_at must be a win rate in (0, 1] (only the last stage may omit it)")
            if promote_at is not None and (
                isinstance(promote_at, bool) or not isinstance(promote_at, (int, float)) or not 0 < promote_at <= 1
            ):
                raise ConfigError(f"{path}.promote_at must be a win rate in (0, 1], got {show(promote_at)}")
            min_episodes = stage.get("min_episodes", 0)
            if isinstance(min_episodes, bool) or not isinstance(min_episodes, int) or min_episodes < 0:
                raise ConfigError(f"{path}.min_episodes must be an integer >= 0, got {show(min_episodes)}")


@dataclass(frozen=True)
class RayConfig(Section):
    """Where the ray backend runs its chunk actors (needs the optional extra: pip install -e ".[ray]")."""

    section: ClassVar[str] = "ray"

    address: str | None = config_field(
        None,
        "Ray cluster to join: null or empty starts a local instance on this machine's cores, auto finds a running "
        "cluster (ray start), host:port or ray://host:port names one.",
    )
    num_cpus_per_worker: float = config_field(1.0, "CPUs each chunk actor reserves from Ray's scheduler.", gt=0)


@dataclass(frozen=True)
class LoggingConfig(Section):
    """What the trainer logs and shows."""

    section: ClassVar[str] = "logging"

    tensorboard: bool = config_field(True, "Write TensorBoard event files into the run directory.")
    csv: bool = config_field(True, "Write progress.csv into the run directory.")
    progress_bar: bool = config_field(True, "Show a progress bar while training.")
    verbose: Literal[0, 1, 2] = config_field(0, "SB3 verbosity: 0 quiet, 1 info, 2 debug.")


SECTIONS: dict[str, type] = {
    cls.section: cls
    for cls in (
        EnvConfig,
        MultiprocessingConfig,
        PPOConfig,
        PolicyConfig,
        TrainConfig,
        SelfPlayConfig,
        CurriculumConfig,
        KickstartConfig,
        AlphaZeroConfig,
        RayConfig,
        LoggingConfig,
    )
}


@dataclass(frozen=True)
class Config:
    """The whole configuration of a training run; constructing one validates it."""

    env: EnvConfig = field(default_factory=EnvConfig)
    multiprocessing: MultiprocessingConfig = field(default_factory=MultiprocessingConfig)
    ppo: PPOConfig = field(default_factory=PPOConfig)
    policy: PolicyConfig = field(default_factory=PolicyConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    selfplay: SelfPlayConfig = field(default_factory=SelfPlayConfig)
    curriculum: CurriculumConfig = field(default_factory=CurriculumConfig)
    kickstart: KickstartConfig = field(default_factory=KickstartConfig)
    alphazero: AlphaZeroConfig = field(default_factory=AlphaZeroConfig)
    ray: RayConfig = field(default_factory=RayConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)

    def __post_init__(self) -> None:
        for name, cls in SECTIONS.items():
            if not isinstance(getattr(self, name), cls):
                raise ConfigError(f"{name} must be a {cls.__name__}, got {type(getattr(self, name)).__name__}")
        ppo, episodes = self.ppo, self.multiprocessing.parallel_episodes
        rollout = ppo.n_steps * episodes
        if rollout % ppo.batch_size and self.train.algorithm == "ppo":
            raise ConfigError(
                f"ppo.batch_size={ppo.batch_size} must divide ppo.n_steps × multiprocessing.parallel_episodes"
                f" = {ppo.n_steps} × {episodes} = {rollout}"
            )

        if self.kickstart.coef > 0 and self.kickstart.teacher.kind == "solver":
            self._check_solver_teacher()

    def _check_solver_teacher(self) -> None:
        env = self.env
        if not board_is_supported(env.rows, env.columns, env.inarow):
            raise ConfigError(
                f"kickstart.teacher.kind='solver' plays only 6x7 boards with 4 in a row, not env.rows={env.rows}, "
                f"env.columns={env.columns}, env.inarow={env.inarow}; use kickstart.teacher.kind=alphabeta"
            )
        if not solver_available():
            raise ConfigError(
                f"kickstart.teacher.kind='solver' needs the perfect Connect-4 solver bitbully, which is not installed; "
                f"install the extra with: {INSTALL_HINT}"
            )

    def resolved(self) -> Config:
        """A copy with ``multiprocessing.num_processes`` and ``chunk_size`` resolved to ints."""
        return dataclasses.replace(self, multiprocessing=self.multiprocessing.resolved())
