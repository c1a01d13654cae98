"""The training layer: the policy network, checkpoints, curriculum and self-play pool, a run's setup,
its callbacks, and the training loop behind ``python -m connectx_gym.train``."""
