"""Kickstarting (``kickstart`` section): PPO's loss plus a decaying pull toward a search teacher.

The env workers attach the teacher's move distribution for every observation they return
(the envs' ``teacher``, :mod:`connectx_gym.envs.teachers`: ``info["teacher"]``); the trainer
(:class:`~connectx_gym.training.ppo.ConnectXPPO`) stores it next to each transition and adds one
term to the update:

    loss = PPO's loss + coef * cross_entropy(teacher, policy)

over the transitions that have a teacher distribution (Schmitt et al. 2018, "Kickstarting Deep
Reinforcement Learning"). The KL divergence from the teacher to the policy (the cross-entropy less
the teacher's own entropy) is logged as ``train/teacher_kl``. ``coef`` decays linearly to 0 over
``kickstart.decay_steps`` (or stays, ``kickstart.schedule: constant``); after that the update is
MaskablePPO's own and the workers stop searching.

The ``mcts`` teacher also sends its root value of each searched position
(``info["teacher_value"]``): with ``kickstart.value_coef > 0`` the loss adds
``value_coef * (value - teacher_value)**2`` over those positions, so the value head learns the
game's value as the search sees it, besides PPO's returns (logged as ``train/teacher_value_mse``).

This module holds the trainer-independent half: the weight's schedule, which teacher the workers
hold when (:class:`Teaching`), and reading the labels out of the envs' infos.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from connectx_gym.agents.mcts import MctsAgent
from connectx_gym.envs.teachers import SearchTeacher
from connectx_gym.inference.numpy_policy import from_sb3_model, load_checkpoint


def kickstart_coef(config: Any, steps: int) -> float:
    """The teacher term's weight after ``steps`` steps: ``coef`` decaying linearly to 0 at ``decay_steps``
    (``schedule: constant``: ``coef`` throughout)."""
    if config.coef > 0 and config.schedule == "constant":
        return config.coef
    if config.coef <= 0 or steps >= config.decay_steps:
        return 0.0
    return config.coef * (1.0 - steps / config.decay_steps)


class Teaching:
    """The teacher's side of a kickstarted run: its weight, the workers' teacher, and the labels of the
    observations the trainer is about to act on.

    Every method that tells the envs something is called only while no acting thread steps them: the
    envs are told through the same pipes the thread steps them by.

    :param config: the ``kickstart`` section (None or ``coef`` 0: no teacher)
    """

    def __init__(self, config: Any) -> None:
        self.config = config if config is not None and config.coef > 0 else None
        #: the teacher distributions and values (NaN: none) of the observations acted on next
        self.labels: tuple[np.ndarray, np.ndarray] | None = None
        #: the step of the ``mcts`` teacher's snapshot in the workers (None: not sent yet)
        self.snapshot_step: int | None = None
        #: whether that snapshot is ``kickstart.teacher.network``'s fixed network
        self.snapshot_fixed = False

    @property
    def active(self) -> bool:
        return self.config is not None

    def coef(self, step: int) -> float:
        """The teacher term's weight at ``step`` (0 once retired)."""
        return kickstart_coef(self.config, step) if self.config is not None else 0.0

    def value_coef(self, step: int) -> float:
        """The teacher's value term's weight at ``step``: the ``mcts`` teacher's ``value_coef`` while the
        teacher term is on (the other teachers give no values)."""
        if self.coef(step) <= 0 or self.config.teacher.kind != "mcts":
            return 0.0
        return self.config.teacher.value_coef

    def start(self, env: Any, step: int, model: Any) -> None:
        """At the start of training: retire the teacher if its weight is already 0, else send the ``mcts``
        snapshot and read the labels of the first observations (those of the envs' last reset)."""
        self.retire_when_done(env, step)
        self.refresh(env, step, model)
        if self.config is not None:
            self.labels = read_labels(env.num_envs, env.action_space.n, unwrapped(env).reset_infos)

    def retire_when_done(self, env: Any, step: int) -> None:
        """Once the teacher's weight is 0 the workers stop searching and updates are SB3's own."""
        if self.config is not None and self.coef(step) == 0:
            env.set_attr("teacher", None)
            self.config = None
            self.labels = None

    def refresh(self, env: Any, step: int, model: Any) -> None:
        """Send the ``mcts`` teacher's search over ``model``'s current network to the workers, at the start
        and every ``refresh_steps`` (over the teacher's ``network`` instead, once, for its first
        ``network_steps``)."""
        if self.config is None or self.config.teacher.kind != "mcts":
            return
        config = self.config.teacher
        fixed = bool(config.network) and step < config.network_steps
        if self.snapshot_step is not None and fixed == self.snapshot_fixed:
            if fixed or step - self.snapshot_step < config.refresh_steps:
                return
        network = load_checkpoint(config.network) if fixed else from_sb3_model(model)
        agent = MctsAgent(network, simulations=config.simulations, name="mcts-teacher")
        env.set_attr("teacher", SearchTeacher(agent, config.search_share))
        self.snapshot_step, self.snapshot_fixed = step, fixed

    def observe(self, env: Any, infos: list[dict[str, Any]], dones: np.ndarray) -> None:
        """Read the labels of the observations a step returned (called from the acting thread too)."""
        if self.labels is not None:
            reset_infos = unwrapped(env).reset_infos if dones.any() else None
            self.labels = read_labels(env.num_envs, env.action_space.n, infos, dones, reset_infos)


def read_labels(
    num_envs: int,
    columns: int,
    infos: list[dict[str, Any]],
    dones: np.ndarray | None = None,
    reset_infos: list[dict[str, Any]] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The teacher distributions and values (NaN: none) of the observations that came with ``infos`` (a
    finished episode's next observation is its reset one, whose info the vec env keeps in ``reset_infos``)."""
    teachers = np.zeros((num_envs, columns), dtype=np.float32)
    values = np.full(num_envs, np.nan, dtype=np.float32)
    for i, info in enumerate(infos):
        source = reset_infos[i] if reset_infos is not None and dones is not None and dones[i] else info
        found = source.get("teacher")
        if found is not None:
            teachers[i] = found
            values[i] = source.get("teacher_value", np.nan)
    return teachers, values


def unwrapped(venv: Any) -> Any:
    """The innermost vec env under SB3's wrappers (``VecMonitor``...), which holds ``reset_infos``."""
    while hasattr(venv, "venv"):
        venv = venv.venv
    return venv
