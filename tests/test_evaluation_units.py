"""The evaluation layer's pieces on their own: pairing results, the score matrices a tournament is
rated on, the CSV and JSON forms, and that the evaluate command imports nothing heavy."""

from __future__ import annotations

import csv
import io
import subprocess
import sys

import numpy as np
import pytest

from connectx_gym.evaluation.match import GameRecord
from connectx_gym.evaluation.plan import evaluation_mode, make_plan
from connectx_gym.evaluation.ratings import bradley_terry
from connectx_gym.evaluation.report import CSV_FIELDS, csv_text, forfeit_lines, pairings_table, ratings_document
from connectx_gym.evaluation.results import MAX_ERRORS_KEPT, PairingResult, pairing_results, score_matrices


def record(index, outcome, agent_first=True, forfeit=None, error=None):
    return GameRecord(index=index, seed=index, agent_first=agent_first, outcome=outcome, forfeit=forfeit, error=error)


def test_pairing_result_counts_seats_and_keeps_few_distinct_errors():
    records = [record(0, "win"), record(1, "draw"), record(2, "loss", agent_first=False)]
    records += [record(3 + i, "win", False, "opponent", f"boom {i % (MAX_ERRORS_KEPT + 2)}") for i in range(20)]
    result = PairingResult("a", "b", 0, 1, records)
    assert (result.total.wins, result.total.draws, result.total.losses) == (21, 1, 1)
    assert result.seats["first"].games == 2 and result.seats["second"].games == 21
    assert result.forfeits("opponent") == 20 and result.forfeits("agent") == 0
    assert len(result.errors()) == MAX_ERRORS_KEPT
    assert result.errors()[0] == "b forfeited (first in game 3): boom 0"
    assert PairingResult("a", "b", 0, 1).to_dict()["win_rate"] is None  # no games: null, not NaN


def test_score_matrices_feed_bradley_terry():
    labels, steps = ["x", "y", "z"], [None, None, None]
    pairs = [(0, 1), (0, 2), (1, 2)]
    records = [
        [record(0, "win"), record(1, "draw")],
        [record(0, "loss"), record(1, "loss")],
        [record(0, "win"), record(1, "win")],
    ]
    results = pairing_results(labels, steps, pairs, records)
    assert [(r.agent, r.opponent) for r in results] == [("x", "y"), ("x", "z"), ("y", "z")]
    scores, games = score_matrices(results, 3)
    assert np.allclose(scores + scores.T, games) and scores[0, 1] == 1.5 and scores[2, 0] == 2.0
    document = ratings_document(labels, bradley_terry(scores, games), prior_draws=1.0)
    assert [entry["agent"] for entry in document["ratings"]] == ["y", "z", "x"]  # by points: 2.5, 2, 1.5 of 4


def test_csv_and_tables_have_one_row_per_pairing():
    results = pairing_results(["a", "b"], [64, None], [(0, 1)], [[record(0, "win"), record(1, "loss", False)]])
    rows = list(csv.DictReader(io.StringIO(csv_text(results))))
    assert list(rows[0]) == CSV_FIELDS and rows[0]["step"] == "64" and rows[0]["second_losses"] == "1"
    table = pairings_table(results, show_step=True).splitlines()
    assert table[0].split()[:3] == ["step", "agent", "opponent"] and table[2].split()[:3] == ["64", "a", "b"]
    assert pairings_table([]).count("\n") == 1  # header and rule only
    assert forfeit_lines(results) == []


def test_plan_pairs_agents_by_mode():
    assert evaluation_mode(None, ["random", "negamax"]) == ("tournament", None)
    assert evaluation_mode("random", None) == ("match", None)
    match = make_plan("match", ["random", "negamax", "alphabeta:1"])
    assert match.pairs == [(0, 1), (0, 2)] and match.labels == ["random", "negamax", "alphabeta:1"]
    assert match.board == {"rows": 6, "columns": 7, "inarow": 4}
    tournament = make_plan("tournament", ["random", "negamax", "alphabeta:1"], rows=5)
    assert tournament.pairs == [(0, 1), (0, 2), (1, 2)] and tournament.board["rows"] == 5


@pytest.mark.parametrize("module", ["connectx_gym.evaluate", "connectx_gym.evaluation.parallel"])
def test_the_command_imports_nothing_heavy(module):
    heavy = ("torch", "stable_baselines3", "sb3_contrib", "kaggle_environments", "ray", "matplotlib", "tqdm")
    code = f"import sys, {module}; print([m for m in {heavy!r} if m in sys.modules])"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
