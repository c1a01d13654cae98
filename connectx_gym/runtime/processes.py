"""Processes and threads: how many cores this process may use, and keeping each worker to one thread.

Several worker processes share the machine's cores as a group. A multi-threaded BLAS or OpenMP
pool in each would oversubscribe them, so every place that starts workers or plays games next to
them uses these helpers: ``single_threaded_children`` for the environment children inherit,
``limit_threads`` inside a worker, and ``single_threaded_blas`` for this process's own OpenBLAS.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import sys
from typing import Any


def usable_cpu_count() -> int:
    """CPU cores this process may run on (its affinity mask), falling back to ``os.cpu_count()``."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not available on macOS/Windows
        return os.cpu_count() or 1


THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


@contextlib.contextmanager
def single_threaded_children():
    """Start processes with one BLAS/OpenMP thread each.

    Thread pools read these variables when numpy/torch load, which in a forkserver or spawn child
    happens at startup, from the environment it inherits: setting them inside the worker is too
    late. Each worker is one of several processes sharing the cores; a multi-threaded BLAS in
    each would oversubscribe them (a self-play opponent's forward pass slowed ~40x here).
    """
    saved = {name: os.environ.get(name) for name in THREAD_VARIABLES}
    os.environ.update({name: "1" for name in THREAD_VARIABLES})
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def limit_threads() -> None:
    """Keep a worker to one thread: the cores belong to the workers as a group, not to each.

    BLAS and OpenMP pools size themselves from the environment when they load, so the parent
    starts workers with those variables set (``single_threaded_children``); torch, if a
    worker happens to import it, is told directly.
    """
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(1)


_OPENBLAS_APIS: list[tuple[Any, Any]] | None = None


def openblas_apis() -> list[tuple[Any, Any]]:
    """``(get_num_threads, set_num_threads)`` of every OpenBLAS loaded in this process (Linux; else none).

    numpy reads ``OPENBLAS_NUM_THREADS`` only when it loads, which in this process happened
    before any of our code ran; OpenBLAS's own C API changes it at run time.
    """
    global _OPENBLAS_APIS
    if _OPENBLAS_APIS is None:
        _OPENBLAS_APIS = []
        try:
            with open("/proc/self/maps", encoding="utf-8") as handle:
                paths = sorted({line.split()[-1] for line in handle if "openblas" in line.lower() and "/" in line})
        except OSError:
            paths = []
        for path in paths:
            try:
                library = ctypes.CDLL(path)
            except OSError:
                continue
            for prefix in ("scipy_openblas", "openblas"):
                for suffix in ("64_", ""):
                    get = getattr(library, f"{prefix}_get_num_threads{suffix}", None)
                    set_ = getattr(library, f"{prefix}_set_num_threads{suffix}", None)
                    if get is not None and set_ is not None:
                        get.restype, set_.argtypes = ctypes.c_int, [ctypes.c_int]
                        _OPENBLAS_APIS.append((get, set_))
    return _OPENBLAS_APIS


@contextlib.contextmanager
def single_threaded_blas():
    """This process's OpenBLAS on one thread for a while (a no-op where it cannot be found).

    While this process plays games next to the workers, a multi-threaded BLAS here would spin on
    the cores they need (``docs/benchmarks.md`` has what it cost).
    """
    apis = openblas_apis()
    before = [get() for get, _ in apis]
    for _, set_ in apis:
        set_(1)
    try:
        yield
    finally:
        for (_, set_), count in zip(apis, before):
            set_(count)
