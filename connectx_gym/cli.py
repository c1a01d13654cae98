"""What every command line shares: argument errors as one line, one exit-code policy, text tables.

Each ``python -m connectx_gym.<command>`` builds its parser with :class:`ArgumentParser` and
hands its work to :func:`run_command`, which turns the package's errors into exit codes:
a :class:`~connectx_gym.errors.UserError` (bad input) prints ``error: ...`` and exits 2, a
:class:`~connectx_gym.errors.WorkerError` (a worker process or actor failed) exits 1, and Ctrl-C
exits 130. Commands that must save on Ctrl-C (training) catch it themselves first.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence

from connectx_gym.errors import UserError, WorkerError

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130
EXIT_BROKEN_PIPE = 141


class ArgumentParser(argparse.ArgumentParser):
    """``argparse`` whose errors are ``UserError``s: one ``error: ...`` line from the command's
    runner, not argparse's usage block."""

    def error(self, message: str):  # type: ignore[override]
        raise UserError(message)


def integer_option(option: str, value: object, minimum: int) -> int:
    """The integer an option's text names; a ``UserError`` naming the option and the text otherwise."""
    try:
        number = int(str(value).strip())
    except ValueError:
        number = None
    if number is None or number < minimum:
        raise UserError(f"{option} must be an integer >= {minimum}, got {value!r}")
    return number


def add_config_options(parser: argparse.ArgumentParser, config_help: str, example: str) -> None:
    """``--config FILE`` and the repeatable ``--set SECTION.KEY=VALUE`` of the commands that read a config."""
    parser.add_argument("--config", help=config_help)
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="SECTION.KEY=VALUE",
        help=f"override one config value (repeatable), e.g. --set {example}",
    )


def run_command(command: Callable[[], int | None]) -> int:
    """Run ``command`` and map its outcome to an exit code.

    :param command: the command's work; returns an exit code, or None for success
    :return: that code; 2 after a ``UserError``, 1 after a ``WorkerError``, 130 after Ctrl-C, 141
        when the reader of stdout went away (``... | head``), as a shell reports SIGPIPE
    """
    try:
        code = command()
        sys.stdout.flush()  # a closed pipe shows here, not in the interpreter's exit-time flush
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except WorkerError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # the reader closed the pipe: stop quietly, and keep Python's exit-time flush from failing again
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
    return EXIT_OK if code is None else code


def format_table(headers: Sequence[str], rows: Sequence[Sequence[str]], right: Sequence[bool]) -> str:
    """A plain text table: a header, a rule, and ``rows`` of text cells in padded columns.

    :param right: per column, whether it is right-aligned (numbers) rather than left-aligned
    """
    widths = [max([len(header)] + [len(row[i]) for row in rows]) for i, header in enumerate(headers)]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(c.rjust(w) if r else c.ljust(w) for c, w, r in zip(cells, widths, right)).rstrip()

    return "\n".join([line(headers), line(["-" * w for w in widths])] + [line(row) for row in rows])
