"""Reliability: bad input, crashes, kills and corrupt files never lose work or confuse the user.

* Config and CLI fuzz: malformed configs and argument lists for train, evaluate and export each
  exit non-zero with one ``error:`` line naming the key/argument and value, no traceback, and
  write nothing in the working directory.
* ``kill -9`` mid-training leaves no workers behind and only intact checkpoints; ``--resume``
  continues from the newest one (skipping a corrupt newer one) and loses at most one interval.
* Corrupt and foreign files (checkpoints, agent files) give clear errors, or — for an opponent
  that raises or plays illegally during training — are counted as forfeits without stopping.
"""

from __future__ import annotations

import csv
import os
import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from helpers import QUICK, train_command

GARBAGE = bytes(random.Random(1234).getrandbits(8) for _ in range(3000))


def listing(folder: Path) -> list:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def cli(module: str, args, cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", f"connectx_gym.{module}", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def assert_one_error_line(stderr: str, *needles: str) -> None:
    assert "Traceback" not in stderr, stderr
    lines = [line for line in stderr.strip().splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    assert lines[0].startswith("error: "), stderr
    for needle in needles:
        assert needle in lines[0], (needle, stderr)


def run_main(main, argv, capsys) -> tuple:
    """Run a CLI ``main`` in-process; argparse's SystemExit becomes its exit code."""
    try:
        code = main(argv)
    except SystemExit as exit_:
        code = exit_.code
    captured = capsys.readouterr()
    return code, captured.err


# --------------------------------------------------------------------------------------------
# 1. config and CLI fuzz
# --------------------------------------------------------------------------------------------

S = "--set"
#: (train arguments, strings the one error line must contain); {cfg} is a config file outside the cwd
TRAIN_CASES = [
    ([S, "foo.bar=1"], ["foo"]),
    ([S, "env.rowz=6"], ["rowz"]),
    ([S, "env.rows=abc"], ["env.rows", "abc"]),
    ([S, "env.rows=-1"], ["env.rows", "-1"]),
    ([S, "env.rows=0"], ["env.rows", "0"]),
    ([S, "env.columns=0"], ["env.columns", "0"]),
    ([S, "env.columns=1.5"], ["env.columns", "1.5"]),
    ([S, "env.inarow=-3"], ["inarow", "-3"]),
    ([S, "env.inarow=0"], ["inarow", "0"]),
    ([S, "env.rows=true"], ["env.rows", "true"]),
    ([S, "env.agent_seat=3"], ["agent_seat", "3"]),
    ([S, "env.illegal_action=whatever"], ["illegal_action", "whatever"]),
    ([S, "env.reward_win=[1]"], ["reward_win"]),
    ([S, "env.opponent=negamx"], ["negamx"]),
    ([S, "env.opponent=alphabeta:abc"], ["alphabeta:abc"]),
    ([S, "env.opponent=kaggle:nope_agent.py"], ["nope_agent.py"]),
    ([S, "ppo.n_steps=0"], ["n_steps", "0"]),
    ([S, "ppo.n_steps=-64"], ["n_steps", "-64"]),
    ([S, "ppo.batch_size=-5"], ["batch_size", "-5"]),
    ([S, "ppo.batch_size=0"], ["batch_size", "0"]),
    ([S, "ppo.learning_rate=fast"], ["learning_rate", "fast"]),
    ([S, "ppo.gamma=2"], ["gamma", "2"]),
    ([S, "ppo.n_epochs=0"], ["n_epochs", "0"]),
    ([S, "ppo.learnig_rate=1e-4"], ["learnig_rate", "learning_rate"]),
    (["--config", QUICK, S, "ppo.batch_size=1000"], ["batch_size", "1000"]),
    ([S, "multiprocessing.num_processes=0"], ["num_processes", "0"]),
    ([S, "multiprocessing.num_processes=-2"], ["num_processes", "-2"]),
    ([S, "multiprocessing.parallel_episodes=0"], ["parallel_episodes", "0"]),
    ([S, "multiprocessing.parallel_episodes=8", S, "multiprocessing.num_processes=16"], ["num_processes", "16"]),
    (
        [
            S,
            "multiprocessing.parallel_episodes=8",
            S,
            "multiprocessing.num_processes=2",
            S,
            "multiprocessing.chunk_size=3",
        ],
        ["chunk_size", "3"],
    ),
    ([S, "multiprocessing.parallel_episodes=7", S, "multiprocessing.num_processes=2"], ["parallel_episodes=7"]),
    ([S, "multiprocessing.backend=bogus"], ["backend", "bogus"]),
    ([S, "multiprocessing.start_method=bogus"], ["start_method", "bogus"]),
    ([S, "train.total_timesteps=-1"], ["total_timesteps", "-1"]),
    ([S, "train.checkpoint_every=-1"], ["checkpoint_every", "-1"]),
    ([S, "train.eval_games=0"], ["eval_games", "0"]),
    ([S, "train.eval_opponents=[nope]"], ["nope"]),
    ([S, "train.keep_checkpoints=0"], ["keep_checkpoints", "0"]),
    ([S, "train.seed=1.5"], ["seed", "1.5"]),
    ([S, "policy.cnn_channels=[0]"], ["cnn_channels"]),
    ([S, "policy.activation=nope"], ["activation", "nope"]),
    ([S, "logging.progress_bar=maybe"], ["progress_bar", "maybe"]),
    ([S, "curriculum.stages=5"], ["stages", "5"]),
    ([S, "selfplay.pool_size=0"], ["pool_size", "0"]),
    ([S, "env"], ["'env'"]),
    ([S, "=3"], ["'=3'"]),
    ([S, "env.rows=[unclosed"], ["env.rows=[unclosed"]),
    (["--config", "{cfg}"], ["{cfg}"]),  # variants of the file below
    (["--config", "missing.yaml"], ["missing.yaml"]),
    (["--config", "{dir}"], ["{dir}"]),
    (["--bogus"], ["--bogus"]),
    (["--config"], ["--config"]),
    (["extra_positional"], ["extra_positional"]),
    (["--resume", "nowhere"], ["nowhere"]),
    (["--resume", "{run}", "--config", QUICK], ["--resume", "--config"]),
    (["--resume", "{run}"], ["{run}", "checkpoint"]),
]
#: config file contents for the ``{cfg}`` case, with strings the error must name
CONFIG_FILES = [
    (b"- a\n- b\n", ["{cfg}"]),  # YAML that is a list
    (b"42\n", ["42"]),  # a scalar
    (b"env: [unclosed\n", ["{cfg}"]),  # not YAML
    (GARBAGE, ["{cfg}"]),  # binary garbage
    (b"env: 5\n", ["env", "5"]),  # a section that is not a mapping
    (b"ppo:\n  n_stepz: 3\n", ["n_stepz"]),
    (b"nosuchsection:\n  a: 1\n", ["nosuchsection"]),
    (b"env:\n  rows: six\n", ["env.rows", "six"]),
    (b"multiprocessing:\n  parallel_episodes: 4\n  num_processes: 3\n", ["num_processes", "3"]),
    (b"env:\n  rows: 6\n  columns: -7\n", ["env.columns", "-7"]),
]


def _expand(items, names):
    return [item.format(**names) for item in items]


def _train_case_ids():
    ids = []
    for args, _ in TRAIN_CASES:
        ids.append(" ".join(args)[:60])
    return ids


def _prepare(tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    outside = tmp_path / "outside"
    outside.mkdir()
    run = outside / "run"  # a run directory with a config but no checkpoint
    run.mkdir()
    (run / "config.yaml").write_text("env: {}\n")
    (outside / "adir.yaml").mkdir()
    return work, dict(cfg=str(outside / "cfg.yaml"), dir=str(outside / "adir.yaml"), run=str(run))


@pytest.mark.parametrize("args, needles", TRAIN_CASES, ids=_train_case_ids())
def test_train_bad_input_one_line_no_files(tmp_path, monkeypatch, capsys, args, needles):
    import connectx_gym.train as train_module

    main = train_module.main
    # a case that validated would train for minutes: fail at once instead
    monkeypatch.setattr(train_module, "run", lambda *a: pytest.fail(f"{args} passed validation"))
    work, names = _prepare(tmp_path)
    monkeypatch.chdir(work)
    contents = CONFIG_FILES if "{cfg}" in args else [(None, needles)]
    for content, file_needles in contents:
        if content is not None:
            Path(names["cfg"]).write_bytes(content)
        code, err = run_main(main, _expand(args, names), capsys)
        assert code == 2, (args, content, err)
        assert_one_error_line(err, *_expand(file_needles, names))
        assert listing(work) == [], (args, content)


EVAL_CASES = [
    (["random", "--games", "0"], ["--games", "0"]),
    (["random", "--games", "abc"], ["--games", "abc"]),
    (["random", "--num-processes", "0"], ["--num-processes", "0"]),
    (["random", "--elo-prior", "-1"], ["--elo-prior", "-1"]),
    (["random", "--rows", "0"], ["--rows", "0"]),
    (["random", "--bogus"], ["--bogus"]),
    ([], ["agent"]),
    (["--tournament", "random"], ["--tournament"]),
    (["nope_agent"], ["nope_agent"]),
    (["random", "--opponents", "negamx"], ["negamx"]),
    (["random", "--replay-game", "500", "--games", "2"], ["--replay-game", "500"]),
    (["{garbage}"], ["{garbage}"]),
    (["{truncated}"], ["{truncated}"]),
    (["{dir}"], ["{dir}"]),
]
EXPORT_CASES = [
    (["missing.zip"], ["missing.zip"]),
    (["{garbage}"], ["{garbage}"]),
    (["{truncated}"], ["{truncated}"]),
    (["{dir}"], ["{dir}"]),
    (["{good}", "--search-ms", "0"], ["--search-ms", "0"]),
    (["{good}", "--search-ms", "abc"], ["--search-ms", "abc"]),
    (["{good}", "-o", "{outdir}"], ["{outdir}"]),
    (["{good}", "-o", "no/such/dir/x.py"], ["no/such/dir"]),
    (["{good}", "--bogus"], ["--bogus"]),
    (["{good}", "-o", "{good}"], ["{good}"]),
]


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    """A good 6x7 checkpoint, a 5x5 one, a truncated one and random bytes named .zip."""
    from helpers import tiny_model

    from connectx_gym.runtime.checkpoints import save_model

    folder = tmp_path_factory.mktemp("checkpoints")
    good = save_model(tiny_model({"rows": 6, "columns": 7, "inarow": 4}), folder / "good.zip")
    small = save_model(tiny_model({"rows": 5, "columns": 5, "inarow": 4}), folder / "small.zip")
    data = good.read_bytes()
    (folder / "truncated.zip").write_bytes(data[: len(data) // 2])
    (folder / "garbage.zip").write_bytes(GARBAGE)
    (folder / "adir.zip").mkdir()
    (folder / "outdir").mkdir()
    return dict(
        good=str(good),
        small=str(small),
        truncated=str(folder / "truncated.zip"),
        garbage=str(folder / "garbage.zip"),
        dir=str(folder / "adir.zip"),
        outdir=str(folder / "outdir"),
    )


@pytest.mark.parametrize("args, needles", EVAL_CASES, ids=[" ".join(a)[:50] for a, _ in EVAL_CASES])
def test_evaluate_bad_input_one_line_no_files(tmp_path, monkeypatch, capsys, checkpoints, args, needles):
    from connectx_gym.evaluate import main

    monkeypatch.chdir(tmp_path)
    code, err = run_main(main, _expand(args, checkpoints), capsys)
    assert code == 2, err
    assert_one_error_line(err, *_expand(needles, checkpoints))
    assert listing(tmp_path) == []


@pytest.mark.parametrize("args, needles", EXPORT_CASES, ids=[" ".join(a)[:50] for a, _ in EXPORT_CASES])
def test_export_bad_input_one_line_no_files(tmp_path, monkeypatch, capsys, checkpoints, args, needles):
    from connectx_gym.export import main

    monkeypatch.chdir(tmp_path)
    before = listing(Path(checkpoints["good"]).parent)
    code, err = run_main(main, _expand(args, checkpoints), capsys)
    assert code == 2, err
    assert_one_error_line(err, *_expand(needles, checkpoints))
    assert listing(tmp_path) == []
    assert listing(Path(checkpoints["good"]).parent) == before


def test_checkpoint_for_another_board_is_a_clear_error(tmp_path, monkeypatch, capsys, checkpoints):
    from connectx_gym.evaluate import main

    monkeypatch.chdir(tmp_path)
    code, err = run_main(main, [checkpoints["small"], "--rows", "6", "--columns", "7", "--games", "2"], capsys)
    assert code == 2, err
    assert_one_error_line(err, "small.zip")
    assert listing(tmp_path) == []


@pytest.mark.parametrize(
    "module, args, needles",
    [
        ("train", ["--set", "env.rowz=6"], ["rowz"]),
        ("train", ["--config", "{garbage}"], ["{garbage}"]),
        ("train", ["--bogus"], ["--bogus"]),
        ("evaluate", ["{garbage}", "--games", "2"], ["{garbage}"]),
        ("export", ["{truncated}"], ["{truncated}"]),
    ],
)
def test_real_cli_bad_input(tmp_path, checkpoints, module, args, needles):
    """The same contract through real subprocesses (module import, sys.exit, stderr)."""
    work = tmp_path / "work"
    work.mkdir()
    result = cli(module, _expand(args, checkpoints), work, timeout=60)
    assert result.returncode == 2, result.stderr
    assert_one_error_line(result.stderr, *_expand(needles, checkpoints))
    assert listing(work) == []


def test_unwritable_output_dir_fails_before_training(tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    blocker = tmp_path / "a_file"
    blocker.write_text("not a directory\n")
    result = cli(
        "train",
        ["--config", QUICK, "--set", f"train.output_dir={blocker}/models", "--set", "train.run_name=r"],
        work,
        timeout=120,
    )
    assert result.returncode == 2, result.stderr
    assert_one_error_line(result.stderr, str(blocker))
    assert "cannot write" in result.stderr
    assert listing(work) == []
    assert blocker.read_text() == "not a directory\n"


# --------------------------------------------------------------------------------------------
# 2. kill -9 mid-training, then resume (also past a corrupt newest checkpoint)
# --------------------------------------------------------------------------------------------


def _last_logged_step(progress: Path) -> int:
    if not progress.is_file():
        return 0
    with open(progress, newline="") as handle:
        rows = list(csv.DictReader(handle))
    steps = []
    for row in rows:
        try:
            steps.append(int(row.get("time/total_timesteps") or 0))
        except ValueError:  # a row cut short by the kill
            pass
    return max(steps, default=0)


def _session_alive(pgid: int) -> list:
    import psutil

    alive = []
    for proc in psutil.process_iter(["pid"]):
        try:
            if os.getpgid(proc.pid) == pgid and proc.status() != psutil.STATUS_ZOMBIE:
                alive.append(proc.pid)
        except (ProcessLookupError, psutil.Error, OSError):
            pass
    return alive


def _session_left_over(pgid: int, timeout: float = 30.0) -> list:
    """Processes of the session still alive after ``timeout`` seconds.

    The forkserver and the resource tracker are not joined by the trainer: they see their pipe close
    when it exits and leave a moment later, so they get a grace period, not a snapshot."""
    deadline = time.monotonic() + timeout
    while (alive := _session_alive(pgid)) and time.monotonic() < deadline:
        time.sleep(0.2)
    return alive


def test_kill_9_mid_training_keeps_checkpoints_and_resumes(tmp_path):
    import psutil

    from connectx_gym.runtime.checkpoints import list_checkpoints, verify_checkpoint

    every = 2048
    process = subprocess.Popen(
        train_command(
            "train.run_name=killed",
            "train.total_timesteps=400000",
            f"train.checkpoint_every={every}",
            "train.eval_every=0",
            "logging.progress_bar=false",
        ),
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    run = tmp_path / "models" / "killed"
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not list_checkpoints(run):
            assert process.poll() is None, process.stderr.read().decode()
            time.sleep(0.1)
        assert list_checkpoints(run), "no checkpoint within 120 s"
        time.sleep(random.Random(7).uniform(0.5, 3.0))
        workers = [child.pid for child in psutil.Process(process.pid).children(recursive=True)]
        assert workers, "expected env worker processes"
        logged = _last_logged_step(run / "progress.csv")
        os.killpg(process.pid, signal.SIGKILL)
    finally:
        if process.poll() is None:
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        process.wait(timeout=30)
        process.stderr.close()
    assert process.returncode == -signal.SIGKILL

    # no worker survives its trainer
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and (
        _session_alive(process.pid)
        or any(psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE for p in workers)
    ):
        time.sleep(0.2)
    assert _session_alive(process.pid) == []

    # every checkpoint under a real name is intact; at most one interval of work is lost
    found = list_checkpoints(run)
    for _, path in found:
        verify_checkpoint(path)
    newest = found[-1][0]
    assert newest >= logged - every, (newest, logged)

    # a truncated "newer" checkpoint (e.g. copied in half-way) is skipped in favour of the intact one
    bogus = run / "checkpoints" / f"step_{newest + 10 * every:012d}.zip"
    bogus.write_bytes(found[-1][1].read_bytes()[:1000])
    target = newest + 1024
    result = cli(
        "train",
        ["--resume", str(run), "--set", f"train.total_timesteps={target}", "--set", "logging.progress_bar=false"],
        tmp_path,
        timeout=180,
    )
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    assert "resuming from" in result.stderr and f"step {newest})" in result.stderr, result.stderr
    assert found[-1][1].name in result.stderr
    assert (run / "final_model.zip").is_file()
    steps = [step for step, _ in list_checkpoints(run)]
    assert newest + 1024 <= max(step for step in steps if step != newest + 10 * every)


# --------------------------------------------------------------------------------------------
# 3. a misbehaving Kaggle agent as the training opponent: forfeits are counted, training goes on
# --------------------------------------------------------------------------------------------

BAD_AGENTS = {
    "raises": "def agent(observation, configuration):\n    raise RuntimeError('boom')\n",
    "illegal": "def agent(observation, configuration):\n    return 99\n",
}


@pytest.mark.parametrize(
    "kind",
    [
        "raises",
        "illegal",
    ],
)
def test_misbehaving_kaggle_opponent_is_counted_not_fatal(tmp_path, kind):
    agent = tmp_path / f"{kind}_agent.py"
    agent.write_text(BAD_AGENTS[kind])
    result = cli(
        "train",
        [
            "--config",
            QUICK,
            "--set",
            f"env.opponent=kaggle:{agent}",
            "--set",
            "train.run_name=bad",
            "--set",
            "train.total_timesteps=1024",
            "--set",
            "train.eval_every=0",
            "--set",
            "logging.progress_bar=false",
        ],
        tmp_path,
        timeout=180,
    )
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    with open(tmp_path / "models" / "bad" / "progress.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert rows and int(float(rows[-1]["rollout/opponent_errors"])) > 0


# --------------------------------------------------------------------------------------------
# a worker killed under a running trainer: reported by index and cause, model saved, exit 1
# --------------------------------------------------------------------------------------------


def test_killed_worker_is_reported_saved_and_exits_1(tmp_path):
    import psutil

    from connectx_gym.runtime.checkpoints import list_checkpoints, verify_checkpoint

    process = subprocess.Popen(
        train_command(
            "train.run_name=crash", "train.total_timesteps=400000", "train.eval_every=0", "logging.progress_bar=false"
        ),
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    run = tmp_path / "models" / "crash"
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not list_checkpoints(run):
            assert process.poll() is None
            time.sleep(0.1)
        # env workers: the forkserver's children (or, with fork/spawn, the trainer's own children)
        tree = psutil.Process(process.pid).children(recursive=True)
        workers = [child for child in tree if child.ppid() != process.pid] or [
            child for child in tree if "resource_tracker" not in " ".join(child.cmdline())
        ]
        assert workers
        workers[0].kill()
        _, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=30)
    assert process.returncode == 1, stderr
    assert "Traceback" not in stderr
    assert "error: env worker" in stderr and "SIGKILL" in stderr, stderr
    assert f"continue with --resume {Path('models') / 'crash'}" in stderr, stderr
    # the crash save may share its step (and so its name) with the periodic one: the worker can die
    # during the PPO update that follows a checkpoint, before any new env step is counted
    crash_save = re.search(r"^saved (\S+\.zip); continue", stderr, re.MULTILINE)
    assert crash_save, stderr
    assert (tmp_path / crash_save.group(1)).is_file()
    saved = list_checkpoints(run)
    assert (tmp_path / crash_save.group(1)).resolve() in [path.resolve() for _, path in saved]
    for _, path in saved:
        verify_checkpoint(path)
    assert _session_left_over(process.pid) == []


# ---------------------------------------------------------------------------------------- exported agent fuzz
FUZZ_BOARDS = [
    {"rows": 6, "columns": 7, "inarow": 4},
    {"rows": 4, "columns": 9, "inarow": 5},
    {"rows": 3, "columns": 3, "inarow": 3},
    {"rows": 7, "columns": 5, "inarow": 4},
    {"rows": 2, "columns": 6, "inarow": 3},
]


def fuzz_positions(board, count, seed):
    """Random gravity fills from empty to full-but-one (lines ignored), the mover by stone count."""
    from helpers import gravity_fill

    from connectx_gym.rules.bitboard import geometry

    g = geometry(board["rows"], board["columns"], board["inarow"])
    rng = np.random.default_rng(seed)
    positions = []
    for i in range(count):
        # every third position is full but one cell or nearly so: the hardest masks to get right
        stones_wanted = g.size - 1 - int(rng.integers(0, 3)) if i % 3 == 0 else int(rng.integers(0, g.size))
        positions.append(gravity_fill(g, stones_wanted, rng))
    return positions


def test_exported_agent_never_plays_illegally_on_10000_fuzzed_positions():
    from helpers import tiny_model

    from connectx_gym.inference.numpy_policy import from_sb3_model
    from connectx_gym.submission.build import load_submission, render_submission

    checked = full_but_one = 0
    for index, board in enumerate(FUZZ_BOARDS):
        agent = load_submission(render_submission(from_sb3_model(tiny_model(board, seed=index))))["agent"]
        for kaggle_board, mark in fuzz_positions(board, 2000, seed=index):
            column = agent({"board": kaggle_board, "mark": mark}, dict(board))
            assert type(column) is int and 0 <= column < board["columns"] and kaggle_board[column] == 0
            checked += 1
            full_but_one += kaggle_board.count(0) == 1
    assert checked == 10_000 and full_but_one >= 500


def test_search_stays_within_its_budget_plus_50_ms_on_95_of_100_moves():
    from helpers import tiny_model

    from connectx_gym.inference.numpy_policy import from_sb3_model
    from connectx_gym.submission.build import load_submission, render_submission

    board = FUZZ_BOARDS[0]
    budget_ms = 20
    agent = load_submission(render_submission(from_sb3_model(tiny_model(board)), search_ms=budget_ms))["agent"]
    elapsed = []
    for kaggle_board, mark in fuzz_positions(board, 100, seed=7):
        started = time.perf_counter()
        column = agent({"board": kaggle_board, "mark": mark}, dict(board))
        elapsed.append(time.perf_counter() - started)
        assert kaggle_board[column] == 0
    # a shared machine can stall a few moves; a search that overran its budget would overrun on most
    late = [t for t in elapsed if t > (budget_ms + 50) / 1000]
    assert len(late) <= 5, late
    assert sorted(elapsed)[len(elapsed) // 2] <= (budget_ms + 10) / 1000, sorted(elapsed)[len(elapsed) // 2]


# ---------------------------------------------------------------------------------------- determinism
def test_same_seed_gives_identical_evaluations_in_process_and_in_subprocesses(tmp_path):
    """Same config and seed: the subprocess and the in-process trainer produce checkpoints that
    play identical games (the chunked workers step the same episodes either way)."""
    from connectx_gym.agents.specs import make_agent
    from connectx_gym.evaluation.match import play_opponent_games
    from connectx_gym.rules.bitboard import geometry

    outcomes = {}
    for name, multiprocess in (("sub", "true"), ("inproc", "false"), ("sub2", "true")):
        result = subprocess.run(
            train_command(
                f"train.run_name={name}",
                f"multiprocessing.use_multiprocessing={multiprocess}",
                "train.eval_every=0",
                "logging.progress_bar=false",
            ),
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert result.returncode == 0, result.stderr
        agent = make_agent(str(tmp_path / "models" / name / "final_model.zip"))
        games = play_opponent_games(agent, "random", 60, seed=11, board=geometry(6, 7, 4))
        outcomes[name] = [(g.outcome, g.moves) for g in games]
    assert outcomes["sub"] == outcomes["sub2"] == outcomes["inproc"]
