"""Hyperparameter sweeps of the trainer with Ray Tune, behind ``python -m connectx_gym.tune``: the
sweep file's schema (``schema``) and generated docs (``reference``), loading and checking a sweep
before Ray starts (``plan``, ``space``), the trainable each trial runs (``trial``), the Tune driver
(``driver``) and the progress lines and results table (``report``).
"""
