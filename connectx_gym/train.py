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
import pickle
import signal
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

from connectx_gym.config import Config, config_to_dict, load_config, save_config
from connectx_gym.cli import ArgumentParser
from connectx_gym.errors import UserError

DEFAULT_CONFIG = Path("configs") / "default.yaml"
CONFIG_NAME = "config.yaml"
BEST_MODEL_NAME = "best_model.zip"
FINAL_MODEL_NAME = "final_model.zip"
#: episodes the progress bar's win rate is averaged over
WIN_RATE_WINDOW = 200
#: seed offset for evaluation games, so they never replay training episodes
EVAL_SEED_OFFSET = 1_000_003


def parse_args(argv: Optional[Sequence[str]]) -> argparse.Namespace:
    parser = ArgumentParser(
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
    from connectx_gym.game.opponents import make_opponent

    stages = [stage["opponent"] for stage in config.curriculum.stages]
    for spec in (config.env.opponent, *stages, *config.train.eval_opponents):
        make_opponent(spec)


def check_ray(config: Config) -> None:
    """With ``multiprocessing.backend: ray``, join (or start) the cluster now and check it has room
    for the workers, so a missing install or a wrong ``ray.address`` fails before anything is written."""
    if config.multiprocessing.backend == "ray":
        from connectx_gym.envs.vec import ray_chunk_actor_class

        ray_chunk_actor_class(config.ray.address, config.ray.num_cpus_per_worker * config.multiprocessing.num_processes)


def prepare_run(args: argparse.Namespace) -> tuple:
    """Validate everything and decide the run directory: ``(config, run_dir, resume checkpoint)``."""
    from connectx_gym.training.checkpoints import newest_valid_checkpoint

    if args.resume:
        if args.config:
            raise UserError("--resume uses the run's own config.yaml; do not combine it with --config")
        run_dir = Path(args.resume)
        saved = run_dir / CONFIG_NAME
        if not saved.is_file():
            raise UserError(f"--resume '{run_dir}': no {CONFIG_NAME} there; is it a run directory?")
        config = load_config(saved, args.overrides).resolved()
        check_opponents(config)
        check_ray(config)
        found = newest_valid_checkpoint(run_dir)
        if found is None:
            raise UserError(f"--resume '{run_dir}': no intact checkpoint in {run_dir / 'checkpoints'}")
        return config, run_dir, found
    path = args.config
    if path is None and DEFAULT_CONFIG.is_file():
        path = DEFAULT_CONFIG
    config = load_config(path, args.overrides).resolved()
    check_opponents(config)
    check_ray(config)
    run_name = config.train.run_name or time.strftime("run-%Y%m%d-%H%M%S")
    run_dir = Path(config.train.output_dir) / run_name
    if (run_dir / CONFIG_NAME).exists():
        raise UserError(
            f"run directory '{run_dir}' already holds a run; use --resume {run_dir} or another train.run_name"
        )
    return config, run_dir, None


def env_kwargs(config: Config, info_board: bool = False, opponent: Any = None) -> Dict[str, Any]:
    """``ConnectXEnv`` keyword arguments from the ``env`` section (``opponent`` overrides it)."""
    env = config.env
    return dict(
        rows=env.rows,
        columns=env.columns,
        inarow=env.inarow,
        opponent=env.opponent if opponent is None else opponent,
        agent_seat=env.agent_seat,
        reward_win=env.reward_win,
        reward_loss=env.reward_loss,
        reward_draw=env.reward_draw,
        illegal_action=env.illegal_action,
        info_board=info_board,
    )


def ppo_kwargs(config: Config) -> Dict[str, Any]:
    return dict(config_to_dict(config)["ppo"])


def build_vec_env(config: Config, seed: int, opponent: Any = None):
    from stable_baselines3.common.vec_env import VecMonitor

    from connectx_gym.game.opponents import make_opponent
    from connectx_gym.envs.vec import make_vec_env

    mp_config = config.multiprocessing
    # Built here and shipped as an object: a checkpoint opponent then travels as numpy weights
    # instead of every worker loading the checkpoint through SB3 (and importing torch).
    built = make_opponent(config.env.opponent if opponent is None else opponent)
    venv = make_vec_env(
        env_kwargs(config, opponent=built),
        parallel_episodes=mp_config.parallel_episodes,
        num_processes=mp_config.num_processes,
        use_multiprocessing=mp_config.use_multiprocessing,
        backend=mp_config.backend,
        start_method=mp_config.start_method,
        seed=seed,
        ray_address=config.ray.address,
        ray_cpus_per_worker=config.ray.num_cpus_per_worker,
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


class RunState:
    """What a run must carry across a restart besides the model: curriculum stage and self-play pool.

    Saved (atomically, as ``trainer_state.pkl``) right before every checkpoint, so the newest
    checkpoint never lacks the state that goes with it.
    """

    FILE = "trainer_state.pkl"

    def __init__(self, config: Config, run_dir: Path, resume) -> None:
        from connectx_gym.training.curriculum import Curriculum
        from connectx_gym.game.selfplay import PoolKeeper, uses_selfplay

        self.run_dir = run_dir
        saved: Dict[str, Any] = {}
        if resume and (run_dir / self.FILE).is_file():
            with open(run_dir / self.FILE, "rb") as handle:
                saved = pickle.load(handle)
        stages = config.curriculum.stages
        self.curriculum = Curriculum(stages, config.curriculum.window, saved.get("stage", 0))
        opponents = [config.env.opponent] + [stage["opponent"] for stage in stages]
        self.pool: Optional[PoolKeeper] = None
        if any(uses_selfplay(opponent) for opponent in opponents):
            sp = config.selfplay
            self.pool = PoolKeeper(sp.pool_size, sp.latest_probability, sp.prioritized)
            if "pool" in saved:
                self.pool.restore(saved["pool"])

    @property
    def opponent(self) -> Any:
        """The opponent the envs should face now."""
        return self.curriculum.opponent if self.curriculum.active else None

    def save(self) -> None:
        from connectx_gym.training.checkpoints import write_atomic

        state: Dict[str, Any] = {"stage": self.curriculum.stage}
        if self.pool is not None:
            state["pool"] = self.pool.state()
        write_atomic(self.run_dir / self.FILE, pickle.dumps(state))


def make_callback(config: Config, run_dir: Path, start_step: int, state: RunState, report=None):
    """The callback that drives progress output, checkpoints, evaluation, self-play and curriculum.

    :param report: called after every evaluation with ``{"timesteps", "mean_win_rate",
        "win_rate/<opponent>", "steps_per_s"}`` (steps/s since the previous report); Ray Tune's
        trials pass ``tune.report`` here
    """
    from stable_baselines3.common.callbacks import BaseCallback

    from connectx_gym.training.checkpoints import checkpoint_path, prune_checkpoints, save_model, write_atomic
    from connectx_gym.evaluation.match import play_games, sb3_batch_policy
    from connectx_gym.game.numpy_policy import from_sb3_model
    from connectx_gym.game.opponents import make_opponent

    train = config.train

    def next_multiple(step: int, every: int) -> float:
        return (step // every + 1) * every if every else math.inf

    class TrainingCallback(BaseCallback):
        def __init__(self) -> None:
            super().__init__()
            self.outcomes: collections.deque = collections.deque(maxlen=WIN_RATE_WINDOW)
            self.by_opponent: Dict[str, collections.deque] = {}
            self.next_checkpoint = next_multiple(start_step, train.checkpoint_every)
            self.next_eval = next_multiple(start_step, train.eval_every)
            self.next_snapshot = next_multiple(start_step, config.selfplay.snapshot_every)
            self.best_score = -math.inf
            self.bar = None
            self.last_eval: Dict[str, float] = {}
            self.opponent_errors = 0
            self.last_report = (start_step, time.perf_counter())

        def _on_training_start(self) -> None:
            if state.pool is not None:
                if not state.pool.snapshots:  # a fresh run faces its own initial policy first
                    self.snapshot()
                else:
                    state.pool.send_to(self.training_env)
            if config.logging.progress_bar:
                from tqdm import tqdm

                self.bar = tqdm(
                    total=train.total_timesteps, initial=min(start_step, train.total_timesteps),
                    unit="step", unit_scale=True, dynamic_ncols=True, desc="train", file=sys.stderr, mininterval=1.0,
                )

        def say(self, text: str) -> None:
            if self.bar is not None:
                self.bar.write(text, file=sys.stderr)
            else:
                print(text, file=sys.stderr)

        def _on_step(self) -> bool:
            for done, info in zip(self.locals["dones"], self.locals["infos"]):
                if done:
                    self.episode_finished(info)
            step = self.model.num_timesteps
            if self.bar is not None:
                self.bar.update(min(step, train.total_timesteps) - self.bar.n)
                if self.n_calls % 20 == 0:
                    self.bar.set_postfix_str(self._postfix(), refresh=False)
            if step >= self.next_snapshot and state.pool is not None:
                self.snapshot()
            if step >= self.next_checkpoint:
                self.save_checkpoint()
            if step >= self.next_eval:
                self.evaluate()
            self.next_snapshot = max(self.next_snapshot, next_multiple(step, config.selfplay.snapshot_every))
            self.next_checkpoint = max(self.next_checkpoint, next_multiple(step, train.checkpoint_every))
            self.next_eval = max(self.next_eval, next_multiple(step, train.eval_every))
            return True

        def episode_finished(self, info: Dict[str, Any]) -> None:
            outcome, label = info.get("outcome"), info.get("opponent")
            self.outcomes.append(outcome)
            if label:
                kind = label.split(":", 1)[0] if label.startswith("selfplay:") else label
                self.by_opponent.setdefault(kind, collections.deque(maxlen=WIN_RATE_WINDOW)).append(outcome)
            if "opponent_error" in info:
                self.opponent_errors += 1
            if state.pool is not None:
                state.pool.record(label, outcome)
            if state.curriculum.record(outcome):
                self.training_env.env_method("set_opponent", make_opponent(state.curriculum.opponent))
                self.say(f"curriculum: stage {state.curriculum.stage} at step {self.model.num_timesteps}, "
                         f"opponent {state.curriculum.opponent}")

        def _on_rollout_end(self) -> None:
            rate = self.win_rate(self.outcomes)
            if not math.isnan(rate):
                self.logger.record("rollout/win_rate", rate)
            for kind, outcomes in self.by_opponent.items():
                self.logger.record(f"rollout/win_rate_vs/{kind}", self.win_rate(outcomes))
            self.logger.record("rollout/opponent_errors", self.opponent_errors)
            if state.curriculum.active:
                self.logger.record("curriculum/stage", state.curriculum.stage)
            if state.pool is not None:
                self.logger.record("selfplay/pool_size", len(state.pool.snapshots))
                if state.pool.prioritized:
                    self.training_env.env_method("set_snapshot_weights", state.pool.weights())

        @staticmethod
        def win_rate(outcomes) -> float:
            if not outcomes:
                return math.nan
            return sum(1 for outcome in outcomes if outcome == "win") / len(outcomes)

        def _postfix(self) -> str:
            parts = []
            rate = self.win_rate(self.outcomes)
            if not math.isnan(rate):
                parts.append(f"win {rate:.0%}")
            if state.curriculum.active:
                parts.append(f"stage {state.curriculum.stage}")
            parts.extend(f"{name} {value:.0%}" for name, value in self.last_eval.items())
            return " ".join(parts)

        def snapshot(self) -> None:
            step = self.model.num_timesteps
            state.pool.add(step, from_sb3_model(self.model).to_bytes())
            state.pool.send_to(self.training_env, [step])

        def save_checkpoint(self) -> Path:
            state.save()
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
            if report is not None:
                step, now = self.model.num_timesteps, time.perf_counter()
                last_step, last_time = self.last_report
                self.last_report = (step, now)
                report({
                    "timesteps": step,
                    "mean_win_rate": mean,
                    **{f"win_rate/{spec}": rate for spec, rate in self.last_eval.items()},
                    "steps_per_s": (step - last_step) / max(now - last_time, 1e-9),
                })

        def _on_training_end(self) -> None:
            if self.bar is not None:
                self.bar.close()

    return TrainingCallback()


def run(config: Config, run_dir: Path, resume, report=None) -> int:
    """Train; returns the process exit code.

    :param report: see :func:`make_callback` (metrics after every evaluation)
    """
    from connectx_gym.runtime.quiet import quiet_import_sb3

    quiet_import_sb3()
    from sb3_contrib import MaskablePPO

    from connectx_gym.training.checkpoints import checkpoint_path, load_model, save_model
    from connectx_gym.training.policy import policy_kwargs
    from connectx_gym.envs.vec import WorkerError

    _check_writable(run_dir)
    save_config(config, run_dir / CONFIG_NAME)
    start_step = resume[0] if resume else 0
    state = RunState(config, run_dir, resume)
    print(f"run directory: {run_dir}", file=sys.stderr)
    venv = build_vec_env(config, config.train.seed + start_step, opponent=state.opponent)
    model = None
    exit_code = 0
    callback = None

    def save_now() -> Path:
        state.save()
        return save_model(model, checkpoint_path(run_dir, model.num_timesteps))

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
        callback = make_callback(config, run_dir, start_step, state, report)
        remaining = config.train.total_timesteps - start_step
        started = time.perf_counter()
        if remaining > 0:
            model.learn(remaining, callback=callback, reset_num_timesteps=False, progress_bar=False)
        elapsed = time.perf_counter() - started
        save_now()
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
            path = save_now()
            print(f"\ninterrupted: saved {path}; continue with --resume {run_dir}", file=sys.stderr)
    except WorkerError as error:
        if callback is not None and callback.bar is not None:
            callback.bar.close()
        exit_code = 1
        print(f"\nerror: {error}", file=sys.stderr)
        if model is not None:
            path = save_now()
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
