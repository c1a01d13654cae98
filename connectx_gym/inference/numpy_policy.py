"""The trained policy's forward pass in numpy alone, for workers and Kaggle submissions.

``NumpyPolicy`` holds the weights of a MaskablePPO policy built by ``policy.policy_kwargs`` (the
``BoardCNN`` or flatten features, then SB3's separate policy/value MLPs and heads) as plain numpy
arrays, and computes the same logits and values as torch. It imports neither torch nor SB3:
self-play opponents run it inside env workers, and the exported submission embeds its arrays.
``from_sb3_model`` reads a live model; ``load_checkpoint`` reads a checkpoint file's JSON metadata
and weights without unpickling anything (``runtime.checkpoints.read_network``).
``to_bytes``/``from_bytes`` round-trip the weights as a compressed archive.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Sequence
from typing import Any

import numpy as np

from connectx_gym.inference.network import Network
from connectx_gym.rules.planes import NUM_PLANES, encode_position, legal_mask
from connectx_gym.runtime.checkpoints import (
    ACTIVATION_NAMES,
    METADATA_MEMBER,
    CheckpointError,
    UntrustedCheckpointError,
    activation_of_model,
    board_of_model,
    checkpoints_trusted,
    load_model,
    read_network,
)

#: masked-out logits, as SB3's MaskableCategorical uses
MASKED_LOGIT = -1e8

_CONV_KEY = re.compile(r"^features_extractor\.cnn\.(\d+)\.weight$")
_BLOCK_KEY = re.compile(r"^features_extractor\.blocks\.(\d+)\.conv1\.weight$")
_MLP_KEY = re.compile(r"^mlp_extractor\.(policy_net|value_net)\.(\d+)\.weight$")


class NumpyPolicy:
    """Logits and values of a MaskablePPO policy from its weights, in numpy.

    :param weights: SB3 ``state_dict`` names -> arrays (only the keys used here are kept)
    :param activation: activation of every layer (``relu``, ``tanh`` or ``gelu``)
    :param board: ``{"rows", "columns", "inarow"}`` the policy was trained on
    """

    def __init__(self, weights: dict[str, np.ndarray], activation: str, board: dict[str, int]) -> None:
        if activation not in ACTIVATION_NAMES:
            raise ValueError(f"activation must be one of {'|'.join(ACTIVATION_NAMES)}, got {activation!r}")
        self.activation = activation
        self.board = {key: int(board[key]) for key in ("rows", "columns", "inarow")}
        self.conv_layers = self._layers(weights, _CONV_KEY, "features_extractor.cnn")
        #: the residual blocks after the convolutions, each its two layers
        self.blocks = [
            (self._pair(weights, f"{prefix}.conv1"), self._pair(weights, f"{prefix}.conv2"))
            for prefix in (
                f"features_extractor.blocks.{i}"
                for i in sorted(int(m.group(1)) for m in map(_BLOCK_KEY.match, weights) if m)
            )
        ]
        mlp = {"policy_net": [], "value_net": []}
        indices: dict[str, list[int]] = {"policy_net": [], "value_net": []}
        for key in weights:
            match = _MLP_KEY.match(key)
            if match:
                indices[match.group(1)].append(int(match.group(2)))
        for net in mlp:
            mlp[net] = [self._pair(weights, f"mlp_extractor.{net}.{i}") for i in sorted(indices[net])]
        self.policy_layers, self.value_layers = mlp["policy_net"], mlp["value_net"]
        self.action_head = self._pair(weights, "action_net")
        self.value_head = self._pair(weights, "value_net")
        self.network = Network(
            self.conv_layers,
            self.policy_layers,
            self.action_head,
            self.value_layers,
            self.value_head,
            activation,
            self.blocks,
        )

    @staticmethod
    def _pair(weights: dict[str, np.ndarray], prefix: str) -> tuple[np.ndarray, np.ndarray]:
        try:
            return (
                np.asarray(weights[f"{prefix}.weight"], dtype=np.float32),
                np.asarray(weights[f"{prefix}.bias"], dtype=np.float32),
            )
        except KeyError as missing:
            raise ValueError(
                f"policy weights lack {missing.args[0]!r}; not a connectx_gym MaskablePPO policy"
            ) from None

    @classmethod
    def _layers(cls, weights, pattern, prefix) -> list[tuple[np.ndarray, np.ndarray]]:
        indices = sorted(int(m.group(1)) for m in map(pattern.match, weights) if m)
        return [cls._pair(weights, f"{prefix}.{i}") for i in indices]

    # ------------------------------------------------------------------ forward
    def features(self, observations: np.ndarray) -> np.ndarray:
        """The flattened features (N, F) of observations (N, 4, rows, columns) or one (4, rows, columns)."""
        return self.network.features(observations)

    def logits(self, observations: np.ndarray) -> np.ndarray:
        """Unmasked action logits, shape (N, columns)."""
        return self.network.logits(observations)

    def values(self, observations: np.ndarray) -> np.ndarray:
        """State values, shape (N,)."""
        return self.network.values(observations)

    def policy_value(self, observations: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Unmasked logits (N, columns) and values (N,) from one pass of the shared features: what a
        tree search asks of the network at its leaves."""
        return self.network.policy_value(observations)

    def act(
        self,
        observations: np.ndarray,
        masks: np.ndarray,
        deterministic: bool = True,
        rng: np.random.Generator | None = None,
    ) -> np.ndarray:
        """Columns for a batch: the best legal logit, or a sample from the masked softmax."""
        logits = np.where(np.asarray(masks, dtype=bool), self.logits(observations), MASKED_LOGIT)
        if deterministic:
            return logits.argmax(axis=1)
        if rng is None:
            raise ValueError("sampling (deterministic=False) needs an rng")
        shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
        probabilities = shifted / shifted.sum(axis=1, keepdims=True)
        draws = rng.random((len(logits), 1))
        return np.minimum((probabilities.cumsum(axis=1) < draws).sum(axis=1), logits.shape[1] - 1)

    def moves(
        self, positions: Sequence[Any], deterministic: bool, rngs: Sequence[np.random.Generator] | None = None
    ) -> list[int]:
        """The columns ``move`` would play in each position, from one forward pass; a sampled move
        draws one number from its position's own generator, as ``move`` does."""
        planes = np.stack([encode_position(p) for p in positions])
        masks = np.stack([legal_mask(p.geometry, p.mask) for p in positions])
        logits = np.where(masks, self.logits(planes), MASKED_LOGIT)
        if deterministic:
            return [int(c) for c in logits.argmax(axis=1)]
        if rngs is None:
            raise ValueError("sampling (deterministic=False) needs one rng per position")
        shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
        probabilities = shifted / shifted.sum(axis=1, keepdims=True)
        draws = np.array([rng.random() for rng in rngs])[:, None]
        return [int(c) for c in np.minimum((probabilities.cumsum(axis=1) < draws).sum(axis=1), logits.shape[1] - 1)]

    def move(self, position, deterministic: bool = True, rng: np.random.Generator | None = None) -> int:
        """The column this policy plays for the player to move in a ``bitboard.Position``."""
        planes = encode_position(position)[None]
        mask = legal_mask(position.geometry, position.mask)[None]
        return int(self.act(planes, mask, deterministic=deterministic, rng=rng)[0])

    # ------------------------------------------------------------------ (de)serialisation
    def arrays(self) -> dict[str, np.ndarray]:
        """The weights under their SB3 names."""
        out: dict[str, np.ndarray] = {}
        for i, (w, b) in enumerate(self.conv_layers):
            out[f"features_extractor.cnn.{2 * i}.weight"], out[f"features_extractor.cnn.{2 * i}.bias"] = w, b
        for i, block in enumerate(self.blocks):
            for name, (w, b) in zip(("conv1", "conv2"), block):
                prefix = f"features_extractor.blocks.{i}.{name}"
                out[f"{prefix}.weight"], out[f"{prefix}.bias"] = w, b
        for net, layers in (("policy_net", self.policy_layers), ("value_net", self.value_layers)):
            for i, (w, b) in enumerate(layers):
                out[f"mlp_extractor.{net}.{2 * i}.weight"], out[f"mlp_extractor.{net}.{2 * i}.bias"] = w, b
        out["action_net.weight"], out["action_net.bias"] = self.action_head
        out["value_net.weight"], out["value_net.bias"] = self.value_head
        return out

    def to_bytes(self) -> bytes:
        """A compressed ``.npz`` archive of the weights plus a JSON header."""
        buffer = io.BytesIO()
        header = json.dumps({"activation": self.activation, "board": self.board})
        np.savez_compressed(buffer, __header__=np.frombuffer(header.encode(), dtype=np.uint8), **self.arrays())
        return buffer.getvalue()

    @classmethod
    def from_bytes(cls, payload: bytes) -> NumpyPolicy:
        with np.load(io.BytesIO(payload)) as archive:
            header = json.loads(archive["__header__"].tobytes().decode())
            weights = {key: archive[key] for key in archive.files if key != "__header__"}
        return cls(weights, header["activation"], header["board"])

    def __getstate__(self) -> dict[str, Any]:
        return {"payload": self.to_bytes()}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(NumpyPolicy.from_bytes(state["payload"]).__dict__)


def from_sb3_model(model: Any) -> NumpyPolicy:
    """A ``NumpyPolicy`` with the current weights of a MaskablePPO model (no torch import here)."""
    state = {key: value.detach().cpu().numpy() for key, value in model.policy.state_dict().items()}
    return NumpyPolicy(state, activation_of_model(model), board_of_model(model))


def load_checkpoint(path) -> NumpyPolicy:
    """A ``NumpyPolicy`` from a checkpoint ``.zip``, read safely: only its ``connectx_gym.json`` and its
    weights (``torch.load(weights_only=True)``), nothing unpickled. A file without that JSON loads
    through SB3 (which unpickles) only where checkpoints are trusted (``--trust-checkpoint``).

    :raises connectx_gym.runtime.checkpoints.CheckpointError: if the file is missing, corrupt, not a
        checkpoint, untrusted, or its weights do not fit its board
    """
    try:
        metadata, weights = read_network(path)
    except UntrustedCheckpointError:
        if not checkpoints_trusted():
            raise
        return from_sb3_model(load_model(path))
    return policy_from_metadata(path, metadata, weights)


def policy_from_metadata(path, metadata: dict[str, Any], weights: dict[str, np.ndarray]) -> NumpyPolicy:
    """The policy of a checkpoint's metadata and weights, checked to play on the board it names.

    :raises connectx_gym.runtime.checkpoints.CheckpointError: naming what does not fit
    """
    board = metadata.get("board")
    keys = ("rows", "columns", "inarow")
    if not isinstance(board, dict) or not all(isinstance(board.get(k), int) and board[k] >= 1 for k in keys):
        raise CheckpointError(f"checkpoint '{path}': {METADATA_MEMBER} has no valid board (got {board!r})")
    rows, columns = board["rows"], board["columns"]
    expected = [NUM_PLANES, rows, columns]
    if metadata.get("observation_shape") != expected:
        raise CheckpointError(
            f"checkpoint '{path}': observation shape {metadata.get('observation_shape')!r} does not fit its "
            f"{rows}x{columns} board (expected {expected})"
        )
    try:
        policy = NumpyPolicy(weights, metadata.get("activation"), board)
        logits, values = policy.policy_value(np.zeros([1, *expected], dtype=np.float32))
    except ValueError as error:
        raise CheckpointError(
            f"checkpoint '{path}': its weights do not fit a {rows}x{columns} board ({error})"
        ) from None
    if logits.shape != (1, columns) or values.shape != (1,):
        raise CheckpointError(
            f"checkpoint '{path}': its policy gives {logits.shape[-1]} move logits, but the board has {columns} columns"
        )
    return policy
