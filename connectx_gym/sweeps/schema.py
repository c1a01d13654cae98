"""The sweep file's schema (``configs/tune.yaml``): its settings, its scheduler and the resources
of a trial are sections declared with the training config's machinery
(:mod:`connectx_gym.config.schema`), so each key carries its help and value rules and a bad value
is one ``ConfigError`` naming it; ``overrides`` and ``search_space`` are free-form mappings whose
keys must be real config keys. What depends on several keys or on the base config (the metric, the
evaluations, the probing of the search space) is the loader's, :mod:`connectx_gym.sweeps.plan`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from connectx_gym.config import SECTIONS, config_keys
from connectx_gym.config.schema import REQUIRED, FrozenMapping, Section, config_field, is_directory_name, show
from connectx_gym.errors import ConfigError, did_you_mean

__all__ = [
    "DISTRIBUTIONS",
    "INT_DISTRIBUTIONS",
    "MAPPING_KEYS",
    "SCHEDULERS",
    "SET_BY_SWEEP",
    "SWEEP_KEYS",
    "AshaScheduler",
    "FifoScheduler",
    "Resources",
    "SweepFile",
    "sweep_file_from_dict",
]

#: distribution name -> the arguments it takes
DISTRIBUTIONS: dict[str, str] = {
    "choice": "[value, ...]",
    "grid": "[value, ...]",
    "uniform": "[low, high]",
    "quniform": "[low, high, q]",
    "loguniform": "[low, high]",
    "randint": "[low, high]",
    "lograndint": "[low, high]",
}
INT_DISTRIBUTIONS = ("randint", "lograndint")

#: keys the sweep sets for every trial: neither overrides nor search_space may set them
SET_BY_SWEEP = {
    "train.run_name": "each trial runs in <train.output_dir>/<name>/<trial name>",
    "logging.progress_bar": "trials run without a progress bar; the sweep prints a line per trial",
}


@dataclass(frozen=True)
class FifoScheduler(Section):
    """Every trial runs to its end."""

    section: ClassVar[str] = "scheduler"

    type: Literal["fifo"] = config_field("fifo", "fifo runs every trial to its end.")


@dataclass(frozen=True)
class AshaScheduler(Section):
    """ASHA stops weak trials early, comparing them at rungs counted in reports (evaluations)."""

    section: ClassVar[str] = "scheduler"

    type: Literal["asha"] = config_field(
        "asha", "asha stops weak trials early; its rungs sit below every trial's last evaluation."
    )
    grace_period: int = config_field(
        1, "ASHA: evaluations (reports) every trial makes before it may be stopped; fewer than a trial makes.", ge=1
    )
    reduction_factor: float = config_field(
        2.0, "ASHA: at each rung, only the best 1/reduction_factor of the trials go on.", gt=1
    )
    brackets: int = config_field(1, "ASHA: number of brackets (rung schedules, from aggressive to lenient).", ge=1)


SCHEDULERS: dict[str, type] = {"fifo": FifoScheduler, "asha": AshaScheduler}


@dataclass(frozen=True)
class Resources(Section):
    """What Tune reserves for each trial."""

    section: ClassVar[str] = "resources_per_trial"

    cpu: float = config_field(
        1.0, "CPUs each trial reserves for its trainer (with worker processes: multiprocessing.num_processes).", gt=0
    )
    gpu: float = config_field(
        0.0, "GPUs each trial reserves; train.device=cuda needs some (Ray hides GPUs from trials without).", ge=0
    )


def _scheduler(value: Any) -> FifoScheduler | AshaScheduler:
    """The scheduler section of ``value`` (absent or empty: fifo), its class chosen by ``type``."""
    if isinstance(value, (FifoScheduler, AshaScheduler)):
        return value
    value = value or {"type": "fifo"}
    if not isinstance(value, Mapping):
        raise ConfigError(f"scheduler must be a mapping {{type: asha|fifo, ...}}, got {show(value)}")
    kind = value.get("type", "fifo")
    if kind not in SCHEDULERS:
        raise ConfigError(
            f"scheduler.type must be one of {'|'.join(SCHEDULERS)}, "
            f"got {show(kind)}{did_you_mean(str(kind), SCHEDULERS)}"
        )
    cls = SCHEDULERS[kind]
    return cls.from_mapping(value, takes=[*(key for key in cls.keys() if key != "type"), "type"])


def _resources(value: Any) -> Resources:
    return value if isinstance(value, Resources) else Resources.from_mapping(value or {})


def _config_keys_of(where: str, value: Any) -> FrozenMapping:
    """``{section.key: value}`` from ``overrides``/``search_space`` (flat or nested by section)."""
    if value is None:
        return FrozenMapping()
    if not isinstance(value, Mapping):
        raise ConfigError(f"{where} must be a mapping of 'section.key: ...', got {show(value)}")
    flat: dict[str, Any] = {}
    for key, inner in value.items():
        key = str(key)
        if key in SECTIONS and isinstance(inner, Mapping):
            flat.update({f"{key}.{name}": item for name, item in inner.items()})
        else:
            flat[key] = inner
    known = config_keys()
    for key in flat:
        if key not in known:
            raise ConfigError(f"{where}: unknown key {key!r}{did_you_mean(key, known)}")
        if key in SET_BY_SWEEP:
            raise ConfigError(f"{where}: {key} is set by the sweep ({SET_BY_SWEEP[key]}); remove it")
    return FrozenMapping(flat)


_SEARCH_HELP = (
    "Config keys 'section.key: {distribution: arguments}' sampled for each trial: "
    + ", ".join(f"{name} {arguments}" for name, arguments in DISTRIBUTIONS.items())
    + "; grid takes every value for every sample, randint and lograndint include both bounds."
)


@dataclass(frozen=True)
class SweepFile(Section):
    """A hyperparameter sweep of the trainer with Ray Tune, as its file declares it."""

    section: ClassVar[str] = ""  # the file's keys are named bare: 'num_samples must be ...'

    name: str = config_field(
        REQUIRED,
        "Sweep name: the sweep's directory under train.output_dir (holding every trial's run directory and "
        "results.csv); it must not exist yet.",
        check=is_directory_name,
        rule="a directory name (no '/')",
    )
    base_config: str | None = config_field(
        None,
        "Training config every trial starts from (relative to the current directory); null: configs/default.yaml "
        "if present, else the built-in defaults.",
        check=lambda v: v is None or bool(v),
        rule="a file path or null",
    )
    num_samples: int = config_field(1, "Samples drawn from search_space (times the number of grid combinations).", ge=1)
    metric: str = config_field(
        "mean_win_rate",
        "What ranks the trials: mean_win_rate, win_rate/OPPONENT for one of train.eval_opponents, or steps_per_s.",
        check=bool,
        rule="a metric name",
    )
    mode: Literal["max", "min"] = config_field("max", "Whether a higher or a lower metric is better.")
    max_concurrent_trials: int | None = config_field(
        None, "Cap on the trials running at once; null: as many as the resources allow.", ge=1
    )
    seed: int | None = config_field(
        0,
        "Seeds the sampling, so the same file samples the same trials; null: random. Every trial trains with the "
        "config's train.seed (search train.seed to vary it).",
        ge=0,
    )
    overrides: dict = config_field(
        {}, "Config keys 'section.key: value' fixed for every trial, on top of base_config.", raw=True
    )
    search_space: dict = config_field({}, _SEARCH_HELP, raw=True)
    scheduler: FifoScheduler | AshaScheduler = config_field(
        FifoScheduler(),
        "When trials stop: {type: fifo} runs every trial to its end, {type: asha, ...} stops weak ones early.",
        raw=True,
    )
    resources_per_trial: Resources = config_field(
        Resources(), "What Tune reserves for each trial; trials run in parallel as the cluster's CPUs allow.", raw=True
    )

    def _validate(self) -> None:
        # The mappings are parsed after the plain settings and in this order (the order the sweep
        # file has always been checked in), so a file with several problems reports the same one.
        object.__setattr__(self, "scheduler", _scheduler(self.scheduler))
        object.__setattr__(self, "resources_per_trial", _resources(self.resources_per_trial))
        object.__setattr__(self, "overrides", _config_keys_of("overrides", self.overrides))
        object.__setattr__(self, "search_space", _config_keys_of("search_space", self.search_space))


SWEEP_KEYS: tuple[str, ...] = tuple(SweepFile.keys())
#: the keys whose value is a mapping (``--set key.inner=value`` changes one of its entries)
MAPPING_KEYS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(SweepFile) if f.metadata.get("raw"))


def sweep_file_from_dict(data: Mapping[Any, Any]) -> SweepFile:
    """The validated :class:`SweepFile` of a YAML mapping; keys left out take their defaults."""
    for key in data:
        if key not in SWEEP_KEYS:
            raise ConfigError(
                f"unknown key {key!r}{did_you_mean(str(key), SWEEP_KEYS)}; a sweep file takes {', '.join(SWEEP_KEYS)}"
            )
    return SweepFile(**{"name": None, **data})  # a missing name is reported as null, like an empty one
