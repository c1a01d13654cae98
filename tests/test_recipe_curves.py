"""benchmarks/recipe_curves.py reads both trainers' logs: PPO's clock restarting at each resume, and
AlphaZero's generations, with the clock or (older logs) only the seconds of each generation."""

from __future__ import annotations

import csv
import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def curves():
    spec = importlib.util.spec_from_file_location("recipe_curves", ROOT / "benchmarks" / "recipe_curves.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def write_log(folder: Path, rows: list[dict]) -> Path:
    folder.mkdir()
    keys = sorted({key for row in rows for key in row})
    with open(folder / "progress.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, keys)
        writer.writeheader()
        writer.writerows(rows)
    return folder


def test_a_resumed_ppo_run_adds_up_its_sessions(curves, tmp_path):
    rows = [
        {"time/time_elapsed": 60, "time/total_timesteps": 100},
        {
            "time/time_elapsed": 120,
            "time/total_timesteps": 200,
            "eval/perfect_move_rate": 0.5,
            "eval/good_move_rate": 0.8,
        },
        {"time/time_elapsed": 30, "time/total_timesteps": 300},  # resumed: the clock starts again
        {
            "time/time_elapsed": 90,
            "time/total_timesteps": 400,
            "eval/perfect_move_rate": 0.6,
            "eval/good_move_rate": 0.9,
        },
    ]
    points = curves.curve(write_log(tmp_path / "ppo", rows))
    assert [(p["minutes"], p["steps"], p["perfect"]) for p in points] == [(2.0, 200, 0.5), (3.5, 400, 0.6)]


def test_alphazero_generations_count_their_own_seconds_without_a_clock(curves, tmp_path):
    def generation(step, seconds, rate=None):
        row = {
            "time/total_timesteps": step,
            "alphazero/selfplay_seconds": seconds[0],
            "alphazero/fit_seconds": seconds[1],
            "alphazero/callback_seconds": seconds[2],
        }
        if rate is not None:
            row.update({"eval/perfect_move_rate": rate, "eval/good_move_rate": rate + 0.2})
        return row

    rows = [generation(9000, (40, 10, 0)), generation(18000, (45, 12, 23), 0.6), generation(27000, (50, 10, 0), 0.65)]
    points = curves.curve(write_log(tmp_path / "az", rows))
    assert [(p["minutes"], p["perfect"]) for p in points] == [(2.17, 0.6), (3.17, 0.65)]
    clocked = [dict(row, **{"time/time_elapsed": 100 * (i + 1)}) for i, row in enumerate(rows)]
    assert [p["minutes"] for p in curves.curve(write_log(tmp_path / "clocked", clocked))] == [3.33, 5.0]
