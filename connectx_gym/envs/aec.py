"""ConnectX as a PettingZoo AEC (agent-environment cycle) environment: two players, one board.

The API is PettingZoo's ``connect_four_v3``: agents ``player_0`` (Kaggle's mark 1, moves first) and
``player_1`` (mark 2); each observation is ``{"observation": int8 (rows, columns, 2), "action_mask":
int8 (columns,)}``, plane 0 the observing player's stones and plane 1 the other's, row 0 the top; the
mask is all zeros for the player not to move. The rules are ConnectXEnv's bitboards for any
``rows`` x ``columns`` x ``inarow``, exactly Kaggle's: a line of ``inarow`` wins (+1 to the winner,
-1 to the loser), a full board with no line is a draw (0 each), and a full or off-board column
loses the game for the player who chose it, as on Kaggle (``infos[player]["illegal_action"]``
names the column). The game is deterministic; ``reset(seed=...)`` only seeds the action spaces.

``connectx_gym.pettingzoo.env()`` adds PettingZoo's order-enforcing wrapper, as the classic
environments do.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium import spaces
from pettingzoo import AECEnv
from pettingzoo.utils import AgentSelector

from connectx_gym.rules.bitboard import EMPTY, FIRST_MARK, SECOND_MARK, Position, geometry

AGENTS = ("player_0", "player_1")
MARKS = {"player_0": FIRST_MARK, "player_1": SECOND_MARK}


class ConnectXAEC(AECEnv):
    """Two-player ConnectX with PettingZoo's AEC API.

    :param rows: board rows
    :param columns: board columns; also each player's ``Discrete`` action space
    :param inarow: stones in a line needed to win
    :param render_mode: ``"ansi"`` (``render`` returns the board as text) or ``"human"`` (prints it
        after every move)
    """

    metadata = {"render_modes": ["human", "ansi"], "name": "connectx_v0", "is_parallelizable": False, "render_fps": 2}

    def __init__(self, rows: int = 6, columns: int = 7, inarow: int = 4, render_mode: str | None = None) -> None:
        super().__init__()
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode must be one of {self.metadata['render_modes']} or None, got {render_mode!r}")
        self.geometry = geometry(rows, columns, inarow)
        self.render_mode = render_mode
        self.possible_agents = list(AGENTS)
        self.agents = list(AGENTS)
        board = spaces.Box(0, 1, (rows, columns, 2), dtype=np.int8)
        mask = spaces.Box(0, 1, (columns,), dtype=np.int8)
        self.observation_spaces = {a: spaces.Dict({"observation": board, "action_mask": mask}) for a in AGENTS}
        self.action_spaces = {a: spaces.Discrete(columns) for a in AGENTS}
        self.position = Position(self.geometry)

    def observation_space(self, agent: str) -> spaces.Space:
        return self.observation_spaces[agent]

    def action_space(self, agent: str) -> spaces.Space:
        return self.action_spaces[agent]

    def reset(self, seed: int | None = None, options: dict[str, Any] | None = None) -> None:
        if seed is not None:
            for offset, agent in enumerate(self.possible_agents):
                self.action_spaces[agent].seed(seed + offset)
        self.position = Position(self.geometry)
        self.agents = list(self.possible_agents)
        self.rewards = dict.fromkeys(self.agents, 0)
        self._cumulative_rewards = dict.fromkeys(self.agents, 0)
        self.terminations = dict.fromkeys(self.agents, False)
        self.truncations = dict.fromkeys(self.agents, False)
        self.infos = {agent: {} for agent in self.agents}
        self._agent_selector = AgentSelector(self.agents)
        self.agent_selection = self._agent_selector.reset()

    def board(self) -> np.ndarray:
        """Kaggle's board as an int8 ``(rows, columns)`` array: 0 empty, 1 ``player_0``, 2 ``player_1``."""
        return np.array(self.position.to_kaggle(), dtype=np.int8).reshape(self.geometry.rows, self.geometry.columns)

    def observe(self, agent: str) -> dict[str, np.ndarray]:
        board, mark = self.board(), MARKS[agent]
        observation = np.stack([board == mark, board == 3 - mark], axis=2).astype(np.int8)
        mask = np.zeros(self.geometry.columns, dtype=np.int8)
        if agent == self.agent_selection and self.position.winner is None:
            mask[self.position.legal_moves()] = 1
        return {"observation": observation, "action_mask": mask}

    def step(self, action: Any) -> None:
        agent = self.agent_selection
        if self.terminations[agent] or self.truncations[agent]:
            self._was_dead_step(action)
            return
        other = self._agent_selector.next()
        self._clear_rewards()
        column = int(action)
        if not self.position.is_legal(column):
            self.infos[agent]["illegal_action"] = column
            self._finish(winner=other, loser=agent)
        else:
            winner = self.position.play(column)
            if winner == EMPTY:
                self.terminations = dict.fromkeys(self.agents, True)
            elif winner is not None:
                self._finish(winner=agent, loser=other)
        self.agent_selection = other
        self._accumulate_rewards()
        if self.render_mode == "human":
            self.render()

    def _finish(self, winner: str, loser: str) -> None:
        self.rewards[winner] += 1
        self.rewards[loser] -= 1
        self.terminations = dict.fromkeys(self.agents, True)

    def render(self) -> str | None:
        text = self.position.render()
        if self.render_mode == "ansi":
            return text
        if self.render_mode == "human":
            print(text + "\n")
        return None
