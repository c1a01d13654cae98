"""``python -m connectx_gym.train``: MaskablePPO on batched rollouts from chunked env workers.

Loads and validates the YAML config (plus ``--set`` overrides) before anything is written, builds
the vectorized env and the model, and trains with a progress bar, atomic checkpoints every
``train.checkpoint_every`` steps, periodic evaluation with best-model saving, and TensorBoard/CSV
logs in ``<output_dir>/<run_name>/``. ``--resume <run dir>`` continues from the newest intact
checkpoint with the run's saved config and step counter. Ctrl-C (or SIGTERM) saves a checkpoint
and exits 0; a crashed env worker is reported by index and cause, the model is saved, exit 1.
"""

from __future__ import annotations

import argparse
import collections
import math
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

from .config import Config, config_to_dict, load_config, save_config
from .errors import UserError

DEFAULT_CONFIG = Path("configs") / "default.yaml"
CONFIG_NAME = "config.yaml"
BEST_MODEL_NAME = "best_model.zip"
FINAL_MODEL_NAME = "final_model.zip"
#: episodes the progress bar's win rate is averaged over
WIN_RATE_WINDOW = 200
#: seed offset for evaluation games, so they never replay training episodes
EVAL_SEED_OFFSET = 1_000_003


def parse_args(argv: Optional[Sequence[str]]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m connectx_gym.train",
        description="Train a MaskablePPO ConnectX agent on batched rollouts from parallel env workers.",
    )
    parser.add_argument(
        "--config",
        help=f"YAML config file (default: {DEFAULT_CONFIG} if present, else built-in defaults)",
    )
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="SECTION.KEY=VALUE",
        help="override one config value (repeatable), e.g. --set ppo.learning_rate=1e-4",
    )
    parser.add_argument("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR from its newest checkpoint")
    return parser.parse_args(argv)


def _check_writable(run_dir: Path) -> None:
    """Fail before training if the run directory cannot be created and written."""
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        probe = run_dir / ".write_test"
        probe.write_bytes(b"0" * 4096)
        probe.unlink()
    except OSError as error:
        raise UserError(f"cannot write to run directory '{run_dir}': {error.strerror or error}") from None


def check_opponents(config: Config) -> None:
    """Build every configured opponent once, so a bad agent file fails before anything is written."""
    from .opponents import make_opponent

    for spec in (config.env.opponent, *config.train.eval_opponents):
        make_opponent(spec)


def prepare_run(args: argparse.Namespace) -> tuple:
    """Validate everything and decide the run directory: ``(config, run_dir, resume checkpoint)``."""
    from .checkpoints import newest_valid_checkpoint

    if args.resume:
        if args.config:
            raise UserError("--resume uses the run's own config.yaml; do not combine it with --config")
        run_dir = Path(args.resume)
        saved = run_dir / CONFIG_NAME
        if not saved.is_file():
            raise UserError(f"--resume '{run_dir}': no {CONFIG_NAME} there; is it a run directory?")
        config = load_config(saved, args.overrides)
        check_opponents(config)
        found = newest_valid_checkpoint(run_dir)
        if found is None:
            raise UserError(f"--resume '{run_dir}': no intact checkpoint in {run_dir / 'checkpoints'}")
        return config.resolved(), run_dir, found
    path = args.config
    if path is None and DEFAULT_CONFIG.is_file():
        path = DEFAULT_CONFIG
    config = load_config(path, args.overrides).resolved()
    check_opponents(config)
    run_name = config.train.run_name or time.strftime("run-%Y%m%d-%H%M%S")
    run_dir = Path(config.train.output_dir) / run_name
    if (run_dir / CONFIG_NAME).exists():
        raise UserError(
            f"run directory '{run_dir}' already holds a run; use --resume {run_dir} or another train.run_name"
        )
    return config, run_dir, None


def env_kwargs(config: Config, info_board: bool = False) -> Dict[str, Any]:
    """``ConnectXEnv`` keyword arguments from the ``env`` section."""
    env = config.env
    return dict(
        rows=env.rows,
        columns=env.columns,
        inarow=env.inarow,
        opponent=env.opponent,
        agent_seat=env.agent_seat,
        reward_win=env.reward_win,
        reward_loss=env.reward_loss,
        reward_draw=env.reward_draw,
        illegal_action=env.illegal_action,
        info_board=info_board,
    )


def ppo_kwargs(config: Config) -> Dict[str, Any]:
    return dict(config_to_dict(config)["ppo"])


def build_vec_env(config: Config, seed: int):
    from stable_baselines3.common.vec_env import VecMonitor

    from .vec import make_vec_env

    mp_config = config.multiprocessing
    venv = make_vec_env(
        env_kwargs(config),
        parallel_episodes=mp_config.parallel_episodes,
        num_processes=mp_config.num_processes,
        use_multiprocessing=mp_config.use_multiprocessing,
        backend=mp_config.backend,
        start_method=mp_config.start_method,
        seed=seed,
    )
    return VecMonitor(venv)


def make_logger(config: Config, run_dir: Path, resuming: bool):
    from stable_baselines3.common.logger import Logger, make_output_format

    formats: List[Any] = []
    if config.logging.verbose:
        formats.append(make_output_format("stdout", str(run_dir)))
    if config.logging.csv:
        formats.append(_csv_output(run_dir / "progress.csv", resuming))
    if config.logging.tensorboard:
        formats.append(make_output_format("tensorboard", str(run_dir / "tensorboard")))
    return Logger(str(run_dir), formats)


def _csv_output(path: Path, resuming: bool):
    """SB3's CSV writer; when resuming, it continues the existing file instead of truncating it."""
    from stable_baselines3.common.logger import CSVOutputFormat

    writer = CSVOutputFormat.__new__(CSVOutputFormat)
    if resuming and path.is_file() and path.stat().st_size:
        writer.file = open(path, "r+")
        header = writer.file.readline().rstrip("\n")
        writer.keys = header.split(",") if header else []
        writer.file.seek(0, os.SEEK_END)
        writer.separator, writer.quotechar = ",", '"'
        return writer
    return CSVOutputFormat(str(path))


def make_callback(config: Config, run_dir: Path, start_step: int):
    """The callback that drives progress output, checkpoints and evaluation."""
    from stable_baselines3.common.callbacks import BaseCallback

    from .checkpoints import checkpoint_path, prune_checkpoints, save_model, write_atomic
    from .match import play_games, sb3_batch_policy

    train = config.train

    class TrainingCallback(BaseCallback):
        def __init__(self) -> None:
            super().__init__()
            self.outcomes: collections.deque = collections.deque(maxlen=WIN_RATE_WINDOW)
            self.next_checkpoint = (start_step // train.checkpoint_every + 1) * train.checkpoint_every
            self.next_eval = (start_step // train.eval_every + 1) * train.eval_every if train.eval_every else math.inf
            self.best_score = -math.inf
            self.bar = None
            self.last_eval: Dict[str, float] = {}
            self.opponent_errors = 0

        def _on_training_start(self) -> None:
            if config.logging.progress_bar:
                from tqdm import tqdm

                self.bar = tqdm(
                    total=train.total_timesteps, initial=min(start_step, train.total_timesteps),
                    unit="step", unit_scale=True, dynamic_ncols=True, desc="train", file=sys.stderr,
                )

        def _on_step(self) -> bool:
            dones = self.locals["dones"]
            infos = self.locals["infos"]
            for done, info in zip(dones, infos):
                if done:
                    self.outcomes.append(info.get("outcome"))
                    if "opponent_error" in info:
                        self.opponent_errors += 1
            if self.bar is not None:
                self.bar.update(min(self.model.num_timesteps, train.total_timesteps) - self.bar.n)
                if self.n_calls % 20 == 0:
                    self.bar.set_postfix_str(self._postfix(), refresh=False)
            if self.model.num_timesteps >= self.next_checkpoint:
                self.save_checkpoint()
                self.next_checkpoint += train.checkpoint_every
            if self.model.num_timesteps >= self.next_eval:
                self.evaluate()
                while self.next_eval <= self.model.num_timesteps:
                    self.next_eval += train.eval_every
            return True

        def _on_rollout_end(self) -> None:
            rate = self.win_rate()
            if not math.isnan(rate):
                self.logger.record("rollout/win_rate", rate)
            self.logger.record("rollout/opponent_errors", self.opponent_errors)

        def win_rate(self) -> float:
            if not self.outcomes:
                return math.nan
            return sum(1 for outcome in self.outcomes if outcome == "win") / len(self.outcomes)

        def _postfix(self) -> str:
            parts = []
            rate = self.win_rate()
            if not math.isnan(rate):
                parts.append(f"win {rate:.0%}")
            parts.extend(f"{name} {value:.0%}" for name, value in self.last_eval.items())
            return " ".join(parts)

        def save_checkpoint(self) -> Path:
            path = checkpoint_path(run_dir, self.model.num_timesteps)
            save_model(self.model, path)
            prune_checkpoints(run_dir, train.keep_checkpoints)
            return path

        def evaluate(self) -> None:
            policy = sb3_batch_policy(self.model)
            scores = []
            for spec in train.eval_opponents:
                result = play_games(
                    policy, spec, train.eval_games, seed=train.seed + EVAL_SEED_OFFSET, env_kwargs=env_kwargs(config)
                )
                scores.append(result.win_rate)
                self.last_eval[spec] = result.win_rate
                self.logger.record(f"eval/win_rate/{spec}", result.win_rate)
                self.logger.record(f"eval/draw_rate/{spec}", result.total.draws / result.total.games)
            mean = sum(scores) / len(scores)
            self.logger.record("eval/mean_win_rate", mean)
            if mean > self.best_score:
                self.best_score = mean
                save_model(self.model, run_dir / BEST_MODEL_NAME)
                write_atomic(run_dir / "best_model.txt", f"step {self.model.num_timesteps} mean_win_rate {mean:.4f}\n".encode())
            if self.bar is not None:
                self.bar.set_postfix_str(self._postfix())

        def _on_training_end(self) -> None:
            if self.bar is not None:
                self.bar.close()

    return TrainingCallback()


def run(config: Config, run_dir: Path, resume) -> int:
    """Train; returns the process exit code."""
    from ._quiet import quiet_import_sb3

    quiet_import_sb3()
    import torch
    from sb3_contrib import MaskablePPO

    from .checkpoints import checkpoint_path, load_model, save_model
    from .policy import policy_kwargs
    from .vec import WorkerError

    _check_writable(run_dir)
    save_config(config, run_dir / CONFIG_NAME)
    start_step = resume[0] if resume else 0
    seed = config.train.seed + start_step
    torch.set_num_threads(max(1, min(torch.get_num_threads(), os.cpu_count() or 1)))
    print(f"run directory: {run_dir}", file=sys.stderr)
    venv = build_vec_env(config, seed)
    model = None
    exit_code = 0
    callback = None
    try:
        if resume:
            print(f"resuming from {resume[1]} (step {start_step})", file=sys.stderr)
            model = load_model(resume[1], env=venv, device=config.train.device)
        else:
            policy = config.policy
            model = MaskablePPO(
                "MlpPolicy",
                venv,
                policy_kwargs=policy_kwargs(
                    policy.features, policy.cnn_channels, policy.kernel_size, policy.net_arch, policy.activation
                ),
                seed=config.train.seed,
                device=config.train.device,
                verbose=0,
                **ppo_kwargs(config),
            )
        # recorded in the checkpoint, so export and evaluation know the board (inarow included)
        model.connectx_board = {"rows": config.env.rows, "columns": config.env.columns, "inarow": config.env.inarow}
        model.set_logger(make_logger(config, run_dir, resuming=bool(resume)))
        callback = make_callback(config, run_dir, start_step)
        remaining = config.train.total_timesteps - start_step
        started = time.perf_counter()
        if remaining > 0:
            model.learn(remaining, callback=callback, reset_num_timesteps=False, progress_bar=False)
        elapsed = time.perf_counter() - started
        save_model(model, checkpoint_path(run_dir, model.num_timesteps))
        save_model(model, run_dir / FINAL_MODEL_NAME)
        steps = model.num_timesteps - start_step
        print(
            f"done: {model.num_timesteps} steps ({steps / max(elapsed, 1e-9):,.0f} steps/s); "
            f"final model {run_dir / FINAL_MODEL_NAME}",
            file=sys.stderr,
        )
    except KeyboardInterrupt:
        if callback is not None and callback.bar is not None:
            callback.bar.close()
        if model is not None:
            path = save_model(model, checkpoint_path(run_dir, model.num_timesteps))
            print(f"\ninterrupted: saved {path}; continue with --resume {run_dir}", file=sys.stderr)
    except WorkerError as error:
        if callback is not None and callback.bar is not None:
            callback.bar.close()
        exit_code = 1
        print(f"\nerror: {error}", file=sys.stderr)
        if model is not None:
            path = save_model(model, checkpoint_path(run_dir, model.num_timesteps))
            print(f"saved {path}; continue with --resume {run_dir}", file=sys.stderr)
    finally:
        venv.close()
    return exit_code


def _sigterm_as_interrupt(signum, frame):
    raise KeyboardInterrupt


def main(argv: Optional[Sequence[str]] = None) -> int:
    try:
        args = parse_args(argv)
        config, run_dir, resume = prepare_run(args)
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, _sigterm_as_interrupt)
    try:
        return run(config, run_dir, resume)
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
