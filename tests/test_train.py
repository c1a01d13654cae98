"""The train command end to end: the real CLI in a subprocess on configs/quick.yaml, resume, Ctrl-C, bad input."""

from __future__ import annotations

import csv
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
QUICK = str(ROOT / "configs" / "quick.yaml")


def train(tmp_path, *args, timeout=240):
    return subprocess.run(
        [sys.executable, "-m", "connectx_gym.train", *args],
        cwd=tmp_path, capture_output=True, text=True, timeout=timeout,
    )


def test_quick_config_trains_and_resumes(tmp_path):
    result = train(tmp_path, "--config", QUICK, "--set", "train.run_name=smoke")
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
    result = train(tmp_path, "--resume", str(run), "--set", "train.total_timesteps=6144")
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
    result = train(tmp_path, "--config", QUICK, "--set", "train.run_name=taken")
    assert result.returncode == 2
    assert "already holds a run" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize(
    "args, message",
    [
        (["--set", "ppo.learnig_rate=1e-4"], "did you mean 'learning_rate'"),
        (["--set", "env.opponent=negamx"], "negamx"),
        (["--set", "multiprocessing.parallel_episodes=7", "--set", "multiprocessing.num_processes=2"], "parallel_episodes=7"),
        (["--config", "missing.yaml"], "missing.yaml"),
        (["--resume", "nowhere"], "nowhere"),
        (["--set", "env.opponent=kaggle:no_such_agent.py"], "no_such_agent.py"),
    ],
)
def test_bad_input_exits_2_with_one_line_and_writes_nothing(tmp_path, args, message):
    result = train(tmp_path, *args, timeout=60)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert list(tmp_path.iterdir()) == []


def test_ctrl_c_saves_and_exits_0_then_resumes(tmp_path):
    process = subprocess.Popen(
        [sys.executable, "-m", "connectx_gym.train", "--config", QUICK, "--set", "train.run_name=interrupted",
         "--set", "train.total_timesteps=1000000", "--set", "train.eval_every=0", "--set", "logging.progress_bar=false"],
        cwd=tmp_path, stderr=subprocess.PIPE, text=True,
    )
    run = tmp_path / "models" / "interrupted"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not (run / "checkpoints").is_dir():
        time.sleep(0.2)
    time.sleep(1.0)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 0, stderr
    assert "interrupted: saved" in stderr and "Traceback" not in stderr
    saved = sorted((run / "checkpoints").iterdir())
    assert saved
    result = train(tmp_path, "--resume", str(run), "--set", "train.total_timesteps=1",
                   "--set", "logging.progress_bar=false")
    assert result.returncode == 0, result.stderr
    assert "resuming from" in result.stderr
