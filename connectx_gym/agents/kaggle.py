"""Any Kaggle ConnectX agent as an opponent: a built-in name or a submission file, run by Kaggle's code.

``kaggle_environments`` is imported here only, on first use (it is slow to import and its old
``gym`` prints a banner): parsing a ``kaggle:`` spec never imports it, building or playing does.
The agent sees Kaggle-style observation and configuration structs and is seeded from the env's
rng, so games are reproducible.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import os
import random
import sys
from collections.abc import Callable
from typing import Any

import numpy as np

from connectx_gym.agents.opponents import OpponentError, SameSourceIsEqual
from connectx_gym.errors import SpecError, did_you_mean
from connectx_gym.rules.bitboard import Position

# Kaggle's ConnectX configuration and observation defaults (kaggle_environments' connectx.json
# and core.py), sent to Kaggle agents along with the board size.
KAGGLE_CONFIGURATION_DEFAULTS: dict[str, Any] = {
    "episodeSteps": 1000,
    "actTimeout": 2,
    "runTimeout": 1200,
    "agentTimeout": 60,
    "timeout": 2,
}
KAGGLE_REMAINING_OVERAGE_TIME = 60


_KAGGLE: tuple[Any, Any, Any] | None = None


#: how to get kaggle-environments, which is an optional extra
KAGGLE_INSTALL_HINT = 'install the extra: pip install -e ".[kaggle]"'


def kaggle_available() -> bool:
    """Whether kaggle-environments is installed, found without importing it (its import is slow and noisy)."""
    if "kaggle_environments" in sys.modules:
        return sys.modules["kaggle_environments"] is not None
    return importlib.util.find_spec("kaggle_environments") is not None


def require_kaggle(needed_for: str) -> None:
    """Raise a ``SpecError`` naming ``needed_for`` and the extra when kaggle-environments is not installed."""
    if not kaggle_available():
        raise SpecError(f"{needed_for} needs kaggle-environments, which is not installed; {KAGGLE_INSTALL_HINT}")


def import_kaggle(needed_for: str = "a Kaggle agent (kaggle:<name|file.py>)") -> tuple[Any, Any, Any]:
    """Kaggle's connectx module, ``get_last_callable`` and ``Struct``, imported once and quietly.

    Importing ``kaggle_environments`` is slow and its old ``gym`` prints a banner to stderr.

    :param needed_for: what needs it, named in the ``SpecError`` raised when the extra is not installed
    """
    global _KAGGLE
    if _KAGGLE is None:
        require_kaggle(needed_for)
        with contextlib.redirect_stderr(io.StringIO()):
            # optional extra [kaggle]: kaggle-environments (1.4 GB, the old gym) is imported only where it is used
            from kaggle_environments.agent import get_last_callable
            from kaggle_environments.envs.connectx import connectx
            from kaggle_environments.utils import Struct
        _KAGGLE = (connectx, get_last_callable, Struct)
    return _KAGGLE


def load_agent_file(path: str) -> Callable:
    """The agent Kaggle would play from a submission file: its last callable.

    :raises SpecError: naming the path, if the file is missing, unreadable, broken or has no callable
    """
    if not os.path.isfile(path):
        reason = "is a directory, not a file" if os.path.isdir(path) else "does not exist"
        raise SpecError(f"Kaggle agent file {path!r} {reason}")
    try:
        with open(path, encoding="utf-8") as handle:
            source = handle.read()
    except (OSError, UnicodeDecodeError) as error:
        raise SpecError(f"Kaggle agent file {path!r} could not be read: {error}") from None
    absolute = os.path.abspath(path)
    try:
        compile(source, absolute, "exec")
    except SyntaxError as error:
        raise SpecError(f"Kaggle agent file {path!r} has a syntax error at line {error.lineno}: {error.msg}") from None
    _, get_last_callable, _ = import_kaggle()
    saved_path = list(sys.path)
    try:
        # Kaggle's own loader: runs the file and takes the last callable it defines.
        agent = get_last_callable(source, path=absolute)
    except Exception as error:
        sys.path[:] = saved_path  # Kaggle's loader leaves the file's folder on sys.path when it fails
        reason = str(error)
        if "IndexError('list index out of range')" in reason:
            reason = "it defines no callable (Kaggle plays the last function defined in the file)"
        raise SpecError(f"Kaggle agent file {path!r} could not be loaded: {reason}") from None
    if not callable(agent):
        raise SpecError(f"Kaggle agent file {path!r} could not be loaded: it defines no callable")
    return agent


class KaggleAgentOpponent(SameSourceIsEqual):
    """Any Kaggle ConnectX agent: a built-in name (``"random"``, ``"negamax"``) or a submission ``.py`` file.

    The agent gets Kaggle-style ``observation`` (board, mark, step, remainingOverageTime) and
    ``configuration`` structs; Python's and numpy's global random generators are seeded from ``rng``
    before each call so games are reproducible. Its answer is returned unchecked; if it raises,
    ``act`` raises ``OpponentError``. Printed output of the agent is swallowed, as on Kaggle.
    Pickling keeps only the name or path; the agent is loaded again on first use.

    :param name_or_path: a key of ``kaggle_environments.envs.connectx.connectx.agents`` or a file path
    :param load: load the agent now, so a bad file fails here with ``SpecError`` (default)
    """

    source_attribute = "source"

    def __init__(self, name_or_path: str, load: bool = True) -> None:
        self.source = name_or_path
        self.name = f"kaggle:{name_or_path}"
        self._agent: Callable | None = None
        self._is_file = False
        if load:
            self._load()

    def _load(self) -> Callable:
        connectx, _, _ = import_kaggle()
        builtin = connectx.agents.get(self.source)
        if builtin is not None:  # built-in names win over files, as in Kaggle's build_agent
            agent = builtin
        elif os.path.exists(self.source):
            agent = load_agent_file(self.source)
            self._is_file = True
        else:
            looks_like_path = "/" in self.source or os.sep in self.source or self.source.endswith(".py")
            hint = "" if looks_like_path else did_you_mean(self.source, connectx.agents)
            raise SpecError(
                f"Kaggle agent {self.source!r} is neither a built-in agent ({', '.join(sorted(connectx.agents))}) "
                f"nor an existing file{hint}"
            )
        self._agent = agent
        return agent

    def act(self, position: Position, rng: np.random.Generator) -> Any:
        agent = self._agent if self._agent is not None else self._load()
        _, _, Struct = import_kaggle()
        geometry = position.geometry
        observation = Struct(
            remainingOverageTime=KAGGLE_REMAINING_OVERAGE_TIME,
            step=position.moves_played,
            board=position.to_kaggle(),
            mark=position.to_move,
        )
        configuration = Struct(
            **KAGGLE_CONFIGURATION_DEFAULTS, columns=geometry.columns, rows=geometry.rows, inarow=geometry.inarow
        )
        if self._is_file:
            configuration["__raw_path__"] = self.source  # as Kaggle's build_agent does for file agents
        args: tuple[Any, ...] = (observation, configuration)
        code = getattr(agent, "__code__", None)
        if code is not None and hasattr(code, "co_argcount"):
            args = args[: code.co_argcount]  # Kaggle passes only as many arguments as the agent takes
        random.seed(int(rng.integers(2**63)))
        np.random.seed(int(rng.integers(2**32)))
        sink = io.StringIO()
        try:
            with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
                return agent(*args)
        except Exception as error:
            raise OpponentError(self.name, error) from error

    def __getstate__(self) -> dict[str, Any]:
        return {"source": self.source, "name": self.name}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.source = state["source"]
        self.name = state["name"]
        self._agent = None
        self._is_file = False

    def __repr__(self) -> str:
        return f"KaggleAgentOpponent({self.source!r})"
