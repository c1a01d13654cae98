"""The tune command: a tiny 2-trial sweep end to end through the real CLI on a local Ray instance,
and the checks that reject a bad sweep file before Ray starts (these run without Ray too)."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from connectx_gym import tune as sweep_cli
from connectx_gym.runtime import ray_cluster
from connectx_gym.sweeps.plan import load_sweep
from connectx_gym.sweeps.report import results_table
from connectx_gym.sweeps.space import parse_dimension

ROOT = Path(__file__).resolve().parent.parent
QUICK = str(ROOT / "configs" / "quick.yaml")

#: two trials (a grid of two learning rates, times one sample) of 2048 steps, evaluated twice each
TINY = {
    "name": "tiny",
    "base_config": QUICK,
    "overrides": {
        "train.total_timesteps": 2048,
        "train.eval_every": 1024,
        "train.checkpoint_every": 1024,
        "train.eval_games": 4,
        "train.eval_opponents": ["random"],
        "logging.tensorboard": False,
    },
    "search_space": {
        "ppo.learning_rate": {"grid": [1.0e-4, 1.0e-3]},
        "ppo.ent_coef": {"uniform": [0.0, 0.01]},
    },
    "num_samples": 1,
    "metric": "win_rate/random",
    "mode": "max",
    "scheduler": {"type": "asha", "grace_period": 1, "reduction_factor": 2},
    "resources_per_trial": {"cpu": 1},
    "seed": 0,
}


def write_sweep(directory: Path, **changes) -> Path:
    path = directory / "sweep.yaml"
    path.write_text(yaml.safe_dump({**TINY, **changes}, sort_keys=False))
    return path


def cli(capsys, *args):
    code = sweep_cli.main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def two_cpus():
    """Run the child on two of this machine's cores, so the local Ray instance has 2 CPUs."""
    if hasattr(os, "sched_setaffinity"):
        cores = sorted(os.sched_getaffinity(0))[:2]
        os.sched_setaffinity(0, cores)


# ---------------------------------------------------------------------------------------- without Ray
def test_example_sweep_file_is_valid(monkeypatch):
    monkeypatch.chdir(ROOT)  # its base_config is relative to the current directory
    sweep = load_sweep("configs/tune.yaml")
    assert [d.key for d in sweep.dimensions] == ["ppo.learning_rate", "ppo.ent_coef", "ppo.n_epochs"]
    assert sweep.num_trials == 8 and sweep.metric == "mean_win_rate" and sweep.scheduler["type"] == "asha"
    assert sweep.min_reports == sweep.max_reports == 10  # 200000 steps (whole rollouts) / eval_every 20000
    assert sweep.sweep_dir == ROOT / "models" / "tune-ppo"
    base = sweep.plan.trial_config({}, "trial_00000")
    assert base.multiprocessing.use_multiprocessing is False and base.logging.progress_bar is False
    assert base.train.run_name == "trial_00000" and base.train.output_dir == str(ROOT / "models" / "tune-ppo")


def test_ranges_are_inclusive_and_values_are_normalised(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = write_sweep(
        tmp_path,
        search_space={
            "ppo": {"n_epochs": {"randint": [2, 4]}, "learning_rate": {"choice": ["1e-4", 0.001]}},  # nested form
            "ppo.gamma": {"quniform": [0.9, 0.99, 0.01]},
        },
    )
    sweep = load_sweep(path, ["search_space.train.seed={grid: [0, 1, 2]}"], num_samples=2)
    dims = {d.key: d for d in sweep.dimensions}
    assert dims["ppo.n_epochs"].probes == (2, 3, 4)  # every value of a short integer range was checked
    assert dims["ppo.learning_rate"].args == (0.0001, 0.001)  # as the config reads them
    assert sweep.num_trials == 6  # 2 samples × 3 grid values


def test_results_table_right_aligns_numeric_columns_only():
    table = results_table(
        ["trial", "lr", "kl", "steps"], [["trial_00000", 0.001234567, None, 2048], ["trial_00001", 0.01, 0.02, 10]]
    )
    assert table.splitlines() == [
        "trial              lr  kl    steps",
        "-----------  --------  ----  -----",
        "trial_00000  0.001235  null   2048",
        "trial_00001      0.01  0.02     10",
    ]


@pytest.mark.parametrize(
    "changes, sets, message",
    [
        (
            {},
            ["search_space.ppo.learnig_rate={choice: [0.001]}"],
            "search_space: unknown key 'ppo.learnig_rate' (did you mean 'ppo.learning_rate'?)",
        ),
        (
            {},
            ["search_space.ppo.ent_coef={choise: [0.0]}"],
            "search_space ppo.ent_coef: unknown distribution 'choise' (did you mean 'choice'?)",
        ),
        (
            {},
            ["search_space.ppo.n_epochs={choice: [2, 0]}"],
            "search_space ppo.n_epochs: choice value 0 does not make a valid config: "
            "ppo.n_epochs must be an integer >= 1, got 0",
        ),
        ({}, ["search_space.ppo.n_epochs={randint: [4, 2]}"], "randint needs low <= high, got [4, 2]"),
        (
            {},
            ["search_space.ppo.n_epochs={uniform: [1, 4]}"],
            "ppo.n_epochs takes integers, but uniform samples floats",
        ),
        ({}, ["search_space.ppo.learning_rate={loguniform: [0, 0.1]}"], "loguniform needs low > 0"),
        ({}, ["search_space.ppo.ent_coef=0.01"], "(a fixed value belongs under overrides)"),
        ({}, ["search_space.train.eval_every={choice: [512, 1024]}"], "train.eval_every cannot be searched"),
        (
            {},
            ["search_space.ppo.batch_size={choice: [256, 1024]}"],
            "choice value 1024 does not make a valid config: ppo.batch_size=1024 must divide",
        ),
        (
            {},
            ["metric=win_rate/negamax"],
            "metric 'win_rate/negamax' is not reported by the trials (did you mean 'win_rate/random'?); with "
            "train.eval_opponents=['random'] they report mean_win_rate, win_rate/random, steps_per_s",
        ),
        (
            {},
            ["overrides.multiprocessing.use_multiprocessing=true", "overrides.multiprocessing.start_method=fork"],
            "multiprocessing.start_method=fork is not safe inside a Ray trial",
        ),
        ({}, ["overrides.train.eval_every=0"], "train.eval_every=0 disables evaluation"),
        ({}, ["overrides.train.eval_every=100000"], "trials would finish before their first evaluation"),
        ({}, ["overrides.ppo.learning_rate=-1"], "overrides: ppo.learning_rate must be a number > 0, got -1"),
        ({}, ["overrides.train.run_name=mine"], "overrides: train.run_name is set by the sweep"),
        ({}, ["overrides.env.inarow=8"], "env.inarow=8 is larger than both board dimensions"),
        ({}, ["search_space.env.inarow={choice: [4, 9]}"], "env.inarow=9 is larger than both board dimensions"),
        ({}, ["scheduler.grace_period=2"], "scheduler.grace_period=2 must be smaller than the number of evaluations"),
        ({}, ["scheduler.grace=1"], "unknown key 'scheduler.grace' (did you mean 'grace_period'?)"),
        ({}, ["search_space.env.opponent={choice: [random, 'kaggle:no_such_agent.py']}"], "no_such_agent.py"),
        ({"num_sample": 3}, [], "unknown key 'num_sample' (did you mean 'num_samples'?)"),
        ({}, ["num_samples=0"], "num_samples must be an integer >= 1, got 0"),
        ({"base_config": "missing.yaml"}, [], "config file 'missing.yaml' not found"),
        ({"search_space": {}}, [], "search_space is empty"),
    ],
)
def test_bad_sweep_is_one_line_exit_2_and_writes_nothing(tmp_path, monkeypatch, capsys, changes, sets, message):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setitem(sys.modules, "ray", None)  # all of it is checked before Ray is needed
    path = write_sweep(tmp_path, **changes)
    code, out, err = cli(capsys, "--config", path, *(arg for text in sets for arg in ("--set", text)))
    assert code == 2 and out == ""
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert message in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sweep.yaml"]


@pytest.mark.parametrize(
    "args, message",
    [
        (["--config", "missing.yaml"], "error: config file 'missing.yaml' not found"),
        (["--num-samples", "x"], "error: argument --num-samples: invalid int value: 'x'"),
        (["--set", "bogus=1"], "error: bad --set 'bogus=1': unknown key 'bogus'"),
    ],
)
def test_bad_arguments_are_one_line(tmp_path, monkeypatch, capsys, args, message):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "configs").mkdir()
    write_sweep(tmp_path / "configs").rename(tmp_path / "configs" / "tune.yaml")  # the default --config
    code, out, err = cli(capsys, *args)
    assert code == 2 and err.startswith(message) and err.count("\n") == 1, err


def test_bad_yaml_names_the_file(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "sweep.yaml").write_text("search_space: {ppo.n_epochs: {choice: [2, 3]\n")
    code, out, err = cli(capsys, "--config", "sweep.yaml")
    assert code == 2 and err.startswith("error: config file 'sweep.yaml' is not valid YAML: ") and err.count("\n") == 1


def test_missing_ray_is_one_line_and_exit_2(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    code, out, err = cli(capsys, "--config", write_sweep(tmp_path))
    assert code == 2 and out == ""
    assert err.startswith("error: python -m connectx_gym.tune needs Ray, which is not installed")
    assert ray_cluster.INSTALL_HINT in err and err.count("\n") == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sweep.yaml"]


def test_existing_sweep_directory_is_refused(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "models" / "tiny").mkdir(parents=True)
    code, out, err = cli(capsys, "--config", write_sweep(tmp_path))
    assert code == 2
    assert (
        err == f"error: sweep directory '{tmp_path / 'models' / 'tiny'}' already exists; "
        "choose another name (--set name=...) or remove it\n"
    )


# ---------------------------------------------------------------------------------------- with Ray
@pytest.mark.ray
def test_randint_includes_its_upper_bound():
    tune = pytest.importorskip("ray.tune")
    dimension = parse_dimension("search_space ppo.n_epochs", "ppo.n_epochs", {"randint": [2, 4]})
    assert set(dimension.domain(tune).sample(size=300, random_state=0)) == {2, 3, 4}


@pytest.mark.ray
def test_unreachable_address_is_one_line_and_writes_nothing(tmp_path, monkeypatch, capsys):
    pytest.importorskip("ray")
    monkeypatch.chdir(tmp_path)
    code, out, err = cli(capsys, "--config", write_sweep(tmp_path), "--address", "127.0.0.1:1")
    assert code == 2 and err == (
        "error: --address 127.0.0.1:1: cannot connect to a Ray cluster: "
        "nothing answers at 127.0.0.1:1 (Connection refused)\n"
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sweep.yaml"]


@pytest.mark.ray
def test_tiny_sweep_end_to_end(tmp_path):
    pytest.importorskip("ray.tune")
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}  # a fresh local instance
    env["RAY_USAGE_STATS_ENABLED"] = "0"
    result = subprocess.run(
        [sys.executable, "-m", "connectx_gym.tune", "--config", str(write_sweep(tmp_path))],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=240,
        env=env,
        preexec_fn=two_cpus,
    )
    assert result.returncode == 0, result.stderr
    for noise in ("Traceback", "Gym has been unmaintained", "INFO", "(run_trial"):
        assert noise not in result.stderr, result.stderr
    assert result.stderr.startswith("sweep tiny: 2 trials, up to 2 at once")

    sweep_dir = tmp_path / "models" / "tiny"
    with open(sweep_dir / "results.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert sorted(row["trial"] for row in rows) == ["trial_00000", "trial_00001"]
    assert sorted(float(row["ppo.learning_rate"]) for row in rows) == [1.0e-4, 1.0e-3]
    assert all(0.0 <= float(row["ppo.ent_coef"]) <= 0.01 for row in rows)
    assert all(row["status"] in ("done", "stopped") for row in rows)  # ASHA may stop the weaker one at rung 1
    assert any(row["status"] == "done" for row in rows)
    for row in rows:
        assert 0.0 <= float(row["win_rate/random"]) <= float(row["best_win_rate/random"]) <= 1.0
        assert float(row["steps_per_s"]) > 0 and int(row["reports"]) >= 1
        assert int(row["timesteps"]) == (2048 if row["status"] == "done" else 1024)
        run_dir = sweep_dir / row["trial"]
        assert row["run_dir"] == str(run_dir)
        assert f"{row['trial']} started: ppo.learning_rate=" in result.stderr
        for name in ("config.yaml", "progress.csv", "best_model.zip", "train.log"):
            assert (run_dir / name).is_file(), (row["trial"], name)
        assert (run_dir / "final_model.zip").is_file() == (row["status"] == "done")
        assert row["model"] == str(run_dir / ("final_model.zip" if row["status"] == "done" else "best_model.zip"))
        saved = yaml.safe_load((run_dir / "config.yaml").read_text())
        assert saved["train"]["run_name"] == row["trial"]
        assert saved["ppo"]["learning_rate"] == float(row["ppo.learning_rate"])
        assert saved["multiprocessing"]["use_multiprocessing"] is False
    assert (sweep_dir / "ray_tune").is_dir()  # Tune's own files, beside the trials' run directories

    lines = result.stdout.splitlines()
    assert lines[0].split()[:3] == ["trial", "status", "ppo.learning_rate"]
    assert lines[2].startswith(rows[0]["trial"])  # the table is sorted like results.csv, best first
    assert f"best trial: {rows[0]['trial']} (win_rate/random " in result.stdout
    assert f"run directory: {sweep_dir / rows[0]['trial']}" in result.stdout
