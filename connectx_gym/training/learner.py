"""The trainer's own rollout loop, used when ``train.overlap``, kickstarting (``kickstart.coef``) or
``train.mirror`` is on; otherwise the trainer runs SB3's ``learn``.

**Overlap** (``train.overlap: true``): rollout k+1 is collected with policy k while the PPO update
that turns policy k into k+1 runs. SB3's ``learn`` alternates: the workers idle while ``train()``
runs, and the update waits while the workers step. ``Learner.learn`` runs the same loop with one
difference: after a rollout is handed to ``train()``, an acting thread starts collecting the next
one into a second buffer, with a copy of the policy as it was before the update (the acting
policy). The learner keeps MaskablePPO's loss, buffers, logger and checkpoint format; the model
stays a plain ``MaskablePPO``, so a checkpoint from either mode loads and resumes in the other.

What differs from the synchronous loop:

- **One update of policy lag.** The rollout trained at update k+1 was collected by policy k-1,
  one update behind the learner. PPO's importance ratio is taken against the acting policy's
  log-probabilities (they are what the buffer stores), so the clipping bounds the step exactly as
  it does in synchronous PPO; the extra off-policyness is logged before every update as
  ``train/policy_lag_kl``, the KL divergence from the acting to the learning policy on a sample
  of the rollout's positions.
- **Callbacks run at the hand-over.** The acting thread only steps the envs. Its infos and dones
  are replayed through the callbacks (episode statistics, curriculum, checkpoints, evaluation,
  progress bar) in the main thread once the rollout is complete, while no update runs. So an
  evaluation or checkpoint never sees weights that the update is changing, and a curriculum
  change reaches the envs one rollout later than in the synchronous loop.
- **Randomness.** The acting thread samples actions from its own seeded ``torch.Generator``, so
  the run is still reproducible from its seed; it is not the same run as the synchronous one.

Stopping is safe in both threads: Ctrl-C in the main thread stops the acting thread after its
current step before the exception leaves ``learn`` (so the caller can save a checkpoint and close
the envs), and an error in the acting thread (a failed worker) is raised in the main thread at the
next hand-over.

**Kickstarting** (``kickstart.coef > 0``, ``training.kickstart``): each transition also stores the
search teacher's move distribution that came with its observation (``info["teacher"]``), and the
update adds the teacher term while its weight is above 0. With ``train.overlap: false`` the
rollouts are collected in the main thread, one after the other, as SB3 does. The ``mcts`` teacher
searches a snapshot of the learner's network, sent to the workers at the start and every
``kickstart.refresh_steps`` steps, between rollouts (or, for the first ``teacher_network_steps``,
the fixed network of ``kickstart.teacher_network``); its root values (``info["teacher_value"]``)
are stored too, for the value term.
"""

from __future__ import annotations

import copy
import threading
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from connectx_gym.agents.mcts import MctsAgent
from connectx_gym.envs.teachers import SearchTeacher
from connectx_gym.inference.numpy_policy import from_sb3_model, load_checkpoint

#: positions sampled from each rollout to estimate the acting -> learning policy KL
LAG_KL_SAMPLE = 1024
#: the acting thread's torch generator is seeded with the run's seed plus this
ACTING_SEED_OFFSET = 7_919


@dataclass
class Rollout:
    """What one collection produced besides its buffer: each step's infos and dones, for the callbacks."""

    steps: list[tuple[list[dict[str, Any]], np.ndarray]] = field(default_factory=list)
    error: BaseException | None = None


class Learner:
    """Trains a ``MaskablePPO`` with its own rollout loop.

    :param model: the model (new or loaded); its env, buffer and policy are used in place
    :param overlap: collect each rollout in a thread while the previous one is learned from
    :param kickstart: the ``kickstart`` config section (None or ``coef`` 0: no teacher)
    :param mirror: train on minibatch samples mirrored left-right at random (``train.mirror``)
    """

    def __init__(self, model: Any, overlap: bool = True, kickstart: Any = None, mirror: bool = False) -> None:
        import torch

        self.model = model
        self.overlap = overlap
        self.kickstart = kickstart if kickstart is not None and kickstart.coef > 0 else None
        self.mirror = mirror
        self.acting = copy.deepcopy(model.policy)
        self.acting.set_training_mode(False)
        if self.kickstart is not None or mirror:
            model.rollout_buffer = self._new_buffer()
        self.spare = self._new_buffer()
        self.last_teacher: np.ndarray | None = None
        self.last_teacher_value: np.ndarray | None = None
        #: the step of the ``mcts`` teacher's snapshot in the workers (None: not sent yet)
        self.snapshot_step: int | None = None
        #: whether that snapshot is ``kickstart.teacher_network``'s fixed network
        self.snapshot_fixed = False
        seed = 0 if model.seed is None else int(model.seed)
        self.generator = torch.Generator().manual_seed(seed + ACTING_SEED_OFFSET + int(model.num_timesteps))
        self.stop_event = threading.Event()
        self.thread: threading.Thread | None = None
        self.pending: Rollout | None = None

    def _new_buffer(self):
        from connectx_gym.training.kickstart import TeacherRolloutBuffer

        model = self.model
        buffer_class = TeacherRolloutBuffer if self.kickstart is not None or self.mirror else model.rollout_buffer_class
        buffer = buffer_class(
            model.n_steps,
            model.observation_space,
            model.action_space,
            model.device,
            gamma=model.gamma,
            gae_lambda=model.gae_lambda,
            n_envs=model.n_envs,
            **model.rollout_buffer_kwargs,
        )
        buffer.mirror = self.mirror
        return buffer

    # ------------------------------------------------------------------ the loop
    def learn(self, total_timesteps: int, callback: Any = None, log_interval: int = 1) -> Any:
        """MaskablePPO's ``learn`` (continuing the model's step count), with overlapped collection."""
        model = self.model
        total_timesteps, callback = model._setup_learn(total_timesteps, callback, False, "MaskablePPO", False)
        self._retire_teacher_when_done()
        self._refresh_snapshot()
        if self.kickstart is not None:
            self.last_teacher, self.last_teacher_value = self._teachers(unwrapped(model.env).reset_infos)
        callback.on_training_start(locals(), globals())
        iteration = 0
        try:
            while model.num_timesteps < total_timesteps:
                if not self._next_rollout(callback, total_timesteps):
                    break
                iteration += 1
                model._update_current_progress_remaining(model.num_timesteps, total_timesteps)
                if log_interval is not None and iteration % log_interval == 0:
                    model.dump_logs(iteration)
                if self.overlap:
                    self._log_lag_kl()
                self._train()
        finally:
            self.stop()
        callback.on_training_end()
        return model

    def _next_rollout(self, callback: Any, total_timesteps: int) -> bool:
        """Put the next complete rollout in ``model.rollout_buffer``, replay its steps through the
        callbacks, and start collecting the one after it (unless the run ends first)."""
        model = self.model
        if self.thread is None:
            # the first rollout (or the first after a stop): collected here, by the current policy
            self.acting.load_state_dict(model.policy.state_dict())
            rollout = Rollout()
            self._collect(model.rollout_buffer, rollout)
        else:
            rollout = self._join()
            model.rollout_buffer, self.spare = self.spare, model.rollout_buffer
        callback.on_rollout_start()
        for infos, dones in rollout.steps:
            model.num_timesteps += model.env.num_envs
            callback.update_locals({"infos": infos, "dones": dones})
            if not callback.on_step():
                return False
            model._update_info_buffer(infos, dones)
        callback.on_rollout_end()
        self._retire_teacher_when_done()
        if model.num_timesteps < total_timesteps:
            self._refresh_snapshot()
        if self.overlap and model.num_timesteps < total_timesteps:
            # the acting policy is the one the coming update starts from
            self.acting.load_state_dict(model.policy.state_dict())
            self._start()
        return True

    def _train(self) -> None:
        """One update: MaskablePPO's, with the teacher term while its weight is above 0 (and on mirrored
        samples with ``mirror``; at weight 0 ``train_with_teacher`` is MaskablePPO's update)."""
        from connectx_gym.training.kickstart import kickstart_coef, train_with_teacher

        model = self.model
        coef = kickstart_coef(self.kickstart, model.num_timesteps) if self.kickstart is not None else 0.0
        value_coef = self.kickstart.value_coef if coef > 0 else 0.0
        if coef > 0 or self.mirror:
            train_with_teacher(model, coef, value_coef)
        else:
            model.train()

    def _retire_teacher_when_done(self) -> None:
        """Once the teacher's weight is 0 the workers stop searching and updates are SB3's own. Called
        only while no acting thread runs: the envs are told through the same pipes it steps them by."""
        from connectx_gym.training.kickstart import kickstart_coef

        if self.kickstart is not None and kickstart_coef(self.kickstart, self.model.num_timesteps) == 0:
            self.model.env.set_attr("teacher", None)
            self.kickstart = None
            self.last_teacher = self.last_teacher_value = None

    def _refresh_snapshot(self) -> None:
        """Send the ``mcts`` teacher's search over the learner's current network to the workers, at the
        start and every ``refresh_steps`` (over ``teacher_network`` instead, once, for its first
        ``teacher_network_steps``); called only while no acting thread runs, as above."""
        kickstart, step = self.kickstart, self.model.num_timesteps
        if kickstart is None or kickstart.teacher != "mcts":
            return
        fixed = bool(kickstart.teacher_network) and step < kickstart.teacher_network_steps
        if self.snapshot_step is not None and fixed == self.snapshot_fixed:
            if fixed or step - self.snapshot_step < kickstart.refresh_steps:
                return
        network = load_checkpoint(kickstart.teacher_network) if fixed else from_sb3_model(self.model)
        agent = MctsAgent(network, simulations=kickstart.simulations, name="mcts-teacher")
        self.model.env.set_attr("teacher", SearchTeacher(agent, kickstart.search_share))
        self.snapshot_step, self.snapshot_fixed = step, fixed

    # ------------------------------------------------------------------ the acting thread
    def _start(self) -> None:
        self.stop_event.clear()
        self.pending = Rollout()
        self.thread = threading.Thread(
            target=self._run, args=(self.spare, self.pending), name="connectx-acting", daemon=True
        )
        self.thread.start()

    def _run(self, buffer: Any, rollout: Rollout) -> None:
        try:
            self._collect(buffer, rollout)
        except BaseException as error:  # handed to the main thread at the next hand-over
            rollout.error = error

    def _join(self) -> Rollout:
        assert self.thread is not None and self.pending is not None
        self.thread.join()
        rollout, self.thread, self.pending = self.pending, None, None
        if rollout.error is not None:
            raise rollout.error
        return rollout

    def stop(self) -> None:
        """Stop the acting thread after its current step and wait for it (errors are dropped)."""
        if self.thread is None:
            return
        self.stop_event.set()
        self.thread.join()
        self.thread = self.pending = None

    # ------------------------------------------------------------------ collection
    def _act(self, obs: np.ndarray, masks: np.ndarray):
        """The acting policy's sampled actions, values and log-probabilities (MaskablePPO's ``forward``,
        sampling from this learner's own generator)."""
        import torch

        from connectx_gym.training.policy import masked_forward

        policy = self.acting
        with torch.no_grad():
            values, distribution = masked_forward(policy, policy.obs_to_tensor(obs)[0], masks)
            probs = distribution.distribution.probs
            actions = torch.multinomial(probs, 1, generator=self.generator).squeeze(1)
            log_probs = distribution.log_prob(actions)
        return actions.numpy(), values, log_probs

    def _collect(self, buffer: Any, rollout: Rollout) -> None:
        """Fill ``buffer`` with ``n_steps`` steps of every env (MaskablePPO's ``collect_rollouts``
        without the callbacks, whose inputs are kept in ``rollout``)."""
        import torch
        from sb3_contrib.common.maskable.utils import get_action_masks

        model, env = self.model, self.model.env
        buffer.reset()
        new_obs = dones = None
        for _ in range(model.n_steps):
            if self.stop_event.is_set():
                return
            masks = get_action_masks(env)
            actions, values, log_probs = self._act(model._last_obs, masks)
            new_obs, rewards, dones, infos = env.step(actions)
            rollout.steps.append((infos, dones))
            teacher = {}
            if self.last_teacher is not None:
                teacher = {"teacher": self.last_teacher, "teacher_value": self.last_teacher_value}
            buffer.add(
                model._last_obs,
                actions.reshape(-1, 1),
                rewards,
                model._last_episode_starts,
                values,
                log_probs,
                action_masks=masks,
                **teacher,
            )
            model._last_obs = new_obs
            model._last_episode_starts = dones
            if self.last_teacher is not None:
                self.last_teacher, self.last_teacher_value = self._teachers(infos, dones)
        with torch.no_grad():
            last_values = self.acting.predict_values(self.acting.obs_to_tensor(new_obs)[0])
        buffer.compute_returns_and_advantage(last_values=last_values, dones=dones)

    def _teachers(self, infos: list[dict[str, Any]], dones: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The teacher distributions and values (NaN: none) of the observations that came with ``infos`` (a
        finished episode's next observation is its reset one, whose info the vec env keeps in ``reset_infos``)."""
        env = self.model.env
        reset_infos = unwrapped(env).reset_infos if dones is not None and dones.any() else None
        teachers = np.zeros((env.num_envs, env.action_space.n), dtype=np.float32)
        values = np.full(env.num_envs, np.nan, dtype=np.float32)
        for i, info in enumerate(infos):
            source = reset_infos[i] if reset_infos is not None and dones[i] else info
            found = source.get("teacher")
            if found is not None:
                teachers[i] = found
                values[i] = source.get("teacher_value", np.nan)
        return teachers, values

    def _log_lag_kl(self) -> None:
        """Record the KL from the policy that collected the rollout to the one about to learn from it."""
        import torch

        model, buffer = self.model, self.model.rollout_buffer
        size = buffer.buffer_size * buffer.n_envs
        # an even spread of (step, env) cells, read in place: the buffer is not flattened yet
        steps, envs = np.divmod(np.linspace(0, size - 1, min(LAG_KL_SAMPLE, size)).astype(np.int64), buffer.n_envs)
        obs = torch.as_tensor(buffer.observations[steps, envs], device=model.device)
        actions = torch.as_tensor(buffer.actions[steps, envs].reshape(-1), device=model.device)
        masks = buffer.action_masks[steps, envs]
        old_log_probs = torch.as_tensor(buffer.log_probs[steps, envs], device=model.device)
        with torch.no_grad():
            _, log_probs, _ = model.policy.evaluate_actions(obs, actions, action_masks=masks)
        log_ratio = log_probs - old_log_probs
        model.logger.record("train/policy_lag_kl", float(((torch.exp(log_ratio) - 1) - log_ratio).mean()))


def unwrapped(venv: Any) -> Any:
    """The innermost vec env under SB3's wrappers (``VecMonitor``...), which holds ``reset_infos``."""
    while hasattr(venv, "venv"):
        venv = venv.venv
    return venv
