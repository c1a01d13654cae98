"""Shared test helpers: the train command as a user runs it, and small in-process MaskablePPO models
saved the way the trainer saves them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
QUICK = str(ROOT / "configs" / "quick.yaml")
#: ``--set`` overrides for a training run of seconds: in-process envs, a 4-channel CNN, 64 steps
TINY = (
    "env.opponent=random",
    "curriculum.stages=[]",
    "multiprocessing.use_multiprocessing=false",
    "multiprocessing.parallel_episodes=2",
    "multiprocessing.num_processes=1",
    "ppo.n_steps=16",
    "ppo.batch_size=32",
    "ppo.n_epochs=1",
    "policy.cnn_channels=[4]",
    "policy.net_arch=[8]",
    "train.total_timesteps=64",
    "train.checkpoint_every=32",
    "train.eval_every=32",
    "train.eval_games=2",
    "train.eval_opponents=[random]",
    "logging.progress_bar=false",
    "logging.tensorboard=false",
)


#: a few tiny AlphaZero generations of 4 games each, in this process
TINY_AZ = (
    *TINY,
    "train.algorithm=alphazero",
    "train.eval_accuracy=false",
    "alphazero.games=4",
    "alphazero.parallel_games=2",
    "alphazero.simulations=8",
    "alphazero.epochs=1",
    "alphazero.batch_size=32",
    "train.total_timesteps=120",
    "train.checkpoint_every=1000",
    "train.eval_every=0",
)


def train_command(*overrides: str, config: str = QUICK) -> list[str]:
    """``python -m connectx_gym.train --config <config> --set <override> ...`` as a new process runs it."""
    command = [sys.executable, "-m", "connectx_gym.train", "--config", config]
    for override in overrides:
        command += ["--set", override]
    return command


def run_train(cwd: Path, *args: str, timeout: float = 240) -> subprocess.CompletedProcess:
    """Run ``python -m connectx_gym.train <args>`` in ``cwd``; its output is captured as text."""
    return subprocess.run(
        [sys.executable, "-m", "connectx_gym.train", *args], cwd=cwd, capture_output=True, text=True, timeout=timeout
    )


def tiny_model(
    board: dict[str, int], settings: dict[str, Any] | None = None, seed: int = 0, n_steps: int = 32, steps: int = 0
):
    """A MaskablePPO on in-process envs vs random, with the board recorded as ``train.py`` does.

    :param board: ``{"rows", "columns", "inarow"}``
    :param settings: ``policy.policy_kwargs`` arguments (default: a 4-channel CNN, an 8-unit head)
    :param steps: PPO steps to learn before returning (0: the untrained policy)
    """
    from connectx_gym.runtime.quiet import quiet_import_sb3

    quiet_import_sb3()
    from sb3_contrib import MaskablePPO

    from connectx_gym.envs.vec import make_vec_env
    from connectx_gym.training.policy import policy_kwargs

    settings = (
        settings
        if settings is not None
        else dict(features="cnn", cnn_channels=[4], kernel_size=3, net_arch=[8], activation="relu")
    )
    venv = make_vec_env(
        dict(board, opponent="random"), parallel_episodes=2, num_processes=1, use_multiprocessing=False, seed=seed
    )
    model = MaskablePPO(
        "MlpPolicy",
        venv,
        n_steps=n_steps,
        batch_size=n_steps,
        n_epochs=1,
        seed=seed,
        device="cpu",
        verbose=0,
        policy_kwargs=policy_kwargs(**settings),
    )
    model.connectx_board = dict(board)
    if steps:
        model.learn(steps)
    return model


def tiny_checkpoint(path, board: dict[str, int], **kwargs) -> Path:
    """``tiny_model(board, **kwargs)`` saved at ``path`` as the trainer saves it (with its metadata)."""
    from connectx_gym.runtime.checkpoints import save_model

    return save_model(tiny_model(board, **kwargs), path)


def gravity_fill(geometry, stones_wanted: int, rng):
    """``stones_wanted`` stones dropped into random legal columns, alternating marks, lines ignored.

    :returns: (Kaggle board, mark to move)
    """
    stones, mask, mark = [0, 0, 0], 0, 1
    for _ in range(max(0, stones_wanted)):
        legal = geometry.legal_moves(mask)
        bit = geometry.drop_bit(mask, legal[int(rng.integers(len(legal)))])
        stones[mark] |= bit
        mask |= bit
        mark = 3 - mark
    return geometry.to_kaggle(stones[1], stones[2]), mark


def rollout(venv, steps, seed):
    """Seeded random legal actions; returns everything the vec env produced."""
    rng = np.random.default_rng(seed)
    venv.seed(seed)
    obs = venv.reset()
    record = [obs]
    for _ in range(steps):
        masks = np.stack(venv.env_method("action_masks"))
        actions = np.array([rng.choice(np.flatnonzero(m)) for m in masks])
        obs, rewards, dones, infos = venv.step(actions)
        record.append((obs, rewards, dones, [info.get("board") for info in infos], masks))
    return record


def assert_same(a, b):
    """Two ``rollout`` records are equal step by step."""
    assert np.array_equal(a[0], b[0])
    for x, y in zip(a[1:], b[1:]):
        for left, right in zip(x, y):
            if isinstance(left, np.ndarray):
                assert np.array_equal(left, right)
            else:
                assert left == right


def random_positions(board: dict[str, int], count: int, seed: int) -> list:
    """``count`` positions of games in progress on ``board``, reached by seeded random legal moves."""
    from connectx_gym.rules.bitboard import Position, geometry

    rng = np.random.default_rng(seed)
    found = []
    while len(found) < count:
        position = Position(geometry(board["rows"], board["columns"], board["inarow"]))
        for _ in range(int(rng.integers(0, board["rows"] * board["columns"]))):
            position.play(int(rng.choice(position.legal_moves())))
            if position.done:
                break
        if not position.done:
            found.append(position)
    return found


def win_rate_against_random(checkpoint: Path, games: int = 200) -> float:
    """The greedy win rate of a checkpoint against ``random`` on 6x7 boards, over ``games`` seeded games."""
    from connectx_gym.agents.specs import make_agent, make_opponent
    from connectx_gym.evaluation.match import match_result_from_games, play_opponent_games
    from connectx_gym.rules.bitboard import geometry

    played = play_opponent_games(
        make_agent(str(checkpoint)), make_opponent("random"), games, seed=0, board=geometry(6, 7, 4)
    )
    return match_result_from_games(played, "random").win_rate
