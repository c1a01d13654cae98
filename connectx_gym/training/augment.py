"""Mirror augmentation (``train.mirror``): a minibatch with some of its samples flipped left-right.

Connect-X is symmetric under reversing the columns: the mirrored move in the mirrored position is
exactly as likely under the mirrored policy and is worth the same. So a flipped sample keeps its
value, old log-probability, advantage and return, and mirrors its observation planes, action,
action mask and teacher distribution. The trainer applies it to each minibatch as it is drawn.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch


def mirrored(samples: Any, flip: np.ndarray) -> Any:
    """``samples`` (a NamedTuple with ``observations``, ``actions``, ``action_masks`` and ``teacher``) with
    the rows where ``flip`` is true mirrored left-right (columns reversed)."""
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


def random_flips(size: int) -> np.ndarray:
    """Which of ``size`` samples to flip: each with probability 1/2, drawn from numpy's global generator
    (as SB3 draws its shuffle, so a seeded run is reproducible)."""
    return np.random.random(size) < 0.5
