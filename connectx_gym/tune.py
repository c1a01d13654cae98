"""``python -m connectx_gym.tune``: hyperparameter sweeps of the trainer with Ray Tune.

Each trial is a :func:`connectx_gym.train.run` of its own config (the base config, plus the
sweep's fixed overrides, plus the trial's sampled values) in its own run directory, reporting to
Tune after every evaluation; Tune samples the trials, runs as many at once as the cluster's CPUs
allow, and (with ASHA) stops weak trials early. At the end the sweep prints a results table,
writes it as ``results.csv`` and names the best trial's run directory, whose ``best_model.zip``
or ``final_model.zip`` exports like any other run's.

The sweep file (``configs/tune.yaml`` is a commented example)::

    name: tune-ppo                      # sweep name: everything goes under <train.output_dir>/<name>/
    base_config: configs/default.yaml   # training config the trials start from (relative to the current
                                        # directory); omitted: configs/default.yaml if present, else defaults
    overrides:                          # 'section.key: value' fixed for every trial
      train.total_timesteps: 200000
      train.eval_every: 20000           # must be > 0: trials report to Tune once per evaluation
    search_space:                       # 'section.key: {distribution: arguments}'
      ppo.learning_rate: {loguniform: [1.0e-4, 1.0e-3]}
      ppo.ent_coef: {choice: [0.0, 0.005, 0.01]}
      ppo.n_epochs: {randint: [2, 6]}   # integers 2..6, both bounds included (unlike tune.randint)
    num_samples: 8                      # samples drawn (times the number of grid combinations)
    metric: mean_win_rate               # or win_rate/<an eval opponent>, steps_per_s
    mode: max                           # or min
    scheduler: {type: asha, grace_period: 2, reduction_factor: 2}   # or {type: fifo}
    resources_per_trial: {cpu: 1, gpu: 0}
    max_concurrent_trials: null         # null: as many as the resources allow
    seed: 0                             # seeds the sampling; null: different trials every time

Distributions: ``choice: [v, ...]``, ``grid: [v, ...]`` (every value, for every sample),
``uniform: [low, high]``, ``quniform: [low, high, q]``, ``loguniform: [low, high]`` (floats), and
``randint: [low, high]``, ``lograndint: [low, high]`` (integers, both bounds included). ``overrides``
and ``search_space`` also accept the nested form ``ppo: {learning_rate: ...}``.

Everything is checked before Ray starts: every key is a real config key (with a did-you-mean hint),
every value a choice or grid can take and both ends of every range (and their combinations) make
a valid config, the metric is one that the trials report, and evaluation is on.

Trials:

* run in ``<train.output_dir>/<name>/<trial name>/`` (``trial_00000``, ...) with that directory's
  ``config.yaml``, ``progress.csv``, TensorBoard logs, checkpoints, ``best_model.zip``,
  ``final_model.zip`` (not for trials ASHA stopped early) and ``train.log`` (the trial's output);
  such a directory is a normal run directory: evaluate it, export its models, or continue it with
  ``python -m connectx_gym.train --resume``. Tune's own files go to ``<output_dir>/<name>/ray_tune/``;
* all train with the config's ``train.seed``, so they differ only by their sampled values; to
  repeat configs over seeds, search ``train.seed: {grid: [0, 1, 2]}``;
* run in the directory the sweep was started from, so relative paths (agent files) work as for
  ``train`` (on a multi-node cluster, that directory and ``train.output_dir`` must be shared by
  every node at the same path);
* step their envs in-process (``multiprocessing.use_multiprocessing=false``) whatever the base
  config says, unless the sweep's ``overrides`` set ``multiprocessing.use_multiprocessing: true``:
  then each trial reserves ``multiprocessing.num_processes`` CPUs (which must be a number) and the
  workers start with ``forkserver`` or ``spawn`` (``fork`` is refused inside a Ray worker).
  ``multiprocessing.backend: ray`` places the chunk actors in the trial's placement group.

Scheduling and results: ``scheduler.grace_period`` counts reports (evaluations), and ASHA's rungs
sit below a trial's last evaluation, so it never stops a trial while it saves its final model.
The sweep prints a line per started and finished trial (the trainer's output is in each trial's
``train.log``), then the table, best first: sorted by the metric's last reported value (ties: its
best value); ``status`` is ``done``, ``stopped`` (by ASHA), ``error`` or ``interrupted`` (Ctrl-C
stops the running trials, and the sweep still writes the table of what ran).

``--address`` (or the base config's ``ray.address``) joins a Ray cluster; without one the sweep
starts a local instance on this machine's usable cores. ``--set key=value`` changes the sweep file
(``--set num_samples=2``, ``--set overrides.train.total_timesteps=40000``, ``--set
scheduler.type=fifo``). A sweep directory that already exists is an error (choose another name).
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import csv
import io
import itertools
import logging
import math
import os
import sys
import traceback
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Literal, Mapping, Optional, Sequence, Set, Tuple

import yaml

from connectx_gym.config import (
    SECTIONS,
    Config,
    _check_field,
    _read_yaml,
    _show,
    _yaml_problem,
    config_from_dict,
    config_keys,
    config_to_dict,
    load_config,
)
from connectx_gym.cli import ArgumentParser
from connectx_gym.errors import ConfigError, UserError, did_you_mean

WHAT = "python -m connectx_gym.tune"
DEFAULT_SWEEP_FILE = Path("configs") / "tune.yaml"
#: Tune's experiment directory inside the sweep directory (trials' run directories sit beside it)
TUNE_DIR_NAME = "ray_tune"
RESULTS_NAME = "results.csv"
#: a trial's stdout and stderr, in its run directory
TRIAL_LOG_NAME = "train.log"
#: the metrics every evaluation reports (besides win_rate/<opponent>), see train.make_callback
REPORTED_METRICS = ("mean_win_rate", "steps_per_s")
#: combinations of probe values checked in full up to this many (else each value on its own)
MAX_PROBE_COMBINATIONS = 256
#: an integer range with at most this many values has every value checked, else its ends
MAX_PROBED_INTEGERS = 32

# distribution name -> the arguments it takes
DISTRIBUTIONS: Dict[str, str] = {
    "choice": "[value, ...]",
    "grid": "[value, ...]",
    "uniform": "[low, high]",
    "quniform": "[low, high, q]",
    "loguniform": "[low, high]",
    "randint": "[low, high]",
    "lograndint": "[low, high]",
}
_INT_DISTRIBUTIONS = ("randint", "lograndint")

# Keys the sweep sets for every trial: neither overrides nor search_space may set them.
_SET_BY_SWEEP = {
    "train.run_name": "each trial runs in <train.output_dir>/<name>/<trial name>",
    "logging.progress_bar": "trials run without a progress bar; the sweep prints a line per trial",
}
# Keys that must be the same for every trial: overrides may set them, search_space may not.
_SAME_FOR_EVERY_TRIAL = {
    "train.output_dir": "it holds the whole sweep",
    "train.eval_every": "every trial must report on the same schedule",
    "train.eval_opponents": "every trial must report the same metrics",
    "multiprocessing.use_multiprocessing": "it decides the resources a trial reserves",
    "multiprocessing.backend": "it decides the resources a trial reserves",
    "multiprocessing.start_method": "it decides how a trial starts its workers",
    "ray.address": "trials run on the sweep's cluster (--address)",
    "ray.num_cpus_per_worker": "it decides the resources a trial reserves",
}


def _directory_name(value: str) -> bool:
    return value not in ("", ".", "..") and "/" not in value and "\\" not in value


# Top-level keys of the sweep file: key -> (annotation, rules as in config._field, default).
_SETTINGS: Dict[str, Tuple[Any, Dict[str, Any], Any]] = {
    "name": (str, {"check": _directory_name, "rule": "a directory name (no '/')"}, None),
    "base_config": (Optional[str], {"check": lambda v: v is None or bool(v), "rule": "a file path or null"}, None),
    "num_samples": (int, {"ge": 1}, 1),
    "metric": (str, {"check": bool, "rule": "a metric name"}, "mean_win_rate"),
    "mode": (Literal["max", "min"], {}, "max"),
    "max_concurrent_trials": (Optional[int], {"ge": 1}, None),
    "seed": (Optional[int], {"ge": 0}, 0),
}
_MAPPINGS = ("overrides", "search_space", "scheduler", "resources_per_trial")
SWEEP_KEYS = (*_SETTINGS, *_MAPPINGS)

_SCHEDULERS: Dict[str, Dict[str, Tuple[Any, Dict[str, Any], Any]]] = {
    "fifo": {},
    "asha": {
        "grace_period": (int, {"ge": 1}, 1),
        "reduction_factor": (float, {"gt": 1}, 2.0),
        "brackets": (int, {"ge": 1}, 1),
    },
}
_RESOURCES: Dict[str, Tuple[Any, Dict[str, Any], Any]] = {
    "cpu": (float, {"gt": 0}, 1.0),
    "gpu": (float, {"ge": 0}, 0.0),
}


# ------------------------------------------------------------------------------------------------
# The sweep file
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Dimension:
    """One searched key: its distribution, the Ray arguments, and the values checked up front.

    :param key: ``section.key``
    :param kind: a name from :data:`DISTRIBUTIONS`
    :param args: the distribution's arguments, converted (``randint``'s ``high`` still inclusive)
    :param probes: values sampling can produce that were checked to make a valid config
    """

    key: str
    kind: str
    args: Tuple[Any, ...]
    probes: Tuple[Any, ...]

    def domain(self, tune: Any) -> Any:
        """The Ray Tune search domain (``tune`` is the ``ray.tune`` module)."""
        if self.kind == "choice":
            return tune.choice(list(self.args))
        if self.kind == "grid":
            return tune.grid_search(list(self.args))
        if self.kind in _INT_DISTRIBUTIONS:
            low, high = self.args
            return getattr(tune, self.kind)(low, high + 1)  # Ray's upper bound is exclusive
        return getattr(tune, self.kind)(*self.args)

    @property
    def grid_size(self) -> int:
        """How many trials each sample becomes because of this dimension."""
        return len(self.args) if self.kind == "grid" else 1


@dataclass(frozen=True)
class TrialPlan:
    """What a trial needs to build its config; shipped to the Ray workers.

    :param base: ``{section: {key: value}}`` of the base config with the overrides and the
        sweep's own settings (output directory, in-process workers, no progress bar)
    :param launch_dir: absolute directory the sweep was started from (the trials' working directory)
    """

    base: Dict[str, Dict[str, Any]]
    launch_dir: str

    def trial_config(self, sampled: Mapping[str, Any], trial_name: Optional[str] = None) -> Config:
        """The validated, resolved config of a trial with ``sampled`` ``{section.key: value}``.

        :param trial_name: becomes ``train.run_name`` (None keeps the base's)
        """
        data = _merged(self.base, sampled)
        if trial_name is not None:
            data["train"]["run_name"] = trial_name
        return config_from_dict(data).resolved()


@dataclass(frozen=True)
class Sweep:
    """A validated sweep file: everything :func:`run_sweep` needs."""

    name: str
    source: str
    plan: TrialPlan
    dimensions: Tuple[Dimension, ...]
    num_samples: int
    metric: str
    mode: str
    scheduler: Dict[str, Any]
    bundles: Tuple[Dict[str, float], ...]
    max_concurrent_trials: Optional[int]
    seed: Optional[int]
    address: str
    #: where ``address`` came from, for messages: ``--address`` or ``ray.address``
    address_option: str
    #: reports (evaluations) of the shortest trial, and of the longest
    min_reports: int
    max_reports: int

    @property
    def sweep_dir(self) -> Path:
        return Path(self.plan.base["train"]["output_dir"])

    @property
    def num_trials(self) -> int:
        return self.num_samples * math.prod(d.grid_size for d in self.dimensions)

    @property
    def trial_cpus(self) -> float:
        return sum(bundle.get("CPU", 0.0) for bundle in self.bundles)

    @property
    def trial_gpus(self) -> float:
        return sum(bundle.get("GPU", 0.0) for bundle in self.bundles)

    def param_space(self, tune: Any) -> Dict[str, Dict[str, Any]]:
        """Tune's ``param_space``: ``{section: {key: domain}}``."""
        space: Dict[str, Dict[str, Any]] = {}
        for dimension in self.dimensions:
            section, name = dimension.key.split(".")
            space.setdefault(section, {})[name] = dimension.domain(tune)
        return space


def _merged(base: Mapping[str, Mapping[str, Any]], values: Mapping[str, Any]) -> Dict[str, Dict[str, Any]]:
    """A copy of the config dict ``base`` with ``{section.key: value}`` set."""
    data = {section: dict(keys) for section, keys in copy.deepcopy(dict(base)).items()}
    for key, value in values.items():
        section, name = key.split(".", 1)
        data.setdefault(section, {})[name] = value
    return data


def _checked(where: str, value: Any, spec: Tuple[Any, Dict[str, Any], Any]) -> Any:
    """``value`` converted and checked against a ``(annotation, rules, default)`` entry."""
    annotation, rules, _default = spec
    return _check_field(where, value, annotation, rules)


def _checked_mapping(where: str, value: Any, schema: Mapping[str, Tuple[Any, Dict[str, Any], Any]],
                     ignore: Sequence[str] = ()) -> Dict[str, Any]:
    """A mapping checked key by key against ``schema``; absent keys take their defaults."""
    if not isinstance(value, Mapping):
        raise ConfigError(f"{where} must be a mapping, got {_show(value)}")
    allowed = [*schema, *ignore]
    for key in value:
        if key not in allowed:
            raise ConfigError(f"unknown key '{where}.{key}'{_hint(str(key), allowed)}; "
                              f"{where} takes {', '.join(allowed)}")
    return {key: _checked(f"{where}.{key}", value.get(key, spec[2]), spec) for key, spec in schema.items()}


def _hint(name: str, choices: Sequence[str]) -> str:
    """did_you_mean, preferring a choice that ``name`` abbreviates (``grace`` -> ``grace_period``)."""
    longer = [choice for choice in choices if choice.startswith(name)]
    return f" (did you mean {longer[0]!r}?)" if len(longer) == 1 else did_you_mean(name, choices)


def _config_keys_of(where: str, value: Any) -> Dict[str, Any]:
    """``{section.key: value}`` from ``overrides``/``search_space`` (flat or nested by section)."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ConfigError(f"{where} must be a mapping of 'section.key: ...', got {_show(value)}")
    flat: Dict[str, Any] = {}
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
        if key in _SET_BY_SWEEP:
            raise ConfigError(f"{where}: {key} is set by the sweep ({_SET_BY_SWEEP[key]}); remove it")
    return flat


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
        raise ConfigError(f"{where} must be an integer, got {_show(value)}")
    if not isinstance(value, bool):
        with contextlib.suppress(TypeError, ValueError):
            number = float(value)
            if math.isfinite(number):
                return number
    raise ConfigError(f"{where} must be a number, got {_show(value)}")


def _dimension(where: str, key: str, spec: Any) -> Dimension:
    """Parse one ``search_space`` entry (values are checked against the config later)."""
    names = ", ".join(DISTRIBUTIONS)
    if not isinstance(spec, Mapping):
        raise ConfigError(f"{where} must be {{distribution: arguments}} with a distribution from {names}, "
                          f"got {_show(spec)} (a fixed value belongs under overrides)")
    if len(spec) != 1:
        raise ConfigError(f"{where} must name exactly one distribution, got {_show(spec)}")
    ((kind, args),) = spec.items()
    if kind not in DISTRIBUTIONS:
        raise ConfigError(f"{where}: unknown distribution {kind!r}{did_you_mean(str(kind), DISTRIBUTIONS)}; "
                          f"use one of {names}")
    usage = f"{where}: {kind} takes {DISTRIBUTIONS[kind]}, got {_show(args)}"
    if kind in ("choice", "grid"):
        if not isinstance(args, list) or not args:
            raise ConfigError(usage)
        return Dimension(key, kind, tuple(args), tuple(args))
    size = 3 if kind == "quniform" else 2
    if not isinstance(args, list) or len(args) != size:
        raise ConfigError(usage)
    integer = kind in _INT_DISTRIBUTIONS
    if not integer and not _accepts_floats(key):
        raise ConfigError(f"{where}: {key} takes integers, but {kind} samples floats; "
                          f"use randint, lograndint, choice or grid")
    low, high, *step = (_number(f"{where} {kind} {part}", arg, integer)
                        for part, arg in zip(("low", "high", "q"), args))
    if integer and not low <= high or not integer and not low < high:
        raise ConfigError(f"{where}: {kind} needs low {'<=' if integer else '<'} high, got {_show(args)}")
    if kind.startswith("log") and low <= 0:
        raise ConfigError(f"{where}: {kind} needs low > 0, got {_show(args)}")
    if step and step[0] <= 0:
        raise ConfigError(f"{where}: quniform needs q > 0, got {_show(args)}")
    probes: Tuple[Any, ...] = (low, high)
    if integer and high - low < MAX_PROBED_INTEGERS:
        probes = tuple(range(low, high + 1))
    return Dimension(key, kind, (low, high, *step), probes)


def _reports(config: Config) -> int:
    """Evaluations (reports to Tune) a trial with ``config`` makes: SB3 collects whole rollouts."""
    rollout = config.ppo.n_steps * config.multiprocessing.parallel_episodes
    final_step = math.ceil(config.train.total_timesteps / rollout) * rollout
    return final_step // config.train.eval_every


def _apply_set(data: Dict[str, Any], text: str) -> None:
    """Apply one ``--set key=value`` (``num_samples=4``, ``overrides.train.seed=3``) to the sweep file."""
    key, sep, value_text = text.partition("=")
    top, _dot, rest = key.strip().partition(".")
    if not sep or not top:
        raise ConfigError(f"bad --set {text!r}: expected key=value, e.g. num_samples=4 or overrides.train.seed=1")
    if top not in SWEEP_KEYS:
        raise ConfigError(f"bad --set {text!r}: unknown key {top!r}{did_you_mean(top, SWEEP_KEYS)}")
    try:
        value = yaml.safe_load(value_text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"bad --set {text!r}: value is not valid YAML: {_yaml_problem(exc)}") from None
    if not rest:
        data[top] = value
        return
    if top not in _MAPPINGS:
        raise ConfigError(f"bad --set {text!r}: {top} is not a mapping; use --set {top}=VALUE")
    current = data.get(top)
    data[top] = {**(current if isinstance(current, Mapping) else {}), rest: value}


def load_sweep(path: str | os.PathLike, sets: Sequence[str] = (), num_samples: Optional[int] = None,
               address: Optional[str] = None) -> Sweep:
    """Read and validate the sweep file at ``path``; nothing is written and Ray is not needed.

    :param sets: ``key=value`` changes to the file, as ``--set``
    :param num_samples: replaces the file's ``num_samples`` (``--num-samples``)
    :param address: the Ray cluster (``--address``); None: the base config's ``ray.address``
    :raises UserError: on any bad key or value, naming it
    """
    from connectx_gym.train import DEFAULT_CONFIG, check_opponents

    source = os.fspath(path)
    data = _read_yaml(path)
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ConfigError(f"sweep file '{source}' must contain a mapping, got {_show(data)}")
    data = dict(data)
    for text in sets:
        _apply_set(data, text)
    if num_samples is not None:
        data["num_samples"] = num_samples
    for key in data:
        if key not in SWEEP_KEYS:
            raise ConfigError(f"{source}: unknown key {key!r}{did_you_mean(str(key), SWEEP_KEYS)}; "
                              f"a sweep file takes {', '.join(SWEEP_KEYS)}")

    def fail(message: str) -> ConfigError:
        return ConfigError(f"{source}: {message}")

    try:
        settings = {key: _checked(key, data.get(key, spec[2]), spec) for key, spec in _SETTINGS.items()}
        scheduler_data = data.get("scheduler") or {"type": "fifo"}
        if not isinstance(scheduler_data, Mapping):
            raise ConfigError(f"scheduler must be a mapping {{type: asha|fifo, ...}}, got {_show(scheduler_data)}")
        kind = scheduler_data.get("type", "fifo")
        if kind not in _SCHEDULERS:
            raise ConfigError(f"scheduler.type must be one of {'|'.join(_SCHEDULERS)}, got {_show(kind)}"
                              f"{did_you_mean(str(kind), _SCHEDULERS)}")
        scheduler = {"type": kind, **_checked_mapping("scheduler", scheduler_data, _SCHEDULERS[kind], ["type"])}
        resources = _checked_mapping("resources_per_trial", data.get("resources_per_trial") or {}, _RESOURCES)
        overrides = _config_keys_of("overrides", data.get("overrides"))
        searched = _config_keys_of("search_space", data.get("search_space"))
    except ConfigError as error:
        raise fail(str(error)) from None
    name = settings["name"] or Path(source).stem
    if not searched:
        raise fail("search_space is empty: nothing to tune (to repeat one config over seeds, "
                   "search train.seed: {grid: [0, 1, 2]})")

    # The base config and the overrides (load_config reports the base file's own problems).
    base_path = settings["base_config"]
    if base_path is None and DEFAULT_CONFIG.is_file():
        base_path = DEFAULT_CONFIG
    base_config = load_config(base_path)
    try:
        config = config_from_dict(_merged(config_to_dict(base_config), overrides))
    except ConfigError as error:
        raise fail(f"overrides: {error}") from None

    # What every trial runs with, whatever the base config says.
    mp = config.multiprocessing
    asked_for_processes = overrides.get("multiprocessing.use_multiprocessing") is True
    chunk_processes = mp.backend == "chunked" and mp.use_multiprocessing and asked_for_processes
    subprocesses = mp.backend == "sb3_subproc" or chunk_processes
    if subprocesses and mp.start_method == "fork":
        raise fail("multiprocessing.start_method=fork is not safe inside a Ray trial (forking a process that "
                   "runs Ray's threads can deadlock); use forkserver or spawn")
    if (subprocesses or mp.backend == "ray") and mp.backend != "sb3_subproc" and mp.num_processes == "auto":
        raise fail(f"multiprocessing.num_processes=auto: with backend {mp.backend} and worker processes, set "
                   "a number in overrides (it is the number of CPUs each trial reserves for its workers)")
    sweep_dir = Path(os.path.abspath(config.train.output_dir)) / name
    sweep_settings = {
        "train.output_dir": str(sweep_dir),
        "logging.progress_bar": False,
        "multiprocessing.use_multiprocessing": subprocesses and mp.backend == "chunked",
    }
    plan = TrialPlan(config_to_dict(config_from_dict(_merged(config_to_dict(config), sweep_settings))),
                     os.path.abspath(os.getcwd()))
    base = plan.trial_config({})

    if base.train.eval_every == 0:
        raise fail("train.eval_every=0 disables evaluation, so trials would report nothing to Tune; "
                   "set it under overrides, e.g. train.eval_every: 20000")
    metrics = [*REPORTED_METRICS[:1], *(f"win_rate/{spec}" for spec in base.train.eval_opponents),
               *REPORTED_METRICS[1:]]
    if settings["metric"] not in metrics:
        metric = settings["metric"]
        raise fail(f"metric {metric!r} is not reported by the trials{did_you_mean(metric, metrics)}; with "
                   f"train.eval_opponents={_show(list(base.train.eval_opponents))} they report {', '.join(metrics)}")
    try:
        check_opponents(base)
    except UserError as error:
        raise fail(str(error)) from None

    workers_reserve_cpus = subprocesses or mp.backend == "ray"
    dimensions = [_searched(key, spec, plan, workers_reserve_cpus, fail) for key, spec in searched.items()]
    reports = [_reports(config) for config in _probe_configs(plan, dimensions, fail)]
    min_reports, max_reports = min(reports), max(reports)
    if min_reports == 0:
        raise fail(f"train.eval_every={base.train.eval_every} is more than a trial's train.total_timesteps: "
                   "trials would finish before their first evaluation and report nothing to Tune")
    if scheduler["type"] == "asha" and scheduler["grace_period"] >= min_reports:
        raise fail(f"scheduler.grace_period={scheduler['grace_period']} must be smaller than the number of "
                   f"evaluations a trial makes (train.total_timesteps / train.eval_every = {min_reports}), or "
                   "ASHA never stops a trial; lower it, evaluate more often, or use scheduler: {type: fifo}")

    if base.train.device == "cuda" and not resources["gpu"]:
        raise fail("train.device=cuda needs resources_per_trial.gpu > 0 (Ray hides GPUs from trials that reserve none)")
    bundles = _bundles(resources, base, subprocesses, dimensions)

    return Sweep(
        name=name,
        source=source,
        plan=plan,
        dimensions=tuple(dimensions),
        num_samples=settings["num_samples"],
        metric=settings["metric"],
        mode=settings["mode"],
        scheduler=scheduler,
        bundles=tuple(bundles),
        max_concurrent_trials=settings["max_concurrent_trials"],
        seed=settings["seed"],
        address=(config.ray.address or "") if address is None else address,
        address_option="ray.address" if address is None else "--address",
        min_reports=min_reports,
        max_reports=max_reports,
    )


def _searched(key: str, spec: Any, plan: TrialPlan, workers_reserve_cpus: bool, fail) -> Dimension:
    """The :class:`Dimension` of one ``search_space`` entry, each value it can take checked on top
    of the base config (choice and grid values as the config reads them: ``'1e-4'`` -> 0.0001).

    :param workers_reserve_cpus: the trials' env workers are processes or actors (then
        ``multiprocessing.num_processes`` decides a trial's resources and cannot be searched)
    :param fail: makes the ConfigError for a message (prefixing the sweep file)
    """
    from connectx_gym.train import check_opponents

    where = f"search_space {key}"
    if key in _SAME_FOR_EVERY_TRIAL:
        raise fail(f"{where}: {key} cannot be searched ({_SAME_FOR_EVERY_TRIAL[key]}); set it under overrides")
    if key == "multiprocessing.num_processes" and workers_reserve_cpus:
        raise fail(f"{where}: {key} cannot be searched with worker processes "
                   "(it decides the CPUs a trial reserves); set it under overrides")
    try:
        dimension = _dimension(where, key, spec)
    except ConfigError as error:
        raise fail(str(error)) from None
    section, name = key.split(".")
    normalised = []
    for value in dimension.probes:
        try:
            probe = plan.trial_config({key: value})
        except ConfigError as error:
            raise fail(f"{where}: {dimension.kind} value {_show(value)} does not make a valid config: "
                       f"{error}") from None
        if key == "env.opponent" or key.startswith("curriculum."):
            try:
                check_opponents(probe)
            except UserError as error:
                raise fail(f"{where}: {dimension.kind} value {_show(value)}: {error}") from None
        normalised.append(config_to_dict(probe)[section][name])
    if dimension.kind in ("choice", "grid"):
        return Dimension(key, dimension.kind, tuple(normalised), tuple(normalised))
    return dimension


def _bundles(resources: Mapping[str, float], base: Config, subprocesses: bool,
             dimensions: Sequence[Dimension]) -> List[Dict[str, float]]:
    """The placement group of a trial: a bundle for the trainer (with its worker processes), plus
    one per chunk actor with the ray backend (Tune places a trial's actors in its group)."""
    mp = base.multiprocessing
    trainer = {"CPU": resources["cpu"]}
    if mp.backend == "chunked" and subprocesses:
        trainer["CPU"] = max(resources["cpu"], float(mp.num_processes))
    elif mp.backend == "sb3_subproc":  # one process per env
        episodes = max(_probe_values(dimensions, base, "multiprocessing.parallel_episodes"))
        trainer["CPU"] = max(resources["cpu"], float(episodes))
    if resources["gpu"]:
        trainer["GPU"] = resources["gpu"]
    bundles = [trainer]
    if mp.backend == "ray":
        bundles += [{"CPU": base.ray.num_cpus_per_worker} for _ in range(mp.num_processes)]
    return bundles


def _probe_values(dimensions: Sequence[Dimension], base: Config, key: str) -> Tuple[Any, ...]:
    """The values ``key`` takes in the probes (its base value when it is not searched)."""
    for dimension in dimensions:
        if dimension.key == key:
            return dimension.probes
    section, name = key.split(".")
    return (getattr(getattr(base, section), name),)


def _probe_configs(plan: TrialPlan, dimensions: Sequence[Dimension], fail) -> List[Config]:
    """Configs of combinations of probe values: all of them when there are few, else each value with
    the first value of every other key; raises when a combination is not a valid config."""
    lists = [dimension.probes for dimension in dimensions]
    if math.prod(len(values) for values in lists) <= MAX_PROBE_COMBINATIONS:
        combinations = list(itertools.product(*lists))
    else:
        firsts = [values[0] for values in lists]
        combinations = [tuple(firsts[:i]) + (value,) + tuple(firsts[i + 1:])
                        for i, values in enumerate(lists) for value in values]
    configs = []
    for combination in combinations:
        sampled = {dimension.key: value for dimension, value in zip(dimensions, combination)}
        try:
            configs.append(plan.trial_config(sampled))
        except ConfigError as error:
            shown = ", ".join(f"{key}={_show(value)}" for key, value in sampled.items())
            raise fail(f"search_space values {shown} do not make a valid config together: {error}") from None
    return configs


# ------------------------------------------------------------------------------------------------
# Trials (run in Ray workers)
# ------------------------------------------------------------------------------------------------


class TrialFailed(RuntimeError):
    """A trial's training failed; the message says why and where its log is."""


def trial_name(trial: Any) -> str:
    """``trial_00000``...: Tune's trial counter (trial ids are ``<random>_<counter>``)."""
    return "trial_" + str(trial.trial_id).rsplit("_", 1)[-1]


def _flat(sampled: Mapping[str, Any]) -> Dict[str, Any]:
    """``{section.key: value}`` from Tune's nested trial config."""
    return {f"{section}.{name}": value for section, values in sampled.items() for name, value in values.items()}


def _output_to(log_path: Path) -> None:
    """Send this process's stdout and stderr, Python's and the file descriptors', to ``log_path``
    for good: the process is the trial's own (``reuse_actors=False``), and what it prints after
    the trainer (Ray's own noise when Tune stops a trial early) belongs in the log, not on the
    sweep's terminal, where Ray would forward it."""
    log = open(log_path, "a", encoding="utf-8", buffering=1)
    for stream, fd in ((sys.stdout, 1), (sys.stderr, 2)):
        with contextlib.suppress(Exception):
            stream.flush()
        os.dup2(log.fileno(), fd)
    sys.stdout = sys.stderr = log


def run_trial(config: Dict[str, Any], plan: TrialPlan) -> None:
    """The Tune trainable: train one trial's config, reporting to Tune after every evaluation.

    Runs in the sweep's launch directory; the process's output goes to the run directory's
    ``train.log``. Raises :class:`TrialFailed` (Tune marks the trial errored) when training fails.

    :param config: the trial's sampled values, ``{section: {key: value}}``
    :param plan: the base config and launch directory
    """
    from ray import tune

    try:
        os.chdir(plan.launch_dir)
    except OSError as error:
        raise TrialFailed(
            f"cannot enter the sweep's directory {plan.launch_dir} on this node ({error.strerror or error}); on a "
            "multi-node cluster, start the sweep from a directory that every node shares at the same path"
        ) from None
    name = tune.get_context().get_trial_name()
    run_dir = Path(plan.base["train"]["output_dir"]) / name
    run_dir.mkdir(parents=True, exist_ok=True)
    log_path = run_dir / TRIAL_LOG_NAME
    _output_to(log_path)
    try:
        from connectx_gym.train import run

        trial_config = plan.trial_config(_flat(config), name)
        code = run(trial_config, run_dir, None, report=tune.report)
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        raise TrialFailed(str(error)) from None
    except Exception as error:
        traceback.print_exc()
        raise TrialFailed(f"{type(error).__name__}: {error} (traceback in {log_path})") from None
    if code != 0:
        raise TrialFailed(f"training failed with exit code {code}; see {log_path}")


# ------------------------------------------------------------------------------------------------
# Progress and results (on the driver)
# ------------------------------------------------------------------------------------------------


@dataclass
class TrialRecord:
    """What the sweep saw of one trial."""

    name: str
    sampled: Dict[str, Any]
    total_timesteps: int
    run_dir: Path
    results: List[Dict[str, Any]] = field(default_factory=list)
    status: str = "unfinished"
    error: str = ""

    def values(self, key: str) -> List[float]:
        return [r[key] for r in self.results if isinstance(r.get(key), (int, float)) and not math.isnan(r[key])]

    def last(self, key: str) -> float:
        values = self.values(key)
        return values[-1] if values else math.nan

    def best(self, key: str, mode: str) -> float:
        values = self.values(key)
        return (max if mode == "max" else min)(values) if values else math.nan

    @property
    def model(self) -> str:
        """The run's exportable model: final_model.zip, else best_model.zip, else ''."""
        from connectx_gym.train import BEST_MODEL_NAME, FINAL_MODEL_NAME

        for file_name in (FINAL_MODEL_NAME, BEST_MODEL_NAME):
            if (self.run_dir / file_name).is_file():
                return str(self.run_dir / file_name)
        return ""


def _error_line(error: Any) -> str:
    """One line for a trial's error (a TrialFailed's message, else the last line Ray gives)."""
    cause = getattr(error, "cause", None) or error
    if isinstance(cause, TrialFailed):
        return str(cause)
    lines = [line.strip() for line in str(error).strip().splitlines() if line.strip()]
    if not lines:
        return type(error).__name__
    return lines[-1].removeprefix(f"{TrialFailed.__name__}: ")


def _trial_error(trial: Any) -> str:
    """One line for the error of a failed Tune trial, from the files Tune wrote on the driver."""
    from ray import cloudpickle

    with contextlib.suppress(Exception):  # unreadable: the caller points at the trial's log
        if trial.pickled_error_file and os.path.isfile(trial.pickled_error_file):
            with open(trial.pickled_error_file, "rb") as handle:
                return _error_line(cloudpickle.load(handle))
        if trial.error_file and os.path.isfile(trial.error_file):
            return _error_line(Path(trial.error_file).read_text(encoding="utf-8", errors="replace"))
    return ""


def _cell(value: Any) -> str:
    """A value as the results table shows it."""
    if isinstance(value, float):
        return "-" if math.isnan(value) else f"{value:.4g}"
    if isinstance(value, str):
        return value
    return _show(value)


def _progress_callback(sweep: Sweep, records: Dict[str, TrialRecord], early_stopped: Set[str], out=sys.stderr):
    """A Tune callback printing one line per started and finished trial, filling ``records``.

    :param early_stopped: names of the trials the scheduler stopped (filled by the scheduler)
    """
    from ray.tune import Callback

    metric = sweep.metric

    def say(text: str) -> None:
        print(text, file=out, flush=True)

    class TrialLines(Callback):
        def record(self, trial: Any) -> TrialRecord:
            name = str(trial)
            if name not in records:
                sampled = _flat(trial.config)
                try:
                    total = sweep.plan.trial_config(sampled).train.total_timesteps
                except UserError:  # a sampled value the config rejects: the trial fails and says why
                    total = sweep.plan.base["train"]["total_timesteps"]
                records[name] = TrialRecord(name=name, sampled=sampled, total_timesteps=total,
                                            run_dir=sweep.sweep_dir / name)
            return records[name]

        def finished(self) -> str:
            done = sum(1 for r in records.values() if r.status != "unfinished")
            return f"[{done}/{sweep.num_trials}]"

        def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
            record = self.record(trial)
            shown = ", ".join(f"{key}={_cell(value)}" for key, value in record.sampled.items())
            say(f"{record.name} started: {shown}")

        def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info: Any) -> None:
            self.record(trial).results.append(dict(result))

        def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
            record = self.record(trial)
            steps = int(record.last("timesteps")) if record.results else 0
            if record.name in early_stopped:
                record.status, how = "stopped", "stopped early by ASHA"
            elif steps >= record.total_timesteps:
                record.status, how = "done", "done"
            else:  # Ctrl-C: Tune stops the running trials
                record.status, how = "interrupted", "interrupted"
            say(f"{record.name} {how}: {metric} {_cell(record.last(metric))} "
                f"(best {_cell(record.best(metric, sweep.mode))}) at {steps} steps, "
                f"{_cell(sum(record.values('steps_per_s')) / max(len(record.values('steps_per_s')), 1))} steps/s "
                f"{self.finished()}")

        def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
            record = self.record(trial)
            record.status = "error"
            record.error = _trial_error(trial) or f"see {record.run_dir / TRIAL_LOG_NAME}"
            say(f"{record.name} failed: {record.error} {self.finished()}")

    return TrialLines()


def sorted_records(records: Sequence[TrialRecord], metric: str, mode: str) -> List[TrialRecord]:
    """Trials with results first, best last ``metric`` first (ties: best ``metric`` ever), errors last."""
    sign = -1.0 if mode == "max" else 1.0

    def key(record: TrialRecord):
        last, best = record.last(metric), record.best(metric, mode)
        return (math.isnan(last), record.status == "error", sign * (0.0 if math.isnan(last) else last),
                sign * (0.0 if math.isnan(best) else best), record.name)

    return sorted(records, key=key)


def results_rows(sweep: Sweep, records: Sequence[TrialRecord]) -> Tuple[List[str], List[List[Any]]]:
    """Header and rows of the results, best trial first."""
    keys = [dimension.key for dimension in sweep.dimensions]
    header = ["trial", "status", *keys, sweep.metric, f"best_{sweep.metric}", "steps_per_s", "timesteps",
              "reports", "run_dir", "model", "error"]
    rows = []
    for record in sorted_records(records, sweep.metric, sweep.mode):
        speeds = record.values("steps_per_s")
        rows.append([
            record.name, record.status, *(record.sampled.get(key) for key in keys),
            record.last(sweep.metric), record.best(sweep.metric, sweep.mode),
            sum(speeds) / len(speeds) if speeds else math.nan,
            int(record.last("timesteps")) if record.results else 0,
            len(record.results), str(record.run_dir), record.model, record.error,
        ])
    return header, rows


def format_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A plain text table (left-aligned text, right-aligned numbers)."""
    cells = [[_cell(value) for value in row] for row in rows]
    widths = [max([len(title)] + [len(row[i]) for row in cells]) for i, title in enumerate(header)]
    numeric = [bool(rows) and all(isinstance(row[i], (int, float)) and not isinstance(row[i], bool) for row in rows)
               for i in range(len(header))]
    lines = ["  ".join(title.rjust(w) if num else title.ljust(w) for title, w, num in zip(header, widths, numeric))]
    lines.append("  ".join("-" * w for w in widths))
    for row in cells:
        lines.append("  ".join(c.rjust(w) if num else c.ljust(w) for c, w, num in zip(row, widths, numeric)))
    return "\n".join(line.rstrip() for line in lines)


def _csv_cell(value: Any) -> Any:
    """A value as results.csv holds it: numbers in full, missing ones empty, lists as YAML."""
    if value is None or isinstance(value, float) and math.isnan(value):
        return ""
    if isinstance(value, (int, float, str)) and not isinstance(value, bool):
        return value
    return _show(value)


def write_results(path: Path, header: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """``results.csv``: the table, one row per trial, values as plain YAML-ish text."""
    from connectx_gym.training.checkpoints import write_atomic

    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(header)
    for row in rows:
        writer.writerow([_csv_cell(value) for value in row])
    write_atomic(path, buffer.getvalue().encode("utf-8"))


# ------------------------------------------------------------------------------------------------
# The sweep
# ------------------------------------------------------------------------------------------------


class _DropTrialFailureLogs(logging.Filter):
    """Drops Tune's own ERROR records about failed trials (a traceback each): the sweep prints one
    line per failed trial and the table names the error; the trial's log has the traceback."""

    PREFIXES = ("Trial task failed", "Trials did not complete")

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.levelno >= logging.ERROR and str(record.msg).startswith(self.PREFIXES))


#: the loggers Tune reports failed trials on
_TUNE_LOGGERS = ("ray.tune.execution.tune_controller", "ray.tune.tune")


@contextlib.contextmanager
def _quiet_tune():
    """Tune without its start box and paths (the new output engine prints them even at
    ``verbose=0``; the legacy one does not, and a user's RAY_AIR_NEW_OUTPUT wins) and without
    its traceback per failed trial."""
    drop = _DropTrialFailureLogs()
    loggers = [logging.getLogger(name) for name in _TUNE_LOGGERS]
    for logger in loggers:
        logger.addFilter(drop)
    chosen = "RAY_AIR_NEW_OUTPUT" in os.environ
    if not chosen:
        os.environ["RAY_AIR_NEW_OUTPUT"] = "0"
    try:
        yield
    finally:
        if not chosen:
            os.environ.pop("RAY_AIR_NEW_OUTPUT", None)
        for logger in loggers:
            logger.removeFilter(drop)


def run_sweep(sweep: Sweep) -> int:
    """Start or join Ray, run the trials, print and write the results; returns the exit code.

    :raises UserError: when Ray is missing, the cluster cannot be reached or cannot fit a trial
    """
    from connectx_gym.runtime.ray_cluster import cluster_cpus, connect

    ray = connect(sweep.address, what=WHAT, option=sweep.address_option)
    cpus = cluster_cpus(ray)
    gpus = ray.cluster_resources().get("GPU", 0)
    if sweep.trial_cpus > cpus or sweep.trial_gpus > gpus:
        raise UserError(
            f"a trial reserves {sweep.trial_cpus:g} CPUs and {sweep.trial_gpus:g} GPUs, but the Ray cluster has "
            f"{cpus} CPUs and {gpus:g} GPUs; lower resources_per_trial (or multiprocessing.num_processes) or add nodes"
        )
    # Tune warns whenever one of its steps takes over 0.5 s, which a driver sharing its cores with
    # busy trials often does; the threshold is read when ray.tune is first imported.
    os.environ.setdefault("TUNE_WARN_THRESHOLD_S", "10")
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler
    from ray.tune.search import BasicVariantGenerator

    early_stopped: Set[str] = set()
    if sweep.scheduler["type"] == "asha":

        class RecordingASHA(ASHAScheduler):
            """ASHA that notes which trials it stops (the results table tells them from Ctrl-C)."""

            def on_trial_result(self, tune_controller: Any, trial: Any, result: Dict) -> str:
                action = super().on_trial_result(tune_controller, trial, result)
                if action == self.STOP:
                    early_stopped.add(str(trial))
                return action

        # Rungs strictly below every trial's last report, so ASHA never stops a trial while it
        # saves its final model; trials that pass the last rung run to the end.
        scheduler = RecordingASHA(
            time_attr="training_iteration", max_t=max(sweep.min_reports - 1, sweep.scheduler["grace_period"]),
            grace_period=sweep.scheduler["grace_period"], reduction_factor=sweep.scheduler["reduction_factor"],
            brackets=sweep.scheduler["brackets"], stop_last_trials=False,
        )
    else:
        scheduler = FIFOScheduler()
    sweep.sweep_dir.mkdir(parents=True, exist_ok=False)
    records: Dict[str, TrialRecord] = {}
    trainable = tune.with_resources(
        tune.with_parameters(run_trial, plan=sweep.plan), tune.PlacementGroupFactory(list(sweep.bundles))
    )
    tuner = tune.Tuner(
        trainable,
        param_space=sweep.param_space(tune),
        tune_config=tune.TuneConfig(
            metric=sweep.metric, mode=sweep.mode, num_samples=sweep.num_samples, scheduler=scheduler,
            search_alg=BasicVariantGenerator(random_state=sweep.seed),
            max_concurrent_trials=sweep.max_concurrent_trials, reuse_actors=False,
            trial_name_creator=trial_name, trial_dirname_creator=trial_name,
        ),
        run_config=tune.RunConfig(
            name=TUNE_DIR_NAME, storage_path=str(sweep.sweep_dir), verbose=0,
            callbacks=[_progress_callback(sweep, records, early_stopped)],
        ),
    )
    concurrent = int(cpus // sweep.trial_cpus)
    if sweep.max_concurrent_trials:
        concurrent = min(concurrent, sweep.max_concurrent_trials)
    print(f"sweep {sweep.name}: {sweep.num_trials} trial{'s' * (sweep.num_trials != 1)}, up to {concurrent} at once "
          f"({sweep.trial_cpus:g} of {cpus} CPUs each); outputs in {sweep.sweep_dir}", file=sys.stderr, flush=True)
    with _quiet_tune():
        tuner.fit()

    header, rows = results_rows(sweep, list(records.values()))
    write_results(sweep.sweep_dir / RESULTS_NAME, header, rows)
    shown = [i for i, title in enumerate(header) if title not in ("run_dir", "model", "error")]
    print(format_table([header[i] for i in shown], [[row[i] for i in shown] for row in rows]))
    print(f"results: {sweep.sweep_dir / RESULTS_NAME}")
    unfinished = sweep.num_trials - sum(1 for r in records.values() if r.status in ("done", "stopped", "error"))
    if unfinished:
        print(f"sweep interrupted: {unfinished} of {sweep.num_trials} trials did not finish (an interrupted "
              f"trial continues with: python -m connectx_gym.train --resume <its run directory>)", file=sys.stderr)
    ranked = [r for r in sorted_records(list(records.values()), sweep.metric, sweep.mode) if r.results]
    if not ranked:
        errors = [r for r in records.values() if r.error]
        first = f"; first error: {errors[0].name}: {errors[0].error}" if errors else ""
        print(f"error: no trial reported a result{first}", file=sys.stderr)
        return 1
    best = ranked[0]
    print(f"best trial: {best.name} ({sweep.metric} {_cell(best.last(sweep.metric))}); "
          f"run directory: {best.run_dir}")
    if best.model:
        print(f"export it with: python -m connectx_gym.export {best.model}")
    return 0


def parse_args(argv: Optional[Sequence[str]]) -> argparse.Namespace:
    parser = ArgumentParser(
        prog=WHAT,
        description="Hyperparameter sweep of the MaskablePPO trainer with Ray Tune (needs the ray extra).",
    )
    parser.add_argument("--config", default=str(DEFAULT_SWEEP_FILE),
                        help=f"sweep file (default: {DEFAULT_SWEEP_FILE}); its format is in the module docstring")
    parser.add_argument("--address", default=None,
                        help="Ray cluster to join: auto, host:port or ray://host:port (default: the base config's "
                             "ray.address; none: a local instance on this machine's cores)")
    parser.add_argument("--num-samples", type=int, default=None, metavar="N", help="replace the file's num_samples")
    parser.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                        help="change the sweep file (repeatable): num_samples=4, overrides.train.seed=1, "
                             "search_space.ppo.n_epochs={choice: [2, 4]}, scheduler.type=fifo")
    return parser.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """``python -m connectx_gym.tune``: exit 0 after a sweep, 2 on bad input, 1 if no trial reported."""
    try:
        args = parse_args(argv)
        sweep = load_sweep(args.config, args.sets, args.num_samples, args.address)
        if sweep.sweep_dir.exists():
            raise UserError(f"sweep directory '{sweep.sweep_dir}' already exists; choose another name "
                            f"(--set name=...) or remove it")
        return run_sweep(sweep)
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
