"""The Gymnasium ConnectX environment: the agent plays one seat, a fixed opponent answers in ``step``.

Rules are Kaggle's ConnectX (see ``bitboard``) for any ``rows`` x ``columns`` x ``inarow``. The
observation is ``planes.NUM_PLANES`` planes relative to the agent, who is always the player to move
when it sees one. All randomness (the agent's seat, the opponent's choices) comes from
``self.np_random``, so a seeded ``reset`` replays exactly.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from connectx_gym.agents.selfplay import pool
from connectx_gym.agents.specs import make_opponent
from connectx_gym.envs import profiling
from connectx_gym.rules.bitboard import EMPTY, FIRST_MARK, SECOND_MARK, Position, geometry
from connectx_gym.rules.planes import NUM_PLANES, PLANE_OTHER, PLANE_OWN, PLANE_PLAYABLE, encode_position, legal_mask

AGENT_SEATS = ("first", "second", "random")
ILLEGAL_ACTION_POLICIES = ("lose", "raise")


class ConnectXEnv(gym.Env):
    """Connect-X against a fixed opponent, with Kaggle's rules.

    :param rows: board rows (Kaggle's ``configuration.rows``)
    :param columns: board columns; also the size of the ``Discrete`` action space
    :param inarow: stones in a line needed to win
    :param opponent: an opponent spec string (``"random"``, ``"negamax"``, ``"alphabeta:4"``,
        ``"kaggle:<name|path.py>"``, ...) or an object with ``act(position, rng) -> column``
    :param agent_seat: ``"first"``, ``"second"`` or ``"random"`` (drawn from ``np_random`` per episode)
    :param reward_win: reward when the agent completes a line (or the opponent forfeits)
    :param reward_loss: reward when the opponent completes a line (or the agent plays illegally
        under ``illegal_action="lose"``)
    :param reward_draw: reward when the board fills up with no line
    :param illegal_action: what a full or off-board column does: ``"lose"`` ends the episode as a
        loss, as Kaggle does; ``"raise"`` raises ``ValueError``
    :param info_board: put Kaggle's flat board in every step's ``info`` (``info["board"]``)
    :param render_mode: ``"human"`` (print) or ``"ansi"`` (return the text)

    For training, the trainer may set :attr:`teacher` (:mod:`connectx_gym.envs.teachers`): the
    ``info`` returned with each observation of a game in progress then also holds its labels
    (``info["teacher"]``, and ``info["teacher_value"]`` for a search teacher), for kickstarting.
    """

    metadata = {"render_modes": ["human", "ansi"], "render_fps": 2}

    def __init__(
        self,
        rows: int = 6,
        columns: int = 7,
        inarow: int = 4,
        opponent: str | Any = "random",
        agent_seat: str = "random",
        reward_win: float = 1.0,
        reward_loss: float = -1.0,
        reward_draw: float = 0.0,
        illegal_action: str = "lose",
        info_board: bool = True,
        render_mode: str | None = None,
    ) -> None:
        super().__init__()
        self.geometry = geometry(rows, columns, inarow)
        if agent_seat not in AGENT_SEATS:
            raise ValueError(f"agent_seat must be one of {'|'.join(AGENT_SEATS)}, got {agent_seat!r}")
        if illegal_action not in ILLEGAL_ACTION_POLICIES:
            raise ValueError(
                f"illegal_action must be one of {'|'.join(ILLEGAL_ACTION_POLICIES)}, got {illegal_action!r}"
            )
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode must be one of {self.metadata['render_modes']} or None, got {render_mode!r}")
        self.agent_seat = agent_seat
        self.reward_win = float(reward_win)
        self.reward_loss = float(reward_loss)
        self.reward_draw = float(reward_draw)
        self.illegal_action = illegal_action
        self.info_board = info_board
        self.render_mode = render_mode
        #: the kickstarting teacher (``label(position, rng) -> dict``) set by the trainer; None: no labels
        self.teacher: Any = None
        self.observation_space = spaces.Box(0.0, 1.0, (NUM_PLANES, rows, columns), dtype=np.float32)
        self.action_space = spaces.Discrete(columns)
        self.set_opponent(opponent)
        self.position = Position(self.geometry)
        self._planes = encode_position(self.position, FIRST_MARK)
        self._legal = legal_mask(self.geometry, 0)
        self._board = [EMPTY] * self.geometry.size
        self.agent_mark = FIRST_MARK
        self.winner: int | None = None  # mark of the winner, EMPTY for a draw, None while playing
        self._ended_at_reset = False
        self._reset_error: str | None = None

    # ------------------------------------------------------------------ opponent
    def set_opponent(self, opponent: str | Mapping[str, float] | Any) -> None:
        """Replace the opponent (a spec string, a ``{spec: weight}`` mixture drawn from per episode,
        or an object with ``act``); a drawn mixture component changes at the next reset."""
        if isinstance(opponent, (str, Mapping)):
            opponent = make_opponent(opponent)
        if not callable(getattr(opponent, "act", None)):
            raise TypeError(f"opponent must be a spec string or have act(position, rng), got {opponent!r}")
        self.opponent = opponent

    @property
    def opponent_mark(self) -> int:
        return 3 - self.agent_mark

    # ------------------------------------------------------------------ gymnasium API
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        """Start an episode. ``options`` may hold ``"agent_seat"`` (overrides the constructor's for this
        episode) and ``"opening"``: columns played from the empty board by both sides before the
        agent's first observation (the agent keeps its seat, so the opponent answers first when the
        opening leaves it to move); an illegal or game-ending opening raises ``ValueError``."""
        super().reset(seed=seed)
        seat = (options or {}).get("agent_seat", self.agent_seat)
        if seat not in AGENT_SEATS:
            raise ValueError(f"agent_seat must be one of {'|'.join(AGENT_SEATS)}, got {seat!r}")
        if seat == "random":
            self.agent_mark = FIRST_MARK if self.np_random.integers(2) == 0 else SECOND_MARK
        else:
            self.agent_mark = FIRST_MARK if seat == "first" else SECOND_MARK
        self.position = Position(self.geometry)
        self.winner = None
        # Observation, legal mask and Kaggle board are kept up to date move by move (see _play):
        # rebuilding them from the bitboards every step would cost more than the rules do.
        self._planes = encode_position(self.position, self.agent_mark)
        self._legal = legal_mask(self.geometry, 0)
        self._board = [EMPTY] * self.geometry.size
        self._play_opening((options or {}).get("opening", ()))
        info: dict[str, Any] = {}
        start_episode = getattr(self.opponent, "start_episode", None)
        if start_episode is not None:
            start_episode(self.np_random)
        if self.position.to_move != self.agent_mark:
            self._opponent_move(info)
        self._ended_at_reset = self.winner is not None
        self._reset_error = info.get("opponent_error")
        return self._observation(), self._info(info)

    def _play_opening(self, opening: Any) -> None:
        """Play ``options["opening"]`` (columns from the empty board, both sides) at reset."""
        for column in opening:
            if not isinstance(column, (int, np.integer)) or not self.position.is_legal(int(column)):
                raise ValueError(f"the opening {list(opening)} plays an illegal column {column!r}")
            self._play(int(column))
            if self.winner is not None:
                raise ValueError(f"the opening {list(opening)} ends the game; an opening must leave it unfinished")

    def step(self, action) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        info, ended = self.step_agent(action)
        if ended is not None:
            return ended
        if self.winner is None:
            self._opponent_move(info)
        return self.finish_step(info)

    # ------------------------------------------------------------------ a step in parts (batched opponents)
    # ``step`` is ``step_agent``, then the opponent's move, then ``finish_step``. A chunk of envs
    # (``envs.chunk``) runs the parts itself so that opponents backed by one policy answer all
    # their envs' positions with one forward pass (``opponent_batch_policy``, ``answer_opponent``).
    def step_agent(self, action) -> tuple[dict[str, Any], tuple | None]:
        """Play the agent's move; ``(info, None)``, or ``(info, step result)`` when the episode had ended at reset."""
        info: dict[str, Any] = {}
        if self._ended_at_reset:
            # The opponent forfeited its opening move: the episode ends on the agent's first step.
            self._ended_at_reset = False
            info["opponent_error"] = self._reset_error
            return info, (self._observation(), self._reward(), True, False, self._info(info))
        if self.winner is not None:
            raise RuntimeError("step() called after the episode ended; call reset() first")
        column = int(action)
        if not self.position.is_legal(column):
            if self.illegal_action == "raise":
                raise ValueError(
                    f"illegal action {column}: legal columns are {self.position.legal_moves()} "
                    f"(set illegal_action='lose' to end the episode as a loss instead)"
                )
            info["illegal_action"] = column
            self.winner = self.opponent_mark
        else:
            self._play(column)
        return info, None

    def opponent_batch_policy(self) -> tuple[Any, bool] | None:
        """When the opponent is to move and answers through a numpy policy: ``(policy, deterministic)``."""
        if self.winner is not None:
            return None
        batch_policy = getattr(self.opponent, "batch_policy", None)
        return batch_policy(self.position) if batch_policy is not None else None

    @property
    def opponent_kind(self) -> str:
        """The kind of the opponent playing this episode (a mixture's drawn component), for profiles."""
        opponent = getattr(self.opponent, "current", self.opponent)
        name = getattr(opponent, "name", type(opponent).__name__)
        return name if name.startswith(("alphabeta", "solver")) else name.partition(":")[0]  # not a file path

    def answer_opponent(self, info: dict[str, Any], column: Any) -> None:
        """Play the opponent's answer, computed elsewhere; an illegal one forfeits as in ``step``."""
        self._apply_opponent_answer(info, column)

    def finish_step(self, info: dict[str, Any]) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """The step's result once both sides have moved."""
        terminated = self.winner is not None
        reward = self._reward() if terminated else 0.0
        if self.render_mode == "human":
            self.render()
        return self._observation(), reward, terminated, False, self._info(info)

    def action_masks(self) -> np.ndarray:
        """Columns the agent may play now (for sb3-contrib's MaskablePPO)."""
        return self._legal.copy()

    def render(self) -> str | None:
        text = self.position.render()
        if self.render_mode == "ansi":
            return text
        print(text + "\n")
        return None

    # ------------------------------------------------------------------ self-play
    def add_snapshot(self, snapshot_id: int, payload: bytes, max_size: int, latest_probability: float) -> bool:
        """Add a frozen policy to this process's self-play pool (once per id, shared by all envs)."""
        shared = pool()
        shared.configure(max_size=max_size, latest_probability=latest_probability)
        return shared.add(snapshot_id, payload)

    def set_snapshot_weights(self, weights: Mapping[int, float]) -> None:
        """Sampling weights of older snapshots in this process's self-play pool."""
        pool().set_weights(weights)

    # ------------------------------------------------------------------ internals
    def _opponent_move(self, info: dict[str, Any]) -> None:
        """Let the opponent move; an error or an illegal answer forfeits the game to the agent."""
        timers = profiling.TIMERS
        started = time.perf_counter() if timers is not None else 0.0
        try:
            column = self.opponent.act(self.position, self.np_random)
        except Exception as error:  # an opponent's failure must not kill the run: Kaggle scores it a loss
            info["opponent_error"] = f"{type(error).__name__}: {error}"
            self.winner = self.agent_mark
            return
        finally:
            if timers is not None:
                timers[f"opponent:{self.opponent_kind}"] += time.perf_counter() - started
        self._apply_opponent_answer(info, column)

    def _apply_opponent_answer(self, info: dict[str, Any], column: Any) -> None:
        legal = isinstance(column, (int, np.integer)) and self.position.is_legal(int(column))
        if not legal:
            info["opponent_error"] = f"illegal move {column!r}; legal columns were {self.position.legal_moves()}"
            self.winner = self.agent_mark
            return
        self._play(int(column))

    def _play(self, column: int) -> None:
        """Play ``column`` for the player to move and update the cached views of the board."""
        position, geometry = self.position, self.geometry
        mark = position.to_move
        row = geometry.rows - 1 - (position.mask & geometry.column_masks[column]).bit_count()
        position.play(column)
        self.winner = position.winner
        self._board[row * geometry.columns + column] = mark
        planes = self._planes
        planes[PLANE_OWN if mark == self.agent_mark else PLANE_OTHER, row, column] = 1.0
        planes[PLANE_PLAYABLE, row, column] = 0.0
        if row:
            planes[PLANE_PLAYABLE, row - 1, column] = 1.0
        else:
            self._legal[column] = False

    def _reward(self) -> float:
        if self.winner == EMPTY:
            return self.reward_draw
        return self.reward_win if self.winner == self.agent_mark else self.reward_loss

    def _observation(self) -> np.ndarray:
        return self._planes.copy()

    def _info(self, info: dict[str, Any]) -> dict[str, Any]:
        info["agent_mark"] = self.agent_mark
        info["winner"] = self.winner
        if self.winner is not None:
            info["outcome"] = "draw" if self.winner == EMPTY else ("win" if self.winner == self.agent_mark else "loss")
            info["opponent"] = getattr(self.opponent, "episode_label", None) or self.opponent.name
        if self.info_board:
            info["board"] = self._board.copy()
        if self.teacher is not None and self.winner is None:
            timers = profiling.TIMERS
            started = time.perf_counter() if timers is not None else 0.0
            info.update(self.teacher.label(self.position, self.np_random))
            if timers is not None:
                timers["teacher"] += time.perf_counter() - started
        return info
