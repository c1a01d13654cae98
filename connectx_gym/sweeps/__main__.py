"""``python -m connectx_gym.sweeps [--markdown]``: print ``configs/tune.yaml`` or docs/sweeps.md's
sweep file reference table, both generated from the sweep file's schema."""

from __future__ import annotations

from connectx_gym.sweeps.reference import main

if __name__ == "__main__":
    raise SystemExit(main())
