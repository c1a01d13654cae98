"""A trained checkpoint wrapped in the PUCT tree search (spec ``mcts:<model.zip>[:<simulations>|:<N>ms]``).

``MctsAgent`` plays the move of :class:`connectx_gym.search.puct.TreeSearch` over the checkpoint's
numpy network (``NumpyPolicy.policy_value``: move priors and the value of the side to move). Its budget
is a number of simulations per move (default ``DEFAULT_SIMULATIONS``; the same seed and position
give the same move) or milliseconds per move. ``act`` searches one position, its leaves batched
within the tree by virtual loss; ``act_many`` searches many positions in fixed groups of ``group``
(``GROUP`` by default), each group in lockstep with one stacked forward pass per round, so the moves
never depend on how the positions are split between processes (the accuracy report cuts them into
slices of a multiple of ``group``).
Like ``CheckpointOpponent`` it pickles as its compressed weights (no torch, no SB3) and refuses a
board other than its checkpoint's.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from connectx_gym.agents.checkpoint import check_trained_board
from connectx_gym.agents.opponents import SameSourceIsEqual
from connectx_gym.errors import SpecError
from connectx_gym.inference.numpy_policy import NumpyPolicy, load_checkpoint
from connectx_gym.rules.bitboard import Position
from connectx_gym.search.puct import SearchResult, TreeSearch
from connectx_gym.search.puct_board import SearchBoard

MCTS_KIND = "mcts"
#: simulations per move when the spec gives no budget
DEFAULT_SIMULATIONS = 800
#: the search's constants (see ``TreeSearch``): prior weight and first-play reduction
C_PUCT = 2.0
FPU_REDUCTION = 0.0
#: leaves per round of one tree searched alone (play: the batch comes from one tree, by virtual loss)
BATCH = 16
#: leaves per round of each tree searched in lockstep with others (fewer collisions, the batch comes from all)
LOCKSTEP_BATCH = 8
#: positions searched in lockstep by ``act_many`` (a fixed group, so results do not depend on the caller's split).
#: 1 on the CPU: a numpy forward pass is no cheaper per position in bigger batches, while the trees of a
#: group, visited in turn, no longer fit the CPU's caches (``benchmarks/bench_tree_search.py``, figures in
#: ``docs/benchmarks.md``); a group pays where big batches do, on an accelerator
GROUP = 1
MAX_SIMULATIONS = 1_000_000
MAX_MILLISECONDS = 600_000
FORM = "mcts:<path/to/model.zip>[:<simulations>|:<N>ms]  (default 800 simulations per move)"


def parse_budget(text: str, spec: str) -> tuple[int | None, int | None]:
    """``(simulations, milliseconds)`` from a budget such as ``"800"`` or ``"250ms"``.

    :raises SpecError: naming the spec and the value
    """
    value = text.strip().lower()
    milliseconds = value.endswith("ms")
    digits = value[:-2].strip() if milliseconds else value
    number = int(digits) if digits.isdigit() else 0
    limit = MAX_MILLISECONDS if milliseconds else MAX_SIMULATIONS
    if not 1 <= number <= limit:
        what = "milliseconds per move" if milliseconds else "simulations per move"
        raise SpecError(
            f"the budget of {spec!r} must be a number of simulations (1..{MAX_SIMULATIONS:,}) or of milliseconds "
            f"such as 250ms (1..{MAX_MILLISECONDS:,}); got {text!r} ({what} out of range or not a whole number)"
        )
    return (None, number) if milliseconds else (number, None)


def split_argument(argument: str) -> tuple[str, str | None]:
    """``(checkpoint path, budget text or None)`` of an ``mcts:`` argument: the budget is the part after the
    last colon when the path before it ends in ``.zip``."""
    path, colon, budget = argument.rpartition(":")
    if colon and path.strip().lower().endswith(".zip"):
        return path.strip(), budget.strip()
    return argument.strip(), None


def check_argument(argument: str) -> None:
    """Syntax of an ``mcts:`` argument (no file access): a ``.zip`` path and an optional budget."""
    path, budget = split_argument(argument)
    if not path.lower().endswith(".zip"):
        raise SpecError(f"an mcts checkpoint path must end in .zip, got {path!r}")
    if budget is not None:
        parse_budget(budget, f"mcts:{argument}")


class MctsAgent(SameSourceIsEqual):
    """A policy-value network searched by PUCT before every move.

    :param policy: the checkpoint's numpy network
    :param simulations: simulations per move (with ``milliseconds`` None: ``DEFAULT_SIMULATIONS``)
    :param milliseconds: wall-clock budget per move instead (moves then depend on the machine's speed)
    :param name: how the agent is named
    :param reuse: keep the tree between the moves of one game (for ``play``; evaluations search each
        move afresh, so a game's moves depend only on its seed)
    """

    source_attribute = "name"

    def __init__(
        self,
        policy: NumpyPolicy,
        simulations: int | None = None,
        milliseconds: int | None = None,
        name: str = MCTS_KIND,
        reuse: bool = False,
        c_puct: float = C_PUCT,
        batch: int = BATCH,
        fpu_reduction: float = FPU_REDUCTION,
        lockstep_batch: int = LOCKSTEP_BATCH,
        group: int = GROUP,
    ) -> None:
        if simulations is None and milliseconds is None:
            simulations = DEFAULT_SIMULATIONS
        self.policy = policy
        self.simulations = simulations
        self.milliseconds = milliseconds
        self.name = name
        self.reuse = reuse
        self.settings = {"c_puct": float(c_puct), "batch": int(batch), "fpu_reduction": float(fpu_reduction)}
        self.lockstep_batch = int(lockstep_batch)
        self.group = int(group)
        self.board: dict[str, int] = dict(policy.board)
        self._search: TreeSearch | None = None
        self._last: Any = None
        #: the result of the last single-position search (what ``play`` shows), and the visits its root
        #: already had from the tree of the move before
        self.last_result: SearchResult | None = None
        self.last_kept = 0

    @classmethod
    def from_spec(cls, argument: str) -> MctsAgent:
        """Build from the argument of ``mcts:<model.zip>[:<budget>]`` (loads the checkpoint).

        :raises connectx_gym.runtime.checkpoints.CheckpointError: if it is missing or not a checkpoint
        """
        path, budget = split_argument(argument)
        simulations, milliseconds = parse_budget(budget, f"{MCTS_KIND}:{argument}") if budget else (None, None)
        policy = load_checkpoint(path)
        label = f"{MCTS_KIND}:{os.fspath(path)}" + (f":{budget}" if budget else "")
        return cls(policy, simulations, milliseconds, name=label)

    # ------------------------------------------------------------------ pickling: weights and settings only
    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_search"], state["_last"] = None, None
        return state

    @property
    def budget_text(self) -> str:
        if self.milliseconds is not None:
            return f"{self.milliseconds} ms per move"
        return f"{self.simulations} simulations per move"

    def check_board(self, rows: int, columns: int, inarow: int) -> None:
        """Raise ``BoardMismatchError`` unless the board is the one the network was trained on."""
        check_trained_board(self.name, self.board, rows, columns, inarow)

    def tree_search(self) -> TreeSearch:
        """The search over this agent's network (built on first use)."""
        if self._search is None:
            board = SearchBoard(self.board["rows"], self.board["columns"], self.board["inarow"])
            self._search = TreeSearch(board, self.policy.policy_value, **self.settings)
        return self._search

    # ------------------------------------------------------------------ searching
    def search(
        self,
        positions: Sequence[Position],
        rngs: Sequence[np.random.Generator] | None = None,
        temperature: float = 0.0,
        noise: tuple[float, float] | None = None,
    ) -> list[SearchResult]:
        """Search every position (all in lockstep) and read each root's result.

        :param rngs: one generator per position, for root noise and a temperature's draw
        :param temperature: 0 plays the most visited move; > 0 draws by ``visits ** (1 / temperature)``
        :param noise: ``(alpha, fraction)`` of root Dirichlet noise (training)
        """
        for position in positions:
            geometry = position.geometry
            self.check_board(geometry.rows, geometry.columns, geometry.inarow)
            if position.winner is not None:
                raise ValueError("the game is over: there is no move to search")
        search = self.tree_search()
        roots = []
        for position in positions:
            own, mask = position.stones[position.to_move], position.mask
            root = self._reused_root(own, mask) if self.reuse and len(positions) == 1 else None
            roots.append(root if root is not None else search.root(own, mask))
        if not (self.reuse and len(positions) == 1):
            search.cache.clear()  # evaluations of other games must not steer this one (floating-point batch effects)
        seconds = None if self.milliseconds is None else self.milliseconds / 1000.0
        search.batch = self.settings["batch"] if len(roots) == 1 else self.lockstep_batch
        simulations = self.simulations
        self.last_kept = roots[0].total if len(roots) == 1 else 0
        if simulations is not None:
            simulations += self.last_kept  # a reused tree keeps its visits; the budget is this move's own
        made = search.run(roots, simulations=simulations, seconds=seconds, noise=noise, rngs=rngs)
        results = []
        for i, root in enumerate(roots):
            rng = rngs[i] if rngs is not None else None
            results.append(search.result(root, temperature=temperature, rng=rng, evaluations=made[i]))
        if self.reuse and len(positions) == 1:
            self._last = (roots[0], results[0].move)
        self.last_result = results[0] if len(results) == 1 else None
        return results

    def _reused_root(self, own: int, mask: int) -> Any:
        """The node of the last search's tree for this position (after this agent's move and one reply)."""
        if self._last is None:
            return None
        root, move = self._last
        after = self.tree_search().advance(root, [move])
        if after is None or not after.children:
            return None
        for child in after.children:
            if child is not None and child.own == own and child.mask == mask:
                return child
        return None

    def analyse(self, position: Position) -> SearchResult:
        """The full search result for one position (visits, values, priors): what ``play`` shows."""
        return self.search([position])[0]

    def act(self, position: Position, rng: np.random.Generator) -> int:
        return self.search([position])[0].move

    def act_many(self, positions: Sequence[Position], rngs: Sequence[np.random.Generator]) -> list[int]:
        """The moves of many positions, searched ``group`` at a time in lockstep."""
        moves: list[int] = []
        for start in range(0, len(positions), self.group):
            results = self.search(positions[start : start + self.group])
            moves.extend(result.move for result in results)
        return moves

    def __repr__(self) -> str:
        return f"MctsAgent({self.name!r}, {self.budget_text}, board={self.board})"
