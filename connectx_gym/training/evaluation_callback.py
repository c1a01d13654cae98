"""The evaluation during training: ``EvaluationCallback`` plays greedy games against the
``train.eval_opponents`` every ``train.eval_every`` steps (and grades the policy on the shipped
labelled positions), keeps ``best_model.zip`` and calls the ``report`` hook (Ray Tune's). Any trainer
that drives SB3 callbacks (``on_step`` with the model's step count) can use it.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import connectx_gym.runtime.quiet  # noqa: F401 - first: no legacy gym banner when SB3 loads

from stable_baselines3.common.callbacks import BaseCallback

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
from connectx_gym.runtime.checkpoints import save_model
from connectx_gym.runtime.files import write_atomic
from connectx_gym.training.builders import env_board
from connectx_gym.training.callbacks import Interval
from connectx_gym.training.layout import BEST_MODEL_NAME, BEST_MODEL_NOTE

#: seed offset for evaluation games, so they never replay training episodes
EVAL_SEED_OFFSET = 1_000_003


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
        # and per phase of the game (opening, middle, end), as evaluate --accuracy reports them
        for phase, tally in result.phases.items():
            self.logger.record(f"eval/perfect_move_rate/{phase}", tally.rate("perfect"))
        for phase, part in values.phases.items():
            self.logger.record(f"eval/value_sign_decided/{phase}", values.rate(part, "decided"))
            self.logger.record(f"eval/value_sign_lost/{phase}", values.rate(part, "lost"))
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
