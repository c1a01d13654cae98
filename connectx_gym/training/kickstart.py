"""Kickstarting (``kickstart`` section): PPO's loss plus a decaying pull toward a search teacher.

The env workers attach the teacher's move distribution for every observation they return
(the envs' ``teacher``, :mod:`connectx_gym.envs.teachers`: ``info["teacher"]``); ``TeacherRolloutBuffer`` stores it next
to each transition, and ``train_with_teacher`` runs MaskablePPO's update with one more term:

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
The model stays a plain ``MaskablePPO``, so checkpoints load, evaluate, export and resume like any
other.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import connectx_gym.runtime.quiet  # noqa: F401 - first: no legacy gym banner when SB3 loads

import numpy as np
import torch
from sb3_contrib.common.maskable.buffers import MaskableRolloutBuffer
from torch.nn import functional as F

from connectx_gym.training.policy import masked_forward


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
    """``MaskableRolloutBuffer`` that also keeps the teacher's distribution of every transition
    (all zeros where there was none: such transitions add nothing to the teacher term).

    With ``mirror`` on, each sample of a minibatch is flipped left-right with probability 1/2 (drawn
    from numpy's global generator, as SB3 draws its shuffle): observation planes, action, action mask
    and teacher distribution are mirrored; value, log-probability, advantage and return are kept,
    since the mirrored move in the mirrored position was exactly as likely and is worth the same.
    """

    mirror: bool = False

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
        samples = TeacherSamples(
            *super()._get_samples(batch_inds, env),
            self.to_torch(self.teacher[batch_inds]),
            self.to_torch(self.teacher_value[batch_inds].reshape(-1)),
        )
        return mirrored(samples, np.random.random(len(batch_inds)) < 0.5) if self.mirror else samples


def mirrored(samples: TeacherSamples, flip: np.ndarray) -> TeacherSamples:
    """``samples`` with the rows where ``flip`` is true mirrored left-right (columns reversed)."""
    rows = torch.as_tensor(flip, device=samples.observations.device)
    if not bool(rows.any()):
        return samples
    columns = samples.action_masks.shape[1]
    observations = samples.observations.clone()
    observations[rows] = observations[rows].flip(-1)
    actions = samples.actions.clone()
    actions[rows] = columns - 1 - actions[rows]
    masks, teacher = samples.action_masks.clone(), samples.teacher.clone()
    masks[rows] = masks[rows].flip(-1)
    teacher[rows] = teacher[rows].flip(-1)
    return samples._replace(observations=observations, actions=actions, action_masks=masks, teacher=teacher)


def kickstart_coef(config: Any, steps: int) -> float:
    """The teacher term's weight after ``steps`` steps: ``coef`` decaying linearly to 0 at ``decay_steps``
    (``schedule: constant``: ``coef`` throughout)."""
    if config.coef > 0 and config.schedule == "constant":
        return config.coef
    if config.coef <= 0 or steps >= config.decay_steps:
        return 0.0
    return config.coef * (1.0 - steps / config.decay_steps)


def _mean_entropy(distributions: torch.Tensor) -> float:
    """Mean entropy of the rows (0 for none): the part of the cross-entropy the policy cannot remove."""
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


# long: MaskablePPO.train with the teacher term; kept in one piece to read side by side with SB3's
def train_with_teacher(model: Any, coef: float, value_coef: float = 0.0) -> None:
    """One PPO update of ``model`` on its rollout buffer with the teacher term weighted by ``coef`` and the
    teacher's value term by ``value_coef`` (sb3-contrib's ``MaskablePPO.train``, step for step, plus those
    terms; value clipping unsupported)."""
    policy = model.policy
    policy.set_training_mode(True)
    model._update_learning_rate(policy.optimizer)
    clip_range = model.clip_range(model._current_progress_remaining)
    entropy_losses, pg_losses, value_losses, clip_fractions, teacher_kls, value_mses = [], [], [], [], [], []
    approx_kl_divs: list[float] = []
    loss = torch.zeros(())
    continue_training = True
    for _ in range(model.n_epochs):
        approx_kl_divs = []
        for samples in model.rollout_buffer.get(model.batch_size):
            values, log_prob, entropy, cross_entropy = _evaluate(policy, samples)
            advantages = samples.advantages
            if model.normalize_advantage:
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
            teacher_kls.append(teacher_loss.item() - _mean_entropy(samples.teacher[taught]))
            loss = policy_loss + model.ent_coef * entropy_loss + model.vf_coef * value_loss + coef * teacher_loss
            valued = ~torch.isnan(samples.teacher_value)
            if bool(valued.any()):
                value_mse = F.mse_loss(values[valued], samples.teacher_value[valued])
                value_mses.append(value_mse.item())
                loss = loss + value_coef * value_mse
            with torch.no_grad():
                log_ratio = log_prob - samples.old_log_prob
                approx_kl_div = torch.mean((torch.exp(log_ratio) - 1) - log_ratio).cpu().numpy()
                approx_kl_divs.append(approx_kl_div)
            if model.target_kl is not None and approx_kl_div > 1.5 * model.target_kl:
                continue_training = False
                break
            policy.optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(policy.parameters(), model.max_grad_norm)
            policy.optimizer.step()
        model._n_updates += 1
        if not continue_training:
            break
    _log_update(model, entropy_losses, pg_losses, value_losses, approx_kl_divs, clip_fractions, loss, clip_range)
    model.logger.record("train/teacher_kl", float(np.mean(teacher_kls)) if teacher_kls else 0.0)
    model.logger.record("train/teacher_coef", coef)
    if value_mses:
        model.logger.record("train/teacher_value_mse", float(np.mean(value_mses)))


def _log_update(model, entropy_losses, pg_losses, value_losses, approx_kl_divs, clip_fractions, loss, clip_range):
    from stable_baselines3.common.utils import explained_variance

    buffer = model.rollout_buffer
    record = model.logger.record
    record("train/entropy_loss", np.mean(entropy_losses))
    record("train/policy_gradient_loss", np.mean(pg_losses))
    record("train/value_loss", np.mean(value_losses))
    record("train/approx_kl", np.mean(approx_kl_divs))
    record("train/clip_fraction", np.mean(clip_fractions))
    record("train/loss", loss.item())
    record("train/explained_variance", explained_variance(buffer.values.flatten(), buffer.returns.flatten()))
    record("train/n_updates", model._n_updates, exclude="tensorboard")
    record("train/clip_range", clip_range)
