"""Policy networks for MaskablePPO: a small CNN over the board planes (default) or a plain MLP.

``BoardCNN`` is a stack of same-padded convolutions, optionally followed by residual blocks (a small
ResNet), whose flattened output feeds SB3's policy and value heads. It is deliberately plain (Conv2d
+ activation, no normalisation layers) so that the numpy re-implementation used by self-play workers
and Kaggle submissions stays exact and small.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import connectx_gym.runtime.quiet  # noqa: F401 - first: no legacy gym banner when SB3 loads

import torch
from gymnasium import spaces
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor, FlattenExtractor

ACTIVATIONS = {"relu": torch.nn.ReLU, "tanh": torch.nn.Tanh, "gelu": torch.nn.GELU}


class ResidualBlock(torch.nn.Module):
    """``x + conv2(act(conv1(x)))``, then the activation: two same-padded convolutions that keep the width."""

    def __init__(self, channels: int, kernel_size: int, activation: str) -> None:
        super().__init__()
        self.conv1 = torch.nn.Conv2d(channels, channels, kernel_size, padding=kernel_size // 2)
        self.conv2 = torch.nn.Conv2d(channels, channels, kernel_size, padding=kernel_size // 2)
        self.activation = ACTIVATIONS[activation]()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.activation(x + self.conv2(self.activation(self.conv1(x))))


class BoardCNN(BaseFeaturesExtractor):
    """Same-padded convolutions over ``(planes, rows, columns)``, then ``res_blocks`` residual blocks of
    the last convolution's width, flattened.

    :param observation_space: the env's ``Box`` of board planes
    :param channels: output channels of each convolution
    :param kernel_size: odd kernel size shared by every convolution
    :param activation: ``relu``, ``tanh`` or ``gelu``
    :param res_blocks: residual blocks after the convolutions (0: a plain CNN)
    """

    def __init__(
        self,
        observation_space: spaces.Box,
        channels: Sequence[int] = (64, 64),
        kernel_size: int = 3,
        activation: str = "relu",
        res_blocks: int = 0,
    ) -> None:
        planes, rows, columns = observation_space.shape
        super().__init__(observation_space, features_dim=int(channels[-1]) * rows * columns)
        layers = []
        in_channels = planes
        for out_channels in channels:
            layers.append(torch.nn.Conv2d(in_channels, int(out_channels), kernel_size, padding=kernel_size // 2))
            layers.append(ACTIVATIONS[activation]())
            in_channels = int(out_channels)
        self.cnn = torch.nn.Sequential(*layers)
        self.blocks = torch.nn.Sequential(
            *(ResidualBlock(in_channels, kernel_size, activation) for _ in range(res_blocks))
        )

    def forward(self, observations: torch.Tensor) -> torch.Tensor:
        return torch.flatten(self.blocks(self.cnn(observations)), start_dim=1)


def masked_forward(policy: Any, observations: torch.Tensor, masks: Any) -> tuple[torch.Tensor, Any]:
    """Values ``(N, 1)`` and the masked action distribution of a ``MaskableActorCriticPolicy`` (its
    ``forward`` up to the choice of actions), for callers that sample or score the whole distribution
    themselves. Assumes the shared features extractor, as every policy ``policy_kwargs`` builds has."""
    latent_pi, latent_vf = policy.mlp_extractor(policy.extract_features(observations))
    distribution = policy.action_dist.proba_distribution(action_logits=policy.action_net(latent_pi))
    distribution.apply_masking(masks)
    return policy.value_net(latent_vf), distribution


def policy_kwargs(
    features: str = "cnn",
    cnn_channels: Sequence[int] = (64, 64),
    kernel_size: int = 3,
    net_arch: Sequence[int] = (128,),
    activation: str = "relu",
    res_blocks: int = 0,
) -> dict[str, Any]:
    """``policy_kwargs`` for ``MaskablePPO("MlpPolicy", ...)`` from the ``policy`` config section."""
    kwargs: dict[str, Any] = {
        "net_arch": {"pi": list(net_arch), "vf": list(net_arch)},
        "activation_fn": ACTIVATIONS[activation],
    }
    if features == "cnn":
        kwargs["features_extractor_class"] = BoardCNN
        kwargs["features_extractor_kwargs"] = {
            "channels": list(cnn_channels),
            "kernel_size": kernel_size,
            "activation": activation,
        }
        if res_blocks:
            kwargs["features_extractor_kwargs"]["res_blocks"] = int(res_blocks)
    elif features == "mlp":
        kwargs["features_extractor_class"] = FlattenExtractor
    else:
        raise ValueError(f"policy features must be cnn or mlp, got {features!r}")
    return kwargs


def config_policy_kwargs(policy: Any) -> dict[str, Any]:
    """``policy_kwargs`` of a config's ``policy`` section."""
    return policy_kwargs(
        policy.features, policy.cnn_channels, policy.kernel_size, policy.net_arch, policy.activation, policy.res_blocks
    )
