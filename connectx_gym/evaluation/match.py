"""Seeded games between a batched policy and an opponent, all games stepped together.

``play_games`` runs ``games`` episodes of ``ConnectXEnv`` at once, half with the agent in each
seat, and asks the policy for all pending moves in one batch per ply, so a neural policy pays
one forward pass per ply instead of one per game. Game ``i`` is reset with seed ``seed + i``,
so results depend only on the seed, never on how the games are scheduled.

``play_opponent_games`` plays games between two ``act(position, rng)`` opponents (neither a batch
policy) on a bare ``Position``, with per-game seeds, for evaluation: from the empty board with the
same seat split, or from an opening suite, each opening twice with the seats swapped (``game_setup``).
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from connectx_gym.agents.opponents import OpponentError
from connectx_gym.agents.specs import make_opponent
from connectx_gym.envs.connectx import ConnectXEnv
from connectx_gym.rules.bitboard import EMPTY, FIRST_MARK, SECOND_MARK, Geometry, Position, geometry
from connectx_gym.runtime.stopping import ignore_stop_signals

#: policy interface: (observations [n, planes, rows, columns], legal masks [n, columns]) -> columns [n]
BatchPolicy = Callable[[np.ndarray, np.ndarray], np.ndarray]

SEATS = ("first", "second")
#: the board games are played on when none is given: Kaggle's 6x7 with 4 in a row
DEFAULT_BOARD = {"rows": 6, "columns": 7, "inarow": 4}


@dataclass
class SeatRecord:
    """Wins, draws and losses of the agent in one seat."""

    wins: int = 0
    draws: int = 0
    losses: int = 0

    @property
    def games(self) -> int:
        return self.wins + self.draws + self.losses

    def add(self, outcome: str) -> None:
        if outcome == "win":
            self.wins += 1
        elif outcome == "draw":
            self.draws += 1
        else:
            self.losses += 1


@dataclass
class MatchResult:
    """Outcome of a match from the agent's side, overall and per seat."""

    opponent: str
    seats: dict[str, SeatRecord] = field(default_factory=lambda: {seat: SeatRecord() for seat in SEATS})
    opponent_errors: list[str] = field(default_factory=list)

    @property
    def total(self) -> SeatRecord:
        total = SeatRecord()
        for record in self.seats.values():
            total.wins += record.wins
            total.draws += record.draws
            total.losses += record.losses
        return total

    @property
    def win_rate(self) -> float:
        total = self.total
        return total.wins / total.games if total.games else math.nan

    @property
    def score(self) -> float:
        """Wins plus half the draws, per game."""
        total = self.total
        return (total.wins + 0.5 * total.draws) / total.games if total.games else math.nan


def play_games(
    policy: BatchPolicy,
    opponent: Any,
    games: int,
    seed: int = 0,
    env_kwargs: dict[str, Any] | None = None,
    openings: Sequence[Sequence[int]] | None = None,
) -> MatchResult:
    """Play ``games`` games of ``policy`` against ``opponent``; the first half as first player, or
    with ``openings``, each game from an opening with the seats paired as ``game_setup`` gives them.

    :param policy: batched policy, see ``BatchPolicy``
    :param opponent: opponent spec string or object with ``act(position, rng)``
    :param games: number of games (the agent is first in ``ceil(games / 2)`` of them)
    :param seed: game ``i`` is reset with ``seed + i``
    :param env_kwargs: board size and rewards for ``ConnectXEnv`` (``opponent``/``agent_seat`` are set here)
    :param openings: each opening's columns from the empty board (``None`` or empty: the empty board)
    """
    kwargs = dict(env_kwargs or {})
    kwargs.pop("opponent", None)
    kwargs.pop("agent_seat", None)
    kwargs["info_board"] = False
    if isinstance(opponent, str):
        opponent = make_opponent(opponent)
    name = getattr(opponent, "name", type(opponent).__name__)
    result = MatchResult(opponent=name)
    envs, observations, seats = [], [], []
    for index in range(games):
        agent_first, opening = game_setup(index, games, len(openings) if openings else None)
        seat = "first" if agent_first else "second"
        env = ConnectXEnv(opponent=opponent, agent_seat=seat, **kwargs)
        moves = openings[opening] if openings and opening is not None else ()
        obs, _ = env.reset(seed=seed + index, options={"opening": moves})
        envs.append(env)
        observations.append(obs)
        seats.append(seat)
    active = list(range(games))
    while active:
        batch = np.stack([observations[i] for i in active])
        masks = np.stack([envs[i].action_masks() for i in active])
        actions = policy(batch, masks)
        still_active = []
        for i, action in zip(active, actions):
            obs, _, terminated, _, info = envs[i].step(int(action))
            if "opponent_error" in info:
                result.opponent_errors.append(info["opponent_error"])
            if terminated:
                result.seats[seats[i]].add(info["outcome"])
            else:
                observations[i] = obs
                still_active.append(i)
        active = still_active
    return result


def sb3_batch_policy(model: Any, deterministic: bool = True) -> BatchPolicy:
    """A ``BatchPolicy`` from a MaskablePPO model (greedy by default)."""

    def act(observations: np.ndarray, masks: np.ndarray) -> np.ndarray:
        actions, _ = model.predict(observations, action_masks=masks, deterministic=deterministic)
        return np.asarray(actions)

    return act


# ====================================================================== games between two opponents
@dataclass
class GameRecord:
    """One game between two opponents, from the side of the evaluated ``agent``.

    :param index: the game's index within its pairing (its seed is ``seed + index``)
    :param seed: seed of the game's generator
    :param agent_first: whether the agent played first (mark 1)
    :param moves: the legal columns played, in order (both sides)
    :param outcome: ``"win"``, ``"draw"`` or ``"loss"`` for the agent
    :param forfeit: ``None``, or ``"agent"``/``"opponent"``: the side that raised or answered an
        illegal column and so lost the game
    :param error: what the forfeiting side did
    :param illegal_column: the illegal answer when it was an integer (for replays), else ``None``
    :param opening: the index in the opening suite of the opening the game started from (its moves
        are the first ``moves``), or ``None`` for a game from the empty board
    """

    index: int
    seed: int
    agent_first: bool
    moves: list[int] = field(default_factory=list)
    outcome: str = "draw"
    forfeit: str | None = None
    error: str | None = None
    illegal_column: int | None = None
    opening: int | None = None

    @property
    def seat(self) -> str:
        return "first" if self.agent_first else "second"


def _geometry_of(board: Any) -> Geometry:
    """A ``Geometry`` from a ``Geometry``, a ``{"rows", "columns", "inarow"}`` mapping or ``None`` (6x7x4)."""
    if board is None:
        return geometry()
    if isinstance(board, Geometry):
        return board
    return geometry(int(board["rows"]), int(board["columns"]), int(board["inarow"]))


def play_opponent_game(
    agent: Any,
    opponent: Any,
    agent_first: bool,
    seed: int,
    board: Any = None,
    index: int = 0,
    opening: Sequence[int] = (),
    opening_index: int | None = None,
) -> GameRecord:
    """Play one game between two objects with ``act(position, rng) -> column``.

    Both sides draw from one generator, ``np.random.default_rng(seed)``, in move order, so the
    game depends only on ``seed``, the seat and the opening. A side that raises or answers anything
    but a legal column (an ``int``/``np.integer``) forfeits: the game is a loss for it, as in
    ``ConnectXEnv`` and on Kaggle.

    :param board: ``Geometry``, ``{"rows", "columns", "inarow"}`` or ``None`` for 6x7, 4 in a row
    :param opening: columns played from the empty board before the sides move (a legal, unfinished
        start; see ``evaluation.openings``); they are the first of the record's ``moves``. The agent
        is player 1 (``agent_first``) or player 2 of the whole game, opening included.
    :param opening_index: the opening's index in its suite, kept in the record
    """
    position = Position(_geometry_of(board))
    rng = np.random.default_rng(seed)
    record = GameRecord(index=index, seed=seed, agent_first=agent_first, opening=opening_index)
    for column in opening:
        if position.play(int(column)) is not None:
            raise ValueError(f"the opening {list(opening)} ends the game; an opening must leave it unfinished")
        record.moves.append(int(column))
    agent_mark = FIRST_MARK if agent_first else SECOND_MARK
    while position.winner is None:
        side_is_agent = position.to_move == agent_mark
        player = agent if side_is_agent else opponent
        try:
            column = player.act(position, rng)
            legal = isinstance(column, (int, np.integer)) and position.is_legal(int(column))
        except Exception as error:  # a failing side loses the game; the evaluation goes on
            cause = error.cause if isinstance(error, OpponentError) else error
            record.error = f"raised {type(cause).__name__}: {cause}"
            legal = False
            column = None
        else:
            if not legal:
                record.error = f"illegal move {column!r}; legal columns were {position.legal_moves()}"
                if isinstance(column, (int, np.integer)) and not isinstance(column, bool):
                    record.illegal_column = int(column)
        if not legal:
            record.forfeit = "agent" if side_is_agent else "opponent"
            record.outcome = "loss" if side_is_agent else "win"
            return record
        position.play(int(column))
        record.moves.append(int(column))
    if position.winner == EMPTY:
        record.outcome = "draw"
    else:
        record.outcome = "win" if position.winner == agent_mark else "loss"
    return record


def game_setup(index: int, games: int, openings: int | None = None) -> tuple[bool, int | None]:
    """``(agent first, opening index or None)`` of game ``index`` of a pairing of ``games`` games.

    Without openings (``None`` or 0) the agent is first in games ``0 .. ceil(games / 2) - 1`` and
    second in the rest. With a suite of ``openings`` openings, game ``g`` plays opening
    ``(g // 2) % openings`` and the agent is first when ``g`` is even: games ``2k`` and ``2k + 1``
    are one opening with the seats swapped.
    """
    if not openings:
        return index < (games + 1) // 2, None
    return index % 2 == 0, (index // 2) % openings


def play_opponent_games(
    agent: Any,
    opponent: Any,
    games: int,
    seed: int = 0,
    board: Any = None,
    indices: Sequence[int] | None = None,
    openings: Sequence[Sequence[int]] | None = None,
) -> list[GameRecord]:
    """Play a pairing's games between two opponents (specs or objects with ``act``).

    Game ``i`` uses the generator ``np.random.default_rng(seed + i)`` shared by both sides, and its
    seat and opening from ``game_setup``: without ``openings`` the agent is first for
    ``i < ceil(games / 2)`` (as ``play_games``); with them game ``i`` starts from
    ``openings[(i // 2) % len(openings)]``, the agent first when ``i`` is even. So any subset of the
    games (``indices``; default all) plays exactly as it would in the full match: results never
    depend on how games are split between processes.

    :param openings: each opening's columns from the empty board (``None`` or empty: no openings)
    """
    if isinstance(agent, str) or isinstance(opponent, str):
        agent, opponent = make_opponent(agent), make_opponent(opponent)
    count = len(openings) if openings else None
    chosen = range(games) if indices is None else indices
    records = []
    for index in chosen:
        agent_first, opening = game_setup(index, games, count)
        moves = openings[opening] if openings and opening is not None else ()
        records.append(play_opponent_game(agent, opponent, agent_first, seed + index, board, index, moves, opening))
    return records


def match_result_from_games(records: Sequence[GameRecord], opponent: str) -> MatchResult:
    """A ``MatchResult`` (per-seat W/D/L, the opponent's forfeits) from game records."""
    result = MatchResult(opponent=opponent)
    for record in records:
        result.seats[record.seat].add(record.outcome)
        if record.forfeit == "opponent" and record.error:
            result.opponent_errors.append(record.error)
    return result


# ====================================================================== batches for worker processes
#: set by ``init_batch_worker`` in each evaluation worker: the agents, games per pairing, seed, board, openings
_BATCH_WORKER: dict[str, Any] = {}


def init_batch_worker(
    agents: Sequence[Any], games: int, seed: int, board: Any, openings: Sequence[Sequence[int]] | None = None
) -> None:
    """Process-pool initializer: the agents arrive once per worker (checkpoints as numpy weights)."""
    _BATCH_WORKER.clear()
    _BATCH_WORKER.update(agents=list(agents), games=games, seed=seed, board=board, openings=openings)


def init_batch_worker_process(
    agents: Sequence[Any], games: int, seed: int, board: Any, openings: Sequence[Sequence[int]] | None = None
) -> None:
    """``init_batch_worker`` in a pool worker, which leaves Ctrl-C and a hang-up to the parent (no traceback spam)."""
    ignore_stop_signals()
    init_batch_worker(agents, games, seed, board, openings)


def play_batch(batch: Sequence[tuple[int, int, int, int]]) -> list[tuple[int, GameRecord]]:
    """Play ``(pairing, agent index, opponent index, game index)`` jobs; ``(pairing, record)`` each.

    Needs ``init_batch_worker`` first; game ``g`` plays as in ``play_opponent_games`` (seed
    ``seed + g``, seat and opening from ``game_setup``), whichever batch it is in.
    """
    state = _BATCH_WORKER
    agents, games, seed, board = state["agents"], state["games"], state["seed"], state["board"]
    openings = state.get("openings")
    out = []
    for pairing, agent, opponent, game in batch:
        (record,) = play_opponent_games(agents[agent], agents[opponent], games, seed, board, [game], openings)
        out.append((pairing, record))
    return out


def loaded_heavy_modules() -> list[str]:
    """Heavy modules loaded in this process (evaluation workers should load none of them)."""
    return sorted(name for name in ("torch", "stable_baselines3", "sb3_contrib", "matplotlib") if name in sys.modules)
