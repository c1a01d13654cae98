"""The evaluate command: Wilson intervals, Bradley-Terry Elo, process-count-independent parallel games,
tables/JSON/CSV, the run-directory plot, Kaggle HTML replays and one-line errors."""

from __future__ import annotations

import csv
import io
import json
import math
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers import tiny_model

from connectx_gym import evaluate as ev
from connectx_gym.evaluation.match import loaded_heavy_modules
from connectx_gym.evaluation.parallel import make_pool, play_pairings, split_batches
from connectx_gym.evaluation.plan import build_agent
from connectx_gym.evaluation.ratings import bradley_terry, wilson_interval
from connectx_gym.rules.bitboard import Position, geometry
from connectx_gym.runtime import processes

BOARD = {"rows": 5, "columns": 6, "inarow": 4}


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A run directory like the trainer's: two checkpoints (steps 64 and 128) and final_model.zip."""
    from connectx_gym.runtime.checkpoints import checkpoint_path, save_model

    run = tmp_path_factory.mktemp("evaluate") / "models" / "tiny"
    model = tiny_model(BOARD)
    model.learn(64)
    save_model(model, checkpoint_path(run, 64))
    model.learn(64, reset_num_timesteps=False)
    save_model(model, checkpoint_path(run, 128))
    save_model(model, run / "final_model.zip")
    return run


@pytest.fixture(scope="module")
def checkpoint(run_dir):
    return str(run_dir / "final_model.zip")


def cli(capsys, *args):
    code = ev.main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


# ---------------------------------------------------------------------------------------- statistics
@pytest.mark.parametrize(
    "wins, games, low, high",
    [  # textbook values (Wilson 1927; Newcombe 1998, method 3)
        (0, 10, 0.0, 0.2775),
        (10, 10, 0.7225, 1.0),
        (5, 10, 0.2366, 0.7634),
        (1, 10, 0.0179, 0.4042),
        (81, 263, 0.2553, 0.3662),
    ],
)
def test_wilson_interval_matches_textbook_values(wins, games, low, high):
    lo, hi = wilson_interval(wins, games)
    assert lo == pytest.approx(low, abs=5e-5) and hi == pytest.approx(high, abs=5e-5)


def test_wilson_interval_edge_cases():
    assert all(math.isnan(x) for x in wilson_interval(0, 0))
    lo, hi = wilson_interval(50, 100, z=1.0)
    assert lo < 0.5 < hi and hi - lo < wilson_interval(50, 100)[1] - wilson_interval(50, 100)[0]


def elo_matrix(elo, games_per_pair):
    elo = np.asarray(elo, dtype=float)
    p = 1.0 / (1.0 + 10.0 ** ((elo[None, :] - elo[:, None]) / 400.0))
    games = np.full((len(elo), len(elo)), float(games_per_pair))
    np.fill_diagonal(games, 0.0)
    return p, games


def test_bradley_terry_recovers_known_strengths_from_expected_results():
    truth = np.array([-300.0, -50.0, 100.0, 250.0])
    p, games = elo_matrix(truth, 1000)
    ratings = bradley_terry(p * games, games, prior_draws=0)
    assert np.allclose(ratings.elo, truth - truth.mean(), atol=1e-6)
    assert np.all(ratings.low < ratings.elo) and np.all(ratings.elo < ratings.high)


def test_bradley_terry_symmetric_results_give_equal_ratings():
    games = np.full((3, 3), 40.0)
    np.fill_diagonal(games, 0.0)
    for prior in (0.0, 1.0):
        ratings = bradley_terry(games / 2, games, prior_draws=prior)
        assert np.allclose(ratings.elo, 0.0, atol=1e-9)
        assert np.allclose(ratings.stderr, ratings.stderr[0])


def test_bradley_terry_sampled_games_fall_within_their_intervals():
    truth = np.array([0.0, 150.0, 400.0])
    p, games = elo_matrix(truth, 4000)
    rng = np.random.default_rng(0)
    wins = np.triu(rng.binomial(games.astype(int), p), 1).astype(float)
    scores = wins + np.tril((games - wins.T), -1)
    ratings = bradley_terry(scores, games, prior_draws=1.0)
    centred = truth - truth.mean()
    assert np.all(ratings.low <= centred) and np.all(centred <= ratings.high)
    assert np.all(ratings.high - ratings.low < 60)


def test_bradley_terry_with_a_perfect_record_needs_the_prior():
    scores = np.array([[0.0, 10.0], [0.0, 0.0]])
    games = np.array([[0.0, 10.0], [10.0, 0.0]])
    with pytest.raises(ValueError, match="do not exist"):
        bradley_terry(scores, games, prior_draws=0)
    ratings = bradley_terry(scores, games, prior_draws=1.0)
    assert np.all(np.isfinite(ratings.elo)) and ratings.elo[0] > 200
    assert ratings.elo[0] == pytest.approx(-ratings.elo[1])
    with pytest.raises(ValueError, match="symmetric"):
        bradley_terry(np.array([[0.0, 3.0], [1.0, 0.0]]), games)


# ---------------------------------------------------------------------------------------- parallel games
def test_batches_are_contiguous_and_cover_every_job():
    jobs = list(range(23))
    for count in (1, 2, 3, 8):
        batches = split_batches(jobs, count)
        assert [job for batch in batches for job in batch] == jobs
        assert all(batch for batch in batches) and len(batches) <= max(1, count * 32)
    assert split_batches([], 2) == []


def test_results_do_not_depend_on_the_number_of_processes(checkpoint):
    entries = [build_agent(spec).agent for spec in (checkpoint, "random", "negamax", "alphabeta:2")]
    pairs = [(0, 1), (0, 2), (1, 3), (2, 3)]
    reference = play_pairings(entries, pairs, 7, seed=3, board=BOARD, num_processes=1)
    assert [len(r) for r in reference] == [7] * 4
    assert [[g.index for g in r] for r in reference] == [list(range(7))] * 4
    for count in (2, 3):
        assert play_pairings(entries, pairs, 7, seed=3, board=BOARD, num_processes=count) == reference
    assert play_pairings(entries, pairs, 7, seed=4, board=BOARD, num_processes=1) != reference


def test_workers_load_neither_torch_nor_sb3_and_use_one_blas_thread(checkpoint):
    import os

    entries = [build_agent(checkpoint).agent]
    from connectx_gym.runtime.processes import THREAD_VARIABLES

    environment = {name: os.environ.get(name) for name in THREAD_VARIABLES}
    pool = make_pool(2, entries, 1, 0, BOARD)
    try:
        with processes.single_threaded_children():  # as play_pairings starts them
            modules = pool.submit(loaded_heavy_modules)
            threads = pool.submit(os.getenv, "OPENBLAS_NUM_THREADS")
        assert modules.result(timeout=120) == [] and threads.result(timeout=120) == "1"
    finally:
        pool.shutdown()
    assert {name: os.environ.get(name) for name in THREAD_VARIABLES} == environment


def test_single_threaded_blas_is_restored():
    apis = processes.openblas_apis()
    before = [get() for get, _ in apis]
    with processes.single_threaded_blas():
        assert all(get() == 1 for get, _ in apis)
    assert [get() for get, _ in apis] == before


# ---------------------------------------------------------------------------------------- the command
def test_match_prints_a_table_and_writes_json_and_csv(capsys, tmp_path, checkpoint):
    code, out, err = cli(
        capsys,
        checkpoint,
        "--opponents",
        "random",
        "negamax",
        "--games",
        6,
        "--seed",
        1,
        "--num-processes",
        1,
        "--openings",
        "none",  # 5x6 boards start from their suite by default
        "--json",
        tmp_path / "out.json",
        "--csv",
        tmp_path / "out.csv",
    )
    assert code == 0, err
    assert "board 5x6 with 4 in a row; 6 games per pairing (from the empty board, half in each seat)" in out
    assert "95% CI: Wilson interval over games" in out  # no opening suite on 5x6 boards
    assert re.search(
        r"opponent\s+games\s+distinct\s+W\s+D\s+L\s+win rate\s+95% CI\s+first W-D-L\s+second W-D-L\s+forfeits", out
    )
    document = json.loads((tmp_path / "out.json").read_text())
    assert document["mode"] == "match" and document["board"] == BOARD and document["seed"] == 1
    assert [p["opponent"] for p in document["pairings"]] == ["random", "negamax"]
    rows = list(csv.DictReader(io.StringIO((tmp_path / "out.csv").read_text())))
    for pairing, row in zip(document["pairings"], rows):
        assert pairing["agent"] == checkpoint == row["agent"]
        assert pairing["wins"] + pairing["draws"] + pairing["losses"] == pairing["games"] == 6
        assert pairing["seats"]["first"]["games"] == pairing["seats"]["second"]["games"] == 3
        low, high = wilson_interval(pairing["wins"], 6)
        assert pairing["win_rate_ci95"] == [round(low, 6), round(high, 6)]
        assert int(row["wins"]) == pairing["wins"] and float(row["ci95_high"]) == pairing["win_rate_ci95"][1]
        assert 1 <= pairing["distinct_games"] <= 6 and int(row["distinct_games"]) == pairing["distinct_games"]
        assert pairing["openings"] == 0 and row["openings"] == "0"
        score_low, score_high = wilson_interval(pairing["wins"] + pairing["draws"] / 2, 6)
        assert pairing["score_ci95"] == [round(score_low, 6), round(score_high, 6)]
        line = next(text for text in out.splitlines() if text.startswith(pairing["opponent"] + " "))
        keys = ("games", "distinct_games", "wins", "draws", "losses")
        assert line.split()[1:6] == [str(pairing[k]) for k in keys]


def test_tournament_fits_elo_ratings(capsys, tmp_path, checkpoint):
    code, out, err = cli(
        capsys,
        "--tournament",
        "random",
        "alphabeta:2",
        checkpoint,
        "--games",
        8,
        "--num-processes",
        2,
        "--rows",
        5,
        "--columns",
        6,
        "--json",
        tmp_path / "t.json",
    )
    assert code == 0, err
    document = json.loads((tmp_path / "t.json").read_text())
    assert document["mode"] == "tournament" and len(document["pairings"]) == 3
    ratings = {r["agent"]: r for r in document["elo"]["ratings"]}
    assert set(ratings) == {"random", "alphabeta:2", checkpoint}
    assert sum(r["elo"] for r in ratings.values()) == pytest.approx(0.0, abs=0.1)
    assert ratings["alphabeta:2"]["elo"] > ratings["random"]["elo"]
    assert all(r["ci95"][0] < r["elo"] < r["ci95"][1] for r in ratings.values())
    assert re.search(r"rank\s+agent\s+Elo\s+95% CI", out)
    assert out.index("alphabeta:2") < out.index("random")  # ranked by rating


def test_run_directory_is_evaluated_per_checkpoint_and_plotted(capsys, tmp_path, run_dir):
    plot = tmp_path / "plots" / "progress.png"
    code, out, err = cli(
        capsys,
        run_dir,
        "--opponents",
        "random",
        "negamax",
        "--games",
        4,
        "--num-processes",
        1,
        "--plot",
        plot,
        "--json",
        tmp_path / "run.json",
    )
    assert code == 0, err
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and plot.stat().st_size > 10_000
    document = json.loads((tmp_path / "run.json").read_text())
    assert document["mode"] == "run"
    assert [(p["step"], p["opponent"]) for p in document["pairings"]] == [
        (64, "random"),
        (64, "negamax"),
        (128, "random"),
        (128, "negamax"),
    ]
    assert re.search(r"^\s*64\s+random", out, re.M) and re.search(r"^\s*128\s+negamax", out, re.M)


def test_replay_writes_kaggles_html_player_and_a_move_list(capsys, tmp_path, checkpoint):
    html, text = tmp_path / "game.html", tmp_path / "game.txt"
    code, out, err = cli(
        capsys,
        checkpoint,
        "--opponents",
        "random",
        "negamax",
        "--games",
        4,
        "--num-processes",
        1,
        "--replay",
        html,
        "--replay-text",
        text,
        "--replay-pairing",
        1,
        "--replay-game",
        2,
        "--openings",
        "none",
        "--json",
        tmp_path / "r.json",
    )
    assert code == 0, err
    record = play_pairings(
        [build_agent(checkpoint).agent, build_agent("negamax").agent], [(0, 1)], 4, seed=0, board=BOARD
    )[0][2]
    assert not record.agent_first  # game 2 of 4: the agent is second
    position = Position(geometry(**BOARD))
    for column in record.moves:
        position.play(column)
    page = html.read_text()
    assert '"TeamNames": ["negamax", ' in page
    assert json.dumps(position.to_kaggle()) in page  # Kaggle's final board is ours
    assert f'"action": {record.moves[-1]}' in page
    listing = text.read_text()
    assert listing in out
    assert "player 1 (moves first): negamax" in listing
    assert len(re.findall(r"^\s*\d+\. player [12] .*: column \d$", listing, re.M)) == len(record.moves)
    assert position.render() in listing


BAD_INPUT = [
    (["random", "--opponents", "negamx"], "did you mean 'negamax'"),
    (["random", "--opponents", "checkpoint:"], "valid forms: random | negamax"),
    (["missing/model.zip"], "checkpoint 'missing/model.zip' does not exist"),
    (["random", "--opponents", "missing.py"], "Kaggle agent 'missing.py'"),
    (["no/such/run"], "neither an agent spec nor an existing run directory"),
    (["random", "--plot", "x.png"], "--plot needs a run directory"),
    (["random", "--games", "0"], "--games must be >= 1"),
    (["--tournament", "random", "random"], "more than once"),
    (["random", "--opponents", "selfplay"], "only inside training"),
]


@pytest.mark.parametrize("args, message", BAD_INPUT)
def test_bad_input_is_one_line_and_exit_2(capsys, tmp_path, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    code, out, err = cli(capsys, *args)
    assert code == 2
    assert err.startswith("error: ") and err.count("\n") == 1 and message in err
    assert out == ""


def test_checkpoint_on_another_board_is_refused(capsys, checkpoint):
    code, out, err = cli(capsys, checkpoint, "--opponents", "random", "--rows", 6, "--columns", 7)
    assert code == 2
    assert "was trained on a 5x6 with 4 in a row board, but the evaluation board is 6x7 with 4 in a row" in err


def test_real_command_runs_quietly_in_parallel_and_fails_without_traceback(tmp_path, checkpoint):
    def run(*args):
        return subprocess.run(
            [sys.executable, "-m", "connectx_gym.evaluate", *map(str, args)],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=240,
        )

    result = run(checkpoint, "--opponents", "random", "--games", 8, "--num-processes", 2)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""  # no gym banner, no warnings from the workers
    assert "with 2 process(es)" in result.stdout and "random" in result.stdout
    for args in (["random", "--opponents", "negamx"], [str(Path(tmp_path) / "gone.zip")]):
        result = run(*args)
        assert result.returncode == 2
        assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1
        assert "Traceback" not in result.stderr


@pytest.mark.slow
def test_kaggle_file_agents_give_the_same_results_in_any_number_of_processes(tmp_path, checkpoint):
    agent_file = tmp_path / "submission.py"
    agent_file.write_text(
        "import random\n"
        "def agent(observation, configuration):\n"
        "    return random.choice([c for c in range(configuration.columns) if observation.board[c] == 0])\n"
    )
    entries = [build_agent(spec).agent for spec in (str(agent_file), checkpoint, "negamax")]
    pairs = [(0, 1), (0, 2), (1, 2)]
    reference = play_pairings(entries, pairs, 20, seed=9, board=BOARD, num_processes=1)
    assert play_pairings(entries, pairs, 20, seed=9, board=BOARD, num_processes=2) == reference
    assert all(record.forfeit is None for pair in reference for record in pair)
