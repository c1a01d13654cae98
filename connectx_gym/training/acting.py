"""The acting thread of overlapped training (``train.overlap``): collects the next rollout while the
current one is learned from.

``ActingThread.start(collect)`` runs ``collect(rollout)`` in a daemon thread; ``join`` waits for it and
hands back the :class:`Rollout` (raising, in the caller's thread, any error the collection raised);
``stop`` asks the collection to end after its current step and waits. The trainer decides what to
collect and when; this module only owns the thread, so a second trainer can overlap the same way.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class Rollout:
    """What one collection produced besides its buffer: each step's infos and dones, for the callbacks."""

    steps: list[tuple[list[dict[str, Any]], np.ndarray]] = field(default_factory=list)
    error: BaseException | None = None


class ActingThread:
    """At most one collection running beside the main thread."""

    def __init__(self) -> None:
        #: set by ``stop``: a collection checks it before each step and returns when it is set
        self.stop_event = threading.Event()
        self.thread: threading.Thread | None = None
        self.pending: Rollout | None = None

    @property
    def running(self) -> bool:
        """Whether a collection was started and not yet joined or stopped."""
        return self.thread is not None

    def start(self, collect: Callable[[Rollout], None]) -> None:
        """Run ``collect`` on a fresh :class:`Rollout` in the thread."""
        self.stop_event.clear()
        rollout = self.pending = Rollout()

        def body() -> None:
            try:
                collect(rollout)
            except BaseException as error:  # handed to the main thread by join
                rollout.error = error

        self.thread = threading.Thread(target=body, name="connectx-acting", daemon=True)
        self.thread.start()

    def join(self) -> Rollout:
        """Wait for the running collection and return its rollout; re-raises the error it raised."""
        assert self.thread is not None and self.pending is not None
        self.thread.join()
        rollout, self.thread, self.pending = self.pending, None, None
        if rollout.error is not None:
            raise rollout.error
        return rollout

    def stop(self) -> None:
        """Stop the running collection after its current step and wait for it (its errors are dropped)."""
        if self.thread is None:
            return
        self.stop_event.set()
        self.thread.join()
        self.thread = self.pending = None
