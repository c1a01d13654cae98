"""Loading a sweep: the sweep file (with ``--set`` changes) on top of its base training config
becomes a :class:`Sweep`, everything checked before Ray starts. The file's own keys are checked by
its schema (:mod:`connectx_gym.sweeps.schema`) and the search space is probed by
:mod:`connectx_gym.sweeps.space`; here are the rules that span keys or need the base config: what
every trial runs with, the metric the trials report, the evaluations ASHA counts and the resources
a trial reserves.
"""

from __future__ import annotations

import copy
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from connectx_gym.config import Config, config_from_dict, config_to_dict, load_config, read_yaml
from connectx_gym.config.loading import parse_set_value, set_key
from connectx_gym.config.schema import show
from connectx_gym.errors import ConfigError, UserError, did_you_mean
from connectx_gym.sweeps.schema import MAPPING_KEYS, SWEEP_KEYS, Resources, SweepFile, sweep_file_from_dict
from connectx_gym.sweeps.space import Dimension, Fail, probe_configs, probe_values, searched
from connectx_gym.training.setup import check_opponents, config_path_or_default

__all__ = ["REPORTED_METRICS", "Sweep", "TrialPlan", "load_sweep", "merged"]

#: the metrics every evaluation reports (besides win_rate/<opponent>), see training.callbacks.EvaluationCallback
REPORTED_METRICS = ("mean_win_rate", "steps_per_s")


@dataclass(frozen=True)
class TrialPlan:
    """What a trial needs to build its config; shipped to the Ray workers.

    :param base: ``{section: {key: value}}`` of the base config with the overrides and the
        sweep's own settings (output directory, in-process workers, no progress bar)
    :param launch_dir: absolute directory the sweep was started from (the trials' working directory)
    """

    base: dict[str, dict[str, Any]]
    launch_dir: str

    def trial_config(self, sampled: Mapping[str, Any], trial_name: str | None = None) -> Config:
        """The validated, resolved config of a trial with ``sampled`` ``{section.key: value}``.

        :param trial_name: becomes ``train.run_name`` (None keeps the base's)
        """
        data = merged(self.base, sampled)
        if trial_name is not None:
            data["train"]["run_name"] = trial_name
        return config_from_dict(data).resolved()


@dataclass(frozen=True)
class Sweep:
    """A validated sweep file: everything :func:`~connectx_gym.sweeps.driver.run_sweep` needs."""

    name: str
    source: str
    plan: TrialPlan
    dimensions: tuple[Dimension, ...]
    num_samples: int
    metric: str
    mode: str
    scheduler: dict[str, Any]
    bundles: tuple[dict[str, float], ...]
    max_concurrent_trials: int | None
    seed: int | None
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

    def param_space(self, tune: Any) -> dict[str, dict[str, Any]]:
        """Tune's ``param_space``: ``{section: {key: domain}}``."""
        space: dict[str, dict[str, Any]] = {}
        for dimension in self.dimensions:
            section, name = dimension.key.split(".")
            space.setdefault(section, {})[name] = dimension.domain(tune)
        return space


def merged(base: Mapping[str, Mapping[str, Any]], values: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """A copy of the config dict ``base`` with ``{section.key: value}`` set."""
    data = {section: dict(keys) for section, keys in copy.deepcopy(dict(base)).items()}
    for key, value in values.items():
        set_key(data, key, value)
    return data


def _apply_set(data: dict[str, Any], text: str) -> None:
    """Apply one ``--set key=value`` (``num_samples=4``, ``overrides.train.seed=3``) to the sweep file."""
    key, sep, value_text = text.partition("=")
    top, _dot, rest = key.strip().partition(".")
    if not sep or not top:
        raise ConfigError(f"bad --set {text!r}: expected key=value, e.g. num_samples=4 or overrides.train.seed=1")
    if top not in SWEEP_KEYS:
        raise ConfigError(f"bad --set {text!r}: unknown key {top!r}{did_you_mean(top, SWEEP_KEYS)}")
    value = parse_set_value(value_text, f"bad --set {text!r}")
    if not rest:
        data[top] = value
        return
    if top not in MAPPING_KEYS:
        raise ConfigError(f"bad --set {text!r}: {top} is not a mapping; use --set {top}=VALUE")
    current = data.get(top)
    data[top] = {**(current if isinstance(current, Mapping) else {}), rest: value}


def _read_sweep_file(path: str | os.PathLike, sets: Sequence[str], num_samples: int | None) -> SweepFile:
    """The sweep file at ``path`` with the ``--set`` changes and ``--num-samples``, its keys checked."""
    source = os.fspath(path)
    data = read_yaml(path)
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ConfigError(f"sweep file '{source}' must contain a mapping, got {show(data)}")
    data = dict(data)
    for text in sets:
        _apply_set(data, text)
    if num_samples is not None:
        data["num_samples"] = num_samples
    try:
        return sweep_file_from_dict(data)
    except ConfigError as error:
        raise ConfigError(f"{source}: {error}") from None


def _base_config(sweep_file: SweepFile, fail: Fail) -> Config:
    """The base config with the sweep's overrides (load_config reports the base file's own problems)."""
    base_config = load_config(config_path_or_default(sweep_file.base_config))
    try:
        return config_from_dict(merged(config_to_dict(base_config), sweep_file.overrides))
    except ConfigError as error:
        raise fail(f"overrides: {error}") from None


def _worker_processes(config: Config, overrides: Mapping[str, Any], fail: Fail) -> bool:
    """Whether the trials' envs step in worker processes (in-process unless the overrides ask for
    processes); refuses what cannot work inside a Ray trial."""
    mp = config.multiprocessing
    asked_for_processes = overrides.get("multiprocessing.use_multiprocessing") is True
    chunk_processes = mp.backend == "chunked" and mp.use_multiprocessing and asked_for_processes
    subprocesses = mp.backend == "sb3_subproc" or chunk_processes
    if subprocesses and mp.start_method == "fork":
        raise fail(
            "multiprocessing.start_method=fork is not safe inside a Ray trial (forking a process that "
            "runs Ray's threads can deadlock); use forkserver or spawn"
        )
    if (subprocesses or mp.backend == "ray") and mp.backend != "sb3_subproc" and mp.num_processes == "auto":
        raise fail(
            f"multiprocessing.num_processes=auto: with backend {mp.backend} and worker processes, set "
            "a number in overrides (it is the number of CPUs each trial reserves for its workers)"
        )
    return subprocesses


def _trial_plan(config: Config, name: str, subprocesses: bool) -> TrialPlan:
    """What every trial runs with, whatever the base config says: the sweep's directory, no
    progress bar, and in-process envs unless the trial's chunks run in worker processes."""
    sweep_dir = Path(os.path.abspath(config.train.output_dir)) / name
    sweep_settings = {
        "train.output_dir": str(sweep_dir),
        "logging.progress_bar": False,
        "multiprocessing.use_multiprocessing": subprocesses and config.multiprocessing.backend == "chunked",
    }
    base = config_to_dict(config_from_dict(merged(config_to_dict(config), sweep_settings)))
    return TrialPlan(base, os.path.abspath(os.getcwd()))


def _check_reports(base: Config, metric: str, fail: Fail) -> None:
    """The trials evaluate, report ``metric``, and can build their opponents."""
    if base.train.eval_every == 0:
        raise fail(
            "train.eval_every=0 disables evaluation, so trials would report nothing to Tune; "
            "set it under overrides, e.g. train.eval_every: 20000"
        )
    metrics = [
        *REPORTED_METRICS[:1],
        *(f"win_rate/{spec}" for spec in base.train.eval_opponents),
        *REPORTED_METRICS[1:],
    ]
    if metric not in metrics:
        raise fail(
            f"metric {metric!r} is not reported by the trials{did_you_mean(metric, metrics)}; with "
            f"train.eval_opponents={show(list(base.train.eval_opponents))} they report {', '.join(metrics)}"
        )
    try:
        check_opponents(base)
    except UserError as error:
        raise fail(str(error)) from None


def _reports(config: Config) -> int:
    """Evaluations (reports to Tune) a trial with ``config`` makes: SB3 collects whole rollouts."""
    rollout = config.ppo.n_steps * config.multiprocessing.parallel_episodes
    final_step = math.ceil(config.train.total_timesteps / rollout) * rollout
    return final_step // config.train.eval_every


def _report_counts(
    plan: TrialPlan, dimensions: Sequence[Dimension], base: Config, scheduler: Any, fail: Fail
) -> tuple[int, int]:
    """Reports of the shortest and the longest trial; both must allow ASHA to stop a trial."""
    reports = [_reports(config) for config in probe_configs(plan.trial_config, dimensions, fail)]
    min_reports, max_reports = min(reports), max(reports)
    if min_reports == 0:
        raise fail(
            f"train.eval_every={base.train.eval_every} is more than a trial's train.total_timesteps: "
            "trials would finish before their first evaluation and report nothing to Tune"
        )
    if scheduler.type == "asha" and scheduler.grace_period >= min_reports:
        raise fail(
            f"scheduler.grace_period={scheduler.grace_period} must be smaller than the number of "
            f"evaluations a trial makes (train.total_timesteps / train.eval_every = {min_reports}), or "
            "ASHA never stops a trial; lower it, evaluate more often, or use scheduler: {type: fifo}"
        )
    return min_reports, max_reports


def _bundles(
    resources: Resources, base: Config, subprocesses: bool, dimensions: Sequence[Dimension]
) -> list[dict[str, float]]:
    """The placement group of a trial: a bundle for the trainer (with its worker processes), plus
    one per chunk actor with the ray backend (Tune places a trial's actors in its group)."""
    mp = base.multiprocessing
    trainer = {"CPU": resources.cpu}
    if mp.backend == "chunked" and subprocesses:
        trainer["CPU"] = max(resources.cpu, float(mp.num_processes))
    elif mp.backend == "sb3_subproc":  # one process per env
        episodes = max(probe_values(dimensions, base, "multiprocessing.parallel_episodes"))
        trainer["CPU"] = max(resources.cpu, float(episodes))
    if resources.gpu:
        trainer["GPU"] = resources.gpu
    bundles = [trainer]
    if mp.backend == "ray":
        bundles += [{"CPU": base.ray.num_cpus_per_worker} for _ in range(mp.num_processes)]
    return bundles


def load_sweep(
    path: str | os.PathLike, sets: Sequence[str] = (), num_samples: int | None = None, address: str | None = None
) -> Sweep:
    """Read and validate the sweep file at ``path``; nothing is written and Ray is not needed.

    :param sets: ``key=value`` changes to the file, as ``--set``
    :param num_samples: replaces the file's ``num_samples`` (``--num-samples``)
    :param address: the Ray cluster (``--address``); None: the base config's ``ray.address``
    :raises UserError: on any bad key or value, naming it
    """
    source = os.fspath(path)
    sweep_file = _read_sweep_file(path, sets, num_samples)

    def fail(message: str) -> ConfigError:
        return ConfigError(f"{source}: {message}")

    if not sweep_file.search_space:
        raise fail(
            "search_space is empty: nothing to tune (to repeat one config over seeds, "
            "search train.seed: {grid: [0, 1, 2]})"
        )
    config = _base_config(sweep_file, fail)
    subprocesses = _worker_processes(config, sweep_file.overrides, fail)
    plan = _trial_plan(config, sweep_file.name, subprocesses)
    base = plan.trial_config({})
    _check_reports(base, sweep_file.metric, fail)
    workers_reserve_cpus = subprocesses or config.multiprocessing.backend == "ray"
    dimensions = [
        searched(key, spec, plan.trial_config, workers_reserve_cpus, fail)
        for key, spec in sweep_file.search_space.items()
    ]
    min_reports, max_reports = _report_counts(plan, dimensions, base, sweep_file.scheduler, fail)
    if base.train.device == "cuda" and not sweep_file.resources_per_trial.gpu:
        raise fail("train.device=cuda needs resources_per_trial.gpu > 0 (Ray hides GPUs from trials that reserve none)")
    scheduler = sweep_file.scheduler
    return Sweep(
        name=sweep_file.name,
        source=source,
        plan=plan,
        dimensions=tuple(dimensions),
        num_samples=sweep_file.num_samples,
        metric=sweep_file.metric,
        mode=sweep_file.mode,
        scheduler={key: getattr(scheduler, key) for key in scheduler.keys()},
        bundles=tuple(_bundles(sweep_file.resources_per_trial, base, subprocesses, dimensions)),
        max_concurrent_trials=sweep_file.max_concurrent_trials,
        seed=sweep_file.seed,
        address=(config.ray.address or "") if address is None else address,
        address_option="ray.address" if address is None else "--address",
        min_reports=min_reports,
        max_reports=max_reports,
    )
