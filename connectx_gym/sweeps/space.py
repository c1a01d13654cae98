"""The search space of a sweep: each ``search_space`` entry parsed into a :class:`Dimension` (its
distribution, Ray's arguments for it), and probed before Ray starts: every value a choice or grid
can take, both ends of every range, and their combinations must each make a valid trial config.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from connectx_gym.config import SECTIONS, Config, config_to_dict
from connectx_gym.config.schema import show
from connectx_gym.errors import ConfigError, UserError, did_you_mean
from connectx_gym.sweeps.schema import DISTRIBUTIONS, INT_DISTRIBUTIONS
from connectx_gym.training.setup import check_opponents

__all__ = ["Dimension", "parse_dimension", "probe_configs", "probe_values", "searched"]

#: combinations of probe values checked in full up to this many (else each value on its own)
MAX_PROBE_COMBINATIONS = 256
#: an integer range with at most this many values has every value checked, else its ends
MAX_PROBED_INTEGERS = 32

# Keys that must be the same for every trial: overrides may set them, search_space may not.
SAME_FOR_EVERY_TRIAL = {
    "train.output_dir": "it holds the whole sweep",
    "train.eval_every": "every trial must report on the same schedule",
    "train.eval_opponents": "every trial must report the same metrics",
    "multiprocessing.use_multiprocessing": "it decides the resources a trial reserves",
    "multiprocessing.backend": "it decides the resources a trial reserves",
    "multiprocessing.start_method": "it decides how a trial starts its workers",
    "ray.address": "trials run on the sweep's cluster (--address)",
    "ray.num_cpus_per_worker": "it decides the resources a trial reserves",
}

#: makes the ConfigError for a message about the sweep file (prefixing the file's name)
Fail = Callable[[str], ConfigError]
#: a trial's validated config from its sampled ``{section.key: value}`` (TrialPlan.trial_config)
BuildConfig = Callable[[Mapping[str, Any]], Config]


@dataclass(frozen=True)
class Dimension:
    """One searched key: its distribution, the Ray arguments, and the values checked up front.

    :param key: ``section.key``
    :param kind: a name from :data:`~connectx_gym.sweeps.schema.DISTRIBUTIONS`
    :param args: the distribution's arguments, converted (``randint``'s ``high`` still inclusive)
    :param probes: values sampling can produce that were checked to make a valid config
    """

    key: str
    kind: str
    args: tuple[Any, ...]
    probes: tuple[Any, ...]

    def domain(self, tune: Any) -> Any:
        """The Ray Tune search domain (``tune`` is the ``ray.tune`` module)."""
        if self.kind == "choice":
            return tune.choice(list(self.args))
        if self.kind == "grid":
            return tune.grid_search(list(self.args))
        if self.kind in INT_DISTRIBUTIONS:
            low, high = self.args
            return getattr(tune, self.kind)(low, high + 1)  # Ray's upper bound is exclusive
        return getattr(tune, self.kind)(*self.args)

    @property
    def grid_size(self) -> int:
        """How many trials each sample becomes because of this dimension."""
        return len(self.args) if self.kind == "grid" else 1


def _accepts_floats(key: str) -> bool:
    """Whether config key ``key`` takes non-integral numbers."""
    section, name = key.split(".")
    hint = typing.get_type_hints(SECTIONS[section])[name]
    return hint is float or float in typing.get_args(hint)


def _number(where: str, value: Any, integer: bool) -> Any:
    """A distribution argument as a float (YAML's ``1e-4`` is a string) or an int."""
    if integer:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ConfigError(f"{where} must be an integer, got {show(value)}")
    if not isinstance(value, bool):
        with contextlib.suppress(TypeError, ValueError):
            number = float(value)
            if math.isfinite(number):
                return number
    raise ConfigError(f"{where} must be a number, got {show(value)}")


def parse_dimension(where: str, key: str, spec: Any) -> Dimension:
    """Parse one ``search_space`` entry (values are checked against the config later)."""
    names = ", ".join(DISTRIBUTIONS)
    if not isinstance(spec, Mapping):
        raise ConfigError(
            f"{where} must be {{distribution: arguments}} with a distribution from {names}, "
            f"got {show(spec)} (a fixed value belongs under overrides)"
        )
    if len(spec) != 1:
        raise ConfigError(f"{where} must name exactly one distribution, got {show(spec)}")
    ((kind, args),) = spec.items()
    if kind not in DISTRIBUTIONS:
        raise ConfigError(
            f"{where}: unknown distribution {kind!r}{did_you_mean(str(kind), DISTRIBUTIONS)}; use one of {names}"
        )
    usage = f"{where}: {kind} takes {DISTRIBUTIONS[kind]}, got {show(args)}"
    if kind in ("choice", "grid"):
        if not isinstance(args, list) or not args:
            raise ConfigError(usage)
        return Dimension(key, kind, tuple(args), tuple(args))
    size = 3 if kind == "quniform" else 2
    if not isinstance(args, list) or len(args) != size:
        raise ConfigError(usage)
    integer = kind in INT_DISTRIBUTIONS
    if not integer and not _accepts_floats(key):
        raise ConfigError(
            f"{where}: {key} takes integers, but {kind} samples floats; use randint, lograndint, choice or grid"
        )
    low, high, *step = (
        _number(f"{where} {kind} {part}", arg, integer) for part, arg in zip(("low", "high", "q"), args)
    )
    if integer and not low <= high or not integer and not low < high:
        raise ConfigError(f"{where}: {kind} needs low {'<=' if integer else '<'} high, got {show(args)}")
    if kind.startswith("log") and low <= 0:
        raise ConfigError(f"{where}: {kind} needs low > 0, got {show(args)}")
    if step and step[0] <= 0:
        raise ConfigError(f"{where}: quniform needs q > 0, got {show(args)}")
    probes: tuple[Any, ...] = (low, high)
    if integer and high - low < MAX_PROBED_INTEGERS:
        probes = tuple(range(low, high + 1))
    return Dimension(key, kind, (low, high, *step), probes)


def searched(key: str, spec: Any, build: BuildConfig, workers_reserve_cpus: bool, fail: Fail) -> Dimension:
    """The :class:`Dimension` of one ``search_space`` entry, each value it can take checked on top
    of the base config (choice and grid values as the config reads them: ``'1e-4'`` -> 0.0001).

    :param build: the trial config of sampled values
    :param workers_reserve_cpus: the trials' env workers are processes or actors (then
        ``multiprocessing.num_processes`` decides a trial's resources and cannot be searched)
    :param fail: makes the ConfigError for a message (prefixing the sweep file)
    """
    where = f"search_space {key}"
    if key in SAME_FOR_EVERY_TRIAL:
        raise fail(f"{where}: {key} cannot be searched ({SAME_FOR_EVERY_TRIAL[key]}); set it under overrides")
    if key == "multiprocessing.num_processes" and workers_reserve_cpus:
        raise fail(
            f"{where}: {key} cannot be searched with worker processes "
            "(it decides the CPUs a trial reserves); set it under overrides"
        )
    try:
        dimension = parse_dimension(where, key, spec)
    except ConfigError as error:
        raise fail(str(error)) from None
    section, name = key.split(".")
    normalised = []
    for value in dimension.probes:
        try:
            probe = build({key: value})
        except ConfigError as error:
            raise fail(f"{where}: {dimension.kind} value {show(value)} does not make a valid config: {error}") from None
        if key == "env.opponent" or key.startswith("curriculum."):
            try:
                check_opponents(probe)
            except UserError as error:
                raise fail(f"{where}: {dimension.kind} value {show(value)}: {error}") from None
        normalised.append(config_to_dict(probe)[section][name])
    if dimension.kind in ("choice", "grid"):
        return Dimension(key, dimension.kind, tuple(normalised), tuple(normalised))
    return dimension


def probe_values(dimensions: Sequence[Dimension], base: Config, key: str) -> tuple[Any, ...]:
    """The values ``key`` takes in the probes (its base value when it is not searched)."""
    for dimension in dimensions:
        if dimension.key == key:
            return dimension.probes
    section, name = key.split(".")
    return (getattr(getattr(base, section), name),)


def probe_configs(build: BuildConfig, dimensions: Sequence[Dimension], fail: Fail) -> list[Config]:
    """Configs of combinations of probe values: all of them when there are few, else each value with
    the first value of every other key; raises when a combination is not a valid config."""
    lists = [dimension.probes for dimension in dimensions]
    if math.prod(len(values) for values in lists) <= MAX_PROBE_COMBINATIONS:
        combinations = list(itertools.product(*lists))
    else:
        firsts = [values[0] for values in lists]
        combinations = [
            tuple(firsts[:i]) + (value,) + tuple(firsts[i + 1 :]) for i, values in enumerate(lists) for value in values
        ]
    configs = []
    for combination in combinations:
        sampled = {dimension.key: value for dimension, value in zip(dimensions, combination)}
        try:
            configs.append(build(sampled))
        except ConfigError as error:
            shown = ", ".join(f"{key}={show(value)}" for key, value in sampled.items())
            raise fail(f"search_space values {shown} do not make a valid config together: {error}") from None
    return configs
