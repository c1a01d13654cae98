"""What the package needs from the machine it runs on: cores and thread limits for worker processes
(``processes``), files that are never half-written (``files``, ``checkpoints``), a quiet import of
stable-baselines3 (``quiet``), and the optional Ray cluster (``ray_cluster``)."""
