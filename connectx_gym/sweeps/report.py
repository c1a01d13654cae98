"""What the sweep tells the user, on the driver: a line per started and finished trial (a Tune
callback that also records each trial's results), then the results table sorted best first,
``results.csv`` and the best trial's run directory and model.
"""

from __future__ import annotations

import contextlib
import csv
import io
import math
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from connectx_gym.cli import format_table
from connectx_gym.config.schema import show
from connectx_gym.errors import UserError
from connectx_gym.runtime.files import write_atomic
from connectx_gym.sweeps.plan import Sweep
from connectx_gym.sweeps.trial import TRIAL_LOG_NAME, TrialFailed, flat
from connectx_gym.training.layout import BEST_MODEL_NAME, FINAL_MODEL_NAME

__all__ = [
    "RESULTS_NAME",
    "TrialRecord",
    "print_results",
    "progress_callback",
    "results_rows",
    "results_table",
    "sorted_records",
    "write_results",
]

RESULTS_NAME = "results.csv"
#: columns of results.csv that the printed table leaves out
_CSV_ONLY = ("run_dir", "model", "error")


@dataclass
class TrialRecord:
    """What the sweep saw of one trial."""

    name: str
    sampled: dict[str, Any]
    total_timesteps: int
    run_dir: Path
    results: list[dict[str, Any]] = field(default_factory=list)
    status: str = "unfinished"
    error: str = ""

    def values(self, key: str) -> list[float]:
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
    # optional extra [ray]: imported only when Ray is used
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
    return show(value)


def progress_callback(sweep: Sweep, records: dict[str, TrialRecord], early_stopped: set[str], out=sys.stderr):
    """A Tune callback printing one line per started and finished trial, filling ``records``.

    :param early_stopped: names of the trials the scheduler stopped (filled by the scheduler)
    """
    # optional extra [ray]: imported only when Ray is used
    from ray.tune import Callback

    metric = sweep.metric

    def say(text: str) -> None:
        print(text, file=out, flush=True)

    class TrialLines(Callback):
        def record(self, trial: Any) -> TrialRecord:
            name = str(trial)
            if name not in records:
                sampled = flat(trial.config)
                try:
                    total = sweep.plan.trial_config(sampled).train.total_timesteps
                except UserError:  # a sampled value the config rejects: the trial fails and says why
                    total = sweep.plan.base["train"]["total_timesteps"]
                records[name] = TrialRecord(
                    name=name, sampled=sampled, total_timesteps=total, run_dir=sweep.sweep_dir / name
                )
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
            speeds = record.values("steps_per_s")
            say(
                f"{record.name} {how}: {metric} {_cell(record.last(metric))} "
                f"(best {_cell(record.best(metric, sweep.mode))}) at {steps} steps, "
                f"{_cell(sum(speeds) / max(len(speeds), 1))} steps/s {self.finished()}"
            )

        def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
            record = self.record(trial)
            record.status = "error"
            record.error = _trial_error(trial) or f"see {record.run_dir / TRIAL_LOG_NAME}"
            say(f"{record.name} failed: {record.error} {self.finished()}")

    return TrialLines()


def sorted_records(records: Sequence[TrialRecord], metric: str, mode: str) -> list[TrialRecord]:
    """Trials with results first, best last ``metric`` first (ties: best ``metric`` ever), errors last."""
    sign = -1.0 if mode == "max" else 1.0

    def key(record: TrialRecord):
        last, best = record.last(metric), record.best(metric, mode)
        return (
            math.isnan(last),
            record.status == "error",
            sign * (0.0 if math.isnan(last) else last),
            sign * (0.0 if math.isnan(best) else best),
            record.name,
        )

    return sorted(records, key=key)


def results_rows(sweep: Sweep, records: Sequence[TrialRecord]) -> tuple[list[str], list[list[Any]]]:
    """Header and rows of the results, best trial first."""
    keys = [dimension.key for dimension in sweep.dimensions]
    header = [
        "trial",
        "status",
        *keys,
        sweep.metric,
        f"best_{sweep.metric}",
        "steps_per_s",
        "timesteps",
        "reports",
        "run_dir",
        "model",
        "error",
    ]
    rows = []
    for record in sorted_records(records, sweep.metric, sweep.mode):
        speeds = record.values("steps_per_s")
        rows.append(
            [
                record.name,
                record.status,
                *(record.sampled.get(key) for key in keys),
                record.last(sweep.metric),
                record.best(sweep.metric, sweep.mode),
                sum(speeds) / len(speeds) if speeds else math.nan,
                int(record.last("timesteps")) if record.results else 0,
                len(record.results),
                str(record.run_dir),
                record.model,
                record.error,
            ]
        )
    return header, rows


def results_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """The results as a text table: numbers shortened and right-aligned (a column is numeric when
    every row holds a number there), everything else left-aligned."""
    right = [
        bool(rows) and all(isinstance(row[i], (int, float)) and not isinstance(row[i], bool) for row in rows)
        for i in range(len(header))
    ]
    return format_table(header, [[_cell(value) for value in row] for row in rows], right)


def _csv_cell(value: Any) -> Any:
    """A value as results.csv holds it: numbers in full, missing ones empty, lists as YAML."""
    if value is None or isinstance(value, float) and math.isnan(value):
        return ""
    if isinstance(value, (int, float, str)) and not isinstance(value, bool):
        return value
    return show(value)


def write_results(path: Path, header: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """``results.csv``: the table, one row per trial, values as plain YAML-ish text."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(header)
    for row in rows:
        writer.writerow([_csv_cell(value) for value in row])
    write_atomic(path, buffer.getvalue().encode("utf-8"))


def print_results(sweep: Sweep, records: dict[str, TrialRecord]) -> int:
    """Write ``results.csv``, print the table and the best trial; returns the sweep's exit code
    (1 when no trial reported a result)."""
    header, rows = results_rows(sweep, list(records.values()))
    write_results(sweep.sweep_dir / RESULTS_NAME, header, rows)
    shown = [i for i, title in enumerate(header) if title not in _CSV_ONLY]
    print(results_table([header[i] for i in shown], [[row[i] for i in shown] for row in rows]))
    print(f"results: {sweep.sweep_dir / RESULTS_NAME}")
    unfinished = sweep.num_trials - sum(1 for r in records.values() if r.status in ("done", "stopped", "error"))
    if unfinished:
        print(
            f"sweep interrupted: {unfinished} of {sweep.num_trials} trials did not finish (an interrupted "
            f"trial continues with: python -m connectx_gym.train --resume <its run directory>)",
            file=sys.stderr,
        )
    ranked = [r for r in sorted_records(list(records.values()), sweep.metric, sweep.mode) if r.results]
    if not ranked:
        errors = [r for r in records.values() if r.error]
        first = f"; first error: {errors[0].name}: {errors[0].error}" if errors else ""
        print(f"error: no trial reported a result{first}", file=sys.stderr)
        return 1
    best = ranked[0]
    print(f"best trial: {best.name} ({sweep.metric} {_cell(best.last(sweep.metric))}); run directory: {best.run_dir}")
    if best.model:
        print(f"export it with: python -m connectx_gym.export {best.model}")
    return 0
