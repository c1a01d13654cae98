"""The one parser of agent and opponent specs, and the registry of spec kinds.

A spec names an opponent or an agent: ``"random"``, ``"negamax"``, ``"alphabeta:4"``,
``"kaggle:agent.py"``, ``"selfplay:greedy"``, ``"solver"``, ``"checkpoint:model.zip"``, ``"mcts:model.zip:800"``
(the checkpoint searched by PUCT), or a bare path
(``x.zip`` reads as ``checkpoint:x.zip``, ``x.py`` as ``kaggle:x.py``). ``parse_spec`` checks
the syntax only (cheap: no files are opened, nothing heavy is imported); ``make_opponent``
builds it. Each kind is registered with a lazy entry point, a ``"module:attribute"`` string
resolved on first build, as Gymnasium registers envs: the kinds that need heavy modules
(checkpoints: SB3; Kaggle agents: kaggle_environments; self-play: the snapshot pool) are imported
only when built, and no opponent module imports this one, so no import cycle can form.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from connectx_gym.agents.opponents import AlphaBetaOpponent, MixtureOpponent, NegamaxOpponent, RandomOpponent
from connectx_gym.errors import SpecError, did_you_mean

#: how a bare path is read as a spec, by its ending
BARE_PATH_KINDS = ((".zip", "checkpoint"), (".py", "kaggle"))
BARE_PATH_NOTE = "a bare path ending in .zip is read as checkpoint:<path>, one ending in .py as kaggle:<path>"


@dataclass(frozen=True)
class OpponentSpec:
    """A syntactically valid opponent spec: ``kind`` and its ``argument`` (None when it takes none)."""

    kind: str
    argument: str | None = None

    def __str__(self) -> str:
        return self.kind if self.argument is None else f"{self.kind}:{self.argument}"


def load_entry_point(entry_point: str) -> Callable[..., Any]:
    """The object an entry point ``"package.module:Attribute.attribute"`` names, importing its module."""
    module_name, _, attribute_path = entry_point.partition(":")
    target: Any = importlib.import_module(module_name)
    for attribute in attribute_path.split("."):
        target = getattr(target, attribute)
    return target


@dataclass(frozen=True)
class OpponentKind:
    """How one kind of spec is checked and built.

    :param kind: the name before the colon
    :param form: human description of the spec's form, for error messages
    :param build: makes the opponent from the (checked) argument, or None for kinds without one:
        a callable, or a ``"module:attribute"`` entry point naming one, imported on first use
    :param argument: ``"none"``, ``"required"`` or ``"optional"``
    :param check_argument: raises ``SpecError`` for a bad argument (syntax only; no file access)
    :param argument_name: what the argument is, for the error when it is missing
    """

    kind: str
    form: str
    build: Callable[..., Any] | str
    argument: str = "none"
    check_argument: Callable[[str], None] | None = None
    argument_name: str = "an argument"

    def make(self, argument: str | None) -> Any:
        """The opponent of this kind for the (checked) ``argument``."""
        factory = load_entry_point(self.build) if isinstance(self.build, str) else self.build
        return factory(argument)


OPPONENT_KINDS: dict[str, OpponentKind] = {}
OPPONENT_FORMS: tuple[str, ...] = ()


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


def parse_spec(spec: str, *, agent: bool = False) -> OpponentSpec:
    """Check a spec's syntax (cheap: no files are opened, nothing heavy is imported).

    :param spec: e.g. ``"random"``, ``"negamax"``, ``"alphabeta:4"``, ``"kaggle:path/to/agent.py"``,
        or a bare ``.zip``/``.py`` path; surrounding whitespace is ignored
    :param agent: the spec names an agent to evaluate: errors also explain how bare paths are read
    :raises SpecError: naming the spec and the problem, listing the valid forms
    """
    try:
        return _parse(spec)
    except SpecError as error:
        if agent:
            raise SpecError(f"{error}; {BARE_PATH_NOTE}") from None
        raise


def _parse(spec: str) -> OpponentSpec:
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


def parse_mixture(mixture: Mapping[str, Any]) -> tuple[tuple[OpponentSpec, float], ...]:
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


def make_opponent(spec: str | OpponentSpec | Mapping[str, Any] | Any, *, agent: bool = False) -> Any:
    """Build the opponent a spec names; an object that already has ``act`` is returned as is.

    :param spec: a spec string (see ``OPPONENT_FORMS``), a parsed ``OpponentSpec``, an opponent,
        or a mixture ``{spec: weight}`` (one component drawn per episode)
    :param agent: as for :func:`parse_spec`
    :raises SpecError: for a bad spec, or a Kaggle agent file that is missing or does not load
    """
    if isinstance(spec, Mapping):
        return MixtureOpponent([(weight, make_opponent(part)) for part, weight in parse_mixture(spec)])
    if isinstance(spec, str):
        spec = parse_spec(spec, agent=agent)
    elif not isinstance(spec, OpponentSpec):
        if callable(getattr(spec, "act", None)):
            return spec
        raise SpecError(f"opponent must be a spec string or have act(position, rng), got {spec!r}; {_forms_text()}")
    kind = OPPONENT_KINDS.get(spec.kind)
    if kind is None:
        hint = did_you_mean(spec.kind, OPPONENT_KINDS)
        raise SpecError(f"unknown opponent kind {spec.kind!r}{hint}; {_forms_text()}")
    return kind.make(spec.argument)


def make_agent(spec: str | OpponentSpec | Any) -> Any:
    """Build an agent (an opponent) from a spec, bare ``.zip``/``.py`` paths included."""
    return make_opponent(spec, agent=True)


# ------------------------------------------------------------------ the built-in kinds
def _alphabeta(argument: str) -> AlphaBetaOpponent:
    depth, _, epsilon = argument.partition(":")
    return AlphaBetaOpponent(int(depth), float(epsilon) if epsilon else 0.0)


def _check_alphabeta(argument: str) -> None:
    text, colon, epsilon_text = argument.partition(":")
    try:
        depth = int(text)
    except ValueError:
        depth = 0
    if depth < 1:
        raise SpecError(f"alphabeta depth must be an integer >= 1, got {text!r} in 'alphabeta:{argument}'")
    if not colon:
        return
    try:
        epsilon = float(epsilon_text)
    except ValueError:
        epsilon = -1.0
    if not 0 <= epsilon < 1:
        raise SpecError(
            f"alphabeta epsilon (the chance of a random move) must be a number in [0, 1), "
            f"got {epsilon_text!r} in 'alphabeta:{argument}'"
        )


def _check_selfplay(argument: str) -> None:
    if argument != "greedy":
        raise SpecError(f"selfplay takes no argument or 'greedy', got {argument!r}")


def _check_solver(argument: str) -> None:
    if argument != "weak":
        raise SpecError(f"solver takes no argument or 'weak', got {argument!r}")


def _check_checkpoint(argument: str) -> None:
    if not argument.lower().endswith(".zip"):
        raise SpecError(f"a checkpoint path must end in .zip, got {argument!r}")


BUILTIN_KINDS = (
    OpponentKind("random", "random", lambda _: RandomOpponent()),
    OpponentKind("negamax", "negamax", lambda _: NegamaxOpponent()),
    OpponentKind(
        "alphabeta",
        "alphabeta:<depth>[:<epsilon>]  (depth >= 1; epsilon in [0, 1): chance of a random move)",
        _alphabeta,
        argument="required",
        check_argument=_check_alphabeta,
        argument_name="a search depth (an integer >= 1)",
    ),
    OpponentKind(
        "kaggle",
        "kaggle:<builtin-name or path/to/agent.py>",
        "connectx_gym.agents.kaggle:KaggleAgentOpponent",
        argument="required",
        argument_name="a built-in Kaggle agent name or the path of an agent file",
    ),
    OpponentKind(
        "selfplay",
        "selfplay[:greedy]  (a snapshot of the learner from the self-play pool)",
        "connectx_gym.agents.selfplay:SelfPlayOpponent.from_spec",
        argument="optional",
        check_argument=_check_selfplay,
        argument_name="'greedy'",
    ),
    OpponentKind(
        "solver",
        "solver[:weak]  (perfect play on 6x7x4; needs the solver extra)",
        "connectx_gym.search.solver:SolverOpponent.from_spec",
        argument="optional",
        check_argument=_check_solver,
        argument_name="'weak'",
    ),
    OpponentKind(
        "checkpoint",
        "checkpoint:<path/to/model.zip>",
        "connectx_gym.agents.checkpoint:CheckpointOpponent.from_file",
        argument="required",
        check_argument=_check_checkpoint,
        argument_name="the path of a checkpoint .zip",
    ),
    OpponentKind(
        "mcts",
        "mcts:<path/to/model.zip>[:<simulations>|:<N>ms]  (the checkpoint searched by PUCT; default 800 simulations)",
        "connectx_gym.agents.mcts:MctsAgent.from_spec",
        argument="required",
        check_argument=lambda argument: load_entry_point("connectx_gym.agents.mcts:check_argument")(argument),
        argument_name="the path of a checkpoint .zip, optionally followed by :<simulations> or :<N>ms",
    ),
)
for _kind in BUILTIN_KINDS:
    register_opponent_kind(_kind)
