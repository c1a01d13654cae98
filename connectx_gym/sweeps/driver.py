"""The sweep's driver: join or start Ray, check that a trial fits on the cluster, run the trials
with Ray Tune (ASHA or FIFO, a placement group per trial, Tune's own output kept quiet) and hand
what the trials reported to :mod:`connectx_gym.sweeps.report`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from typing import Any

from connectx_gym.errors import UserError
from connectx_gym.runtime.ray_cluster import cluster_cpus, connect
from connectx_gym.sweeps.plan import Sweep
from connectx_gym.sweeps.report import TrialRecord, print_results, progress_callback
from connectx_gym.sweeps.trial import run_trial, trial_name

__all__ = ["TUNE_DIR_NAME", "WHAT", "run_sweep"]

WHAT = "python -m connectx_gym.tune"
#: Tune's experiment directory inside the sweep directory (trials' run directories sit beside it)
TUNE_DIR_NAME = "ray_tune"
#: the loggers Tune reports failed trials on
_TUNE_LOGGERS = ("ray.tune.execution.tune_controller", "ray.tune.tune")


class _DropTrialFailureLogs(logging.Filter):
    """Drops Tune's own ERROR records about failed trials (a traceback each): the sweep prints one
    line per failed trial and the table names the error; the trial's log has the traceback."""

    PREFIXES = ("Trial task failed", "Trials did not complete")

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.levelno >= logging.ERROR and str(record.msg).startswith(self.PREFIXES))


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


def _cluster(sweep: Sweep) -> int:
    """Join or start Ray; returns its CPU count. Raises UserError when a trial cannot fit."""
    ray = connect(sweep.address, what=WHAT, option=sweep.address_option)
    cpus = cluster_cpus(ray)
    gpus = ray.cluster_resources().get("GPU", 0)
    if sweep.trial_cpus > cpus or sweep.trial_gpus > gpus:
        raise UserError(
            f"a trial reserves {sweep.trial_cpus:g} CPUs and {sweep.trial_gpus:g} GPUs, but the Ray cluster has "
            f"{cpus} CPUs and {gpus:g} GPUs; lower resources_per_trial (or multiprocessing.num_processes) or add nodes"
        )
    return cpus


def _scheduler(sweep: Sweep, early_stopped: set[str]) -> Any:
    """Tune's scheduler for the sweep; ASHA notes in ``early_stopped`` the trials it stops."""
    # optional extra [ray]: imported only when Ray is used
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler

    if sweep.scheduler["type"] != "asha":
        return FIFOScheduler()

    class RecordingASHA(ASHAScheduler):
        """ASHA that notes which trials it stops (the results table tells them from Ctrl-C)."""

        def on_trial_result(self, tune_controller: Any, trial: Any, result: dict) -> str:
            action = super().on_trial_result(tune_controller, trial, result)
            if action == self.STOP:
                early_stopped.add(str(trial))
            return action

    # Rungs strictly below every trial's last report, so ASHA never stops a trial while it
    # saves its final model; trials that pass the last rung run to the end.
    return RecordingASHA(
        time_attr="training_iteration",
        max_t=max(sweep.min_reports - 1, sweep.scheduler["grace_period"]),
        grace_period=sweep.scheduler["grace_period"],
        reduction_factor=sweep.scheduler["reduction_factor"],
        brackets=sweep.scheduler["brackets"],
        stop_last_trials=False,
    )


def _tuner(sweep: Sweep, scheduler: Any, callback: Any) -> Any:
    """The Tuner running ``run_trial`` over the sweep's search space, a placement group per trial."""
    # optional extra [ray]: imported only when Ray is used
    from ray import tune
    from ray.tune.search import BasicVariantGenerator

    trainable = tune.with_resources(
        tune.with_parameters(run_trial, plan=sweep.plan), tune.PlacementGroupFactory(list(sweep.bundles))
    )
    return tune.Tuner(
        trainable,
        param_space=sweep.param_space(tune),
        tune_config=tune.TuneConfig(
            metric=sweep.metric,
            mode=sweep.mode,
            num_samples=sweep.num_samples,
            scheduler=scheduler,
            search_alg=BasicVariantGenerator(random_state=sweep.seed),
            max_concurrent_trials=sweep.max_concurrent_trials,
            reuse_actors=False,
            trial_name_creator=trial_name,
            trial_dirname_creator=trial_name,
        ),
        run_config=tune.RunConfig(
            name=TUNE_DIR_NAME,
            storage_path=str(sweep.sweep_dir),
            verbose=0,
            callbacks=[callback],
        ),
    )


def run_sweep(sweep: Sweep) -> int:
    """Start or join Ray, run the trials, print and write the results; returns the exit code.

    :raises UserError: when Ray is missing, the cluster cannot be reached or cannot fit a trial
    """
    cpus = _cluster(sweep)
    # Tune warns whenever one of its steps takes over 0.5 s, which a driver sharing its cores with
    # busy trials often does; the threshold is read when ray.tune is first imported.
    os.environ.setdefault("TUNE_WARN_THRESHOLD_S", "10")
    early_stopped: set[str] = set()
    scheduler = _scheduler(sweep, early_stopped)
    sweep.sweep_dir.mkdir(parents=True, exist_ok=False)
    records: dict[str, TrialRecord] = {}
    tuner = _tuner(sweep, scheduler, progress_callback(sweep, records, early_stopped))
    concurrent = int(cpus // sweep.trial_cpus)
    if sweep.max_concurrent_trials:
        concurrent = min(concurrent, sweep.max_concurrent_trials)
    print(
        f"sweep {sweep.name}: {sweep.num_trials} trial{'s' * (sweep.num_trials != 1)}, up to {concurrent} at once "
        f"({sweep.trial_cpus:g} of {cpus} CPUs each); outputs in {sweep.sweep_dir}",
        file=sys.stderr,
        flush=True,
    )
    with _quiet_tune():
        tuner.fit()
    return print_results(sweep, records)
