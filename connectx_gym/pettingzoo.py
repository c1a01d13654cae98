"""ConnectX for PettingZoo: ``from connectx_gym.pettingzoo import env``.

``env(rows=6, columns=7, inarow=4, render_mode=None)`` is the two-player AEC environment of
``envs.aec.ConnectXAEC`` (PettingZoo's ``connect_four_v3`` API on Kaggle's rules, any board size)
wrapped in PettingZoo's order-enforcing wrapper, as the classic environments are; ``raw_env``
is the same without the wrapper::

    from connectx_gym.pettingzoo import env

    game = env(rows=6, columns=7, inarow=4)
    game.reset(seed=0)
    for agent in game.agent_iter():
        observation, reward, termination, truncation, info = game.last()
        mask = observation["action_mask"]
        game.step(None if termination or truncation else game.action_space(agent).sample(mask))
"""

from __future__ import annotations

from pettingzoo.utils import wrappers

from connectx_gym.envs.aec import ConnectXAEC

__all__ = ["ConnectXAEC", "env", "raw_env"]


def raw_env(rows: int = 6, columns: int = 7, inarow: int = 4, render_mode: str | None = None) -> ConnectXAEC:
    """The AEC environment without wrappers."""
    return ConnectXAEC(rows=rows, columns=columns, inarow=inarow, render_mode=render_mode)


def env(rows: int = 6, columns: int = 7, inarow: int = 4, render_mode: str | None = None) -> wrappers.BaseWrapper:
    """The AEC environment in PettingZoo's ``OrderEnforcingWrapper`` (``step`` before ``reset`` raises)."""
    return wrappers.OrderEnforcingWrapper(raw_env(rows, columns, inarow, render_mode))
