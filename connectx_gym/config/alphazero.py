"""The ``alphazero`` section: AlphaZero's loop (``train.algorithm: alphazero``), how self-play searches
and explores, which value target the network learns, the replay window and the fitting."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar, Literal

from connectx_gym.config.schema import Section, config_field
from connectx_gym.errors import ConfigError


@dataclass(frozen=True)
class AlphaZeroConfig(Section):
    """AlphaZero's loop (train.algorithm: alphazero): self-play with search, a replay window, fitting."""

    section: ClassVar[str] = "alphazero"

    games: int = config_field(256, "Self-play games per generation; the network is fitted after each generation.", ge=1)
    simulations: int = config_field(64, "Search simulations per move (a kept subtree's visits count).", ge=1)
    parallel_games: int = config_field(
        32, "Games each self-play worker plays at once; their leaves share one forward pass per round.", ge=1
    )
    c_puct: float = config_field(2.0, "Weight of the prior in the search's selection score.", gt=0)
    leaf_batch: int = config_field(8, "Leaves collected per tree per round (a virtual loss spreads them).", ge=1)
    fpu_reduction: float = config_field(0.2, "An unvisited move's value: the node's network value minus this.", ge=0)
    noise_alpha: float = config_field(1.0, "Dirichlet noise parameter on every root's priors.", gt=0)
    noise_fraction: float = config_field(0.25, "Share of the root priors replaced by the noise; 0 = none.", ge=0, le=1)
    temperature_moves: int = config_field(
        8,
        "Plies at the start of a game whose move is drawn in proportion to the visit counts (gumbel: to the "
        "improved policy).",
        ge=0,
    )
    policy_target: Literal["visits", "gumbel"] = config_field(
        "visits",
        "The policy target and the move played: visits (PUCT at the root: the visit distribution, moves drawn by "
        "visit count for temperature_moves plies, Dirichlet noise) or gumbel (Gumbel AlphaZero's root: Gumbel "
        "noise, sequential halving, the improved policy of completed Q-values; no Dirichlet noise).",
    )
    considered: int = config_field(16, "gumbel: moves kept at the root for sequential halving.", ge=2)
    value_target: Literal["z", "q", "mix"] = config_field(
        "mix",
        "The value head's target: the game's outcome z, the search's root value q, or their mean; a position "
        "the tree proves carries its exact value.",
    )
    length_weight: float = config_field(
        0.0,
        "How much a game's length shrinks its outcome, so that quicker wins and slower losses are worth more: "
        "a game won or lost after L of the board's C cells counts +-(1 - length_weight * L / C) for each mover "
        "(z, and a proven position's exact value); 0 = the bare outcome.",
        ge=0,
        lt=1,
    )
    window: int = config_field(4, "Generations of self-play samples the replay window holds.", ge=1)
    window_max: int | None = config_field(
        None,
        "If set, the window grows by one generation every two generations, from window up to this many; "
        "null = it stays at window.",
        ge=1,
    )
    mirror: bool = config_field(
        True, "Add each position's left-right mirror image to the training set (then merge repeats, targets averaged)."
    )
    epochs: int = config_field(2, "Passes over the replay window's training set after each generation.", ge=1)
    batch_size: int = config_field(256, "Minibatch size of the fitting.", ge=1)
    learning_rate: float = config_field(1e-3, "Adam's learning rate of the fitting.", gt=0)
    learning_rate_final: float | None = config_field(
        None,
        "If set, the learning rate falls from learning_rate to this along a half cosine over "
        "train.total_timesteps; null = constant.",
        gt=0,
    )

    def _validate(self) -> None:
        if self.window_max is not None and self.window_max < self.window:
            raise ConfigError(f"alphazero.window_max must be >= alphazero.window={self.window}, got {self.window_max}")

    def window_at(self, generation: int) -> int:
        """Generations the window holds when ``generation`` (counted from 0) joins it."""
        if self.window_max is None:
            return self.window
        return min(self.window_max, self.window + generation // 2)

    def learning_rate_at(self, progress: float) -> float:
        """The fitting's learning rate at ``progress`` (0 to 1) of the run."""
        if self.learning_rate_final is None:
            return self.learning_rate
        share = 0.5 * (1.0 + math.cos(math.pi * min(max(progress, 0.0), 1.0)))
        return self.learning_rate_final + (self.learning_rate - self.learning_rate_final) * share
