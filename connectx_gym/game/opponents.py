"""Opponents for the ConnectX environment, and the one parser of opponent spec strings.

An opponent is any object with a ``name`` and ``act(position, rng) -> column``, called on the
position where it is to move; it returns whatever it chose, legal or not, and the environment
judges the answer (an illegal column or an ``OpponentError`` forfeits the game, as on Kaggle).
Spec strings (``"random"``, ``"negamax"``, ``"alphabeta:4"``, ``"kaggle:agent.py"``) are parsed
by ``parse_spec`` (syntax only: cheap, no files, no kaggle import) and built by ``make_opponent``
through a registry of kinds that ``register_opponent_kind`` extends. Every opponent pickles, so it
can be shipped to worker processes; ``kaggle_environments`` is imported only when a Kaggle agent
is built or unpickled and used.
"""

from __future__ import annotations

import contextlib
import io
import os
import random
import sys
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Mapping, Optional, Protocol, Tuple, Union, runtime_checkable

import numpy as np

from connectx_gym.game.bitboard import Position
from connectx_gym.errors import SpecError, did_you_mean
from connectx_gym.game.solver import alphabeta_move, kaggle_negamax_move

# Kaggle's ConnectX configuration and observation defaults (kaggle_environments' connectx.json
# and core.py), sent to Kaggle agents along with the board size.
KAGGLE_CONFIGURATION_DEFAULTS: Dict[str, Any] = {
    "episodeSteps": 1000,
    "actTimeout": 2,
    "runTimeout": 1200,
    "agentTimeout": 60,
    "timeout": 2,
}
KAGGLE_REMAINING_OVERAGE_TIME = 60


class OpponentError(RuntimeError):
    """An opponent raised instead of answering; carries the opponent's name and the cause.

    :param opponent_name: the ``name`` of the opponent that failed
    :param cause: the exception it raised
    """

    def __init__(self, opponent_name: str, cause: BaseException) -> None:
        super().__init__(f"opponent {opponent_name!r} raised {type(cause).__name__}: {cause}")
        self.opponent_name = opponent_name
        self.cause = cause

    def __reduce__(self):
        return (type(self), (self.opponent_name, self.cause))


@runtime_checkable
class Opponent(Protocol):
    """Anything that picks a column for the player to move (``position.to_move``)."""

    name: str

    def act(self, position: Position, rng: np.random.Generator) -> int: ...


# ====================================================================== opponents
@dataclass(frozen=True)
class RandomOpponent:
    """A uniformly random legal column (like Kaggle's ``random`` agent, seeded by ``rng``)."""

    name: str = field(default="random", init=False)

    def act(self, position: Position, rng: np.random.Generator) -> int:
        legal = position.legal_moves()
        return legal[int(rng.integers(len(legal)))]


@dataclass(frozen=True)
class NegamaxOpponent:
    """Kaggle's built-in ``negamax`` agent, re-implemented exactly on bitboards (see ``solver``)."""

    name: str = field(default="negamax", init=False)

    def act(self, position: Position, rng: np.random.Generator) -> int:
        return kaggle_negamax_move(position, rng)


@dataclass(frozen=True)
class AlphaBetaOpponent:
    """Alpha-beta search to ``depth`` plies (see ``solver.alphabeta_move``).

    :param depth: plies searched, the opponent's own move included (>= 1)
    """

    depth: int = 4
    name: str = field(default="", init=False)

    def __post_init__(self) -> None:
        if isinstance(self.depth, bool) or not isinstance(self.depth, int) or self.depth < 1:
            raise ValueError(f"alphabeta depth must be an integer >= 1, got {self.depth!r}")
        object.__setattr__(self, "name", f"alphabeta:{self.depth}")

    def act(self, position: Position, rng: np.random.Generator) -> int:
        return alphabeta_move(position, self.depth, rng)


_KAGGLE: Optional[Tuple[Any, Any, Any]] = None


def _import_kaggle() -> Tuple[Any, Any, Any]:
    """Kaggle's connectx module, ``get_last_callable`` and ``Struct``, imported once and quietly.

    Importing ``kaggle_environments`` is slow and its old ``gym`` prints a banner to stderr.
    """
    global _KAGGLE
    if _KAGGLE is None:
        with contextlib.redirect_stderr(io.StringIO()):
            from kaggle_environments.agent import get_last_callable
            from kaggle_environments.envs.connectx import connectx
            from kaggle_environments.utils import Struct
        _KAGGLE = (connectx, get_last_callable, Struct)
    return _KAGGLE


def _load_agent_file(path: str) -> Callable:
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
    _, get_last_callable, _ = _import_kaggle()
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


class KaggleAgentOpponent:
    """Any Kaggle ConnectX agent: a built-in name (``"random"``, ``"negamax"``) or a submission ``.py`` file.

    The agent gets Kaggle-style ``observation`` (board, mark, step, remainingOverageTime) and
    ``configuration`` structs; Python's and numpy's global random generators are seeded from ``rng``
    before each call so games are reproducible. Its answer is returned unchecked; if it raises,
    ``act`` raises ``OpponentError``. Printed output of the agent is swallowed, as on Kaggle.
    Pickling keeps only the name or path; the agent is loaded again on first use.

    :param name_or_path: a key of ``kaggle_environments.envs.connectx.connectx.agents`` or a file path
    :param load: load the agent now, so a bad file fails here with ``SpecError`` (default)
    """

    def __init__(self, name_or_path: str, load: bool = True) -> None:
        self.source = name_or_path
        self.name = f"kaggle:{name_or_path}"
        self._agent: Optional[Callable] = None
        self._is_file = False
        if load:
            self._load()

    def _load(self) -> Callable:
        connectx, _, _ = _import_kaggle()
        builtin = connectx.agents.get(self.source)
        if builtin is not None:  # built-in names win over files, as in Kaggle's build_agent
            agent = builtin
        elif os.path.exists(self.source):
            agent = _load_agent_file(self.source)
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
        _, _, Struct = _import_kaggle()
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
        args: Tuple[Any, ...] = (observation, configuration)
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

    def __getstate__(self) -> Dict[str, Any]:
        return {"source": self.source, "name": self.name}

    def __setstate__(self, state: Dict[str, Any]) -> None:
        self.source = state["source"]
        self.name = state["name"]
        self._agent = None
        self._is_file = False

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other.source == self.source  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash((type(self), self.source))

    def __repr__(self) -> str:
        return f"KaggleAgentOpponent({self.source!r})"


# ====================================================================== specs
@dataclass(frozen=True)
class OpponentSpec:
    """A syntactically valid opponent spec: ``kind`` and its ``argument`` (None when it takes none)."""

    kind: str
    argument: Optional[str] = None

    def __str__(self) -> str:
        return self.kind if self.argument is None else f"{self.kind}:{self.argument}"


@dataclass(frozen=True)
class OpponentKind:
    """How one kind of spec is checked and built.

    :param kind: the name before the colon
    :param form: human description of the spec's form, for error messages
    :param build: makes the opponent from the (checked) argument, or None for kinds without one
    :param argument: ``"none"``, ``"required"`` or ``"optional"``
    :param check_argument: raises ``SpecError`` for a bad argument (syntax only; no file access)
    :param argument_name: what the argument is, for the error when it is missing
    """

    kind: str
    form: str
    build: Callable[[Optional[str]], Opponent]
    argument: str = "none"
    check_argument: Optional[Callable[[str], None]] = None
    argument_name: str = "an argument"


OPPONENT_KINDS: Dict[str, OpponentKind] = {}
OPPONENT_FORMS: Tuple[str, ...] = ()


def register_opponent_kind(kind: OpponentKind) -> None:
    """Add (or replace) a kind of opponent spec; ``OPPONENT_FORMS`` and error messages follow."""
    global OPPONENT_FORMS
    if not kind.kind or ":" in kind.kind or kind.kind != kind.kind.strip():
        raise ValueError(f"opponent kind must be a non-empty word without ':', got {kind.kind!r}")
    if kind.argument not in ("none", "required", "optional"):
        raise ValueError(f"argument must be 'none', 'required' or 'optional', got {kind.argument!r}")
    OPPONENT_KINDS[kind.kind] = kind
    OPPONENT_FORMS = tuple(k.form for k in OPPONENT_KINDS.values())


def _forms_text() -> str:
    return "valid forms: " + " | ".join(OPPONENT_FORMS)


def _check_depth(argument: str) -> None:
    try:
        depth = int(argument)
    except ValueError:
        depth = 0
    if depth < 1:
        raise SpecError(f"alphabeta depth must be an integer >= 1, got {argument!r}")


#: how a bare path is read as a spec, by its ending
BARE_PATH_KINDS = ((".zip", "checkpoint"), (".py", "kaggle"))


def resolve_bare_path(spec: str) -> str:
    """``spec`` stripped, with a bare path made explicit: ``x.zip`` -> ``checkpoint:x.zip``,
    ``x.py`` -> ``kaggle:x.py``. A spec that already names a known kind is returned unchanged."""
    text = spec.strip()
    head, colon, _ = text.partition(":")
    if colon and head.strip() in OPPONENT_KINDS:
        return text
    for ending, kind in BARE_PATH_KINDS:
        if text.lower().endswith(ending) and kind in OPPONENT_KINDS:
            return f"{kind}:{text}"
    return text


def parse_spec(spec: str) -> OpponentSpec:
    """Check an opponent spec's syntax (cheap: no files are opened, nothing heavy is imported).

    :param spec: e.g. ``"random"``, ``"negamax"``, ``"alphabeta:4"``, ``"kaggle:path/to/agent.py"``;
        surrounding whitespace is ignored
    :raises SpecError: naming the spec and the problem, listing the valid forms
    """
    if not isinstance(spec, str):
        raise SpecError(f"opponent spec must be a string, got {spec!r}; {_forms_text()}")
    text = resolve_bare_path(spec)
    if not text:
        raise SpecError(f"empty opponent spec {spec!r}; {_forms_text()}")
    name, colon, argument = text.partition(":")
    name, argument = name.strip(), argument.strip()
    kind = OPPONENT_KINDS.get(name)
    if kind is None:
        raise SpecError(f"unknown opponent spec {spec!r}{did_you_mean(name, OPPONENT_KINDS)}; {_forms_text()}")
    try:
        if kind.argument == "none":
            if colon:
                raise SpecError(f"{name!r} takes no argument")
            return OpponentSpec(name)
        if not argument:
            if kind.argument == "required":
                raise SpecError(f"{name!r} needs {kind.argument_name} after the colon")
            return OpponentSpec(name)
        if kind.check_argument is not None:
            kind.check_argument(argument)
    except SpecError as error:
        raise SpecError(f"bad opponent spec {spec!r}: {error}; {_forms_text()}") from None
    return OpponentSpec(name, argument)


def parse_mixture(mixture: Mapping[str, Any]) -> Tuple[Tuple[OpponentSpec, float], ...]:
    """Check an opponent mixture ``{spec: weight, ...}``: valid specs, weights >= 0, a positive sum.

    :raises SpecError: naming the bad spec or weight
    """
    if not mixture:
        raise SpecError("an opponent mixture needs at least one spec: weight pair")
    parsed = []
    for spec, weight in mixture.items():
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not weight >= 0:
            raise SpecError(f"mixture weight of {spec!r} must be a number >= 0, got {weight!r}")
        parsed.append((parse_spec(spec), float(weight)))
    if sum(weight for _, weight in parsed) <= 0:
        raise SpecError(f"mixture weights must not all be 0, got {dict(mixture)!r}")
    return tuple(parsed)


def make_opponent(spec: Union[str, OpponentSpec, Opponent, Mapping[str, Any]]) -> Opponent:
    """Build the opponent a spec names; an object that already has ``act`` is returned as is.

    :param spec: a spec string (see ``OPPONENT_FORMS``), a parsed ``OpponentSpec``, an opponent,
        or a mixture ``{spec: weight}`` (one component drawn per episode)
    :raises SpecError: for a bad spec, or a Kaggle agent file that is missing or does not load
    """
    if isinstance(spec, Mapping):
        from connectx_gym.game.selfplay import MixtureOpponent

        return MixtureOpponent([(weight, make_opponent(part)) for part, weight in parse_mixture(spec)])
    if isinstance(spec, str):
        spec = parse_spec(spec)
    elif not isinstance(spec, OpponentSpec):
        if callable(getattr(spec, "act", None)):
            return spec
        raise SpecError(f"opponent must be a spec string or have act(position, rng), got {spec!r}; {_forms_text()}")
    kind = OPPONENT_KINDS.get(spec.kind)
    if kind is None:
        hint = did_you_mean(spec.kind, OPPONENT_KINDS)
        raise SpecError(f"unknown opponent kind {spec.kind!r}{hint}; {_forms_text()}")
    return kind.build(spec.argument)


register_opponent_kind(OpponentKind("random", "random", lambda _: RandomOpponent()))
register_opponent_kind(OpponentKind("negamax", "negamax", lambda _: NegamaxOpponent()))
register_opponent_kind(
    OpponentKind(
        "alphabeta",
        "alphabeta:<depth>  (depth >= 1)",
        lambda argument: AlphaBetaOpponent(int(argument)),  # type: ignore[arg-type]
        argument="required",
        check_argument=_check_depth,
        argument_name="a search depth (an integer >= 1)",
    )
)
register_opponent_kind(
    OpponentKind(
        "kaggle",
        "kaggle:<builtin-name or path/to/agent.py>",
        lambda argument: KaggleAgentOpponent(argument),  # type: ignore[arg-type]
        argument="required",
        argument_name="a built-in Kaggle agent name or the path of an agent file",
    )
)


def _build_selfplay(argument: Optional[str]) -> Opponent:
    from connectx_gym.game.selfplay import SelfPlayOpponent

    return SelfPlayOpponent(greedy=argument == "greedy")


def _check_selfplay(argument: str) -> None:
    if argument != "greedy":
        raise SpecError(f"selfplay takes no argument or 'greedy', got {argument!r}")


register_opponent_kind(
    OpponentKind(
        "selfplay",
        "selfplay[:greedy]  (a snapshot of the learner from the self-play pool)",
        _build_selfplay,
        argument="optional",
        check_argument=_check_selfplay,
        argument_name="'greedy'",
    )
)

# Trained checkpoints ("checkpoint:<model.zip>", or a bare path ending in .zip) register themselves.
import connectx_gym.game.agents  # noqa: E402,F401
