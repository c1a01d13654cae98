"""Training configuration: frozen dataclasses, YAML load/save, ``section.key=value`` overrides.

Every field documents itself in ``field(metadata={"help": ...})``; the constraints a value must
meet sit next to it in the same metadata (``ge``/``gt``/``le``/``lt`` bounds, applied element-wise
to lists, and an optional ``check`` predicate with the ``rule`` text that describes it). One
generic checker reads the field's type annotation and that metadata, so a section is just a list
of documented fields plus, where values depend on each other, a ``_validate`` method.

Constructing any section or :class:`Config` validates and normalises it (lists become tuples,
``"1e-4"`` becomes ``0.0001``), so every ``Config`` object that exists is valid. Each problem is a
:class:`~connectx_gym.errors.ConfigError` whose one-line message names the full key, the value and
the rule.

``python -m connectx_gym.config`` prints the default YAML (``configs/default.yaml`` is exactly
that text); ``python -m connectx_gym.config --markdown`` prints the reference table.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import math
import os
import sys
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal, Mapping, Optional, Sequence, Union

import yaml

from connectx_gym.errors import ConfigError, UserError, did_you_mean
from connectx_gym.runtime.processes import usable_cpu_count

__all__ = [
    "Config",
    "EnvConfig",
    "MultiprocessingConfig",
    "PPOConfig",
    "PolicyConfig",
    "TrainConfig",
    "SelfPlayConfig",
    "CurriculumConfig",
    "LoggingConfig",
    "SECTIONS",
    "load_config",
    "config_from_dict",
    "config_to_dict",
    "save_config",
    "resolve",
    "config_keys",
    "config_reference_markdown",
    "default_config_yaml",
]


def _field(default: Any, help: str, **rules: Any) -> Any:
    """A dataclass field with its one-line ``help`` and its value ``rules`` in the metadata.

    ``rules``: ``ge``/``gt``/``le``/``lt`` numeric bounds (element-wise for lists), ``check``
    (a predicate on the converted value) and ``rule`` (text replacing the generated description of
    the allowed values, used in error messages).
    """
    unknown = set(rules) - {"ge", "gt", "le", "lt", "check", "rule"}
    assert not unknown, f"unknown field rules {unknown}"
    assert "\n" not in help and "|" not in help, "help must be one line without '|'"
    metadata = {"help": help, **rules}
    if isinstance(default, dict) or (isinstance(default, tuple) and any(isinstance(v, dict) for v in default)):
        return field(default_factory=functools.partial(copy.deepcopy, default), metadata=metadata)
    return field(default=default, metadata=metadata)


def _default(f: dataclasses.Field) -> Any:
    """A field's default, whether given as a value or a factory (for dict defaults)."""
    return f.default_factory() if f.default is dataclasses.MISSING else f.default


# ------------------------------------------------------------------------------------------------
# The generic per-field checker
# ------------------------------------------------------------------------------------------------


class FrozenMapping(dict):
    """A read-only, hashable dict: mapping values (opponent mixtures, curriculum stages) keep
    the config frozen and hashable like the rest of it."""

    def _read_only(self, *args: Any, **kwargs: Any) -> None:
        raise TypeError("config mappings are read-only; use dataclasses.replace or --set")

    __setitem__ = __delitem__ = clear = pop = popitem = setdefault = update = _read_only  # type: ignore[assignment]

    def __hash__(self) -> int:  # type: ignore[override]
        return hash(tuple(self.items()))

    def __reduce__(self):
        return (FrozenMapping, (dict(self),))

    def __deepcopy__(self, memo: dict) -> "FrozenMapping":
        return FrozenMapping({k: copy.deepcopy(v, memo) for k, v in self.items()})


def _freeze(value: Any) -> Any:
    if isinstance(value, Mapping):
        return FrozenMapping({k: _freeze(v) for k, v in value.items()})
    if isinstance(value, list):
        return tuple(_freeze(v) for v in value)
    return value


class _Mismatch(Exception):
    """The value does not have the annotated type (internal; becomes a ConfigError)."""


_BOUND_TEXT = (("gt", ">"), ("ge", ">="), ("lt", "<"), ("le", "<="))


def _show(value: Any) -> str:
    """A value as the user wrote it in YAML: null, true/false, 'text', [1, 2]."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_show(v) for v in value) + "]"
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{k}: {_show(v)}" for k, v in value.items()) + "}"
    return repr(value)


def _to_int(value: Any) -> int:
    if isinstance(value, bool):
        raise _Mismatch
    if isinstance(value, int):
        return value
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return int(value)  # 1.0e6 written for 1000000
    if isinstance(value, str):
        try:
            return int(value)
        except ValueError:
            try:
                number = float(value)  # '1e6': PyYAML reads exponent-only numbers as strings
            except ValueError:
                raise _Mismatch from None
            if math.isfinite(number) and number.is_integer():
                return int(number)
    raise _Mismatch


def _to_float(value: Any) -> float:
    if isinstance(value, bool):
        raise _Mismatch
    if isinstance(value, (int, float)):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value)  # '1e-4': PyYAML reads exponent-only numbers as strings
        except ValueError:
            raise _Mismatch from None
    else:
        raise _Mismatch
    if not math.isfinite(number):
        raise _Mismatch
    return number


def _convert(value: Any, tp: Any) -> Any:
    """``value`` converted to annotation ``tp``, or raise ``_Mismatch``."""
    origin = typing.get_origin(tp)
    if tp is type(None):
        if value is None:
            return None
        raise _Mismatch
    if origin is Literal:
        for choice in typing.get_args(tp):
            if type(value) is type(choice) and value == choice:
                return value
        raise _Mismatch
    if origin in (Union, types.UnionType):
        for member in typing.get_args(tp):
            try:
                return _convert(value, member)
            except _Mismatch:
                pass
        raise _Mismatch
    if origin is tuple:  # tuple[X, ...]: a YAML list, stored immutably
        if not isinstance(value, (list, tuple)):
            raise _Mismatch
        (item_type, _ellipsis) = typing.get_args(tp)
        return tuple(_convert(item, item_type) for item in value)
    if tp is dict:  # a mapping with string keys, e.g. an opponent mixture {spec: weight}
        if isinstance(value, Mapping) and all(isinstance(k, str) for k in value):
            return _freeze(value)
        raise _Mismatch
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise _Mismatch
    if tp is int:
        return _to_int(value)
    if tp is float:
        return _to_float(value)
    if tp is str:
        if isinstance(value, str):
            return value
        raise _Mismatch
    raise TypeError(f"config annotation {tp!r} is not supported")


def _describe(tp: Any, bounds: str = "") -> str:
    """English for the values annotation ``tp`` allows, e.g. 'an integer >= 1 or null'."""
    origin = typing.get_origin(tp)
    if tp is type(None):
        return "null"
    if origin is Literal:
        choices = typing.get_args(tp)
        if len(choices) == 1:
            return repr(choices[0])
        return "one of " + "|".join(str(c) for c in choices)
    if origin in (Union, types.UnionType):
        return " or ".join(_describe(member, bounds) for member in typing.get_args(tp))
    if origin is tuple:
        item = {int: "integers", float: "numbers", str: "strings", dict: "mappings"}[typing.get_args(tp)[0]]
        return f"a list of {item}{bounds}"
    return {bool: "a boolean (true|false)", int: f"an integer{bounds}", float: f"a number{bounds}",
            str: "a string", dict: "a mapping"}[tp]


def _rule_text(tp: Any, meta: Mapping[str, Any]) -> str:
    if "rule" in meta:
        return meta["rule"]
    bounds = " and ".join(f"{op} {meta[key]}" for key, op in _BOUND_TEXT if key in meta)
    return _describe(tp, f" {bounds}" if bounds else "")


def _within_bounds(value: Any, meta: Mapping[str, Any]) -> bool:
    if isinstance(value, tuple):
        return all(_within_bounds(item, meta) for item in value)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return True  # bounds constrain numbers only ('auto', null and strings pass)
    return (
        ("gt" not in meta or value > meta["gt"])
        and ("ge" not in meta or value >= meta["ge"])
        and ("lt" not in meta or value < meta["lt"])
        and ("le" not in meta or value <= meta["le"])
    )


def _check_field(path: str, value: Any, tp: Any, meta: Mapping[str, Any]) -> Any:
    """``value`` converted and checked against the annotation and metadata rules of ``path``."""
    try:
        converted = _convert(value, tp)
    except _Mismatch:
        converted = _Mismatch
    if (
        converted is _Mismatch
        or not _within_bounds(converted, meta)
        or ("check" in meta and not meta["check"](converted))
    ):
        raise ConfigError(f"{path} must be {_rule_text(tp, meta)}, got {_show(value)}")
    return converted


@functools.lru_cache(maxsize=None)
def _type_hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _check_opponent(path: str, spec: Any) -> None:
    """Validate an opponent spec (or a ``{spec: weight}`` mixture) with ``connectx_gym.game.opponents``."""
    from connectx_gym.game.opponents import parse_mixture, parse_spec  # lazy: avoids an import cycle

    try:
        parse_mixture(spec) if isinstance(spec, Mapping) else parse_spec(spec)
    except UserError as exc:  # SpecError (or a ConfigError raised by the parser)
        raise ConfigError(f"{path}={_show(spec)} is not a valid opponent spec: {exc}") from None


class _Section:
    """Shared behaviour of the config sections (frozen dataclasses): check every field on init."""

    section: ClassVar[str]

    def __post_init__(self) -> None:
        hints = _type_hints(type(self))
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            path = f"{self.section}.{f.name}"
            object.__setattr__(self, f.name, _check_field(path, getattr(self, f.name), hints[f.name], f.metadata))
        self._validate()

    def _validate(self) -> None:
        """Rules that involve several fields of the section."""


# ------------------------------------------------------------------------------------------------
# Sections
# ------------------------------------------------------------------------------------------------

_SAFE_NAME = lambda v: v is None or (v not in ("", ".", "..") and "/" not in v and "\\" not in v)  # noqa: E731


@dataclass(frozen=True)
class EnvConfig(_Section):
    """The ConnectX game the agent is trained on."""

    section: ClassVar[str] = "env"

    rows: int = _field(6, "Board height in cells (Kaggle accepts any integer >= 1).", ge=1)
    columns: int = _field(7, "Board width in cells; also the size of the action space.", ge=1)
    inarow: int = _field(4, "Stones in a line (row, column or diagonal) needed to win.", ge=1)
    opponent: Union[str, dict] = _field(
        {"negamax": 0.8, "random": 0.2},
        "Training opponent: a spec (random, negamax, alphabeta:N, kaggle:FILE, selfplay, model.zip) or a mixture {spec: weight} drawn per episode.",
    )
    agent_seat: Literal["first", "second", "random"] = _field(
        "random", "Seat the agent plays: always first, always second, or a random seat each episode."
    )
    reward_win: float = _field(1.0, "Reward for winning a game.")
    reward_loss: float = _field(-1.0, "Reward for losing a game (including by an illegal move).")
    reward_draw: float = _field(0.0, "Reward for a draw (full board, no winner).")
    illegal_action: Literal["lose", "raise"] = _field(
        "lose", "What an illegal move does: lose the game (as on Kaggle) or raise an error."
    )

    def _validate(self) -> None:
        _check_opponent(f"{self.section}.opponent", self.opponent)


@dataclass(frozen=True)
class MultiprocessingConfig(_Section):
    """How the parallel_episodes environments are split into chunks and worker processes."""

    section: ClassVar[str] = "multiprocessing"

    use_multiprocessing: bool = _field(
        True, "Run the chunks in worker processes; false runs the same chunks in the main process."
    )
    backend: Literal["chunked", "ray", "sb3_subproc", "sb3_dummy"] = _field(
        "chunked",
        "Vec env: chunked (several envs per worker), ray (the same chunks as Ray actors; see the ray "
        "section), SB3 SubprocVecEnv or SB3 DummyVecEnv.",
    )
    num_processes: Union[int, Literal["auto"]] = _field(
        "auto",
        "Number of chunks (worker processes); auto = the largest divisor of parallel_episodes <= usable cores.",
        ge=1,
    )
    parallel_episodes: int = _field(64, "Environments stepped in parallel (SB3's n_envs).", ge=1)
    chunk_size: Optional[int] = _field(
        None, "Environments per chunk; null derives parallel_episodes / num_processes.", ge=1
    )
    start_method: Literal["forkserver", "spawn", "fork"] = _field(
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
class PPOConfig(_Section):
    """MaskablePPO hyperparameters (names as in stable-baselines3)."""

    section: ClassVar[str] = "ppo"

    n_steps: int = _field(128, "Steps collected per environment per rollout.", ge=1)
    batch_size: int = _field(
        1024, "Minibatch size; must divide n_steps × parallel_episodes (the rollout size).", gt=1
    )
    n_epochs: int = _field(4, "Optimisation passes over each rollout.", ge=1)
    learning_rate: float = _field(3e-4, "Adam learning rate.", gt=0)
    gamma: float = _field(0.99, "Discount factor.", gt=0, le=1)
    gae_lambda: float = _field(0.95, "GAE lambda (bias/variance trade-off of the advantage estimate).", ge=0, le=1)
    ent_coef: float = _field(0.01, "Entropy bonus coefficient of the loss.", ge=0)
    vf_coef: float = _field(0.5, "Value loss coefficient of the loss.", ge=0)
    clip_range: float = _field(0.2, "PPO clipping range of the policy ratio.", gt=0)
    max_grad_norm: float = _field(0.5, "Gradient norm clipping threshold.", gt=0)
    target_kl: Optional[float] = _field(
        None, "Stop an update's epochs early once the approximate KL exceeds this; null disables.", gt=0
    )


def _is_odd(value: int) -> bool:
    return value % 2 == 1


def _is_even(value: int) -> bool:
    return value % 2 == 0


@dataclass(frozen=True)
class PolicyConfig(_Section):
    """The policy/value network."""

    section: ClassVar[str] = "policy"

    features: Literal["cnn", "mlp"] = _field("cnn", "Feature extractor: cnn over the board planes or mlp on them flattened.")
    cnn_channels: tuple[int, ...] = _field(
        (64, 64), "Output channels of each conv layer of the cnn feature extractor.",
        ge=1, check=bool, rule="a non-empty list of integers >= 1",
    )
    kernel_size: int = _field(
        3, "Conv kernel size (odd, so 'same' padding keeps the board shape).",
        ge=1, check=_is_odd, rule="an odd integer >= 1",
    )
    net_arch: tuple[int, ...] = _field(
        (128,), "Hidden layer sizes of the shared MLP head after the feature extractor.", ge=1
    )
    activation: Literal["relu", "tanh", "gelu"] = _field("relu", "Activation function of every layer.")


@dataclass(frozen=True)
class TrainConfig(_Section):
    """Run length, outputs, checkpoints and evaluation."""

    section: ClassVar[str] = "train"

    total_timesteps: int = _field(3_500_000, "Environment steps to train for (summed over all environments).", ge=1)
    seed: int = _field(0, "Random seed of the run (environments, opponents and torch).", ge=0)
    run_name: Optional[str] = _field(
        None, "Run directory name under output_dir; null = a timestamp name chosen by the trainer.",
        check=_SAFE_NAME, rule="a directory name (no '/') or null",
    )
    output_dir: str = _field(
        "models", "Directory holding one subdirectory per run.", check=bool, rule="a non-empty string"
    )
    checkpoint_every: int = _field(200_000, "Save a checkpoint every this many steps.", ge=1)
    keep_checkpoints: int = _field(3, "Number of most recent checkpoints kept on disk.", ge=1)
    eval_every: int = _field(200_000, "Evaluate against eval_opponents every this many steps; 0 disables.", ge=0)
    eval_games: int = _field(
        100, "Games per evaluation opponent, half in each seat.",
        ge=2, check=_is_even, rule="an even integer >= 2",
    )
    eval_opponents: tuple[str, ...] = _field(("random", "negamax"), "Opponent specs to evaluate against.")
    device: Literal["cpu", "cuda", "auto"] = _field("cpu", "Torch device; auto = cuda when available.")

    def _validate(self) -> None:
        if self.eval_every > 0 and not self.eval_opponents:
            raise ConfigError(
                f"{self.section}.eval_opponents=[] must list at least one opponent when "
                f"{self.section}.eval_every={self.eval_every} (set eval_every=0 to disable evaluation)"
            )
        for i, spec in enumerate(self.eval_opponents):
            _check_opponent(f"{self.section}.eval_opponents[{i}]", spec)


@dataclass(frozen=True)
class SelfPlayConfig(_Section):
    """The self-play pool used by the selfplay opponent."""

    section: ClassVar[str] = "selfplay"

    snapshot_every: int = _field(200_000, "Freeze the current policy into the pool every this many steps.", ge=1)
    pool_size: int = _field(20, "Snapshots kept in the pool; the oldest is dropped first.", ge=1)
    latest_probability: float = _field(
        0.5, "Chance that a self-play episode faces the newest snapshot (else an older one).", ge=0, le=1
    )
    prioritized: bool = _field(
        True, "Pick older snapshots by how often they beat the learner (true) or uniformly (false)."
    )


_STAGE_KEYS = ("opponent", "promote_at", "min_episodes")


@dataclass(frozen=True)
class CurriculumConfig(_Section):
    """Opponent stages that advance as the training win rate passes thresholds."""

    section: ClassVar[str] = "curriculum"

    stages: tuple[dict, ...] = _field(
        (
            {"opponent": {"negamax": 0.8, "random": 0.2}, "promote_at": 0.85},
            {"opponent": {"negamax": 0.7, "selfplay": 0.2, "random": 0.1}},
        ),
        "Stages {opponent, promote_at, min_episodes}; each replaces env.opponent until its win rate reaches promote_at.",
    )
    window: int = _field(2000, "Episodes over which a stage's win rate is measured.", ge=1)

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
                raise ConfigError(f"{path}.promote_at must be a win rate in (0, 1], got {_show(promote_at)}")
            min_episodes = stage.get("min_episodes", 0)
            if isinstance(min_episodes, bool) or not isinstance(min_episodes, int) or min_episodes < 0:
                raise ConfigError(f"{path}.min_episodes must be an integer >= 0, got {_show(min_episodes)}")


@dataclass(frozen=True)
class RayConfig(_Section):
    """Where the ray backend runs its chunk actors (needs the optional extra: pip install -e ".[ray]")."""

    section: ClassVar[str] = "ray"

    address: Optional[str] = _field(
        None,
        "Ray cluster to join: null or empty starts a local instance on this machine's cores, auto finds a running "
        "cluster (ray start), host:port or ray://host:port names one.",
    )
    num_cpus_per_worker: float = _field(1.0, "CPUs each chunk actor reserves from Ray's scheduler.", gt=0)


@dataclass(frozen=True)
class LoggingConfig(_Section):
    """What the trainer logs and shows."""

    section: ClassVar[str] = "logging"

    tensorboard: bool = _field(True, "Write TensorBoard event files into the run directory.")
    csv: bool = _field(True, "Write progress.csv into the run directory.")
    progress_bar: bool = _field(True, "Show a progress bar while training.")
    verbose: Literal[0, 1, 2] = _field(0, "SB3 verbosity: 0 quiet, 1 info, 2 debug.")


SECTIONS: dict[str, type] = {
    cls.section: cls
    for cls in (
        EnvConfig, MultiprocessingConfig, PPOConfig, PolicyConfig, TrainConfig, SelfPlayConfig, CurriculumConfig,
        RayConfig, LoggingConfig,
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
    ray: RayConfig = field(default_factory=RayConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)

    def __post_init__(self) -> None:
        for name, cls in SECTIONS.items():
            if not isinstance(getattr(self, name), cls):
                raise ConfigError(f"{name} must be a {cls.__name__}, got {type(getattr(self, name)).__name__}")
        ppo, episodes = self.ppo, self.multiprocessing.parallel_episodes
        rollout = ppo.n_steps * episodes
        if rollout % ppo.batch_size:
            raise ConfigError(
                f"ppo.batch_size={ppo.batch_size} must divide ppo.n_steps × multiprocessing.parallel_episodes"
                f" = {ppo.n_steps} × {episodes} = {rollout}"
            )

    def resolved(self) -> Config:
        """A copy with ``multiprocessing.num_processes`` and ``chunk_size`` resolved to ints."""
        return dataclasses.replace(self, multiprocessing=self.multiprocessing.resolved())


def resolve(config: Config) -> Config:
    """``config`` with ``num_processes`` ('auto') and ``chunk_size`` (null) resolved to ints."""
    return config.resolved()


# ------------------------------------------------------------------------------------------------
# dicts, YAML files and overrides
# ------------------------------------------------------------------------------------------------


def config_keys() -> list[str]:
    """Every ``section.key``, in declaration order."""
    return [f"{name}.{f.name}" for name, cls in SECTIONS.items() for f in dataclasses.fields(cls)]


def _unknown_key(section: str, key: str) -> ConfigError:
    names = [f.name for f in dataclasses.fields(SECTIONS[section])]
    hint = did_you_mean(key, names)
    if not hint:  # right key, wrong section?
        elsewhere = [name for name, cls in SECTIONS.items() if key in {f.name for f in dataclasses.fields(cls)}]
        hint = f" (did you mean '{elsewhere[0]}.{key}'?)" if elsewhere else ""
    return ConfigError(f"unknown key '{section}.{key}'{hint}")


def _unknown_section(section: Any) -> ConfigError:
    return ConfigError(f"unknown section {section!r}{did_you_mean(str(section), SECTIONS)}")


def config_from_dict(data: Mapping[str, Any]) -> Config:
    """A validated :class:`Config` from ``{section: {key: value}}``; missing keys take defaults."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"a config must be a mapping of sections, got {_show(data)}")
    for section in data:
        if section not in SECTIONS:
            raise _unknown_section(section)
    sections = {}
    for name, cls in SECTIONS.items():
        values = data.get(name)
        if values is None:  # absent, or an empty 'section:' line in YAML
            values = {}
        if not isinstance(values, Mapping):
            raise ConfigError(f"section '{name}' must be a mapping of keys to values, got {_show(values)}")
        known = {f.name for f in dataclasses.fields(cls)}
        for key in values:
            if key not in known:
                raise _unknown_key(name, key)
        sections[name] = cls(**values)
    return Config(**sections)


def _plain(value: Any) -> Any:
    """Plain YAML types: tuples become lists, recursively; dicts are copied."""
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    return value


def config_to_dict(config: Config) -> dict[str, dict[str, Any]]:
    """``{section: {key: value}}`` of plain YAML types (lists, not tuples)."""
    return {
        name: {
            f.name: _plain(getattr(getattr(config, name), f.name))
            for f in dataclasses.fields(SECTIONS[name])
        }
        for name in SECTIONS
    }


def _read_yaml(path: str | os.PathLike) -> Any:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"config file '{os.fspath(path)}' not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        problem = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ConfigError(f"cannot read config file '{os.fspath(path)}': {problem}") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file '{os.fspath(path)}' is not valid YAML: {_yaml_problem(exc)}") from None


def _yaml_problem(exc: yaml.YAMLError) -> str:
    """A one-line summary of a PyYAML error."""
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    return f"{problem} (line {mark.line + 1}, column {mark.column + 1})" if mark else problem


def _apply_override(data: dict[str, Any], override: str) -> None:
    key, sep, text = override.partition("=")
    section, dot, name = key.strip().partition(".")
    if not sep or not dot or not section or not name:
        raise ConfigError(f"bad override {override!r}: expected section.key=value, e.g. ppo.learning_rate=1e-4")
    if section not in SECTIONS:
        raise ConfigError(f"bad override {override!r}: {_unknown_section(section)}")
    if name not in {f.name for f in dataclasses.fields(SECTIONS[section])}:
        raise ConfigError(f"bad override {override!r}: {_unknown_key(section, name)}")
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"bad override {override!r}: value is not valid YAML: {_yaml_problem(exc)}") from None
    values = data.get(section)
    data[section] = {**(values if isinstance(values, Mapping) else {}), name: value}


def load_config(path: str | os.PathLike | None = None, overrides: Sequence[str] = ()) -> Config:
    """Defaults, updated by the YAML file at ``path`` (if any), updated by ``section.key=value``
    ``overrides`` (values parsed as YAML: ``train.run_name=null``, ``policy.net_arch=[64,64]``)."""
    if isinstance(overrides, str):
        overrides = [overrides]
    data: Any = {} if path is None else _read_yaml(path)
    if data is None:  # empty file: all defaults
        data = {}
    if not isinstance(data, Mapping):
        raise ConfigError(
            f"config file '{os.fspath(path)}' must contain a mapping of sections, got {type(data).__name__} {_show(data)}"
        )
    data = dict(data)
    for override in overrides:
        _apply_override(data, override)
    return config_from_dict(data)


def save_config(config: Config, path: str | os.PathLike) -> None:
    """Write ``config`` as YAML to ``path`` atomically (temp file in the same directory + os.replace)."""
    from connectx_gym.training.checkpoints import write_atomic

    text = yaml.safe_dump(config_to_dict(config), sort_keys=False, default_flow_style=None)
    write_atomic(path, text.encode("utf-8"))


# ------------------------------------------------------------------------------------------------
# Generated documentation
# ------------------------------------------------------------------------------------------------


def _yaml_value(value: Any) -> str:
    """A default as it is written in flow-style YAML."""
    if isinstance(value, tuple):
        return "[" + ", ".join(_yaml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_yaml_value(v)}" for k, v in value.items()) + "}"
    if value is None or isinstance(value, bool):
        return _show(value)
    return str(value)


def _help(cls: type, f: dataclasses.Field) -> str:
    tp = _type_hints(cls)[f.name]
    if typing.get_origin(tp) is Literal:
        return f"{f.metadata['help']} One of: {', '.join(str(c) for c in typing.get_args(tp))}."
    return f.metadata["help"]


def config_reference_markdown() -> str:
    """The markdown table ``| key | default | meaning |`` of every config key, from the field metadata."""
    lines = ["| key | default | meaning |", "| --- | --- | --- |"]
    for name, cls in SECTIONS.items():
        for f in dataclasses.fields(cls):
            lines.append(f"| `{name}.{f.name}` | `{_yaml_value(_default(f))}` | {_help(cls, f)} |")
    return "\n".join(lines) + "\n"


def default_config_yaml() -> str:
    """The text of ``configs/default.yaml``: every key at its default, commented from the metadata."""
    lines = [
        "# Default training configuration: every key at its default value (generated by",
        "# `python -m connectx_gym.config > configs/default.yaml`; a test checks it is up to date).",
        "# Copy it and change what you need; keys you leave out take these defaults.",
    ]
    for name, cls in SECTIONS.items():
        lines += ["", f"{name}:  # {cls.__doc__.strip().splitlines()[0]}"]
        for f in dataclasses.fields(cls):
            lines.append(f"  {f.name}: {_yaml_value(_default(f))}  # {_help(cls, f)}")
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m connectx_gym.config [--markdown]``: print the default YAML or the reference table."""
    args = sys.argv[1:] if argv is None else list(argv)
    sys.stdout.write(config_reference_markdown() if args == ["--markdown"] else default_config_yaml())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
