"""The names of the files a training run writes in its run directory, in one place.

The trainer writes them and ``--resume`` and the tuner read them back, so each name is defined
once, here; checkpoint names live with the checkpoint code, log file names with the logger.
"""

from __future__ import annotations

#: the run's resolved config; ``--resume`` reads it back
CONFIG_NAME = "config.yaml"
#: the model with the best mean evaluation win rate so far, and the step and rate it had
BEST_MODEL_NAME = "best_model.zip"
BEST_MODEL_NOTE = "best_model.txt"
#: the model at the end of an uninterrupted run
FINAL_MODEL_NAME = "final_model.zip"
#: curriculum stage and self-play pool, saved with every checkpoint
RUN_STATE_NAME = "trainer_state.pkl"
