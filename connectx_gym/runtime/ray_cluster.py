"""Ray, the optional extra: importing it with a helpful message, and joining or starting a cluster.

Everything Ray-related in the package (the ``ray`` vec-env backend, ``evaluate --backend ray`` and
``python -m connectx_gym.tune``) goes through here, so a missing install or a cluster that cannot
be reached is one clear ``error:`` line, and a local instance starts the same way everywhere:
limited to this machine's usable cores, without the dashboard, and without Ray's INFO chatter.
"""

from __future__ import annotations

import logging
import os
import socket
from pathlib import Path
from types import ModuleType

from connectx_gym.errors import UserError
from connectx_gym.runtime.processes import usable_cpu_count

#: seconds to wait for a TCP connection to a cluster's head node before calling it unreachable
REACHABLE_TIMEOUT_S = 5.0
#: Ray's switch for token authentication, and where ``ray start`` keeps the token
AUTH_MODE_VARIABLE = "RAY_AUTH_MODE"
DEFAULT_TOKEN_PATH = Path.home() / ".ray" / "auth_token"
TOKEN_HINT = (
    " (this machine sent its Ray token; the cluster's is in ~/.ray/auth_token on its head node: copy it "
    "there or set RAY_AUTH_TOKEN)"
)
INSTALL_HINT = 'pip install -e ".[ray]"  (or: pip install "ray[tune]")'


def import_ray(what: str) -> ModuleType:
    """The ``ray`` module, or a ``UserError`` saying that ``what`` needs it and how to install it."""
    try:
        # optional extra [ray]: imported only when Ray is used
        import ray
    except ImportError:
        raise UserError(f"{what} needs Ray, which is not installed; install the extra with: {INSTALL_HINT}") from None
    if not hasattr(ray, "init"):  # e.g. Ray's own session folder /tmp/ray, imported from the current directory
        where = ", ".join(getattr(ray, "__path__", [])) or getattr(ray, "__file__", "?")
        raise UserError(
            f"{what} needs Ray, but 'import ray' found {where}, which is not Ray; run from another directory "
            f"or install the extra with: {INSTALL_HINT}"
        )
    return ray


def connect(
    address: str = "", num_cpus: int | None = None, what: str = "the ray backend", option: str = "ray.address"
) -> ModuleType:
    """Join the Ray cluster at ``address`` or start a local instance; returns the ``ray`` module.

    :param address: empty for a new local instance, ``auto`` for the cluster ``ray start`` left
        running on this machine, ``host:port`` or ``ray://host:port`` for a given one
    :param num_cpus: CPUs of a new local instance (default: this process's usable cores);
        ignored when joining a cluster, which has its own
    :param what: what needs Ray, for the message when it is not installed
    :param option: where ``address`` came from (a config key or a ``--flag``), for error messages
    """
    ray = import_ray(what)
    if ray.is_initialized():
        return ray
    options = dict(include_dashboard=False, logging_level=logging.ERROR)
    if address:
        shown = f"{option} {address}" if option.startswith("-") else f"{option}={address!r}"
        _check_reachable(address, shown)
        token = _use_auth_token(address)
        try:
            ray.init(address=address, **options)
        except Exception as error:  # ConnectionError, ValueError, RuntimeError, TimeoutError, ...
            summary = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            hint = TOKEN_HINT if token else ""
            raise UserError(f"{shown}: cannot connect to a Ray cluster: {summary}{hint}") from None
        return ray
    # 'local': a new instance even where RAY_ADDRESS or an earlier `ray start` names a cluster,
    # which a bare ray.init() would join instead
    ray.init(address="local", num_cpus=num_cpus or usable_cpu_count(), **options)
    return ray


def _use_auth_token(address: str) -> bool:
    """Send this machine's Ray token when joining a cluster by address; returns whether this call
    turned token authentication on (then a refusal may be about the token, and the message says so).

    ``ray start`` enables token authentication whenever a token exists (``~/.ray/auth_token``,
    or ``RAY_AUTH_TOKEN``/``RAY_AUTH_TOKEN_PATH``), but a driver joining by ``host:port`` sends it
    only with ``RAY_AUTH_MODE=token``, and is refused after many warnings without it. A
    ``RAY_AUTH_MODE`` the user set is left alone, and ``auto`` finds the mode by itself.
    """
    if address == "auto" or AUTH_MODE_VARIABLE in os.environ:
        return False
    if os.environ.get("RAY_AUTH_TOKEN") or os.environ.get("RAY_AUTH_TOKEN_PATH") or DEFAULT_TOKEN_PATH.is_file():
        os.environ[AUTH_MODE_VARIABLE] = "token"
        try:  # Ray reads the variable when it is imported: refresh its config, as `ray start` does
            # optional extra [ray]: imported only when Ray is used
            from ray._raylet import Config

            Config.initialize("")
        except Exception:  # another Ray version: the variable alone then has to do
            pass
        return True
    return False


def _check_reachable(address: str, shown: str) -> None:
    """Refuse a ``host:port`` (or ``ray://host:port``) that does not accept connections.

    Ray itself retries an unreachable head node for minutes, printing warnings all the while;
    a plain TCP connection answers in a moment. Other forms (``auto``) are left to Ray.
    """
    target = address.split("://", 1)[1] if "://" in address else address
    host, sep, port = target.rpartition(":")
    if not sep or not host or not port.isdigit():
        return
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=REACHABLE_TIMEOUT_S).close()
    except OSError as error:
        reason = error.strerror or type(error).__name__ if not isinstance(error, socket.timeout) else "timed out"
        raise UserError(
            f"{shown}: cannot connect to a Ray cluster: nothing answers at {host}:{port} ({reason})"
        ) from None


def cluster_cpus(ray: ModuleType) -> int:
    """CPUs the connected cluster offers in all (at least 1)."""
    return max(1, int(ray.cluster_resources().get("CPU", 1)))
