"""Training configuration: frozen dataclasses validated on construction, YAML load/save and
``section.key=value`` overrides, and the generated reference; the schema machinery it is built on
(:mod:`connectx_gym.config.schema`) also declares the sweep file. This package re-exports the
names callers use, so ``from connectx_gym.config import Config, load_config`` keeps working.
"""

from __future__ import annotations

from connectx_gym.config.alphazero import AlphaZeroConfig
from connectx_gym.config.kickstart import TEACHER_KINDS
from connectx_gym.config.loading import (
    config_from_dict,
    config_keys,
    config_to_dict,
    load_config,
    read_yaml,
    save_config,
    yaml_problem,
)
from connectx_gym.config.reference import config_reference_markdown, default_config_yaml, main
from connectx_gym.config.schema import FrozenMapping
from connectx_gym.config.training import (
    SECTIONS,
    Config,
    CurriculumConfig,
    EnvConfig,
    KickstartConfig,
    LoggingConfig,
    MultiprocessingConfig,
    PolicyConfig,
    PPOConfig,
    RayConfig,
    SelfPlayConfig,
    TrainConfig,
)

__all__ = [
    "Config",
    "EnvConfig",
    "MultiprocessingConfig",
    "PPOConfig",
    "PolicyConfig",
    "TrainConfig",
    "SelfPlayConfig",
    "CurriculumConfig",
    "KickstartConfig",
    "TEACHER_KINDS",
    "AlphaZeroConfig",
    "RayConfig",
    "LoggingConfig",
    "SECTIONS",
    "FrozenMapping",
    "load_config",
    "config_from_dict",
    "config_to_dict",
    "save_config",
    "read_yaml",
    "yaml_problem",
    "config_keys",
    "config_reference_markdown",
    "default_config_yaml",
    "main",
]
