"""The trainer's callbacks, each alone: driven step by step the way SB3 drives them, on a fake or tiny model."""

from __future__ import annotations

import pickle

import pytest

from connectx_gym.config import load_config
from connectx_gym.data import OPENINGS_FILE
from connectx_gym.evaluation.match import play_games, sb3_batch_policy
from connectx_gym.evaluation.openings import load_openings
from connectx_gym.runtime.checkpoints import list_checkpoints, verify_checkpoint
from connectx_gym.training.builders import env_kwargs
from connectx_gym.training.callbacks import (
    CheckpointCallback,
    EpisodeStatsCallback,
    Interval,
    OpponentScheduleCallback,
)
from connectx_gym.training.curriculum import Curriculum
from connectx_gym.training.evaluation_callback import EvaluationCallback, evaluation_openings
from connectx_gym.training.progress import ProgressBarCallback
from connectx_gym.training.run_callbacks import make_callbacks
from connectx_gym.training.run_state import RunState

BOARD = {"rows": 6, "columns": 7, "inarow": 4}


class RecordingVenv:
    """Stands in for the vec env: remembers every ``env_method`` call."""

    num_envs = 2

    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple]] = []

    def env_method(self, name, *args, **kwargs):
        self.calls.append((name, args))
        return [None] * self.num_envs

    def named(self, name: str) -> list[tuple]:
        return [args for called, args in self.calls if called == name]


def new_logger():
    from stable_baselines3.common.logger import Logger

    return Logger(folder=None, output_formats=[])


class FakeModel:
    """What a callback uses of an SB3 model when it saves nothing: a step count, the env, a logger."""

    def __init__(self) -> None:
        self.num_timesteps = 0
        self.env = RecordingVenv()
        self.logger = new_logger()

    def get_env(self):
        return self.env


@pytest.fixture(scope="module")
def tiny():
    from helpers import tiny_model

    return tiny_model(BOARD)


@pytest.fixture
def model(tiny):
    """The tiny MaskablePPO with a recording env and an in-memory logger, at step 0."""
    tiny.env = RecordingVenv()
    tiny.set_logger(new_logger())
    tiny.num_timesteps = 0
    return tiny


def start(callback, model) -> None:
    callback.init_callback(model)
    callback.on_training_start({"dones": [], "infos": []}, {})


def step(callback, model, num_timesteps: int, infos=(), dones=None) -> None:
    """One vec env step: ``infos`` are the envs' infos, all finished unless ``dones`` says otherwise."""
    model.num_timesteps = num_timesteps
    callback.update_locals({"dones": [True] * len(infos) if dones is None else dones, "infos": list(infos)})
    callback.on_step()


def logged(model) -> dict:
    return dict(model.logger.name_to_value)


def config_with(*overrides: str):
    return load_config(None, list(overrides)).resolved()


def test_interval_fires_once_per_multiple_passed():
    interval = Interval(100, start_step=250)
    assert [s for s in (260, 299, 300, 301, 390, 420, 650) if interval.due(s)] == [300, 420, 650]
    never = Interval(0, start_step=0)
    assert not any(never.due(s) for s in (1, 10**9))


def test_episode_stats_win_rates_per_opponent_kind_and_errors():
    stats, model = EpisodeStatsCallback(window=4), FakeModel()
    start(stats, model)
    stats.on_rollout_end()
    assert "rollout/win_rate" not in logged(model)  # no episode yet: no rate, not NaN
    assert logged(model)["rollout/opponent_errors"] == 0
    step(
        stats,
        model,
        2,
        [{"outcome": "loss", "opponent": "random"}, {"outcome": "win", "opponent": "random"}],
        dones=[True, False],
    )  # the second env's episode goes on
    step(
        stats,
        model,
        4,
        [
            {"outcome": "win", "opponent": "selfplay:10"},
            {"outcome": "win", "opponent": "selfplay:20", "opponent_error": "boom"},
        ],
    )
    step(stats, model, 6, [{"outcome": "win", "opponent": "negamax"}, {"outcome": "win", "opponent": "random"}])
    assert list(stats.outcomes) == ["win"] * 4  # the window keeps the last 4 of 5
    stats.on_rollout_end()
    values = logged(model)
    assert values["rollout/win_rate"] == 1.0
    assert values["rollout/win_rate_vs/random"] == 0.5
    assert values["rollout/win_rate_vs/selfplay"] == 1.0  # snapshots count as one kind
    assert values["rollout/win_rate_vs/negamax"] == 1.0
    assert values["rollout/opponent_errors"] == 1


def test_opponent_schedule_promotes_through_the_curriculum(tmp_path):
    config = config_with(
        "curriculum.stages=[{opponent: random, promote_at: 0.5}, {opponent: negamax}]",
        "curriculum.window=2",
        "env.opponent=random",
    )
    state = RunState(config, tmp_path, None)
    said: list[str] = []
    schedule, model = OpponentScheduleCallback(state, snapshot_every=0, start_step=0, say=said.append), FakeModel()
    start(schedule, model)
    step(schedule, model, 8, [{"outcome": "loss", "opponent": "random"}])
    assert state.curriculum.stage == 0 and said == []
    step(schedule, model, 16, [{"outcome": "win", "opponent": "random"}])
    assert state.curriculum.stage == 1
    assert said == ["curriculum: stage 1 at step 16, opponent negamax"]
    [(opponent,)] = model.env.named("set_opponent")
    assert opponent.name == "negamax"
    schedule.on_rollout_end()
    assert logged(model) == {"curriculum/stage": 1}  # no self-play pool in this run


def test_opponent_schedule_snapshots_the_policy_into_the_pool(tmp_path, model):
    config = config_with(
        "env.opponent=selfplay",
        "curriculum.stages=[]",
        "selfplay.snapshot_every=100",
        "selfplay.pool_size=2",
        "selfplay.prioritized=true",
        "selfplay.latest_probability=0.25",
    )
    state = RunState(config, tmp_path, None)
    schedule = OpponentScheduleCallback(state, snapshot_every=100, start_step=0)
    start(schedule, model)
    assert state.pool.ids() == [0]  # a fresh run faces its own initial policy first
    [(snapshot_id, payload, size, latest)] = model.env.named("add_snapshot")
    assert (snapshot_id, size, latest) == (0, 2, 0.25) and isinstance(payload, bytes)
    step(schedule, model, 50, [{"outcome": "loss", "opponent": "selfplay:0"}])
    assert state.pool.results == {0: [1, 1]} and state.pool.ids() == [0]
    for num_timesteps in (120, 180, 250):
        step(schedule, model, num_timesteps)
    assert state.pool.ids() == [120, 250]  # snapshots at 120 and 250; the pool holds 2
    assert [args[0] for args in model.env.named("add_snapshot")] == [0, 120, 250]
    model.env.calls.clear()
    schedule.on_rollout_end()
    assert logged(model) == {"selfplay/pool_size": 2}
    assert model.env.named("set_snapshot_weights") == [({120: 0.5, 250: 0.5},)]

    # resumed, the saved pool goes to the new workers instead of a new snapshot
    state.save()
    resumed = RunState(config, tmp_path, (250, tmp_path / "checkpoint.zip"))
    model.env = RecordingVenv()
    start(OpponentScheduleCallback(resumed, snapshot_every=100, start_step=250), model)
    assert resumed.pool.ids() == [120, 250]
    assert [args[0] for args in model.env.named("add_snapshot")] == [120, 250]


def test_checkpoints_are_periodic_pruned_and_saved_with_the_run_state(tmp_path, model):
    config = config_with("curriculum.stages=[{opponent: random, promote_at: 0.5}, {opponent: negamax}]")
    state = RunState(config, tmp_path, None)
    state.curriculum.stage = 1
    checkpoints = CheckpointCallback(tmp_path, every=100, keep=2, state=state, start_step=0)
    start(checkpoints, model)
    step(checkpoints, model, 50)
    assert list_checkpoints(tmp_path) == [] and checkpoints.last_path is None
    for num_timesteps in (100, 150, 230, 260, 300):
        step(checkpoints, model, num_timesteps)
    assert [s for s, _ in list_checkpoints(tmp_path)] == [230, 300]  # 100 was pruned
    assert checkpoints.last_path == tmp_path / "checkpoints" / "step_000000000300.zip"
    verify_checkpoint(checkpoints.last_path)
    with open(tmp_path / "trainer_state.pkl", "rb") as handle:
        assert pickle.load(handle) == {"stage": 1}

    resumed = CheckpointCallback(tmp_path / "resumed", every=100, keep=2, state=None, start_step=1000)
    start(resumed, model)
    step(resumed, model, 1000)  # the resumed step itself already has its checkpoint
    assert list_checkpoints(tmp_path / "resumed") == []
    step(resumed, model, 1100)
    assert [s for s, _ in list_checkpoints(tmp_path / "resumed")] == [1100]
    assert not (tmp_path / "resumed" / "trainer_state.pkl").exists()


def test_evaluation_logs_keeps_the_best_model_and_reports(tmp_path, model):
    reported, shown = [], []
    evaluation = EvaluationCallback(
        ["random", "negamax"],
        games=4,
        seed=5,
        env_kwargs=env_kwargs(config_with()),
        every=100,
        start_step=0,
        run_dir=tmp_path,
        report=reported.append,
        after_eval=shown.append,
    )
    start(evaluation, model)
    step(evaluation, model, 50)
    assert reported == [] and not (tmp_path / "best_model.zip").exists()
    step(evaluation, model, 100)
    values = logged(model)
    rates = {spec: values[f"eval/win_rate/{spec}"] for spec in ("random", "negamax")}
    mean = (rates["random"] + rates["negamax"]) / 2
    assert values["eval/mean_win_rate"] == pytest.approx(mean)
    assert 0 <= values["eval/draw_rate/random"] <= 1 - rates["random"]
    verify_checkpoint(tmp_path / "best_model.zip")
    assert (tmp_path / "best_model.txt").read_text() == f"step 100 mean_win_rate {mean:.4f}\n"
    assert shown == [rates]
    [metrics] = reported
    assert set(metrics) == {"timesteps", "mean_win_rate", "win_rate/random", "win_rate/negamax", "steps_per_s"}
    assert metrics["timesteps"] == 100 and metrics["mean_win_rate"] == pytest.approx(mean)
    assert metrics["win_rate/random"] == rates["random"] and metrics["steps_per_s"] > 0

    # the same policy and seed score the same: not better, so the best model stays the one of step 100
    step(evaluation, model, 230)
    assert [m["timesteps"] for m in reported] == [100, 230] and len(shown) == 2
    assert (tmp_path / "best_model.txt").read_text().startswith("step 100 ")


def test_progress_bar_shows_steps_win_rate_stage_and_evaluation(capsys):
    stats = EpisodeStatsCallback()
    stats.record({"outcome": "win"})
    stats.record({"outcome": "loss"})
    curriculum = Curriculum([{"opponent": "random", "promote_at": 0.9}, {"opponent": "negamax"}], window=10)
    bar, model = ProgressBarCallback(1000, start_step=200, stats=stats, curriculum=curriculum), FakeModel()
    bar.write("before the bar")
    start(bar, model)
    assert bar.bar.n == 200 and bar.bar.total == 1000
    for index in range(1, 20):
        step(bar, model, 200 + 10 * index)
    assert bar.bar.n == 390 and not bar.bar.postfix  # statistics every 20 steps
    step(bar, model, 400)
    assert bar.bar.postfix == "win 50% stage 0"
    bar.show_evaluation({"random": 0.8})
    assert bar.bar.postfix == "win 50% stage 0 random 80%"
    step(bar, model, 1300)
    assert bar.bar.n == 1000  # never past the total
    bar.write("a line")
    bar.on_training_end()
    assert bar.bar.disable  # closed
    err = capsys.readouterr().err
    assert err.startswith("before the bar\n") and "a line\n" in err and "train" in err


def test_progress_bar_rate_and_eta_are_the_average_since_the_start_not_the_recent_burst():
    clock = [100.0]
    bar, model = ProgressBarCallback(20_000, start_step=1000), FakeModel()
    start(bar, model)
    bar.bar._time = lambda: clock[0]  # tqdm's own clock, so the test needs no sleeping
    bar.bar.start_t = bar.bar.last_print_t = clock[0]
    for second in range(1, 11):  # 1,000 steps/s for 10 s, then a 90 s pause (an evaluation), then a burst
        clock[0] += 1
        step(bar, model, 1000 + 1000 * second)
    clock[0] += 90
    step(bar, model, 11_000)
    clock[0] += 1
    step(bar, model, 12_000)
    meter = bar.bar.format_dict
    line = bar.bar.format_meter(**meter)
    # the average since the start, the resumed-from steps excluded: 11,000 steps in 101 s = 109 steps/s,
    # so the 8,000 steps left take 73 s; the last burst's 1,000 steps/s would say 8 s
    assert meter["rate"] is None and "109step/s" in line and "<01:13," in line, line
    bar.on_training_end()


@pytest.mark.parametrize("progress_bar", [True, False])
def test_make_callbacks_joins_them_in_order(tmp_path, progress_bar):
    config = config_with(
        f"logging.progress_bar={str(progress_bar).lower()}",
        "train.eval_every=300",
        "train.checkpoint_every=200",
        "train.keep_checkpoints=3",
        "selfplay.snapshot_every=500",
    )
    state = RunState(config, tmp_path, None)
    callbacks = make_callbacks(config, tmp_path, 1000, state, report=print).callbacks
    kinds = [EpisodeStatsCallback, OpponentScheduleCallback, CheckpointCallback, EvaluationCallback]
    if progress_bar:
        kinds.insert(2, ProgressBarCallback)
    assert [type(callback) for callback in callbacks] == kinds
    stats, schedule, *_, checkpoints, evaluation = callbacks
    assert schedule.state is state and checkpoints.state is state and schedule.snapshots.next == 1500
    assert (checkpoints.interval.next, checkpoints.keep, checkpoints.run_dir) == (1200, 3, tmp_path)
    assert evaluation.interval.next == 1200 and evaluation.report is print
    assert evaluation.openings == evaluation_openings(config) and len(evaluation.openings) == 50
    assert evaluation.seed == config.train.seed + 1_000_003 and evaluation.opponents == list(
        config.train.eval_opponents
    )
    if progress_bar:
        bar = callbacks[2]
        assert bar.stats is stats and bar.curriculum is state.curriculum
        assert schedule.say == bar.write and evaluation.after_eval == bar.show_evaluation
    else:
        assert evaluation.after_eval is None


def test_evaluation_openings_spread_over_the_suite_on_its_board_only():
    suite = [opening.moves for opening in load_openings(OPENINGS_FILE)]
    chosen = evaluation_openings(config_with("train.eval_games=20"))
    assert chosen == [suite[i * len(suite) // 10] for i in range(10)] and len(set(chosen)) == 10
    assert chosen[0] == suite[0] and chosen[-1] == suite[len(suite) * 9 // 10]  # from the start to near the end
    assert evaluation_openings(config_with(f"train.eval_games={2 * len(suite) + 2}")) == suite  # all, then wrap
    assert evaluation_openings(config_with("train.eval_openings=false")) is None
    assert evaluation_openings(config_with("env.rows=5")) is None  # not the suite's board


def test_evaluation_games_start_from_the_openings_in_both_seats(tmp_path, model):
    openings = [(3,), (0, 6), (1, 1, 2)]
    first_batches = []

    def policy(observations, masks):  # the stones on each board the first time the policy is asked
        if not first_batches:
            first_batches.append(observations[:, :2].sum(axis=(1, 2, 3)).tolist())
        return masks.argmax(axis=1)

    result = play_games(policy, "alphabeta:1", 6, seed=3, openings=openings)
    # games 2k and 2k+1 play opening k, the agent first then second; the opponent answers when it is to move
    assert first_batches == [[2, 1, 2, 3, 4, 3]]
    assert result.seats["first"].games == result.seats["second"].games == 3
    evaluation = EvaluationCallback(["random"], 6, 3, env_kwargs(config_with()), 100, 0, tmp_path, openings=openings)
    start(evaluation, model)
    step(evaluation, model, 100)
    expected = play_games(sb3_batch_policy(model), "random", 6, seed=3, openings=openings).win_rate
    assert logged(model)["eval/win_rate/random"] == expected
