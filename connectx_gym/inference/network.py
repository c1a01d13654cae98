"""The policy-value network's forward pass in numpy: the one copy the package and the Kaggle file share.

``Network`` holds the layers of a MaskablePPO policy (the CNN's convolutions, the policy and value
halves of the MLP, the two heads) and computes logits and values exactly as torch does, for one
position or a batch. :class:`connectx_gym.inference.numpy_policy.NumpyPolicy` wraps it with
checkpoint loading and action choice; the Kaggle submission embeds this module's source from
``import math`` on (see ``connectx_gym.submission.build``), so nothing below the imports may name the
package, and the code imports only ``math`` and numpy.
"""

import math

import numpy as np


def erf(x):
    """Error function (Abramowitz & Stegun 7.1.26, |error| < 1.5e-7): numpy has none built in."""
    sign = np.sign(x)
    a = np.abs(x)
    t = 1.0 / (1.0 + 0.3275911 * a)
    poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))))
    return sign * (1.0 - poly * np.exp(-a * a))


def activate(x, name):
    """``relu``, ``tanh`` or ``gelu`` (exact, erf-based, as torch's default) of ``x``."""
    if name == "relu":
        return np.maximum(x, 0.0)
    if name == "tanh":
        return np.tanh(x)
    if name == "gelu":
        return 0.5 * x * (1.0 + erf(x / math.sqrt(2.0)))
    raise ValueError(f"activation must be one of relu|tanh|gelu, got {name!r}")


#: positions per pass of the convolutions (:meth:`Network.features`): on a 2-core x86 machine a batch of
#: 256 ran at about half the positions per second of a batch of 32, its im2col matrix (25 MB for 64
#: channels on 6x7) far larger than the cache
SLICE_ROWS = 32


def conv2d_same(x, weight, bias):
    """``torch.nn.Conv2d(padding=k // 2)`` for odd ``k``: (N, C, H, W) -> (N, O, H, W).

    im2col: the k*k shifted views of the padded input side by side, then one matrix product,
    which BLAS does far faster than a strided tensordot.
    """
    count, channels, height, width = x.shape
    out_channels, _, kernel, _ = weight.shape
    pad = kernel // 2
    padded = np.zeros((count, channels, height + 2 * pad, width + 2 * pad), dtype=np.float32)
    padded[:, :, pad : pad + height, pad : pad + width] = x
    columns = np.empty((count, height, width, channels, kernel, kernel), dtype=np.float32)
    for i in range(kernel):
        for j in range(kernel):
            columns[..., i, j] = padded[:, :, i : i + height, j : j + width].transpose(0, 2, 3, 1)
    out = columns.reshape(count * height * width, -1) @ weight.reshape(out_channels, -1).T + bias
    return out.reshape(count, height, width, out_channels).transpose(0, 3, 1, 2)


class Network:
    """Logits and values of a policy-value network from its layers, each a ``(weight, bias)`` pair of
    float32 arrays as torch stores them.

    :param conv: the convolutions of the features extractor (none: an MLP on the flattened planes)
    :param policy_hidden: the policy half's hidden layers
    :param action_head: the layer from them to one logit per column
    :param value_hidden: the value half's hidden layers
    :param value_head: the layer from them to the value; None for a network used for its policy only
    :param activation: the activation of every layer but the heads
    :param blocks: residual blocks after the convolutions, each two ``(weight, bias)`` pairs: the block
        computes ``activation(x + conv2(activation(conv1(x))))``
    """

    def __init__(self, conv, policy_hidden, action_head, value_hidden, value_head, activation, blocks=()):
        activate(np.zeros(1, dtype=np.float32), activation)  # an unknown name fails here, not mid-game
        self.conv, self.blocks = list(conv), [tuple(block) for block in blocks]
        self.policy_hidden, self.action_head = list(policy_hidden), action_head
        self.value_hidden, self.value_head, self.activation = list(value_hidden), value_head, activation
        #: both halves' first hidden layers side by side, so one matrix product serves the two (built on
        #: the first :meth:`policy_value`: a network that only plays its policy never needs it)
        self.first = None

    def features(self, planes):
        """The flattened features (N, F) of planes (N, C, rows, columns) or one position's (C, rows, columns).

        A batch of more than ``SLICE_ROWS`` positions goes through the convolutions in slices of that
        many, whose im2col matrices stay in the CPU's cache: the results are the same row for row.
        """
        x = np.asarray(planes, dtype=np.float32)
        if x.ndim == 3:
            x = x[None]
        if len(x) <= SLICE_ROWS or not (self.conv or self.blocks):
            return self._convolve(x)
        return np.concatenate([self._convolve(x[start : start + SLICE_ROWS]) for start in range(0, len(x), SLICE_ROWS)])

    def _convolve(self, x):
        for weight, bias in self.conv:
            x = activate(conv2d_same(x, weight, bias), self.activation)
        for first, second in self.blocks:
            inner = activate(conv2d_same(x, *first), self.activation)
            x = activate(x + conv2d_same(inner, *second), self.activation)
        return x.reshape(x.shape[0], -1)

    def _half(self, x, hidden, head):
        for weight, bias in hidden:
            x = activate(x @ weight.T + bias, self.activation)
        weight, bias = head
        return x @ weight.T + bias

    def logits(self, planes):
        """Unmasked action logits (N, columns)."""
        return self.logits_of(self.features(planes))

    def logits_of(self, features):
        """Logits (N, columns) from :meth:`features`."""
        return self._half(features, self.policy_hidden, self.action_head)

    def values(self, planes):
        """Values of the side to move (N,)."""
        return self._half(self.features(planes), self.value_hidden, self.value_head)[:, 0]

    def policy_value(self, planes):
        """Unmasked logits (N, columns) and values (N,) from one pass of the shared features: what a tree
        search asks of the network at its leaves."""
        x = self.features(planes)
        if not (self.policy_hidden and self.value_hidden):
            return self.logits_of(x), self._half(x, self.value_hidden, self.value_head)[:, 0]
        if self.first is None:
            (policy_w, policy_b), (value_w, value_b) = self.policy_hidden[0], self.value_hidden[0]
            self.first = (
                np.ascontiguousarray(np.concatenate([policy_w, value_w]).T),
                np.concatenate([policy_b, value_b]),
            )
        hidden = activate(x @ self.first[0] + self.first[1], self.activation)
        width = self.policy_hidden[0][0].shape[0]
        policy = self._half(hidden[:, :width], self.policy_hidden[1:], self.action_head)
        return policy, self._half(hidden[:, width:], self.value_hidden[1:], self.value_head)[:, 0]
