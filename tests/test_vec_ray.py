"""The ray backend: the same chunks as Ray actors, stepping exactly like the subprocess backend.

Tests that need Ray run on one local instance limited to this machine (2 CPUs, no dashboard) and
are skipped where the optional extra is not installed; the missing-Ray message is checked either way.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
from helpers import QUICK, assert_same, rollout, train_command

from connectx_gym.envs.vec import make_vec_env
from connectx_gym.errors import UserError, WorkerError

ENV_KWARGS = dict(opponent="random", info_board=True)
HAVE_RAY = importlib.util.find_spec("ray") is not None
requires_ray = pytest.mark.skipif(not HAVE_RAY, reason="the optional ray extra is not installed")


@pytest.fixture(scope="module")
def local_ray():
    """One local Ray instance for the module (2 CPUs, no dashboard); shut down only if started here."""
    import ray

    from connectx_gym.runtime.ray_cluster import connect

    started = not ray.is_initialized()
    connect("", num_cpus=2)
    yield ray
    if started:
        ray.shutdown()


def train_cli(tmp_path, *overrides, timeout=300):
    command = train_command("logging.progress_bar=false", *overrides)
    return subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=timeout)


@pytest.mark.parametrize("opponent", ["random", "alphabeta:1"])
@pytest.mark.usefixtures("local_ray")
@pytest.mark.ray
@requires_ray
def test_ray_backend_steps_exactly_like_the_subprocess_backend(opponent):
    kwargs = dict(ENV_KWARGS, opponent=opponent)
    on_ray = make_vec_env(kwargs, 6, 2, backend="ray")
    in_subprocesses = make_vec_env(kwargs, 6, 2, backend="chunked")
    try:
        a = rollout(on_ray, 80, seed=5)
        b = rollout(in_subprocesses, 80, seed=5)
        assert_same(a, b)
        assert any(step[2].any() for step in a[1:]), "some episodes should have ended"
        assert on_ray.reset_infos == in_subprocesses.reset_infos
        assert on_ray.get_attr("agent_seat") == ["random"] * 6
        on_ray.set_attr("agent_seat", "first", indices=[4])
        assert on_ray.get_attr("agent_seat", indices=[3, 4]) == ["random", "first"]
    finally:
        on_ray.close()
        in_subprocesses.close()


@pytest.mark.usefixtures("local_ray")
@pytest.mark.ray
@requires_ray
def test_killed_actor_is_reported_by_index():
    venv = make_vec_env(ENV_KWARGS, 4, 2, backend="ray", seed=0)
    try:
        venv.reset()
        pid = int(venv.workers[1].describe().split(" pid ")[1].split()[0])
        os.kill(pid, signal.SIGKILL)
        with pytest.raises(WorkerError, match=r"env worker 1 \(envs 2-3, ray actor pid \d+ on .*\) died"):
            for _ in range(3):
                venv.step(np.zeros(4, dtype=np.int64))
    finally:
        venv.close()


@pytest.mark.usefixtures("local_ray")
@pytest.mark.ray
@requires_ray
def test_errors_inside_an_actor_name_the_worker_and_the_cause():
    with pytest.raises(
        WorkerError,
        match=r"env worker 0 \(envs 0-1, ray actor\) failed to start: "
        r"ValueError: rows must be an integer >= 1, got 0",
    ):
        make_vec_env(dict(ENV_KWARGS, rows=0), 4, 2, backend="ray")
    venv = make_vec_env(ENV_KWARGS, 4, 2, backend="ray", seed=0)
    try:
        venv.reset()
        with pytest.raises(WorkerError, match=r"env worker 0 .* failed: AttributeError: .*no_such_method"):
            venv.env_method("no_such_method")
    finally:
        venv.close()


@pytest.mark.usefixtures("local_ray")
@pytest.mark.ray
@requires_ray
def test_more_cpus_than_the_cluster_has_is_refused():
    with pytest.raises(UserError, match=r"needs 6 CPUs .* but the Ray cluster has 2"):
        make_vec_env(ENV_KWARGS, 4, 2, backend="ray", ray_cpus_per_worker=3.0)


@pytest.mark.ray
@requires_ray
def test_training_on_ray_equals_training_on_subprocesses(tmp_path):
    """The same config and seed give checkpoints that play identical games on either backend."""
    from connectx_gym.agents.specs import make_agent
    from connectx_gym.evaluation.match import play_opponent_games
    from connectx_gym.rules.bitboard import geometry

    games = {}
    for backend in ("ray", "chunked"):
        result = train_cli(
            tmp_path,
            f"multiprocessing.backend={backend}",
            f"train.run_name={backend}",
            "train.total_timesteps=2048",
            "train.eval_every=0",
        )
        assert result.returncode == 0, result.stderr
        assert "Traceback" not in result.stderr and "WARNING" not in result.stderr, result.stderr
        agent = make_agent(str(tmp_path / "models" / backend / "final_model.zip"))
        played = play_opponent_games(agent, "random", 40, seed=3, board=geometry(6, 7, 4))
        games[backend] = [(game.outcome, game.moves) for game in played]
    assert games["ray"] == games["chunked"]


@pytest.mark.ray
@requires_ray
def test_unreachable_cluster_is_one_error_line_and_writes_nothing(tmp_path):
    result = train_cli(tmp_path, "multiprocessing.backend=ray", "ray.address=127.0.0.1:1", timeout=60)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "error: ray.address='127.0.0.1:1': cannot connect to a Ray cluster: nothing answers at 127.0.0.1:1 "
        "(Connection refused)"
    ]
    assert list(tmp_path.iterdir()) == []


def test_ray_backend_without_ray_says_how_to_install(tmp_path, monkeypatch, capsys):
    from connectx_gym import train

    monkeypatch.setitem(sys.modules, "ray", None)  # makes 'import ray' fail as if not installed
    monkeypatch.chdir(tmp_path)
    code = train.main(["--config", QUICK, "--set", "multiprocessing.backend=ray"])
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        "error: multiprocessing.backend=ray needs Ray, which is not installed; install the extra with: "
        'pip install -e ".[ray]"  (or: pip install "ray[tune]")'
    ]
    assert list(tmp_path.iterdir()) == []


@pytest.mark.ray
@requires_ray
def test_a_cluster_started_with_ray_start_is_joined_by_address(tmp_path):
    """The README's recipe: `ray start --head`, then point ray.address (and --ray-address) at it."""
    import socket
    import time

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    ray_cli = str(Path(sys.executable).with_name("ray"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    # its own (short: socket paths) temp dir, so the cluster is not recorded as this machine's latest
    temp_dir = tempfile.mkdtemp(prefix="ray", dir="/tmp")
    head = subprocess.Popen(
        [
            ray_cli,
            "start",
            "--head",
            f"--port={port}",
            "--num-cpus=2",
            "--include-dashboard=false",
            f"--temp-dir={temp_dir}",
            "--block",
        ],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert head.poll() is None, "ray start --head exited"
                time.sleep(0.5)
        address = f"127.0.0.1:{port}"
        result = train_cli(
            tmp_path,
            "multiprocessing.backend=ray",
            f"ray.address={address}",
            "train.run_name=cluster",
            "train.total_timesteps=1024",
            "train.eval_every=0",
        )
        assert result.returncode == 0, result.stderr
        assert (tmp_path / "models" / "cluster" / "final_model.zip").is_file()
        evaluated = subprocess.run(
            [
                sys.executable,
                "-m",
                "connectx_gym.evaluate",
                "models/cluster/final_model.zip",
                "--opponents",
                "random",
                "--games",
                "8",
                "--backend",
                "ray",
                "--ray-address",
                address,
            ],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
            env=env,
        )
        assert evaluated.returncode == 0, evaluated.stderr
        assert "on Ray (2 CPUs)" in evaluated.stdout
    finally:
        os.killpg(head.pid, signal.SIGTERM)
        try:
            head.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(head.pid, signal.SIGKILL)
            head.wait(timeout=30)
        shutil.rmtree(temp_dir, ignore_errors=True)
