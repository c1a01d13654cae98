"""``evaluate --backend ray``: the same records as the local backend on a local 2-CPU Ray instance,
checkpoint agents in torch-free tasks, and one-line errors (Ray missing, a bad address, a failing task)."""

from __future__ import annotations

import json
import pickle
import sys

import pytest
from helpers import tiny_model

from connectx_gym import evaluate as ev
from connectx_gym.errors import WorkerError
from connectx_gym.evaluation.match import loaded_heavy_modules
from connectx_gym.evaluation.parallel import RAY_TASK_OPTIONS, play_pairings, play_pairings_ray, ray_play_batch
from connectx_gym.evaluation.plan import build_agent
from connectx_gym.runtime import ray_cluster

try:  # not importorskip: the missing-Ray tests below must run exactly when Ray is missing too
    import ray
except ImportError:
    ray = None

#: the tests that need Ray running
needs_ray = pytest.mark.skipif(ray is None, reason="Ray is not installed (the ray extra)")

BOARD = {"rows": 5, "columns": 6, "inarow": 4}


@pytest.fixture(scope="module")
def ray_instance():
    """A local 2-CPU Ray instance (an already running one is reused, and left running)."""
    started = not ray.is_initialized()
    module = ray_cluster.connect("", num_cpus=2)
    yield module
    if started:
        module.shutdown()


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    from connectx_gym.runtime.checkpoints import save_model

    path = tmp_path_factory.mktemp("evaluate_ray") / "model.zip"
    save_model(tiny_model(BOARD), path)
    return str(path)


def cli(capsys, *args):
    code = ev.main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def results_of(capsys, tmp_path, name, *args):
    """The JSON document and the output of one evaluation, which succeeds without a word on stderr."""
    path = tmp_path / f"{name}.json"
    code, out, err = cli(capsys, *args, "--json", path)
    assert code == 0 and err == "", err
    return json.loads(path.read_text()), out


class Unloadable:
    """An agent that pickles on the driver but cannot be unpickled anywhere."""

    def __reduce__(self):
        return (int, ("not a number",))


# ---------------------------------------------------------------------------------------- without Ray
def test_missing_ray_is_one_line_and_exit_2(capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    code, out, err = cli(capsys, "random", "--opponents", "negamax", "--games", 2, "--backend", "ray")
    assert code == 2 and out == ""
    assert err.startswith("error: --backend ray needs Ray, which is not installed") and err.count("\n") == 1
    assert ray_cluster.INSTALL_HINT in err


@pytest.mark.parametrize("address", ["auto", "127.0.0.1:6379"])
def test_ray_address_needs_the_ray_backend(capsys, address):
    code, out, err = cli(capsys, "random", "--opponents", "negamax", "--games", 2, "--ray-address", address)
    assert code == 2 and out == ""
    assert err == f"error: --ray-address {address} needs --backend ray (got --backend local)\n"


def test_unknown_backend_is_one_line(capsys):
    code, out, err = cli(capsys, "random", "--backend", "dask")
    assert code == 2 and err.startswith("error: argument --backend: invalid choice: 'dask'") and err.count("\n") == 1


# ---------------------------------------------------------------------------------------- on a local instance
@pytest.mark.ray
@needs_ray
def test_ray_records_equal_the_local_records(ray_instance):
    agents = [build_agent(spec).agent for spec in ("alphabeta:1", "random", "negamax")]
    pairs = [(0, 1), (0, 2), (1, 2)]
    reference = play_pairings(agents, pairs, 9, seed=5, board=BOARD, num_processes=1)
    finished = []
    records = play_pairings_ray(ray_instance, agents, pairs, 9, seed=5, board=BOARD, progress=finished.append)
    assert records == reference  # same outcomes and moves, game by game
    assert sum(finished) == 27 and len(finished) > 1  # one call per batch, as the tasks finish
    assert play_pairings_ray(ray_instance, agents, pairs, 9, seed=6, board=BOARD) != reference
    openings = [(3,), (0, 5), (2, 2)]  # paired games from an opening suite: the same records too
    reference = play_pairings(agents, pairs, 8, seed=5, board=BOARD, num_processes=1, openings=openings)
    assert [record.opening for record in reference[0]] == [0, 0, 1, 1, 2, 2, 0, 0]
    assert play_pairings_ray(ray_instance, agents, pairs, 8, seed=5, board=BOARD, openings=openings) == reference


@pytest.mark.ray
@needs_ray
def test_ray_match_and_tournament_match_the_local_backend(capsys, tmp_path, ray_instance):
    match = ["alphabeta:1", "--opponents", "random", "negamax", "--games", 10, "--seed", 2]
    local, _ = results_of(capsys, tmp_path, "match_local", *match, "--num-processes", 1)
    remote, out = results_of(capsys, tmp_path, "match_ray", *match, "--backend", "ray")
    assert remote["pairings"] == local["pairings"]
    assert (local["backend"], remote["backend"]) == ("local", "ray")
    assert remote["ray_cpus"] == 2 and remote["num_processes"] is None
    assert "20 games in" in out and "on Ray (2 CPUs)" in out

    tournament = ["--tournament", "random", "negamax", "alphabeta:1", "--games", 20, "--seed", 7]
    local, _ = results_of(capsys, tmp_path, "tournament_local", *tournament, "--num-processes", 1)
    remote, out = results_of(capsys, tmp_path, "tournament_ray", *tournament, "--backend", "ray")
    assert remote["pairings"] == local["pairings"] and remote["elo"] == local["elo"]
    assert "60 games in" in out and "on Ray (2 CPUs)" in out
    assert ray_instance.is_initialized()  # the command reused the running instance and left it running


@pytest.mark.ray
@needs_ray
def test_checkpoint_agent_plays_in_torch_free_tasks(capsys, tmp_path, ray_instance, checkpoint):
    args = [checkpoint, "--opponents", "random", "--games", 6]
    local, _ = results_of(capsys, tmp_path, "checkpoint_local", *args, "--num-processes", 1)
    remote, _ = results_of(capsys, tmp_path, "checkpoint_ray", *args, "--backend", "ray")
    assert remote["pairings"] == local["pairings"] and remote["board"] == BOARD

    agents = [build_agent(spec).agent for spec in (checkpoint, "random")]
    agents_box = [ray_instance.put(pickle.dumps(agents))]
    batch = [(0, 0, 1, game) for game in range(4)]

    def play_and_report(box):  # a closure: pickled by value, so the workers need not import this test file
        return ray_play_batch(box, 4, 0, BOARD, batch), loaded_heavy_modules()

    probe = ray_instance.remote(**RAY_TASK_OPTIONS)(play_and_report)
    played, modules = ray_instance.get(probe.remote(agents_box))
    assert modules == []  # neither torch nor stable_baselines3 in the process that ran the checkpoint
    assert [record for _, record in played] == play_pairings(agents, [(0, 1)], 4, board=BOARD, num_processes=1)[0]


@pytest.mark.ray
@needs_ray
def test_a_failing_task_is_a_worker_error(capsys, monkeypatch, ray_instance):
    agents = [build_agent("random").agent, Unloadable()]
    with pytest.raises(WorkerError, match=r"cannot load the agents in a Ray worker \(ValueError: invalid literal"):
        play_pairings_ray(ray_instance, agents, [(0, 1)], 40, board=BOARD)

    def fail(*args, **kwargs):
        raise WorkerError("a Ray task playing games failed: raised ValueError: boom; try --backend local")

    monkeypatch.setattr(ev, "play_pairings_ray", fail)
    code, out, err = cli(capsys, "random", "--opponents", "negamax", "--games", 2, "--backend", "ray")
    assert code == 1 and out == ""
    assert err == "error: a Ray task playing games failed: raised ValueError: boom; try --backend local\n"


@pytest.mark.ray
@needs_ray
def test_no_cluster_to_join_is_one_line_naming_the_address(capsys, monkeypatch, ray_instance):
    # 'auto' with no cluster running fails in ray.init; simulated, since this process already runs one
    def refuse(*args, **kwargs):
        raise ConnectionError("Could not find any running Ray instance. Please specify the one to connect to.")

    monkeypatch.setattr(ray_instance, "is_initialized", lambda: False)
    monkeypatch.setattr(ray_instance, "init", refuse)
    code, out, err = cli(
        capsys, "random", "--opponents", "negamax", "--games", 2, "--backend", "ray", "--ray-address", "auto"
    )
    assert code == 2 and out == ""
    assert err == (
        "error: --ray-address auto: cannot connect to a Ray cluster: "
        "Could not find any running Ray instance. Please specify the one to connect to.\n"
    )


@pytest.mark.ray
@needs_ray
def test_unreachable_cluster_address_fails_fast(tmp_path):
    import subprocess

    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "connectx_gym.evaluate",
            "random",
            "--opponents",
            "negamax",
            "--games",
            "2",
            "--backend",
            "ray",
            "--ray-address",
            "127.0.0.1:1",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr == (
        "error: --ray-address 127.0.0.1:1: cannot connect to a Ray cluster: "
        "nothing answers at 127.0.0.1:1 (Connection refused)\n"
    )
    assert list(tmp_path.iterdir()) == []
