"""``python -m connectx_gym.config [--markdown]``: print ``configs/default.yaml`` or docs/configuration.md's
config reference table, both generated from the config dataclasses."""

from __future__ import annotations

from connectx_gym.config.reference import main

if __name__ == "__main__":
    raise SystemExit(main())
