"""The PPO trainer: :class:`ConnectXPPO`, sb3-contrib's ``MaskablePPO`` with this project's rollout
collection and update. It is the one class (with the rollout buffer it fills) that touches
stable-baselines3's private names; everything else trains through its public ``learn``.

SB3's own ``learn`` drives the loop; ``ConnectXPPO`` overrides the two steps it calls,
``collect_rollouts`` and ``train``:

- **Collection** steps every env ``n_steps`` times with a copy of the policy (the acting policy),
  sampling actions from the trainer's own seeded ``torch.Generator``, and then replays each step's
  infos and dones through the callbacks (episode statistics, curriculum, checkpoints, evaluation,
  progress bar) in the main thread. So an evaluation or checkpoint never sees weights that an
  update is changing.
- **Overlap** (``train.overlap: true``): after a rollout is handed to ``train``, an acting thread
  (:mod:`connectx_gym.training.acting`) starts collecting the next one into a second buffer with the
  policy as it was before the update. The rollout trained at update k+1 was then collected by
  policy k-1: PPO's importance ratio is taken against the acting policy's log-probabilities (they
  are what the buffer stores), so the clipping bounds the step exactly as in synchronous PPO; the
  extra off-policyness is logged before every update as ``train/policy_lag_kl``. A curriculum
  change reaches the envs one rollout later than without overlap.
- **The update** is MaskablePPO's own, plus the kickstarting teacher's terms while their weight is
  above 0 (:mod:`connectx_gym.training.kickstart`), on minibatches mirrored at random with
  ``train.mirror`` (:mod:`connectx_gym.training.augment`).

Stopping is safe in both threads: Ctrl-C in the main thread stops the acting thread after its
current step before the exception leaves ``learn`` (so the caller can save a checkpoint and close
the envs), and an error in the acting thread (a failed worker) is raised in the main thread at the
next hand-over. A checkpoint is a plain ``MaskablePPO`` zip: the trainer's settings are not saved
in it, so a checkpoint of either mode loads anywhere and resumes in the other.
"""

from __future__ import annotations

import copy
from typing import Any, NamedTuple

import connectx_gym.runtime.quiet  # noqa: F401 - first: no legacy gym banner when SB3 loads

import numpy as np
import torch
from sb3_contrib import MaskablePPO
from sb3_contrib.common.maskable.buffers import MaskableRolloutBuffer
from sb3_contrib.common.maskable.utils import get_action_masks
from stable_baselines3.common.utils import explained_variance
from torch.nn import functional as F

from connectx_gym.training.acting import ActingThread, Rollout
from connectx_gym.training.augment import mirrored, random_flips
from connectx_gym.training.kickstart import Teaching
from connectx_gym.training.policy import masked_forward

#: positions sampled from each rollout to estimate the acting -> learning policy KL
LAG_KL_SAMPLE = 1024
#: the acting thread's torch generator is seeded with the run's seed plus this
ACTING_SEED_OFFSET = 7_919


class TeacherSamples(NamedTuple):
    observations: torch.Tensor
    actions: torch.Tensor
    old_values: torch.Tensor
    old_log_prob: torch.Tensor
    advantages: torch.Tensor
    returns: torch.Tensor
    action_masks: torch.Tensor
    teacher: torch.Tensor
    teacher_value: torch.Tensor


class TeacherRolloutBuffer(MaskableRolloutBuffer):
    """``MaskableRolloutBuffer`` that also keeps the teacher's distribution and value of every transition
    (zeros and NaN where there was none: such transitions add nothing to the teacher's terms)."""

    def reset(self) -> None:
        super().reset()
        self.teacher = np.zeros((self.buffer_size, self.n_envs, self.mask_dims), dtype=np.float32)
        self.teacher_value = np.full((self.buffer_size, self.n_envs), np.nan, dtype=np.float32)

    def add(self, *args, teacher: np.ndarray | None = None, teacher_value: np.ndarray | None = None, **kwargs) -> None:
        if teacher is not None:
            self.teacher[self.pos] = teacher
        if teacher_value is not None:
            self.teacher_value[self.pos] = teacher_value
        super().add(*args, **kwargs)

    def get(self, batch_size: int | None = None):
        if not self.generator_ready:
            self.teacher = self.swap_and_flatten(self.teacher)
            self.teacher_value = self.swap_and_flatten(self.teacher_value)
        yield from super().get(batch_size)

    def _get_samples(self, batch_inds: np.ndarray, env: Any = None) -> TeacherSamples:  # type: ignore[override]
        return TeacherSamples(
            *super()._get_samples(batch_inds, env),
            self.to_torch(self.teacher[batch_inds]),
            self.to_torch(self.teacher_value[batch_inds].reshape(-1)),
        )


class ConnectXPPO(MaskablePPO):
    """``MaskablePPO`` with the collection and update described in this module's docstring.

    Build it as a ``MaskablePPO`` (or load one with ``ConnectXPPO.load``), then :meth:`configure` it.
    """

    #: what :meth:`configure` sets: the trainer's runtime state, never saved in a checkpoint
    RUNTIME_ATTRIBUTES = ("overlap", "mirror", "teaching", "acting", "spare", "generator", "acting_thread")

    def configure(self, overlap: bool = False, kickstart: Any = None, mirror: bool = False) -> ConnectXPPO:
        """Set the trainer's options; returns the model.

        :param overlap: collect each rollout in a thread while the previous one is learned from
        :param kickstart: the ``kickstart`` config section (None or ``coef`` 0: no teacher)
        :param mirror: train on minibatch samples mirrored left-right at random (``train.mirror``)
        """
        self.overlap = overlap
        self.mirror = mirror
        self.teaching = Teaching(kickstart)
        self.acting = copy.deepcopy(self.policy)
        self.acting.set_training_mode(False)
        self.rollout_buffer = self._new_buffer()
        self.spare = self._new_buffer()
        self.generator = torch.Generator()
        self.acting_thread = ActingThread()
        return self

    def _excluded_save_params(self) -> list[str]:
        return [*super()._excluded_save_params(), *self.RUNTIME_ATTRIBUTES]

    def _new_buffer(self) -> TeacherRolloutBuffer:
        return TeacherRolloutBuffer(
            self.n_steps,
            self.observation_space,
            self.action_space,
            self.device,
            gamma=self.gamma,
            gae_lambda=self.gae_lambda,
            n_envs=self.n_envs,
            **self.rollout_buffer_kwargs,
        )

    # ------------------------------------------------------------------ the loop (SB3's learn)
    def learn(self, *args: Any, **kwargs: Any) -> ConnectXPPO:
        """MaskablePPO's ``learn``; the acting thread is stopped however it ends."""
        if not hasattr(self, "teaching"):
            self.configure()
        try:
            return super().learn(*args, **kwargs)
        finally:
            self.acting_thread.stop()

    def _setup_learn(self, total_timesteps: int, *args: Any, **kwargs: Any) -> tuple[int, Any]:
        total_timesteps, callback = super()._setup_learn(total_timesteps, *args, **kwargs)
        seed = 0 if self.seed is None else int(self.seed)
        self.generator.manual_seed(seed + ACTING_SEED_OFFSET + int(self.num_timesteps))
        self.teaching.start(self.env, self.num_timesteps, self)
        return total_timesteps, callback

    def collect_rollouts(self, env: Any, callback: Any, rollout_buffer: Any, n_rollout_steps: int, use_masking=True):
        """Put the next complete rollout in ``self.rollout_buffer``, replay its steps through the callbacks,
        and (with overlap) start collecting the one after it unless the run ends first."""
        if self.acting_thread.running:
            rollout = self.acting_thread.join()
            self.rollout_buffer, self.spare = self.spare, self.rollout_buffer
        else:
            # the first rollout (or the first after a stop): collected here, by the current policy
            self.acting.load_state_dict(self.policy.state_dict())
            rollout = Rollout()
            self._collect(self.rollout_buffer, rollout)
        callback.on_rollout_start()
        for infos, dones in rollout.steps:
            self.num_timesteps += env.num_envs
            callback.update_locals({"infos": infos, "dones": dones})
            if not callback.on_step():
                return False
            self._update_info_buffer(infos, dones)
        callback.on_rollout_end()
        self.teaching.retire_when_done(env, self.num_timesteps)
        more = self.num_timesteps < self._total_timesteps
        if more:
            self.teaching.refresh(env, self.num_timesteps, self)
        if self.overlap and more:
            # the acting policy is the one the coming update starts from
            self.acting.load_state_dict(self.policy.state_dict())
            buffer = self.spare
            self.acting_thread.start(lambda pending: self._collect(buffer, pending))
        return True

    def _act(self, obs: np.ndarray, masks: np.ndarray):
        """The acting policy's sampled actions, values and log-probabilities (MaskablePPO's ``forward``,
        sampling from the trainer's own generator)."""
        policy = self.acting
        with torch.no_grad():
            values, distribution = masked_forward(policy, policy.obs_to_tensor(obs)[0], masks)
            probs = distribution.distribution.probs
            actions = torch.multinomial(probs, 1, generator=self.generator).squeeze(1)
            log_probs = distribution.log_prob(actions)
        return actions.numpy(), values, log_probs

    def _collect(self, buffer: TeacherRolloutBuffer, rollout: Rollout) -> None:
        """Fill ``buffer`` with ``n_steps`` steps of every env (MaskablePPO's ``collect_rollouts`` without
        the callbacks, whose inputs are kept in ``rollout``)."""
        env, teaching = self.env, self.teaching
        buffer.reset()
        new_obs = dones = None
        for _ in range(self.n_steps):
            if self.acting_thread.stop_event.is_set():
                return
            masks = get_action_masks(env)
            actions, values, log_probs = self._act(self._last_obs, masks)
            new_obs, rewards, dones, infos = env.step(actions)
            rollout.steps.append((infos, dones))
            labels = {}
            if teaching.labels is not None:
                labels = {"teacher": teaching.labels[0], "teacher_value": teaching.labels[1]}
            buffer.add(
                self._last_obs,
                actions.reshape(-1, 1),
                rewards,
                self._last_episode_starts,
                values,
                log_probs,
                action_masks=masks,
                **labels,
            )
            self._last_obs = new_obs
            self._last_episode_starts = dones
            teaching.observe(env, infos, dones)
        with torch.no_grad():
            last_values = self.acting.predict_values(self.acting.obs_to_tensor(new_obs)[0])
        buffer.compute_returns_and_advantage(last_values=last_values, dones=dones)

    # ------------------------------------------------------------------ the update
    def train(self) -> None:
        """One update: MaskablePPO's, with the teacher's terms while their weight is above 0 (and on
        mirrored samples with ``mirror``; at weight 0 and without mirroring it is MaskablePPO's own)."""
        if self.overlap:
            self._log_lag_kl()
        coef = self.teaching.coef(self.num_timesteps)
        if coef > 0 or self.mirror:
            self.train_with_teacher(coef, self.teaching.value_coef(self.num_timesteps))
        else:
            super().train()

    # long: MaskablePPO.train with the teacher terms; kept in one piece to read side by side with SB3's
    def train_with_teacher(self, coef: float, value_coef: float = 0.0) -> None:
        """One PPO update on the rollout buffer with the teacher term weighted by ``coef`` and the teacher's
        value term by ``value_coef`` (sb3-contrib's ``MaskablePPO.train``, step for step, plus those terms;
        value clipping unsupported)."""
        policy = self.policy
        policy.set_training_mode(True)
        self._update_learning_rate(policy.optimizer)
        clip_range = self.clip_range(self._current_progress_remaining)
        entropy_losses, pg_losses, value_losses, clip_fractions, teacher_kls, value_mses = [], [], [], [], [], []
        approx_kl_divs: list[float] = []
        loss = torch.zeros(())
        continue_training = True
        for _ in range(self.n_epochs):
            approx_kl_divs = []
            for samples in self.rollout_buffer.get(self.batch_size):
                if self.mirror:
                    samples = mirrored(samples, random_flips(len(samples.actions)))
                values, log_prob, entropy, cross_entropy = _evaluate(policy, samples)
                advantages = samples.advantages
                if self.normalize_advantage:
                    advantages = (advantages - advantages.mean()) / (advantages.std() + 1e-8)
                ratio = torch.exp(log_prob - samples.old_log_prob)
                policy_loss = -torch.min(
                    advantages * ratio, advantages * torch.clamp(ratio, 1 - clip_range, 1 + clip_range)
                ).mean()
                pg_losses.append(policy_loss.item())
                clip_fractions.append(torch.mean((torch.abs(ratio - 1) > clip_range).float()).item())
                value_loss = F.mse_loss(samples.returns, values)
                value_losses.append(value_loss.item())
                entropy_loss = -torch.mean(entropy)
                entropy_losses.append(entropy_loss.item())
                taught = samples.teacher.sum(dim=1) > 0
                teacher_loss = cross_entropy[taught].mean() if bool(taught.any()) else torch.zeros(())
                teacher_kls.append(teacher_loss.item() - mean_entropy(samples.teacher[taught]))
                loss = policy_loss + self.ent_coef * entropy_loss + self.vf_coef * value_loss + coef * teacher_loss
                valued = ~torch.isnan(samples.teacher_value)
                if bool(valued.any()):
                    value_mse = F.mse_loss(values[valued], samples.teacher_value[valued])
                    value_mses.append(value_mse.item())
                    loss = loss + value_coef * value_mse
                with torch.no_grad():
                    log_ratio = log_prob - samples.old_log_prob
                    approx_kl_div = torch.mean((torch.exp(log_ratio) - 1) - log_ratio).cpu().numpy()
                    approx_kl_divs.append(approx_kl_div)
                if self.target_kl is not None and approx_kl_div > 1.5 * self.target_kl:
                    continue_training = False
                    break
                policy.optimizer.zero_grad()
                loss.backward()
                torch.nn.utils.clip_grad_norm_(policy.parameters(), self.max_grad_norm)
                policy.optimizer.step()
            self._n_updates += 1
            if not continue_training:
                break
        buffer, record = self.rollout_buffer, self.logger.record
        record("train/entropy_loss", np.mean(entropy_losses))
        record("train/policy_gradient_loss", np.mean(pg_losses))
        record("train/value_loss", np.mean(value_losses))
        record("train/approx_kl", np.mean(approx_kl_divs))
        record("train/clip_fraction", np.mean(clip_fractions))
        record("train/loss", loss.item())
        record("train/explained_variance", explained_variance(buffer.values.flatten(), buffer.returns.flatten()))
        record("train/n_updates", self._n_updates, exclude="tensorboard")
        record("train/clip_range", clip_range)
        record("train/teacher_kl", float(np.mean(teacher_kls)) if teacher_kls else 0.0)
        record("train/teacher_coef", coef)
        if value_mses:
            record("train/teacher_value_mse", float(np.mean(value_mses)))

    def _log_lag_kl(self) -> None:
        """Record the KL from the policy that collected the rollout to the one about to learn from it."""
        buffer = self.rollout_buffer
        size = buffer.buffer_size * buffer.n_envs
        # an even spread of (step, env) cells, read in place: the buffer is not flattened yet
        steps, envs = np.divmod(np.linspace(0, size - 1, min(LAG_KL_SAMPLE, size)).astype(np.int64), buffer.n_envs)
        obs = torch.as_tensor(buffer.observations[steps, envs], device=self.device)
        actions = torch.as_tensor(buffer.actions[steps, envs].reshape(-1), device=self.device)
        masks = buffer.action_masks[steps, envs]
        old_log_probs = torch.as_tensor(buffer.log_probs[steps, envs], device=self.device)
        with torch.no_grad():
            _, log_probs, _ = self.policy.evaluate_actions(obs, actions, action_masks=masks)
        log_ratio = log_probs - old_log_probs
        self.logger.record("train/policy_lag_kl", float(((torch.exp(log_ratio) - 1) - log_ratio).mean()))


def mean_entropy(distributions: Any) -> float:
    """Mean entropy of the rows of a torch tensor (0 for none): the part of the cross-entropy the policy
    cannot remove."""
    if not len(distributions):
        return 0.0
    logs = torch.where(distributions > 0, torch.log(distributions.clamp_min(1e-12)), torch.zeros(()))
    return float(-(distributions * logs).sum(dim=1).mean())


def _evaluate(policy: Any, samples: TeacherSamples):
    """Values, log-probabilities of the taken actions, entropies and the teacher cross-entropy per
    sample (MaskableActorCriticPolicy.evaluate_actions, keeping the whole distribution)."""
    values, distribution = masked_forward(policy, samples.observations, samples.action_masks)
    actions = samples.actions.long().flatten()
    log_probs = distribution.distribution.logits  # normalised log-probabilities, masked ones ~ -1e8
    cross_entropy = -(samples.teacher * log_probs).sum(dim=1)
    return values.flatten(), distribution.log_prob(actions), distribution.entropy(), cross_entropy
