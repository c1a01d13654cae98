"""Opt-in timers of where an env worker's time goes, for ``benchmarks/bench_profile.py``.

With ``CONNECTX_PROFILE=1`` in the environment when a process imports this module, ``TIMERS`` adds
up seconds by label: ``step`` (a chunk's whole steps and resets), ``opponent:<name>`` (opponents' moves, by
kind; ``... batched`` for one forward pass over a chunk's envs), ``wait`` (a worker blocked on its
next message) and ``send`` (sending the reply). Otherwise ``TIMERS`` is None and nothing is timed.
"""

from __future__ import annotations

import collections
import os
import time
from typing import Any

TIMERS: collections.defaultdict[str, float] | None = (
    collections.defaultdict(float) if os.environ.get("CONNECTX_PROFILE") == "1" else None
)


def snapshot() -> dict[str, Any]:
    """This process's timers, CPU seconds and pid."""
    return {"timers": dict(TIMERS or {}), "cpu_s": time.process_time(), "pid": os.getpid()}
