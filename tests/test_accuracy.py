"""Solver-graded accuracy: the oracle adapter against the project's own exact search, the solver
opponents, grading on hand-made positions, the shipped labelled set, ``evaluate --accuracy``, and
the training run's accuracy columns."""

from __future__ import annotations

import csv
import json
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers import ROOT, run_train, tiny_model

from connectx_gym import evaluate as ev
from connectx_gym.data import OPENINGS_FILE, POSITIONS_FILE
from connectx_gym.errors import UserError
from connectx_gym.evaluation.accuracy import (
    LabelledPositions,
    answer_positions,
    classify_moves,
    grade,
    load_positions,
    phase_of,
)
from connectx_gym.rules.bitboard import Position, geometry
from connectx_gym.search import solver as oracle
from connectx_gym.search.alphabeta import WIN_SCORE, alphabeta_scores

HAS_SOLVER = oracle.solver_available()
needs_solver = pytest.mark.skipif(
    not HAS_SOLVER, reason='the solver extra is not installed (pip install -e ".[solver]")'
)

#: a late position where one quiet move draws and every other loses (no threat on the board to react to)
ZUGZWANG_LIKE = [6, 2, 1, 5, 4, 4, 2, 6, 1, 2, 1, 0, 2, 1, 5, 5, 2, 1, 4, 4, 1, 0, 2, 6, 6, 3, 5, 3, 6, 6]
#: a late position where the player to move wins at once in one column
WIN_IN_ONE = [1, 2, 6, 1, 0, 4, 2, 0, 3, 5, 0, 3, 1, 4, 5, 5, 5, 2, 4, 4, 6, 4, 5, 0, 2, 2, 4, 6, 2, 3]
#: a late position where the opponent threatens to win in column 3 and blocking there wins
FORCED_BLOCK = [3, 4, 5, 2, 0, 0, 0, 0, 5, 0, 5, 1, 1, 1, 3, 4, 4, 4, 0, 4, 1, 5, 1, 1, 2, 3, 6, 2, 2]


def play(moves):
    position = Position(geometry())
    for column in moves:
        position.play(column)
    return position


def exact_scores(moves) -> list[int | None]:
    """Pons scores of every column from the project's own search, to the end of the game."""
    position = play(moves)
    found = alphabeta_scores(position, 42 - position.moves_played)
    out: list[int | None] = [None] * 7
    for column, value in found.items():
        assert value == 0 or abs(value) > WIN_SCORE // 2, "the search must reach the end of the game"
        ply = WIN_SCORE - abs(value) + 1
        out[column] = 0 if value == 0 else oracle.pons_score(ply if value > 0 else -ply, position.moves_played)
    return out


def labelled(*lines) -> LabelledPositions:
    scores = np.array([[np.nan if s is None else s for s in exact_scores(m)] for m in lines], dtype=float)
    return LabelledPositions([list(m) for m in lines], scores, [phase_of(len(m)) for m in lines])


# ---------------------------------------------------------------------------------------- grading
def test_grading_a_win_in_one():
    labels = labelled(WIN_IN_ONE)
    position = play(WIN_IN_ONE)
    wins = [c for c in position.legal_moves() if position.copy().play(c) == position.to_move]
    assert len(wins) == 1, "the hand-made position must have one win in one"
    for column in position.legal_moves():
        result = grade(labels, [column])
        assert result.overall.perfect == (column in wins)
        assert result.overall.good == (labels.scores[0, column] > 0)


def test_grading_a_forced_block():
    labels = labelled(FORCED_BLOCK)
    position = play(FORCED_BLOCK)
    threats = []
    for column in position.legal_moves():
        reply = position.copy()
        reply.to_move = 3 - reply.to_move
        if reply.play(column) == reply.to_move ^ 3:
            threats.append(column)
    assert threats == [3]
    block = grade(labels, [3])
    assert block.overall.perfect == 1 and block.overall.good == 1
    for column in set(position.legal_moves()) - {3}:  # the others lose at once
        result = grade(labels, [column])
        assert result.overall.perfect == 0 and result.overall.good == 0


def test_grading_a_zugzwang_like_late_position():
    labels = labelled(ZUGZWANG_LIKE)
    scores = labels.scores[0]
    legal = [c for c in range(7) if not np.isnan(scores[c])]
    saving = [c for c in legal if scores[c] >= 0]
    assert len(saving) == 1 and len(legal) >= 3
    for column in legal:
        result = grade(labels, [column])
        assert (result.overall.perfect, result.overall.good) == ((1, 1) if column in saving else (0, 0))


def test_lost_positions_make_every_move_good_but_only_the_longest_defence_perfect():
    labels = LabelledPositions([[]], np.array([[-3, -1, -5, -1, -3, -4, -5]], dtype=float), ["opening"])
    assert grade(labels, [2]).overall.good == 1 and grade(labels, [2]).overall.perfect == 0
    assert grade(labels, [1]).overall.perfect == 1 and grade(labels, [3]).overall.perfect == 1


def test_each_move_is_classified_perfect_kept_changed_or_illegal():
    scores = np.array([[-3, -1, -5, -1, np.nan, 2, 0], [3, 1, 0, -2, 3, 1, 1]], dtype=float)
    assert classify_moves(scores, [5, 0]) == ["perfect", "perfect"]
    assert classify_moves(scores, [6, 1]) == ["changed", "kept"]  # a draw given for a win; a slower win
    assert classify_moves(scores, [4, 3]) == ["illegal", "changed"]
    assert classify_moves(scores, [None, 9]) == ["illegal", "illegal"]
    with pytest.raises(ValueError, match="1 moves for 2 positions"):
        classify_moves(scores, [0])


def test_illegal_or_missing_moves_count_as_neither():
    labels = LabelledPositions([[3] * 6 + [0]], np.array([[0, 1, 1, np.nan, 0, 0, 0]]), ["opening"])  # 3 is full
    result = grade(labels, [3])
    assert (result.overall.perfect, result.overall.good, result.illegal) == (0, 0, 1)
    assert grade(labels, [None]).illegal == 1


def test_rates_per_phase_with_wilson_intervals():
    labels = LabelledPositions(
        [[], [0, 1] * 4 + [2], [0, 1] * 11],
        np.array([[1, 0, 0, 0, 0, 0, 0], [0, 1, 1, 0, 0, 0, 0], [0, 0, 0, 0, 0, 0, -1]], dtype=float),
        ["opening", "middle", "late"],
    )
    result = grade(labels, [0, 0, 0])
    assert result.overall.positions == 3 and result.overall.perfect == 2
    document = result.to_dict()
    assert document["phases"]["middle"]["perfect_rate"] == 0.0
    low, high = document["overall"]["perfect_ci95"]
    assert 0 < low < 2 / 3 < high < 1


# ---------------------------------------------------------------------------------------- shipped data
def test_shipped_positions_are_many_deduplicated_and_cover_every_phase():
    labels = load_positions()
    assert len(labels) >= 3000
    assert {phase: labels.phases.count(phase) for phase in ("opening", "middle", "late")} == {
        "opening": 1000,
        "middle": 1400,
        "late": 1100,
    }
    boards = set()
    for position in labels.positions():
        board = np.array(position.to_kaggle()).reshape(6, 7)
        key = min(board.tobytes(), board[:, ::-1].copy().tobytes())
        assert key not in boards, "a position or its mirror image is listed twice"
        boards.add(key)
        # nothing decided within one ply: the player to move cannot win at once
        assert not any(position.copy().play(c) == position.to_move for c in position.legal_moves())
    sources = {json.loads(line)["source"].split(" (")[0] for line in POSITIONS_FILE.read_text().splitlines()}
    assert {"random", "negamax", "solver", "checkpoint"} <= sources and len(sources) >= 6


def test_shipped_late_labels_agree_with_the_projects_own_search():
    items = [json.loads(line) for line in POSITIONS_FILE.read_text().splitlines()]
    late = [item for item in items if item["ply"] >= 32][:25]
    assert len(late) == 25
    for item in late:
        assert item["scores"] == exact_scores(item["moves"]), item["moves"]


def test_training_never_reads_the_labelled_positions():
    # the labels reach a training run only through the evaluation callback (accuracy of the greedy
    # policy, like the win rates); no env, worker, opponent or learner module names them
    package = ROOT / "connectx_gym"
    readers = sorted(
        str(path.relative_to(package))
        for path in package.rglob("*.py")
        if any(name in path.read_text() for name in ("POSITIONS_FILE", "load_positions", "positions-6x7"))
    )
    assert readers == [
        "data/__init__.py",
        "data/generate.py",
        "evaluate.py",
        "evaluation/accuracy.py",
        "evaluation/accuracy_command.py",
        "training/evaluation_callback.py",
    ]


def test_bad_positions_files_name_the_file_and_line(tmp_path):
    cases = {
        "not json\n": "line 1: not a labelled position",
        '{"moves": [0], "scores": [1, 2]}\n': "must list 7 column scores",
        '{"moves": [9], "scores": [0, 0, 0, 0, 0, 0, 0]}\n': "not a game in progress",
        '{"moves": [0], "scores": [0, 0, 0, 0, null, 0, 0]}\n': "column 4 has score None",
        "": "has no positions",
    }
    for text, message in cases.items():
        path = tmp_path / "p.jsonl"
        path.write_text(text)
        with pytest.raises(UserError, match=message):
            load_positions(path)
    with pytest.raises(UserError, match="cannot read the positions file"):
        load_positions(tmp_path / "missing.jsonl")


# ---------------------------------------------------------------------------------------- oracle
@needs_solver
def test_oracle_agrees_with_the_projects_exact_search_on_late_positions():
    solver = oracle.Oracle()
    rng = np.random.default_rng(3)
    checked = 0
    while checked < 30:
        position, moves = Position(geometry()), []
        while not position.done and len(moves) < int(rng.integers(28, 36)):
            moves.append(int(rng.choice(position.legal_moves())))
            position.play(moves[-1])
        if position.done:
            continue
        assert solver.scores(position) == solver.scores_of_moves(moves) == exact_scores(moves), moves
        checked += 1


@needs_solver
def test_solver_is_perfect_and_weak_solver_keeps_the_result():
    labels = load_positions()
    chosen = [i for i, phase in enumerate(labels.phases) if phase != "middle"][::8]  # the cheap phases
    subset = LabelledPositions(
        [labels.moves[i] for i in chosen], labels.scores[chosen], [labels.phases[i] for i in chosen]
    )
    perfect = grade(subset, answer_positions(oracle.SolverOpponent(), subset, seed=1))
    assert perfect.overall.perfect == perfect.overall.positions > 200
    weak = grade(subset, answer_positions(oracle.SolverOpponent(weak=True), subset, seed=1))
    assert weak.overall.good == weak.overall.positions
    assert weak.overall.perfect < weak.overall.positions  # it does pick other result-keeping moves


@needs_solver
def test_solver_opponent_draws_ties_from_the_games_rng_and_pickles():
    from connectx_gym.agents.specs import make_opponent

    solver = make_opponent("solver")
    assert solver.name == "solver" and make_opponent("solver:weak").name == "solver:weak"
    empty = Position(geometry())
    picks = {solver.act(play([3, 3, 3, 3]), np.random.default_rng(seed)) for seed in range(12)}
    assert len(picks) >= 1 and picks <= set(range(7))
    weak = make_opponent("solver:weak")
    weak_picks = {weak.act(empty, np.random.default_rng(seed)) for seed in range(20)}
    assert weak_picks == {3}  # only the centre keeps the first player's win
    clone = pickle.loads(pickle.dumps(solver))
    assert clone == solver and clone.act(empty, np.random.default_rng(0)) == 3


@needs_solver
def test_solver_refuses_other_boards():
    from connectx_gym.agents.specs import make_opponent

    with pytest.raises(oracle.SolverBoardError, match="only 6x7 boards with 4 in a row, not 5x6 with 4 in a row"):
        make_opponent("solver").act(Position(geometry(5, 6, 4)), np.random.default_rng(0))


def test_missing_solver_extra_names_the_install_command(monkeypatch):
    monkeypatch.setitem(sys.modules, "bitbully", None)  # import bitbully now raises ImportError
    with pytest.raises(UserError, match=r'needs the perfect Connect-4 solver .*pip install -e "\.\[solver\]"'):
        oracle.import_solver("the opponent spec 'solver'")
    assert not oracle.solver_available()


def test_missing_solver_extra_is_one_error_line_from_the_cli(tmp_path):
    code = (
        "import sys; sys.modules['bitbully'] = None; from connectx_gym import evaluate; "
        "sys.exit(evaluate.main(['solver', '--opponents', 'random', '--games', '2']))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1
    assert 'pip install -e ".[solver]"' in result.stderr


def test_bad_solver_spec_argument():
    from connectx_gym.agents.specs import parse_spec
    from connectx_gym.errors import SpecError

    with pytest.raises(SpecError, match="solver takes no argument or 'weak', got 'strong'"):
        parse_spec("solver:strong")


# ---------------------------------------------------------------------------------------- the command
def cli(capsys, *args):
    code = ev.main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def small_positions(tmp_path: Path, count: int = 40) -> Path:
    lines = POSITIONS_FILE.read_text().splitlines()
    path = tmp_path / "small.jsonl"
    path.write_text("\n".join(lines[:: len(lines) // count][:count]) + "\n")
    return path


def test_accuracy_command_prints_and_writes_json_and_csv(capsys, tmp_path):
    positions = small_positions(tmp_path)
    out_json, out_csv = tmp_path / "a.json", tmp_path / "a.csv"
    args = ["alphabeta:2", "--accuracy", "--positions", positions, "--json", out_json, "--csv", out_csv]
    code, out, err = cli(capsys, *args, "--num-processes", 1)
    assert code == 0, err
    assert "perfect move [95% CI]" in out and "opening (0-8)" in out and "late (21+)" in out
    document = json.loads(out_json.read_text())
    assert document["mode"] == "accuracy" and document["overall"]["positions"] == 40
    rows = list(csv.DictReader(out_csv.open()))
    assert rows[0]["phase"] == "all" and float(rows[0]["perfect_rate"]) == document["overall"]["perfect_rate"]
    # the moves do not depend on the number of processes
    code, _, _ = cli(capsys, *args, "--num-processes", 2)
    assert code == 0 and json.loads(out_json.read_text())["overall"] == document["overall"]


def test_accuracy_of_a_checkpoint_uses_one_batched_pass(capsys, tmp_path):
    from connectx_gym.runtime.checkpoints import save_model

    path = tmp_path / "m.zip"
    save_model(tiny_model({"rows": 6, "columns": 7, "inarow": 4}), path)
    code, out, err = cli(capsys, path, "--accuracy", "--positions", small_positions(tmp_path))
    assert code == 0, err
    assert "models" not in out and " 40 " in out


@pytest.mark.parametrize(
    "args, message",
    [
        (["random", "--positions", "x.jsonl"], "--positions x.jsonl needs --accuracy"),
        (["random", "--accuracy", "--opponents", "negamax"], "drop --opponents"),
        (["--tournament", "random", "negamax", "--accuracy"], "drop --tournament"),
        (["random", "--accuracy", "--rows", "5"], "--rows 5: the labelled positions are for 6x7"),
        (["random", "--accuracy", "--positions", "gone.jsonl"], "cannot read the positions file 'gone.jsonl'"),
        (["alphabetta:2", "--accuracy"], "unknown opponent spec 'alphabetta:2'"),
    ],
)
def test_accuracy_command_errors(capsys, tmp_path, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    code, out, err = cli(capsys, *args)
    assert code == 2 and out == ""
    assert err.startswith("error: ") and err.count("\n") == 1 and message in err


def test_accuracy_refuses_a_checkpoint_of_another_board(capsys, tmp_path):
    from connectx_gym.runtime.checkpoints import save_model

    path = tmp_path / "m.zip"
    save_model(tiny_model({"rows": 5, "columns": 6, "inarow": 4}), path)
    code, _, err = cli(capsys, path, "--accuracy")
    assert code == 2 and "trained on a 5x6 with 4 in a row board" in err


# ---------------------------------------------------------------------------------------- training
def test_training_logs_accuracy_and_skips_it_on_other_boards(tmp_path):
    result = run_train(tmp_path, "--config", str(ROOT / "configs" / "quick.yaml"), "--set", "train.run_name=a")
    assert result.returncode == 0, result.stderr
    rows = list(csv.DictReader((tmp_path / "models" / "a" / "progress.csv").open()))
    rates = [float(row["eval/perfect_move_rate"]) for row in rows if row.get("eval/perfect_move_rate")]
    assert rates and all(0 <= rate <= 1 for rate in rates)
    note = (tmp_path / "models" / "a" / "best_model.txt").read_text()
    assert "perfect_move_rate" in note and "score" in note
    result = run_train(
        tmp_path, "--config", str(ROOT / "configs" / "quick.yaml"), "--set", "train.run_name=b",
        "--set", "env.rows=5", "--set", "env.columns=6",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    header = (tmp_path / "models" / "b" / "progress.csv").read_text().splitlines()[0]
    assert "eval/mean_win_rate" in header and "perfect_move_rate" not in header


def test_openings_file_is_shipped():
    assert OPENINGS_FILE.exists() and len(OPENINGS_FILE.read_text().splitlines()) >= 100


@needs_solver
def test_training_refuses_the_solver_on_another_board_before_writing(tmp_path):
    result = run_train(
        tmp_path, "--config", str(ROOT / "configs" / "quick.yaml"), "--set", "env.rows=5",
        "--set", "env.opponent={solver: 1, random: 1}",
    )  # fmt: skip
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip() == (
        "error: env.opponent: the opponent 'solver' plays only 6x7 boards with 4 in a row, not 5x7 with 4 in a row"
    )
    assert not (tmp_path / "models").exists()
