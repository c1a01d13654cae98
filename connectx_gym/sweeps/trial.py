"""One trial of a sweep, run by Ray Tune in a worker process of its own: it enters the sweep's
launch directory, sends its output to the run directory's ``train.log``, builds its config from
the sweep's plan and its sampled values, and trains it, reporting to Tune after every evaluation;
any failure becomes :class:`TrialFailed` with a one-line message for the sweep's table.
"""

from __future__ import annotations

import contextlib
import os
import sys
import traceback
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from connectx_gym.config import Config
from connectx_gym.errors import UserError, WorkerError
from connectx_gym.sweeps.plan import TrialPlan
from connectx_gym.training.loop import run

if TYPE_CHECKING:  # the trainer imports torch: only inside the trial, never on the driver
    from connectx_gym.training.loop import TrainResult

__all__ = ["TRIAL_LOG_NAME", "TrialFailed", "flat", "run_trial", "trial_name"]

#: a trial's stdout and stderr, in its run directory
TRIAL_LOG_NAME = "train.log"


class TrialFailed(RuntimeError):
    """A trial's training failed; the message says why and where its log is."""


def trial_name(trial: Any) -> str:
    """``trial_00000``...: Tune's trial counter (trial ids are ``<random>_<counter>``)."""
    return "trial_" + str(trial.trial_id).rsplit("_", 1)[-1]


def flat(sampled: Mapping[str, Any]) -> dict[str, Any]:
    """``{section.key: value}`` from Tune's nested trial config."""
    return {f"{section}.{name}": value for section, values in sampled.items() for name, value in values.items()}


def _output_to(log_path: Path) -> None:
    """Send this process's stdout and stderr, Python's and the file descriptors', to ``log_path``
    for good: the process is the trial's own (``reuse_actors=False``), and what it prints after
    the trainer (Ray's own noise when Tune stops a trial early) belongs in the log, not on the
    sweep's terminal, where Ray would forward it."""
    log = open(log_path, "a", encoding="utf-8", buffering=1)  # open for the rest of the process
    for stream, fd in ((sys.stdout, 1), (sys.stderr, 2)):
        with contextlib.suppress(Exception):
            stream.flush()
        os.dup2(log.fileno(), fd)
    sys.stdout = sys.stderr = log


def _train(trial_config: Config, run_dir: Path, report: Callable[..., Any]) -> TrainResult:
    """The sweep's one call into the trainer (``training.loop.run``)."""
    return run(trial_config, run_dir, None, report=report)


def run_trial(config: dict[str, Any], plan: TrialPlan) -> None:
    """The Tune trainable: train one trial's config, reporting to Tune after every evaluation.

    Runs in the sweep's launch directory; the process's output goes to the run directory's
    ``train.log``. Raises :class:`TrialFailed` (Tune marks the trial errored) when training fails.

    :param config: the trial's sampled values, ``{section: {key: value}}``
    :param plan: the base config and launch directory
    """
    # optional extra [ray]: imported only when Ray is used
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
        _train(plan.trial_config(flat(config), name), run_dir, tune.report)
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        raise TrialFailed(str(error)) from None
    except WorkerError as error:  # TrainingFailed: the trainer saved a checkpoint, the message says where
        print(f"error: {error}", file=sys.stderr)
        raise TrialFailed(f"training failed: {str(error).splitlines()[0]}; see {log_path}") from None
    except Exception as error:
        traceback.print_exc()
        raise TrialFailed(f"{type(error).__name__}: {error} (traceback in {log_path})") from None
