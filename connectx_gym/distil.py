"""``python -m connectx_gym.distil``: fit a network of the config's shape to a trained checkpoint's search.

Positions from the checkpoint's own sampled games are labelled by the ``mcts`` teacher over it
(the visit distribution and root value of ``--simulations`` simulations) and a fresh network of
the config's ``policy`` section is fitted to them (:mod:`connectx_gym.training.distillation`).
The result is a trainer checkpoint with its metadata, to continue with expert iteration from
(``--set train.init_from=OUT.zip``): so a deeper or wider network than the checkpoint's starts
where the checkpoint stands instead of from scratch. Everything is checked before the work
starts; bad input is one ``error:`` line and exit 2, and nothing is written. Ctrl-C, SIGTERM or
SIGHUP saves the work done so far beside the output (``OUT.zip.partial``: the positions, their
labels, the fit after its last epoch) and exits with the shell's code for the signal; the same
command with ``--resume`` continues it and ends as an uninterrupted run would.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time
from collections.abc import Sequence

import numpy as np

from connectx_gym.cli import ArgumentParser, add_config_options, integer_option, run_command
from connectx_gym.config import load_config
from connectx_gym.errors import UserError
from connectx_gym.evaluation.accuracy import LABEL_BOARD, greedy_rates
from connectx_gym.inference.numpy_policy import from_sb3_model, load_checkpoint
from connectx_gym.rules.bitboard import geometry
from connectx_gym.runtime.checkpoints import add_trust_option, save_model, trusted_checkpoints
from connectx_gym.runtime.processes import usable_cpu_count
from connectx_gym.runtime.stopping import announce, as_stopped, guard_output, stop_signals
from connectx_gym.training import distillation as d
from connectx_gym.training.builders import env_board
from connectx_gym.training.distil_work import SAVE_EVERY, DistilWork, file_digest, work_path
from connectx_gym.training.setup import DEFAULT_CONFIG, config_path_or_default

#: (option, default, minimum, help) of the integer options
INTEGER_OPTIONS = (
    ("--positions", 120_000, 1, "positions to label"),
    ("--epochs", 10, 1, "passes over them"),
    ("--simulations", 64, 1, "simulations of each position's search"),
    ("--seed", 0, 0, "seed of the sampled games and of the fit"),
)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = ArgumentParser(
        prog="python -m connectx_gym.distil",
        description="Fit a network of the config's policy shape to the mcts search over a trained checkpoint, "
        "and save it as a checkpoint to start a run from (train.init_from).",
    )
    parser.add_argument("teacher", help="the trained checkpoint .zip whose search labels the positions (any shape)")
    parser.add_argument("-o", "--output", required=True, help="the checkpoint .zip to write")
    add_config_options(
        parser,
        f"YAML config whose env and policy sections shape the network (default: {DEFAULT_CONFIG} if present, "
        "else built-in defaults)",
        "policy.cnn_channels=[64,64,64,64]",
    )
    for option, default, _, text in INTEGER_OPTIONS:
        parser.add_argument(option, default=str(default), metavar="N", help=f"{text} (default: {default})")
    parser.add_argument("--learning-rate", default="0.001", metavar="X", help="Adam's learning rate (default: 0.001)")
    parser.add_argument(
        "--num-processes", default=None, metavar="N", help="processes labelling positions (default: usable cores)"
    )
    parser.add_argument(
        "--resume",
        action="store_true",
        help="continue the work a stopped run of the same command saved beside its output (OUT.zip.partial)",
    )
    add_trust_option(parser)
    args = parser.parse_args(argv)
    for option, _, minimum, _ in INTEGER_OPTIONS:
        name = option[2:].replace("-", "_")
        setattr(args, name, integer_option(option, getattr(args, name), minimum))
    if args.num_processes is not None:
        args.num_processes = integer_option("--num-processes", args.num_processes, 1)
    try:
        rate = float(args.learning_rate)
    except ValueError:
        rate = -1.0
    if not 0 < rate < float("inf"):
        raise UserError(f"--learning-rate must be a number > 0, got {args.learning_rate!r}")
    args.learning_rate = rate
    _check_output(args.output, args.teacher)
    return args


def _check_output(output: str, teacher: str) -> None:
    if not output.lower().endswith(".zip"):
        raise UserError(f"--output must name a .zip file, got {output!r}")
    if os.path.abspath(output) == os.path.abspath(teacher):
        raise UserError(f"--output {output!r} is the teacher checkpoint itself; name another file")
    folder = os.path.dirname(os.path.abspath(output))
    if not os.path.isdir(folder) or not os.access(folder, os.W_OK):
        raise UserError(f"--output {output!r}: cannot write to the folder {folder!r}")


def _elapsed(start: float) -> str:
    return f"{time.perf_counter() - start:.0f} s"


def _shape(policy) -> str:
    layers = f"CNN {list(policy.cnn_channels)}" if policy.features == "cnn" else "MLP"
    if policy.features == "cnn" and policy.res_blocks:
        layers += f" + {policy.res_blocks} residual blocks"
    return f"{layers}, heads {list(policy.net_arch)}"


def build_student(config, seed: int):
    """A fresh ``MaskablePPO`` with the config's policy network on its board (its PPO settings unused)."""
    # deferred: stable-baselines3 and torch take seconds to import, and the command's argument checks come first
    from connectx_gym.runtime.quiet import quiet_import_sb3

    quiet_import_sb3()
    from connectx_gym.training.builders import build_board_env, new_network_model

    return new_network_model(config, build_board_env(config, seed), seed)


def _open_work(args: argparse.Namespace, settings: dict, saved_at):
    """The work to continue (``--resume``) or a fresh one; saved work is never overwritten."""
    if args.resume:
        work = DistilWork.load(saved_at, settings)
        print(f"resuming from {saved_at}: {work.progress(args.epochs)}", flush=True)
        return work
    if saved_at.exists():
        raise UserError(
            f"'{saved_at}' holds the work of a stopped distil to {args.output!r}: continue it with --resume, "
            "or delete it to start again"
        )
    return DistilWork(settings)


def _sample_and_label(args: argparse.Namespace, teacher, work, saved_at, processes: int, start: float) -> list:
    """Sample the positions (unless the work has them) and label those not yet labelled, saving as it goes."""
    if work.boards is None:
        sampled = d.sample_positions(teacher, args.positions, args.seed)
        work.boards = np.array([p.to_kaggle() for p in sampled], dtype=np.int8)
        work.save(saved_at)
        print(f"sampled {len(sampled):,} positions from {args.teacher}'s games ({_elapsed(start)})", flush=True)
    positions = work.positions(geometry(**teacher.board))
    saved = time.perf_counter()
    for part in d.label_chunks(args.teacher, positions[work.labelled :], args.simulations, processes):
        work.labels.extend(part)  # one call: a signal cannot split a chunk's labels
        if time.perf_counter() - saved >= SAVE_EVERY:
            work.save(saved_at)
            saved = time.perf_counter()
        print(
            f"labelled {work.labelled:,}/{len(positions):,} positions ({args.simulations} simulations; "
            f"{_elapsed(start)})",
            flush=True,
        )
    return positions


def _fit(args: argparse.Namespace, config, positions: list, work, saved_at, start: float):
    """The student, fitted for the epochs the work has not done yet; the work is saved after each."""
    model = build_student(config, args.seed)
    fit = d.PolicyFit(
        model.policy, d.Dataset.of(positions, *d.stack_targets(work.labels)), args.seed, args.learning_rate
    )
    if work.fit is not None:
        fit.restore(work.fit)
    while fit.epoch < args.epochs:
        loss = fit.run_epoch()
        work.fit = fit.state()
        work.save(saved_at)
        print(f"epoch {fit.epoch}/{args.epochs}: loss {loss:.4f} ({_elapsed(start)})", flush=True)
    return model


def distil(args: argparse.Namespace) -> int:
    """The command: check the config, teacher and saved work, then sample, label, fit, grade and save.

    A stop signal saves the work done so far (:mod:`connectx_gym.training.distil_work`) and returns
    the shell's exit code for it; ``--resume`` continues from that work.
    """
    # deferred: stable-baselines3 and torch take seconds to import, and the command's argument checks come first
    import torch

    config = load_config(config_path_or_default(args.config), args.overrides).resolved()
    teacher = load_checkpoint(args.teacher)
    board = env_board(config)
    if teacher.board != board:
        raise UserError(f"teacher {args.teacher!r} plays on the board {teacher.board}, the config's is {board}")
    settings = {
        "teacher_sha256": file_digest(args.teacher),
        "board": board,
        "policy": dataclasses.asdict(config.policy),
        "positions": args.positions,
        "simulations": args.simulations,
        "seed": args.seed,
        "learning_rate": args.learning_rate,
    }
    saved_at = work_path(args.output)
    work = _open_work(args, settings, saved_at)
    processes = args.num_processes or usable_cpu_count()
    torch.set_num_threads(processes)
    start = time.perf_counter()
    try:
        with stop_signals():
            positions = _sample_and_label(args, teacher, work, saved_at, processes, start)
            model = _fit(args, config, positions, work, saved_at, start)
    except KeyboardInterrupt as error:
        stop = as_stopped(error)
        if work.boards is None:
            announce(f"\n{stop.reason} while sampling positions: nothing to save yet; run the command again")
            return stop.exit_code
        work.save(saved_at)
        announce(
            f"\n{stop.reason}: saved {saved_at} ({work.progress(args.epochs)}); continue with the same command and "
            "--resume"
        )
        return stop.exit_code
    size = sum(p.numel() for p in model.policy.parameters())
    if board == LABEL_BOARD:
        rates = greedy_rates(from_sb3_model(model))
        print(
            f"greedy on the shipped positions: perfect {100 * rates['perfect']:.1f}%, good {100 * rates['good']:.1f}%; "
            f"value sign right on {100 * rates['value_decided']:.1f}% of decided, {100 * rates['value_lost']:.1f}% "
            "of lost positions"
        )
    save_model(model, args.output)
    saved_at.unlink(missing_ok=True)
    print(
        f"wrote {args.output}: {_shape(config.policy)}, "
        f"{size:,} parameters ({_elapsed(start)}); start a run from it with --set train.init_from={args.output}"
    )
    return 0


def _run(argv: Sequence[str] | None) -> int:
    args = parse_args(argv)
    with trusted_checkpoints(args.trust_checkpoint):
        return distil(args)


def main(argv: Sequence[str] | None = None) -> int:
    with guard_output():
        return run_command(lambda: _run(argv))


if __name__ == "__main__":
    sys.exit(main())
