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
