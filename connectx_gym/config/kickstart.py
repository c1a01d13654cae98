"""The ``kickstart`` section: the weight of the teacher term and its schedule, and the teacher itself,
a mapping tagged by ``kind`` (``alphabeta``, ``solver``, ``mcts``) in which each kind takes only its
own keys::

    kickstart:
      coef: 1.0
      schedule: constant
      teacher: {kind: mcts, simulations: 64, search_share: 0.25, value_coef: 2.0}

On the command line a teacher key is set as ``--set kickstart.teacher.simulations=32`` (merged into
the teacher given so far) and the kind as ``--set kickstart.teacher.kind=mcts``; a bare kind
(``teacher: mcts``) is short for ``{kind: mcts}``. The keys that used to sit flat in the section
(``kickstart.depth``, ``kickstart.simulations``...) are refused with one line naming their new place.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from connectx_gym.config.schema import Section, config_field, show, unknown_key
from connectx_gym.errors import ConfigError


@dataclass(frozen=True)
class AlphaBetaTeacherConfig(Section):
    """alpha-beta: a depth-limited alpha-beta search on every position the agent sees; any board."""

    section: ClassVar[str] = "kickstart.teacher"

    kind: Literal["alphabeta"] = config_field(
        "alphabeta", "The teacher's kind (alphabeta, solver or mcts); each kind takes only its own keys."
    )
    depth: int = config_field(
        4, "Alpha-beta depth of the search the env workers run on the positions the agent sees.", ge=1
    )
    temperature: float = config_field(
        0.1, "Softmax temperature over the search's move values in [-1, 1]; 0 = even over the best moves.", ge=0
    )


@dataclass(frozen=True)
class SolverTeacherConfig(AlphaBetaTeacherConfig):
    """solver: the perfect moves of the shipped opening book up to 10 stones and of the perfect solver
    from solver_from stones on, the alpha-beta search above in between; 6x7 boards with 4 in a row, needs
    the solver extra."""

    kind: Literal["solver"] = config_field("solver", "The teacher's kind.")  # type: ignore[assignment]
    solver_from: int = config_field(
        20, "Stones on the board from which the perfect solver is asked (fast late in the game).", ge=0
    )


@dataclass(frozen=True)
class MctsTeacherConfig(Section):
    """mcts: the PUCT search over a snapshot of the learner's own network (expert iteration): its visit
    distribution and root value; any board."""

    section: ClassVar[str] = "kickstart.teacher"

    kind: Literal["mcts"] = config_field("mcts", "The teacher's kind.")
    simulations: int = config_field(64, "Simulations per searched position.", ge=1)
    search_share: float = config_field(
        1.0, "Share of the positions the agent sees that are searched (the rest add no term).", gt=0, le=1
    )
    refresh_steps: int = config_field(
        100_000, "Steps between refreshes of the workers' snapshot of the learner's network.", ge=1
    )
    value_coef: float = config_field(
        0.0,
        "Weight of the squared error between the value head and the search's root value of each searched "
        "position, added to the loss while the teacher runs; 0 = the value head learns PPO's returns only.",
        ge=0,
    )
    network: str | None = config_field(
        None,
        "A checkpoint of this board whose network the search runs over for the first network_steps steps, in "
        "place of the learner's snapshot (read safely; its network may have another shape than the policy "
        "section's, so a larger network can grow from a smaller trained one). null = the learner's own network.",
    )
    network_steps: int = config_field(
        1_000_000, "Steps for which network is searched; then the learner's snapshots.", ge=1
    )


#: the teacher classes by their ``kind``
TEACHER_KINDS: dict[str, type[Section]] = {
    "alphabeta": AlphaBetaTeacherConfig,
    "solver": SolverTeacherConfig,
    "mcts": MctsTeacherConfig,
}
TeacherConfig = AlphaBetaTeacherConfig | SolverTeacherConfig | MctsTeacherConfig


def teacher_config(value: Any) -> TeacherConfig:
    """The teacher of ``kickstart.teacher``: a mapping tagged by ``kind`` (default ``alphabeta``), a bare
    kind, or an already built teacher config.

    :raises ConfigError: an unknown kind, or a key its kind does not take (naming the kinds that do)
    """
    if isinstance(value, tuple(TEACHER_KINDS.values())):
        return value
    if isinstance(value, str):
        value = {"kind": value}
    if not isinstance(value, Mapping):
        raise ConfigError(f"kickstart.teacher must be a mapping tagged by kind, e.g. {{kind: mcts}}, got {show(value)}")
    kind = value.get("kind", "alphabeta")
    if kind not in TEACHER_KINDS:
        raise ConfigError(f"kickstart.teacher.kind must be one of {'|'.join(TEACHER_KINDS)}, got {show(kind)}")
    cls = TEACHER_KINDS[kind]
    allowed = cls.keys()
    for key in value:
        if key not in allowed:
            owners = [name for name, other in TEACHER_KINDS.items() if key in other.keys()]
            if owners:
                raise ConfigError(
                    f"kickstart.teacher.{key} is not a key of the {kind} teacher (it takes {', '.join(allowed)}); "
                    f"{key} belongs to kind {' or '.join(owners)}"
                )
            raise unknown_key("kickstart.teacher", key, "", allowed)
    return cls(**value)


@dataclass(frozen=True)
class KickstartConfig(Section):
    """A search teacher the policy is pulled toward early in training (kickstarting)."""

    section: ClassVar[str] = "kickstart"
    #: keys that left the section, and where they are now
    moved_keys: ClassVar[dict[str, str]] = {
        "depth": "teacher.depth",
        "temperature": "teacher.temperature",
        "solver_from": "teacher.solver_from",
        "simulations": "teacher.simulations",
        "search_share": "teacher.search_share",
        "refresh_steps": "teacher.refresh_steps",
        "value_coef": "teacher.value_coef",
        "teacher_network": "teacher.network",
        "teacher_network_steps": "teacher.network_steps",
    }

    coef: float = config_field(
        2.0,
        "Weight of the cross-entropy toward the teacher's move distribution in the PPO loss at step 0; "
        "0 disables kickstarting.",
        ge=0,
    )
    decay_steps: int = config_field(
        3_000_000, "Steps over which the weight falls linearly to 0; after that the workers stop searching.", ge=1
    )
    schedule: Literal["linear", "constant"] = config_field(
        "linear",
        "The teacher's weight: linear falls from coef to 0 at decay_steps (the teacher then stops), "
        "constant keeps coef for the whole run.",
    )
    teacher: Any = config_field(
        {"kind": "alphabeta", "depth": 4, "temperature": 0.1},
        "Who teaches: a mapping tagged by kind (alphabeta, solver or mcts) with that kind's keys below.",
        raw=True,
        kinds=TEACHER_KINDS,
    )

    def _validate(self) -> None:
        object.__setattr__(self, "teacher", teacher_config(self.teacher))


def moved_key_error(section: str, key: str, new: str) -> ConfigError:
    """The one line for a key that moved inside its section (``kickstart.depth`` -> ``kickstart.teacher.depth``)."""
    return ConfigError(
        f"{section}.{key} is now {section}.{new}: the teacher is a mapping tagged by kind, e.g. "
        f"'{section}: {{teacher: {{kind: mcts, simulations: 64}}}}' or --set {section}.{new}=VALUE"
    )
