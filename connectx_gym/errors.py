"""User-facing error types.

Every error a user can cause with bad input (a config key or value, a CLI argument, an opponent
spec, a checkpoint or agent file) is a ``UserError``: the command-line entry points print its
message on one line and exit non-zero without a traceback.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class UserError(ValueError):
    """Bad input from the user; the message names the thing and the value."""


class ConfigError(UserError):
    """A configuration key or value is unknown, of the wrong type, or impossible."""


class SpecError(UserError):
    """An agent/opponent spec string could not be parsed or loaded."""


class WorkerError(RuntimeError):
    """A worker process, Ray actor or task failed (not an agent: agents' errors are forfeits).

    The message names the worker and the cause; ``worker_traceback`` keeps the worker's traceback.
    """

    def __init__(self, message: str, worker_traceback: str = "") -> None:
        super().__init__(message)
        self.worker_traceback = worker_traceback


class TrainingFailed(WorkerError):
    """Training stopped because a worker failed; the message says what failed and where the model was saved."""


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """A ' (did you mean 'x'?)' hint for a misspelt ``name``, or an empty string."""
    close = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""
