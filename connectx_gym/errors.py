"""User-facing error types.

Every error a user can cause with bad input (a config key or value, a CLI argument, an opponent
spec, a checkpoint or agent file) is a ``UserError``: the command-line entry points print its
message on one line and exit non-zero without a traceback.
"""

from __future__ import annotations

import argparse
import difflib
from typing import Iterable


class UserError(ValueError):
    """Bad input from the user; the message names the thing and the value."""


class ConfigError(UserError):
    """A configuration key or value is unknown, of the wrong type, or impossible."""


class SpecError(UserError):
    """An agent/opponent spec string could not be parsed or loaded."""


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """A ' (did you mean 'x'?)' hint for a misspelt ``name``, or an empty string."""
    close = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


class ArgumentParser(argparse.ArgumentParser):
    """``argparse`` whose errors are ``UserError``s: one ``error: ...`` line from the CLI's handler,
    not argparse's usage block."""

    def error(self, message: str):  # type: ignore[override]
        raise UserError(message)
