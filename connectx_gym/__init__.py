"""connectx_gym: Kaggle-exact ConnectX environments and fast multiprocess MaskablePPO training.

Importing the package registers the Gymnasium id ``ConnectX-v0``; heavy dependencies (torch,
stable-baselines3, kaggle_environments) are imported only by the modules that need them.
"""

from __future__ import annotations

import gymnasium

from connectx_gym.envs.connectx import ConnectXEnv
from connectx_gym.rules.bitboard import Geometry, Position, geometry

__version__ = "0.1.0"
ENV_ID = "ConnectX-v0"

if ENV_ID not in gymnasium.registry:
    gymnasium.register(id=ENV_ID, entry_point="connectx_gym.envs.connectx:ConnectXEnv")

__all__ = ["ConnectXEnv", "Geometry", "Position", "geometry", "ENV_ID", "__version__"]
