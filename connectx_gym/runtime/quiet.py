"""Import stable-baselines3 without the old ``gym`` package's deprecation banner.

kaggle-environments installs the unmaintained ``gym``, which prints a banner to stderr when
imported, and stable-baselines3 imports it if present. Importing ``gym`` once with stderr
silenced keeps users' terminals clean; forkserver workers preload this module for the same reason.
"""

from __future__ import annotations

import contextlib
import io
import sys


def quiet_import_gym() -> None:
    """Import the legacy ``gym`` (if installed) with its stderr banner swallowed."""
    if "gym" in sys.modules:
        return
    with contextlib.redirect_stderr(io.StringIO()):
        try:
            import gym  # noqa: F401
        except Exception:  # not installed or broken: stable-baselines3 copes without it
            pass


def quiet_import_sb3() -> None:
    """Import stable_baselines3 and sb3_contrib with the legacy gym banner suppressed."""
    quiet_import_gym()
    import stable_baselines3  # noqa: F401


quiet_import_gym()
