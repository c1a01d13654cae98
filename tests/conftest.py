"""Session setup shared by every test module."""

from __future__ import annotations

import os

import pytest


@pytest.fixture(autouse=True, scope="session")
def sb3_log_folder(tmp_path_factory):
    """SB3 models that learn without a logger of their own (the tests' tiny models) make SB3's default
    logger folder, an empty ``SB3-<date>`` folder in the system's temp directory, each time; point
    them all at one folder of the test session's temp directory instead."""
    os.environ["SB3_LOGDIR"] = str(tmp_path_factory.mktemp("sb3"))
    yield
    os.environ.pop("SB3_LOGDIR", None)


@pytest.fixture(autouse=True, scope="session")
def stop_signals_not_ignored():
    """The stop tests send SIGINT and SIGHUP to this process, and the package keeps a signal ignored when
    it was ignored at the start (a background job from a script starts with SIGINT ignored, nohup with
    SIGHUP): give both their default behaviour for the session, so that the tests do not depend on how
    pytest was started."""
    import signal

    previous = {}
    for signum, default in ((signal.SIGINT, signal.default_int_handler), (signal.SIGHUP, signal.SIG_DFL)):
        if signal.getsignal(signum) is signal.SIG_IGN:
            previous[signum] = signal.signal(signum, default)
    yield
    for signum, old in previous.items():
        signal.signal(signum, old)
