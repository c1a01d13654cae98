"""Stopping a long command without losing its work: stop signals as one exception, output that may break.

A run that trains or labels for hours is stopped in many ways: Ctrl-C at the terminal (SIGINT to
the whole foreground process group, a ``| tee`` included), a scheduler's SIGTERM, or a closed
terminal (SIGHUP). :func:`stop_signals` turns each into :class:`Stopped`, a ``KeyboardInterrupt``
that remembers its signal, so the command saves once in its ``except KeyboardInterrupt`` and exits
with the shell's code for that signal (128 + its number). A signal the command was started with
ignored (``nohup`` ignores SIGHUP, a background job SIGINT) stays ignored.

Its output may be a terminal, a file or a pipe, and the pipe's reader (``tee``) may die first, or the
terminal may hang up: then every write raises ``BrokenPipeError`` or ``OSError(EIO)``.
:func:`guard_output` wraps ``sys.stdout`` and ``sys.stderr`` so that such a write is dropped and the
stream is pointed at ``/dev/null`` from then on: saving, periodic checkpoints and the run itself go
on. :func:`announce` says the last word (how to resume) on whichever output still works, or on the
controlling terminal when both streams are gone.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from collections.abc import Iterator
from typing import Any, TextIO

#: the signals that stop a long command after it has saved its work
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class Stopped(KeyboardInterrupt):
    """A stop signal arrived; the command saves, then exits with :attr:`exit_code`.

    :param signum: the signal (SIGINT for a plain ``KeyboardInterrupt``)
    """

    def __init__(self, signum: int = signal.SIGINT) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = int(signum)

    @property
    def exit_code(self) -> int:
        """What a shell reports for a process the signal ended: 128 + its number (130 for Ctrl-C)."""
        return 128 + self.signum

    @property
    def reason(self) -> str:
        """``interrupted`` for Ctrl-C, ``stopped by SIGTERM`` or ``stopped by SIGHUP`` otherwise."""
        return "interrupted" if self.signum == signal.SIGINT else f"stopped by {signal.Signals(self.signum).name}"


def as_stopped(error: KeyboardInterrupt) -> Stopped:
    """``error`` as a :class:`Stopped` (a plain ``KeyboardInterrupt`` is Ctrl-C's)."""
    return error if isinstance(error, Stopped) else Stopped(signal.SIGINT)


@contextlib.contextmanager
def stop_signals() -> Iterator[None]:
    """Within the block, SIGINT, SIGTERM and SIGHUP raise :class:`Stopped` in the main thread, once:
    a second signal while the first is being handled (the save) is ignored, so it cannot cut the
    save short. Signals ignored when the block starts stay ignored; the old handlers come back after.
    """
    stopping = False

    def handler(signum: int, frame: Any) -> None:
        nonlocal stopping
        if stopping:
            return
        stopping = True
        raise Stopped(signum)

    previous = {}
    for signum in STOP_SIGNALS:
        if signal.getsignal(signum) is not signal.SIG_IGN:
            previous[signum] = signal.signal(signum, handler)
    try:
        yield
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)


def ignore_stop_signals() -> None:
    """For worker processes: the stop signals reach the whole process group, and the parent decides
    how its workers stop (a worker exits when its pipe to the parent closes)."""
    for signum in (signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, signal.SIG_IGN)


class GuardedStream:
    """A text stream whose writes never raise for a reader that went away or a terminal that hung up.

    The first failed write or flush points the stream's file descriptor at ``/dev/null`` (so the
    interpreter's exit-time flush, and anything else writing to that descriptor, succeed too) and
    marks it :attr:`broken`; the text is dropped. Everything else is the wrapped stream's.
    """

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self.broken = False

    def _guarded(self, method: str, *args: Any) -> Any:
        if not self.broken:
            try:
                return getattr(self._stream, method)(*args)
            except OSError:  # EPIPE: the reader went away; EIO: the terminal hung up
                self._break()
        return len(args[0]) if method == "write" else None

    def _break(self) -> None:
        self.broken = True
        with contextlib.suppress(OSError, ValueError, AttributeError):
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, self._stream.fileno())
            os.close(devnull)
        with contextlib.suppress(OSError, ValueError):
            self._stream.flush()  # drops what the failed write left buffered, into /dev/null

    def write(self, text: str) -> int:
        return self._guarded("write", text)

    def flush(self) -> None:
        self._guarded("flush")

    def isatty(self) -> bool:
        return not self.broken and self._stream.isatty()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


@contextlib.contextmanager
def guard_output() -> Iterator[None]:
    """Within the block, ``sys.stdout`` and ``sys.stderr`` are :class:`GuardedStream` s."""
    saved = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = GuardedStream(sys.stdout), GuardedStream(sys.stderr)
    try:
        yield
    finally:
        sys.stdout, sys.stderr = saved


def announce(message: str) -> None:
    """Print ``message`` on standard error, else standard output if that one still works, else the
    controlling terminal (Ctrl-C at ``run | tee log`` kills ``tee``, whose pipe was both streams);
    where none works, the message is lost and nothing fails."""
    for stream in (sys.stderr, sys.stdout):
        if getattr(stream, "broken", False):
            continue
        try:
            print(message, file=stream, flush=True)
        except OSError:
            continue
        if not getattr(stream, "broken", False):
            return
    with contextlib.suppress(OSError), open("/dev/tty", "w", encoding="utf-8") as terminal:
        terminal.write(message + "\n")
