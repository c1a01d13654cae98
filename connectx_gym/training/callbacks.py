"""The trainer's SB3 callbacks, one job each, and ``make_callbacks`` that joins them in a ``CallbackList``.

``EpisodeStatsCallback`` counts finished episodes (win rates, opponent errors) and logs them;
``OpponentScheduleCallback`` runs the curriculum and the self-play pool; ``ProgressBarCallback``
draws the tqdm bar; ``CheckpointCallback`` saves atomic checkpoints with the run state;
``EvaluationCallback`` plays greedy evaluation games, keeps the best model and calls the ``report``
hook (Ray Tune's). What they share (the run state, the episode statistics the bar shows, the
evaluation results the bar shows) is handed to their constructors, so each can be tested alone.
This module imports stable-baselines3; the train command imports it only once training starts.
"""

from __future__ import annotations

import collections
import math
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import connectx_gym.runtime.quiet  # noqa: F401 - first: no legacy gym banner when SB3 loads

from stable_baselines3.common.callbacks import BaseCallback, CallbackList

from connectx_gym.agents.specs import make_opponent
from connectx_gym.config import Config
from connectx_gym.evaluation.accuracy import (
    LABEL_BOARD,
    LabelledPositions,
    batch_policy_moves,
    grade,
    load_positions,
    policy_values,
    value_accuracy,
)
from connectx_gym.evaluation.match import play_games, sb3_batch_policy
from connectx_gym.evaluation.openings import resolve_openings
from connectx_gym.inference.numpy_policy import from_sb3_model
from connectx_gym.runtime.checkpoints import prune_checkpoints, save_model
from connectx_gym.runtime.files import write_atomic
from connectx_gym.training.builders import env_board, env_kwargs
from connectx_gym.training.curriculum import Curriculum
from connectx_gym.training.layout import BEST_MODEL_NAME, BEST_MODEL_NOTE
from connectx_gym.training.run_state import RunState, save_checkpoint

#: episodes the progress bar's win rate is averaged over
WIN_RATE_WINDOW = 200
#: seed offset for evaluation games, so they never replay training episodes
EVAL_SEED_OFFSET = 1_000_003
#: the progress bar's statistics are refreshed every this many vec env steps
POSTFIX_EVERY = 20


def next_multiple(step: int, every: int) -> float:
    """The first multiple of ``every`` after ``step`` (never, for ``every`` 0)."""
    return (step // every + 1) * every if every else math.inf


class Interval:
    """Fires once each time the step count reaches the next multiple of ``every`` after ``start_step``.

    Steps advance by the number of envs, so a multiple is usually passed, not hit: it fires at the
    first step at or past it, and then waits for the multiple after that step.
    """

    def __init__(self, every: int, start_step: int) -> None:
        self.every = every
        self.next = next_multiple(start_step, every)

    def due(self, step: int) -> bool:
        if step < self.next:
            return False
        self.next = next_multiple(step, self.every)
        return True


def win_rate(outcomes: Sequence[str | None]) -> float:
    """The share of ``"win"`` outcomes (NaN for none)."""
    if not outcomes:
        return math.nan
    return sum(1 for outcome in outcomes if outcome == "win") / len(outcomes)


def finished_episodes(locals_: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    """The info dicts of the episodes that ended in the step SB3 just took."""
    for done, info in zip(locals_["dones"], locals_["infos"]):
        if done:
            yield info


def print_to_stderr(text: str) -> None:
    print(text, file=sys.stderr)


class EpisodeStatsCallback(BaseCallback):
    """Outcomes of finished episodes: the win rate over the last ``window`` of them, per opponent
    kind too, and opponent errors (forfeits), logged as ``rollout/...`` at each rollout's end.

    :param window: episodes the win rates are averaged over
    """

    def __init__(self, window: int = WIN_RATE_WINDOW) -> None:
        super().__init__()
        self.window = window
        self.outcomes: collections.deque = collections.deque(maxlen=window)
        self.by_opponent: dict[str, collections.deque] = {}
        self.opponent_errors = 0

    @property
    def win_rate(self) -> float:
        return win_rate(self.outcomes)

    def _on_step(self) -> bool:
        for info in finished_episodes(self.locals):
            self.record(info)
        return True

    def record(self, info: Mapping[str, Any]) -> None:
        """Count one finished episode from its final info dict."""
        outcome, label = info.get("outcome"), info.get("opponent")
        self.outcomes.append(outcome)
        if label:
            # every snapshot is a different label; the rate against self-play as a whole is what tells
            kind = label.split(":", 1)[0] if label.startswith("selfplay:") else label
            self.by_opponent.setdefault(kind, collections.deque(maxlen=self.window)).append(outcome)
        if "opponent_error" in info:
            self.opponent_errors += 1

    def _on_rollout_end(self) -> None:
        rate = self.win_rate
        if not math.isnan(rate):
            self.logger.record("rollout/win_rate", rate)
        for kind, outcomes in self.by_opponent.items():
            self.logger.record(f"rollout/win_rate_vs/{kind}", win_rate(outcomes))
        self.logger.record("rollout/opponent_errors", self.opponent_errors)


class OpponentScheduleCallback(BaseCallback):
    """Who the envs play: curriculum promotions, and the self-play pool's snapshots and results.

    :param state: the run's curriculum and pool (saved with checkpoints by ``CheckpointCallback``)
    :param snapshot_every: steps between self-play snapshots (0: only the first one)
    :param start_step: the step training starts (or resumes) at
    :param say: prints a line (the progress bar's ``write`` while there is one)
    """

    def __init__(
        self, state: RunState, snapshot_every: int, start_step: int, say: Callable[[str], None] = print_to_stderr
    ) -> None:
        super().__init__()
        self.state = state
        self.snapshots = Interval(snapshot_every, start_step)
        self.say = say

    def _on_training_start(self) -> None:
        pool = self.state.pool
        if pool is not None:
            if not pool.snapshots:  # a fresh run faces its own initial policy first
                self.snapshot()
            else:
                pool.send_to(self.training_env)

    def _on_step(self) -> bool:
        curriculum, pool = self.state.curriculum, self.state.pool
        for info in finished_episodes(self.locals):
            outcome = info.get("outcome")
            if pool is not None:
                pool.record(info.get("opponent"), outcome)
            if curriculum.record(outcome):
                self.training_env.env_method("set_opponent", make_opponent(curriculum.opponent))
                self.say(
                    f"curriculum: stage {curriculum.stage} at step {self.model.num_timesteps}, "
                    f"opponent {curriculum.opponent}"
                )
        if self.snapshots.due(self.model.num_timesteps) and pool is not None:
            self.snapshot()
        return True

    def snapshot(self) -> None:
        """Freeze the current policy into the pool and ship it to every env's process."""
        step = self.model.num_timesteps
        self.state.pool.add(step, from_sb3_model(self.model).to_bytes())
        self.state.pool.send_to(self.training_env, [step])

    def _on_rollout_end(self) -> None:
        if self.state.curriculum.active:
            self.logger.record("curriculum/stage", self.state.curriculum.stage)
        pool = self.state.pool
        if pool is not None:
            self.logger.record("selfplay/pool_size", len(pool.snapshots))
            if pool.prioritized:
                self.training_env.env_method("set_snapshot_weights", pool.weights())


class CheckpointCallback(BaseCallback):
    """Every ``every`` steps, an atomic checkpoint (with the run state first); keeps the newest ``keep``.

    :param state: saved right before each checkpoint (None: the model alone)
    """

    def __init__(self, run_dir: Path, every: int, keep: int, state: RunState | None, start_step: int) -> None:
        super().__init__()
        self.run_dir = run_dir
        self.keep = keep
        self.state = state
        self.interval = Interval(every, start_step)
        self.last_path: Path | None = None

    def _on_step(self) -> bool:
        if self.interval.due(self.model.num_timesteps):
            self.save()
        return True

    def save(self) -> Path:
        self.last_path = save_checkpoint(self.model, self.run_dir, self.state)
        prune_checkpoints(self.run_dir, self.keep)
        return self.last_path


def selection_score(mean_win_rate: float, perfect_move_rate: float) -> float:
    """How ``best_model.zip`` is chosen when accuracy is graded: the mean of the mean win rate against
    the evaluation opponents and the perfect-move rate on the labelled positions (both in [0, 1])."""
    return (mean_win_rate + perfect_move_rate) / 2


class EvaluationCallback(BaseCallback):
    """Every ``every`` steps, greedy games against each evaluation opponent: logged as ``eval/...``,
    the best mean win rate's model kept as ``best_model.zip``, and the results handed on.

    :param opponents: the opponent specs to play
    :param games: games against each opponent
    :param seed: game ``i`` of each match is reset with ``seed + i``
    :param env_kwargs: the games' ``ConnectXEnv`` arguments
    :param run_dir: where the best model goes
    :param report: called after every evaluation with ``{"timesteps", "mean_win_rate",
        "win_rate/<opponent>", "steps_per_s"}`` (steps/s since the previous report); Ray Tune's
        trials pass ``tune.report`` here
    :param after_eval: called with ``{opponent: win rate}`` after every evaluation, before ``report``
        (plus ``"perfect"``: the perfect-move rate, with ``accuracy``)
    :param accuracy: also grade the greedy policy on these labelled positions (``eval/perfect_move_rate``,
        ``eval/good_move_rate``); the best model is then the best ``selection_score``
    :param openings: start the games from these openings (columns from the empty board), each in
        both seats (``match.play_games``); ``None``: from the empty board
    """

    def __init__(
        self,
        opponents: Sequence[Any],
        games: int,
        seed: int,
        env_kwargs: Mapping[str, Any],
        every: int,
        start_step: int,
        run_dir: Path,
        report: Callable[[dict[str, Any]], Any] | None = None,
        after_eval: Callable[[dict[str, float]], None] | None = None,
        accuracy: LabelledPositions | None = None,
        openings: Sequence[Sequence[int]] | None = None,
    ) -> None:
        super().__init__()
        self.openings = openings
        self.accuracy = accuracy
        self.last_accuracy: dict[str, float] = {}
        self.opponents = list(opponents)
        self.games = games
        self.seed = seed
        self.env_kwargs = dict(env_kwargs)
        self.interval = Interval(every, start_step)
        self.run_dir = run_dir
        self.report = report
        self.after_eval = after_eval
        self.best_score = -math.inf
        self.last_eval: dict[str, float] = {}
        self.last_report = (start_step, time.perf_counter())

    def _on_step(self) -> bool:
        if self.interval.due(self.model.num_timesteps):
            self.evaluate()
        return True

    def evaluate(self) -> float:
        """Play the evaluation games now; returns the mean win rate over the opponents."""
        policy = sb3_batch_policy(self.model)
        scores = []
        for spec in self.opponents:
            result = play_games(
                policy, spec, self.games, seed=self.seed, env_kwargs=self.env_kwargs, openings=self.openings
            )
            scores.append(result.win_rate)
            self.last_eval[spec] = result.win_rate
            self.logger.record(f"eval/win_rate/{spec}", result.win_rate)
            self.logger.record(f"eval/draw_rate/{spec}", result.total.draws / result.total.games)
        mean = sum(scores) / len(scores)
        self.logger.record("eval/mean_win_rate", mean)
        score, note = mean, f"mean_win_rate {mean:.4f}"
        if self.accuracy is not None:
            self.last_accuracy = self._grade_accuracy()
            score = selection_score(mean, self.last_accuracy["perfect_move_rate"])
            note = f"{note} perfect_move_rate {self.last_accuracy['perfect_move_rate']:.4f} score {score:.4f}"
            self.logger.record("eval/selection_score", score)
        if score > self.best_score:
            self.best_score = score
            save_model(self.model, self.run_dir / BEST_MODEL_NAME)
            write_atomic(self.run_dir / BEST_MODEL_NOTE, f"step {self.model.num_timesteps} {note}\n".encode())
        if self.after_eval is not None:
            perfect = self.last_accuracy.get("perfect_move_rate")
            self.after_eval({**self.last_eval, **({"perfect": perfect} if perfect is not None else {})})
        if self.report is not None:
            self._report(mean)
        return mean

    def _grade_accuracy(self) -> dict[str, float]:
        """The greedy policy's perfect-move and good-move rates on the labelled positions, and how often the
        value head's sign matches the solver's on decided (and on lost) positions, logged as ``eval/...``."""
        policy = sb3_batch_policy(self.model)
        result = grade(self.accuracy, batch_policy_moves(self.accuracy, policy))
        values = value_accuracy(self.accuracy, policy_values(from_sb3_model(self.model), self.accuracy))
        rates = {
            "perfect_move_rate": result.overall.rate("perfect"),
            "good_move_rate": result.overall.rate("good"),
            "value_sign_decided": values.rate(values.overall, "decided"),
            "value_sign_lost": values.rate(values.overall, "lost"),
        }
        for name, rate in rates.items():
            self.logger.record(f"eval/{name}", rate)
        return rates

    def _report(self, mean: float) -> None:
        step, now = self.model.num_timesteps, time.perf_counter()
        last_step, last_time = self.last_report
        self.last_report = (step, now)
        self.report(
            {
                "timesteps": step,
                "mean_win_rate": mean,
                **{f"win_rate/{spec}": rate for spec, rate in self.last_eval.items()},
                **self.last_accuracy,
                "steps_per_s": (step - last_step) / max(now - last_time, 1e-9),
            }
        )


class ProgressBarCallback(BaseCallback):
    """A tqdm bar on stderr: steps done, the recent win rate, the curriculum stage, the last evaluation.

    :param stats: whose win rate the bar shows (None: none)
    :param curriculum: whose stage the bar shows (None or inactive: none)
    """

    def __init__(
        self,
        total_timesteps: int,
        start_step: int,
        stats: EpisodeStatsCallback | None = None,
        curriculum: Curriculum | None = None,
    ) -> None:
        super().__init__()
        self.total_timesteps = total_timesteps
        self.start_step = start_step
        self.stats = stats
        self.curriculum = curriculum
        self.last_eval: dict[str, float] = {}
        self.bar = None

    def _on_training_start(self) -> None:
        from tqdm import tqdm

        self.bar = tqdm(
            total=self.total_timesteps,
            initial=min(self.start_step, self.total_timesteps),
            unit="step",
            unit_scale=True,
            dynamic_ncols=True,
            desc="train",
            file=sys.stderr,
            mininterval=1.0,
            smoothing=0,  # ETA from the run's average rate: evaluation pauses would make a recent rate swing
        )

    def _on_step(self) -> bool:
        if self.bar is not None:
            self.bar.update(min(self.model.num_timesteps, self.total_timesteps) - self.bar.n)
            if self.n_calls % POSTFIX_EVERY == 0:
                self.bar.set_postfix_str(self.postfix(), refresh=False)
        return True

    def postfix(self) -> str:
        parts = []
        rate = self.stats.win_rate if self.stats is not None else math.nan
        if not math.isnan(rate):
            parts.append(f"win {rate:.0%}")
        if self.curriculum is not None and self.curriculum.active:
            parts.append(f"stage {self.curriculum.stage}")
        parts.extend(f"{name} {value:.0%}" for name, value in self.last_eval.items())
        return " ".join(parts)

    def show_evaluation(self, results: Mapping[str, float]) -> None:
        """Show the latest evaluation win rates next to the bar (an ``EvaluationCallback.after_eval``)."""
        self.last_eval.update(results)
        if self.bar is not None:
            self.bar.set_postfix_str(self.postfix())

    def write(self, text: str) -> None:
        """Print a line to stderr without breaking the bar."""
        if self.bar is not None:
            self.bar.write(text, file=sys.stderr)
        else:
            print_to_stderr(text)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()

    def _on_training_end(self) -> None:
        self.close()


def make_callbacks(
    config: Config,
    run_dir: Path,
    start_step: int,
    state: RunState,
    report: Callable[[dict[str, Any]], Any] | None = None,
) -> CallbackList:
    """The trainer's callbacks for ``config``, in the order they run at every step.

    Episodes are counted before the curriculum may switch opponents; the bar moves before a
    checkpoint is saved and before an evaluation, which runs last and shows on the bar when done.

    :param report: see :class:`EvaluationCallback`
    """
    train = config.train
    stats = EpisodeStatsCallback()
    bar = None
    if config.logging.progress_bar:
        bar = ProgressBarCallback(train.total_timesteps, start_step, stats, state.curriculum)
    schedule = OpponentScheduleCallback(
        state, config.selfplay.snapshot_every, start_step, say=bar.write if bar is not None else print_to_stderr
    )
    checkpoints = CheckpointCallback(run_dir, train.checkpoint_every, train.keep_checkpoints, state, start_step)
    evaluation = EvaluationCallback(
        train.eval_opponents,
        train.eval_games,
        train.seed + EVAL_SEED_OFFSET,
        env_kwargs(config),
        train.eval_every,
        start_step,
        run_dir,
        report=report,
        after_eval=bar.show_evaluation if bar is not None else None,
        accuracy=accuracy_positions(config),
        openings=evaluation_openings(config),
    )
    chain: Iterable[BaseCallback | None] = (stats, schedule, bar, checkpoints, evaluation)
    return CallbackList([callback for callback in chain if callback is not None])


def accuracy_positions(config: Config) -> LabelledPositions | None:
    """The shipped labelled positions when ``train.eval_accuracy`` is on and the board is 6x7 with 4 in a row."""
    if not config.train.eval_accuracy or config.train.eval_every <= 0 or env_board(config) != LABEL_BOARD:
        return None
    return load_positions()


def evaluation_openings(config: Config) -> list[tuple[int, ...]] | None:
    """The openings the trainer's evaluation games start from: with ``train.eval_openings`` on a 6x7
    board with 4 in a row, ``eval_games // 2`` openings spread evenly over the shipped suite (all of
    it when there are fewer), each played in both seats; otherwise ``None`` (the empty board)."""
    shipped = resolve_openings(None, env_board(config)) if config.train.eval_openings else None
    if shipped is None:  # not the suite's board
        return None
    suite = shipped.moves()
    wanted = config.train.eval_games // 2
    if wanted >= len(suite):
        return suite
    return [suite[i * len(suite) // wanted] for i in range(wanted)]


def close_progress_bars(callbacks: CallbackList | None) -> None:
    """Close any progress bar in ``callbacks``, so a message after an interruption starts on a clean line."""
    for callback in callbacks.callbacks if callbacks is not None else ():
        if isinstance(callback, ProgressBarCallback):
            callback.close()
