"""Overlapped training (``train.overlap``): it runs the same callbacks and saves the same checkpoints as
the synchronous loop, is reproducible from its seed, stops cleanly, resumes across modes, and learns."""

from __future__ import annotations

import csv
import signal
import subprocess
import time

import helpers
import numpy as np
import pytest
from helpers import QUICK, run_train, train_command

TINY = (*helpers.TINY, "train.eval_accuracy=false")


def config(*overrides: str, overlap: bool = True):
    from connectx_gym.config import load_config

    return load_config(None, [*TINY, f"train.overlap={str(overlap).lower()}", *overrides]).resolved()


def run(tmp_path, *overrides, overlap=True, name="run", resume=None, report=None):
    from connectx_gym.training.loop import run as train

    return train(config(*overrides, overlap=overlap), tmp_path / name, resume, report=report)


def parameters(path) -> dict[str, np.ndarray]:
    from connectx_gym.runtime.checkpoints import load_model

    model = load_model(path, device="cpu")
    return {name: value.detach().numpy().copy() for name, value in model.policy.state_dict().items()}


def csv_rows(run_dir) -> list[dict[str, str]]:
    with open(run_dir / "progress.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def test_overlapped_run_keeps_the_synchronous_runs_schedule(tmp_path, capsys):
    from connectx_gym.training.loop import TrainResult

    reported = []
    result = run(tmp_path, report=reported.append)
    run_dir = tmp_path / "run"
    assert result == TrainResult(
        run_dir, 64, run_dir / "checkpoints" / "step_000000000064.zip", run_dir / "final_model.zip"
    )
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == [
        "step_000000000032.zip",
        "step_000000000064.zip",
    ]
    assert [metrics["timesteps"] for metrics in reported] == [32, 64]
    rows = csv_rows(run_dir)
    assert [int(row["time/total_timesteps"]) for row in rows] == [32, 64]
    from connectx_gym.runtime.checkpoints import load_model

    assert load_model(result.final_model, device="cpu")._n_updates == 2  # two rollouts, two updates
    assert "done: 64 steps (" in capsys.readouterr().err


def test_policy_lag_kl_is_logged_and_zero_before_the_first_update(tmp_path):
    run(tmp_path, "train.total_timesteps=128", "train.eval_every=0", "ppo.learning_rate=0.01")
    rows = csv_rows(tmp_path / "run")
    lag = [float(row["train/policy_lag_kl"]) for row in rows if row.get("train/policy_lag_kl")]
    # the KL of an update is logged with the next dump: the first is the first rollout (no lag)
    assert len(lag) == 3 and lag[0] == 0.0
    assert all(value > 0.0 for value in lag[1:])


@pytest.mark.parametrize(
    "overlap, extra",
    [(True, ()), (False, ()), (False, ("kickstart.coef=1.0", "kickstart.teacher.depth=2", "train.mirror=true"))],
)
def test_same_seed_same_weights_and_another_seed_differs(tmp_path, overlap, extra):
    first = run(tmp_path, *extra, name="a", overlap=overlap).final_model
    second = run(tmp_path, *extra, name="b", overlap=overlap).final_model
    other = run(tmp_path, *extra, "train.seed=1", name="c", overlap=overlap).final_model
    a, b, c = parameters(first), parameters(second), parameters(other)
    assert all(np.array_equal(a[name], b[name]) for name in a)
    assert not all(np.array_equal(a[name], c[name]) for name in a)


@pytest.mark.parametrize("first, then", [(False, True), (True, False)])
def test_a_checkpoint_of_either_mode_resumes_in_the_other(tmp_path, capsys, first, then):
    done = run(tmp_path, overlap=first)
    resumed = run(tmp_path, "train.total_timesteps=128", overlap=then, name="run2", resume=(64, done.checkpoint))
    assert resumed.steps == 128 and resumed.final_model.is_file()
    rows = csv_rows(tmp_path / "run2")
    assert [int(row["time/total_timesteps"]) for row in rows] == [96, 128]
    assert "resuming from" in capsys.readouterr().err


def test_interrupted_overlapped_run_saves_and_returns(tmp_path, capsys):
    def interrupt(metrics):
        raise KeyboardInterrupt

    result = run(tmp_path, report=interrupt)
    assert result.interrupted and result.final_model is None and result.steps == 32
    assert result.checkpoint.is_file()
    assert "interrupted: saved" in capsys.readouterr().err


def test_a_failed_step_in_the_acting_thread_is_raised_saved_and_reported(tmp_path, monkeypatch, capsys):
    from connectx_gym.envs.vec import ChunkedVecEnv
    from connectx_gym.errors import TrainingFailed, WorkerError

    original = ChunkedVecEnv.step_wait
    calls = []

    def failing(self):
        calls.append(None)
        if len(calls) == 20:  # inside the second rollout, which the acting thread collects
            raise WorkerError("env worker 0 broke")
        return original(self)

    monkeypatch.setattr(ChunkedVecEnv, "step_wait", failing)
    with pytest.raises(TrainingFailed) as caught:
        run(tmp_path, "train.eval_every=0")
    assert str(caught.value).startswith("env worker 0 broke\nsaved ")
    assert (tmp_path / "run" / "checkpoints").is_dir()


def test_a_callback_that_stops_training_stops_the_overlapped_loop(tmp_path):
    from stable_baselines3.common.callbacks import BaseCallback

    from connectx_gym.training.builders import build_model, build_vec_env

    class StopAt(BaseCallback):
        def _on_step(self) -> bool:
            return self.model.num_timesteps < 40

    cfg = config()
    venv = build_vec_env(cfg, 0)
    try:
        model = build_model(cfg, venv, None)
        model.learn(1000, callback=StopAt(), reset_num_timesteps=False)
        assert model.num_timesteps == 40 and not model.acting_thread.running
    finally:
        venv.close()


@pytest.mark.parametrize("overlap, then", [(True, False), (False, True)])
def test_ctrl_c_in_either_mode_saves_exits_130_and_resumes_in_the_other(tmp_path, overlap, then):
    process = subprocess.Popen(
        train_command(
            "train.run_name=interrupted",
            "train.total_timesteps=1000000",
            "train.eval_every=0",
            "logging.progress_bar=false",
            f"train.overlap={str(overlap).lower()}",
        ),
        cwd=tmp_path,
        stderr=subprocess.PIPE,
        text=True,
        # a shell's background job (CI under nohup, say) starts with SIGINT ignored, and so would the trainer
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    run_dir = tmp_path / "models" / "interrupted"
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not (run_dir / "checkpoints").is_dir():
            time.sleep(0.2)
        time.sleep(1.0)
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=60)
    finally:
        process.kill()  # never leave a trainer behind, whatever failed
    assert process.returncode == 130, stderr
    assert "interrupted: saved" in stderr and "Traceback" not in stderr
    result = run_train(
        tmp_path,
        "--resume",
        str(run_dir),
        "--set",
        "train.total_timesteps=1",
        "--set",
        f"train.overlap={str(then).lower()}",
        "--set",
        "logging.progress_bar=false",
    )
    assert result.returncode == 0, result.stderr
    assert "resuming from" in result.stderr


@pytest.mark.slow
def test_overlapped_training_beats_random(tmp_path):
    """About 40 s: 40k overlapped steps against random must win far more often than the untrained
    policy's ~50% (200 games; a 50% player reaches 80% with probability below 1e-17)."""
    result = run_train(
        tmp_path,
        "--config",
        QUICK,
        "--set",
        "train.run_name=overlap",
        "--set",
        "train.overlap=true",
        "--set",
        "train.total_timesteps=40960",
        "--set",
        "train.eval_every=0",
        "--set",
        "logging.progress_bar=false",
        "--set",
        "ppo.n_epochs=4",
        timeout=600,
    )
    assert result.returncode == 0, result.stderr
    assert helpers.win_rate_against_random(tmp_path / "models" / "overlap" / "final_model.zip") > 0.8
