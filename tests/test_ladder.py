"""The Elo ladder: anchored Bradley-Terry ratings (random at exactly 0), monotone ratings on synthetic
rung results, the shipped rung file, a small end-to-end ``evaluate --ladder`` on a test rung file,
rebuilding a rung file, the Elo plot and the ladder's argument errors."""

from __future__ import annotations

import json
import math
import re

import numpy as np
import pytest

from connectx_gym import evaluate as ev
from connectx_gym.data import LADDER_FILE, OPENINGS_FILE
from connectx_gym.errors import UserError
from connectx_gym.evaluation import ladder as ladder_module
from connectx_gym.evaluation.ladder import (
    ANCHOR,
    RUNGS,
    Ladder,
    RungPair,
    fit_ladder,
    ladder_file_document,
    ladder_matrices,
    load_ladder,
    rebuild,
    rung_games,
)
from connectx_gym.evaluation.openings import load_openings, suite_digest
from connectx_gym.evaluation.ratings import ELO_PER_NATURAL_UNIT, Z95, bradley_terry

PNG = b"\x89PNG\r\n\x1a\n"


def cli(capsys, *args):
    code = ev.main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def expected_pair(a: str, b: str, elo_a: float, elo_b: float, openings: int) -> RungPair:
    """A rung pair whose per-opening score is exactly the Bradley-Terry expectation."""
    p = 1.0 / (1.0 + 10 ** ((elo_b - elo_a) / 400))
    wins = round(2 * openings * p)
    return RungPair(a, b, 2 * openings, wins, 0, 2 * openings - wins, 2 * openings, openings, openings * p)


# ---------------------------------------------------------------------------------------- ratings
def test_an_anchor_fixes_one_player_at_zero_and_keeps_the_differences():
    truth = np.array([0.0, 150.0, 400.0])
    p = 1.0 / (1.0 + 10 ** ((truth[None, :] - truth[:, None]) / 400))
    games = np.full((3, 3), 500.0)
    np.fill_diagonal(games, 0.0)
    centred = bradley_terry(p * games, games, prior_draws=0)
    anchored = bradley_terry(p * games, games, prior_draws=0, anchor=0)
    assert anchored.elo[0] == 0.0 and anchored.stderr[0] == 0.0 and anchored.low[0] == anchored.high[0] == 0.0
    assert anchored.elo == pytest.approx(centred.elo - centred.elo[0])
    assert anchored.elo == pytest.approx(truth, abs=1e-6)
    assert (anchored.anchor, centred.anchor) == (0, None)
    # the interval of player 1 is that of its difference to player 0: var(t1) + var(t0) - 2 cov(t1, t0)
    weights = games * p * p.T
    information = np.diag(weights.sum(axis=1)) - weights
    covariance = np.linalg.pinv(information)
    variance = covariance[1, 1] + covariance[0, 0] - 2 * covariance[0, 1]
    assert anchored.stderr[1] == pytest.approx(math.sqrt(variance) * ELO_PER_NATURAL_UNIT)
    assert anchored.high[1] - anchored.elo[1] == pytest.approx(Z95 * anchored.stderr[1])
    with pytest.raises(ValueError, match="anchor must be a player index in 0..2, got 3"):
        bradley_terry(p * games, games, anchor=3)


def test_ladder_elo_is_monotone_in_synthetic_rung_strength():
    # rung i beats rung j with a probability that grows with i - j: the fitted ratings grow with i
    rungs = list(RUNGS)
    truth = [0.0, 120.0, 260.0, 380.0, 520.0, 700.0, 850.0, 1000.0, 1200.0]
    pairs = [
        expected_pair(rungs[i], rungs[j], truth[i], truth[j], 120 if j - i <= 2 else 20)
        for i in range(len(rungs))
        for j in range(i + 1, len(rungs))
    ]
    ladder = Ladder(rungs, pairs, seed=0, suite_size=120)
    scores, trials = ladder_matrices(rungs, ladder, [])
    ratings = fit_ladder(rungs, scores, trials, prior_draws=0.0)
    assert ratings.elo[rungs.index(ANCHOR)] == 0.0  # exactly
    assert np.all(np.diff(ratings.elo) > 0)
    assert ratings.elo == pytest.approx(truth, abs=1.0)
    with_prior = fit_ladder(rungs, scores, trials, prior_draws=1.0)
    assert with_prior.elo[0] == 0.0 and np.all(np.diff(with_prior.elo) > 0)
    assert np.all(with_prior.low[1:] < with_prior.elo[1:]) and np.all(with_prior.elo[1:] < with_prior.high[1:])


# ---------------------------------------------------------------------------------------- the rung file
def test_the_shipped_rung_file_matches_the_rung_list_and_schedule():
    ladder = load_ladder(LADDER_FILE, with_solver=True)
    assert ladder.rungs == list(RUNGS) and ladder.suite_size == 120
    assert len(ladder.pairs) == len(RUNGS) * (len(RUNGS) - 1) // 2
    assert {(pair.a, pair.b) for pair in ladder.pairs} == {
        (RUNGS[i], RUNGS[j]) for i in range(len(RUNGS)) for j in range(i + 1, len(RUNGS))
    }
    for pair in ladder.pairs:
        assert pair.games == rung_games(RUNGS.index(pair.a), RUNGS.index(pair.b), 120)
        assert pair.openings == pair.games // 2 and 0 < pair.distinct_games <= pair.games
    raw = json.loads(LADDER_FILE.read_text())
    assert raw["board"] == {"rows": 6, "columns": 7, "inarow": 4} and isinstance(raw["seed"], int)
    assert raw["suite_digest"] == suite_digest(load_openings(OPENINGS_FILE))
    assert all(entry["score"] == entry["wins"] + entry["draws"] / 2 for entry in raw["pairs"])
    # the file's own ratings: random at 0 below everyone, then negamax, alphabeta:1, the deeper searches
    # (not in depth order: alphabeta:2 holds its own against 3 and 4), and the solver on top
    scores, trials = ladder_matrices(ladder.rungs, ladder, [])
    elo = dict(zip(ladder.rungs, fit_ladder(ladder.rungs, scores, trials, prior_draws=1.0).elo))
    deeper = [elo[f"alphabeta:{d}"] for d in range(2, 7)]
    assert elo["random"] == 0.0 < elo["negamax"] < elo["alphabeta:1"] < min(deeper)
    assert max(deeper) < elo["solver"]


def test_without_bitbully_the_solver_rung_is_dropped():
    ladder = load_ladder(LADDER_FILE, with_solver=False)
    assert ladder.rungs == list(RUNGS[:-1])
    assert all("solver" not in (pair.a, pair.b) for pair in ladder.pairs)
    assert len(ladder.pairs) == 28


@pytest.mark.parametrize(
    "content, message",
    [
        ("{", "is malformed"),
        ('{"rungs": []}', "is malformed (KeyError"),
        (
            '{"rungs": ["negamax"], "pairs": [], "seed": 0, "suite_size": 120, "suite_digest": "59c1fac90687e511", '
            '"board": {"rows": 6, "columns": 7, "inarow": 4}}',
            "must list distinct rungs including 'random'",
        ),
        (
            '{"rungs": ["random", "negamax"], "pairs": [], "seed": 0, "suite_size": 120, "suite_digest": "0123", '
            '"board": {"rows": 6, "columns": 7, "inarow": 4}}',
            "was played from another opening suite (120 openings, digest 0123) than the shipped one (120, ",
        ),
    ],
)
def test_a_bad_rung_file_names_the_file(tmp_path, content, message):
    path = tmp_path / "ladder.json"
    path.write_text(content)
    with pytest.raises(UserError) as caught:
        load_ladder(path)
    assert f"the ladder file '{path}'" in str(caught.value) and message in str(caught.value)


# ---------------------------------------------------------------------------------------- evaluate --ladder
@pytest.fixture
def small_ladder(tmp_path, monkeypatch):
    """A test rung file: random, negamax and alphabeta:1, with made-up but plausible results."""
    pairs = [
        RungPair("random", "negamax", 20, 1, 0, 19, 20, 10, 0.5),
        RungPair("random", "alphabeta:1", 20, 2, 0, 18, 20, 10, 1.0),
        RungPair("negamax", "alphabeta:1", 20, 8, 2, 10, 18, 10, 4.5),
    ]
    ladder = Ladder(["random", "negamax", "alphabeta:1"], pairs, seed=5, suite_size=120)
    path = tmp_path / "ladder-test.json"
    path.write_text(json.dumps(ladder_file_document(ladder)))
    monkeypatch.setattr(ladder_module, "LADDER_FILE", path)
    return path


def test_ladder_rates_the_agent_against_the_rungs(capsys, tmp_path, small_ladder):
    outputs = {name: tmp_path / name for name in ("l.json", "l.csv", "l.png")}
    code, out, err = cli(
        capsys, "alphabeta:2", "--ladder", "--games", 8, "--num-processes", 1,
        "--json", outputs["l.json"], "--csv", outputs["l.csv"], "--plot", outputs["l.png"],
    )  # fmt: skip
    assert code == 0, err
    assert "8 games per pairing (4 openings of 120 from the opening suite, each played in both seats)" in out
    assert re.search(r"rank\s+player\s+Elo\s+95% CI\s+games\s+agent W-D-L\s+distinct", out)
    assert re.search(r"^\s*\d+\s+random\s+\+0\s+\[\+0, \+0\]\s+48\s", out, re.M)  # 20 + 20 rung games + 8
    assert re.search(r"^\s*\d+\s+alphabeta:2 <- agent\s+[+-]\d+", out, re.M)
    assert "random = 0" in out and "ladder run time:" in out and "rung games: 60 in 3 pairs" in out
    document = json.loads(outputs["l.json"].read_text())
    assert document["mode"] == "ladder" and document["elo"]["anchor"] == "random = 0"
    ratings = {entry["agent"]: entry for entry in document["elo"]["ratings"]}
    assert ratings["random"]["elo"] == 0.0 and ratings["random"]["ci95"] == [0.0, 0.0]
    assert set(ratings) == {"alphabeta:2", "random", "negamax", "alphabeta:1"}
    assert ratings["alphabeta:2"]["elo"] > ratings["random"]["elo"]
    assert [p["opponent"] for p in document["pairings"]] == ["random", "negamax", "alphabeta:1"]
    assert all(p["games"] == 8 and p["openings"] == 4 for p in document["pairings"])
    assert document["ladder"]["rungs"] == ["random", "negamax", "alphabeta:1"] and document["ladder"]["rung_seed"] == 5
    assert outputs["l.csv"].read_text().count("\n") == 4
    assert outputs["l.png"].read_bytes()[:8] == PNG


def test_an_agent_that_is_a_rung_is_labelled_apart(capsys, tmp_path, small_ladder):
    code, out, err = cli(capsys, "negamax", "--ladder", "--games", 2, "--num-processes", 1, "--json", tmp_path / "j")
    assert code == 0, err
    labels = {entry["agent"] for entry in json.loads((tmp_path / "j").read_text())["elo"]["ratings"]}
    assert labels == {"negamax (agent)", "random", "negamax", "alphabeta:1"}


def test_rebuild_plays_every_rung_pair_and_writes_a_loadable_file(tmp_path, monkeypatch):
    monkeypatch.setattr(ladder_module, "RUNGS", ("random", "negamax", "alphabeta:1"))
    monkeypatch.setattr(ladder_module, "rung_games", lambda i, j, suite: 4 if abs(i - j) == 1 else 2)
    path = tmp_path / "rebuilt.json"
    built = rebuild(path, seed=3, num_processes=1, with_solver=False)
    loaded = load_ladder(path)
    assert loaded.rungs == built.rungs == ["random", "negamax", "alphabeta:1"] and loaded.seed == 3
    assert [(p.a, p.b, p.games, p.openings) for p in loaded.pairs] == [
        ("random", "negamax", 4, 2),
        ("random", "alphabeta:1", 2, 1),
        ("negamax", "alphabeta:1", 4, 2),
    ]
    assert loaded.pairs == built.pairs
    assert rebuild(tmp_path / "again.json", seed=3, num_processes=2, with_solver=False).pairs == built.pairs


def test_tournaments_plot_their_elo_ratings(capsys, tmp_path):
    plot = tmp_path / "elo.png"
    code, out, err = cli(
        capsys, "--tournament", "random", "alphabeta:1", "--games", 4, "--rows", 5, "--columns", 6,
        "--num-processes", 1, "--plot", plot,
    )  # fmt: skip
    assert code == 0, err
    assert plot.read_bytes()[:8] == PNG and f"wrote {plot}" in out


BAD_LADDER = [
    (["random", "--ladder", "--tournament", "negamax", "alphabeta:1"], "does not combine with --tournament"),
    (["--ladder", "--tournament", "negamax", "alphabeta:1"], "does not combine with --tournament"),
    (["random", "--ladder", "--opponents", "negamax"], "rungs; drop --opponents (or --ladder)"),
    (["random", "--ladder", "--rows", "7", "--columns", "8"], "--ladder plays 6x7 with 4 in a row and 5x6 with 4"),
    (["random", "--ladder", "--openings", "none"], "--ladder plays the shipped opening suite"),
    (["random", "--ladder", "--games", "3"], "--games must be even with openings"),
    (["--ladder"], "name an agent to evaluate"),
    (["{run}", "--ladder"], "--ladder rates one agent, not the run directory"),
]  # fmt: skip


@pytest.mark.parametrize("args, message", BAD_LADDER)
def test_bad_ladder_arguments_are_one_line_and_exit_2(capsys, tmp_path, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "run").mkdir()
    code, out, err = cli(capsys, *[arg.replace("{run}", "run") for arg in args])
    assert code == 2 and out == ""
    assert err.startswith("error: ") and err.count("\n") == 1 and message in err


def test_an_mcts_agent_takes_the_ladder(capsys, tmp_path, small_ladder):
    from helpers import tiny_model

    from connectx_gym.runtime.checkpoints import save_model

    path = tmp_path / "model.zip"
    save_model(tiny_model({"rows": 6, "columns": 7, "inarow": 4}), path)
    spec = f"mcts:{path}:8"
    code, out, err = cli(capsys, spec, "--ladder", "--games", 4, "--num-processes", 1, "--json", tmp_path / "j")
    assert code == 0, err
    document = json.loads((tmp_path / "j").read_text())
    assert {entry["agent"] for entry in document["elo"]["ratings"]} == {spec, "random", "negamax", "alphabeta:1"}
    assert all(p["games"] == 4 for p in document["pairings"])


BOARD_5X6 = {"rows": 5, "columns": 6, "inarow": 4}


def test_the_5x6_ladder_rates_an_agent_on_its_own_rungs(capsys, tmp_path):
    code, out, err = cli(
        capsys, "alphabeta:2", "--ladder", "--rows", 5, "--columns", 6, "--games", 4, "--num-processes", 1,
        "--json", tmp_path / "l.json",
    )  # fmt: skip
    assert code == 0, err
    ratings = {entry["agent"] for entry in json.loads((tmp_path / "l.json").read_text())["elo"]["ratings"]}
    assert ratings == {"alphabeta:2 (agent)", "random", "negamax", *(f"alphabeta:{d}" for d in range(1, 7))}
    ladder = load_ladder(board=BOARD_5X6)
    assert ladder.board == BOARD_5X6 and "solver" not in ladder.rungs and ladder.suite_size == 60


def test_a_rebuilt_5x6_ladder_is_for_its_board_only(tmp_path, monkeypatch):
    monkeypatch.setattr(ladder_module, "RUNGS", ("random", "alphabeta:1"))
    monkeypatch.setattr(ladder_module, "rung_games", lambda i, j, suite: 2)
    path = tmp_path / "ladder-5x6.json"
    built = rebuild(path, seed=1, num_processes=1, board=BOARD_5X6)
    assert json.loads(path.read_text())["board"] == BOARD_5X6
    assert load_ladder(path, board=BOARD_5X6).pairs == built.pairs
    with pytest.raises(UserError, match="is for a 5x6 with 4 in a row board, not 6x7 with 4 in a row"):
        load_ladder(path)
