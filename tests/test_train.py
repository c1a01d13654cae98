"""The train command end to end: the real CLI in a subprocess on configs/quick.yaml, resume, bad input (Ctrl-C in
both training modes: test_overlap.py)."""

from __future__ import annotations

import csv
import signal
import subprocess
import sys

import pytest
from helpers import QUICK, TINY, run_train


def test_quick_config_trains_and_resumes(tmp_path):
    result = run_train(tmp_path, "--config", QUICK, "--set", "train.run_name=smoke")
    assert result.returncode == 0, result.stderr
    run = tmp_path / "models" / "smoke"
    for name in ("config.yaml", "final_model.zip", "best_model.zip", "progress.csv"):
        assert (run / name).is_file(), name
    assert any((run / "tensorboard").iterdir())
    steps = sorted(p.name for p in (run / "checkpoints").iterdir())
    assert steps == ["step_000000002048.zip", "step_000000004096.zip"]
    assert "Gym has been unmaintained" not in result.stderr
    assert "Traceback" not in result.stderr

    # resume with a larger budget: continues from step 4096 with the same config
    result = run_train(tmp_path, "--resume", str(run), "--set", "train.total_timesteps=6144")
    assert result.returncode == 0, result.stderr
    assert "resuming from" in result.stderr and "step 4096" in result.stderr
    steps = sorted(p.name for p in (run / "checkpoints").iterdir())
    assert steps[-1] == "step_000000006144.zip"
    with open(run / "progress.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    totals = [int(row["time/total_timesteps"]) for row in rows]
    assert totals == sorted(totals) and totals[0] == 512 and totals[-1] == 6144


def test_existing_run_directory_is_not_overwritten(tmp_path):
    (tmp_path / "models" / "taken").mkdir(parents=True)
    (tmp_path / "models" / "taken" / "config.yaml").write_text("env: {}\n")
    result = run_train(tmp_path, "--config", QUICK, "--set", "train.run_name=taken")
    assert result.returncode == 2
    assert "already holds a run" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize(
    "args, message",
    [
        (["--set", "ppo.learnig_rate=1e-4"], "did you mean 'learning_rate'"),
        (["--set", "env.opponent=negamx"], "negamx"),
        (
            ["--set", "multiprocessing.parallel_episodes=7", "--set", "multiprocessing.num_processes=2"],
            "parallel_episodes=7",
        ),
        (["--config", "missing.yaml"], "missing.yaml"),
        (["--resume", "nowhere"], "nowhere"),
        (["--set", "env.opponent=kaggle:no_such_agent.py"], "no_such_agent.py"),
        (["--set", "env.inarow=9"], "env.inarow=9 is larger than both board dimensions (env.rows=6, env.columns=7)"),
        (["--config", "/dev/null"], "config file '/dev/null' is empty"),
    ],
)
def test_bad_input_exits_2_with_one_line_and_writes_nothing(tmp_path, args, message):
    result = run_train(tmp_path, *args, timeout=60)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------------------------------------
# training.loop.run and the command's exit codes, in process on a tiny config
# ------------------------------------------------------------------------------------------------


def tiny_run(tmp_path, report=None):
    from connectx_gym.config import load_config
    from connectx_gym.training.loop import run

    return run(load_config(None, TINY).resolved(), tmp_path / "run", None, report=report)


def test_run_returns_its_result(tmp_path, capsys):
    from connectx_gym.training.loop import TrainResult

    reported = []
    result = tiny_run(tmp_path, report=reported.append)
    run = tmp_path / "run"
    assert result == TrainResult(run, 64, run / "checkpoints" / "step_000000000064.zip", run / "final_model.zip")
    assert result.checkpoint.is_file() and result.final_model.is_file() and not result.interrupted
    assert [metrics["timesteps"] for metrics in reported] == [32, 64]
    err = capsys.readouterr().err
    assert err.startswith(f"run directory: {run}\n") and "done: 64 steps (" in err


def test_run_interrupted_saves_and_returns(tmp_path, capsys):
    def interrupt(metrics):
        raise KeyboardInterrupt

    result = tiny_run(tmp_path, report=interrupt)
    run = tmp_path / "run"
    assert result.interrupted and result.final_model is None and result.steps == 32
    assert result.checkpoint == run / "checkpoints" / "step_000000000032.zip" and result.checkpoint.is_file()
    assert not (run / "final_model.zip").exists()
    err = capsys.readouterr().err
    assert err.endswith(f"\n\ninterrupted: saved {result.checkpoint}; continue with --resume {run}\n")


def test_run_with_a_failed_worker_saves_and_raises(tmp_path, capsys):
    from connectx_gym.errors import TrainingFailed, WorkerError

    def fail(metrics):
        raise WorkerError("env worker 0 (pid 1) killed by SIGKILL", "worker traceback")

    with pytest.raises(TrainingFailed) as caught:
        tiny_run(tmp_path, report=fail)
    run = tmp_path / "run"
    saved = run / "checkpoints" / "step_000000000032.zip"
    assert isinstance(caught.value, WorkerError) and caught.value.worker_traceback == "worker traceback"
    assert str(caught.value) == f"env worker 0 (pid 1) killed by SIGKILL\nsaved {saved}; continue with --resume {run}"
    assert saved.is_file() and not (run / "final_model.zip").exists()
    assert capsys.readouterr().err.endswith("\n\n")  # the message comes from the caller, on a line of its own


@pytest.mark.parametrize(
    "outcome, code, err",
    [
        ("done", 0, ""),
        ("interrupted", 130, ""),
        ("failed", 1, "\nerror: env worker 0 died\nsaved x.zip; continue with --resume r\n"),
        ("bad input", 2, "error: cannot write to run directory 'r'\n"),
    ],
)
def test_main_exit_codes(tmp_path, monkeypatch, capsys, outcome, code, err):
    import connectx_gym.train as train_module
    from connectx_gym.errors import TrainingFailed, UserError
    from connectx_gym.training.loop import TrainResult

    def run(config, run_dir, resume, report=None):
        if outcome == "failed":
            print(file=sys.stderr)
            raise TrainingFailed("env worker 0 died\nsaved x.zip; continue with --resume r")
        if outcome == "bad input":
            raise UserError("cannot write to run directory 'r'")
        return TrainResult(run_dir, 64, None, None, stopped_by=signal.SIGINT if outcome == "interrupted" else None)

    monkeypatch.setattr(train_module, "run", run)
    monkeypatch.chdir(tmp_path)
    assert train_module.main(["--config", QUICK]) == code
    assert capsys.readouterr().err == err


def test_importing_the_command_stays_light():
    """Argument errors must be fast: the train command imports no torch, SB3, tqdm or Ray until it trains."""
    heavy = ("torch", "stable_baselines3", "sb3_contrib", "tqdm", "ray")
    code = f"import sys, connectx_gym.train; print([m for m in {heavy!r} if m in sys.modules])"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
