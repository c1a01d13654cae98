"""``python -m connectx_gym.train``: MaskablePPO on batched rollouts from chunked env workers, or
AlphaZero's loop over the same workers (``train.algorithm: alphazero``).

Loads and validates the YAML config (plus ``--set`` overrides) before anything is written, builds
the vectorized env and the model, and trains with a progress bar, atomic checkpoints every
``train.checkpoint_every`` steps, periodic evaluation with best-model saving, and TensorBoard/CSV
logs in ``<output_dir>/<run_name>/``. ``--resume <run dir>`` continues from the newest intact
checkpoint with the run's saved config and step counter. Ctrl-C, SIGTERM or SIGHUP saves a
checkpoint, says how to resume on whichever output still works, and exits with the shell's code for
the signal (130, 143, 129); output whose reader went away (a killed ``| tee``) or whose terminal
hung up is dropped, and the run goes on. A crashed env worker is reported by index and cause, the
model is saved, exit 1.
The work is done in ``connectx_gym.training``; this module is the command line.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from connectx_gym.cli import ArgumentParser, add_config_options, run_command
from connectx_gym.runtime.checkpoints import add_trust_option, trusted_checkpoints
from connectx_gym.runtime.stopping import guard_output, stop_signals
from connectx_gym.training.loop import run
from connectx_gym.training.setup import DEFAULT_CONFIG, prepare_run


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = ArgumentParser(
        prog="python -m connectx_gym.train",
        description="Train a ConnectX agent: MaskablePPO on batched rollouts from parallel env workers (the "
        "default), or AlphaZero's loop of self-play with search and supervised fitting (train.algorithm: alphazero).",
    )
    add_config_options(
        parser,
        f"YAML config file (default: {DEFAULT_CONFIG} if present, else built-in defaults)",
        "ppo.learning_rate=1e-4",
    )
    parser.add_argument("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR from its newest checkpoint")
    add_trust_option(parser)  # for checkpoint:/mcts: opponents and teachers named in the config
    return parser.parse_args(argv)


def train(argv: Sequence[str] | None) -> int:
    """The command: validate, then train; a stopped run has saved a checkpoint and exits with its signal's code."""
    args = parse_args(argv)
    with trusted_checkpoints(args.trust_checkpoint):
        config, run_dir, resume = prepare_run(args.config, args.overrides, args.resume)
        # SIGTERM and SIGHUP save a checkpoint like Ctrl-C does, but only once training is under way
        with stop_signals():
            return run(config, run_dir, resume).exit_code


def main(argv: Sequence[str] | None = None) -> int:
    with guard_output():
        return run_command(lambda: train(argv))


if __name__ == "__main__":
    sys.exit(main())
