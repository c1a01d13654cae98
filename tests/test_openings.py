"""Opening suites: the loader and its errors, paired games (each opening twice, seats swapped), distinct
games of deterministic players, intervals over openings, process-count independence and the
``--openings`` options of the evaluate command."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

import pytest

from connectx_gym import evaluate as ev
from connectx_gym.data import OPENINGS_FILE
from connectx_gym.errors import UserError
from connectx_gym.evaluation.match import GameRecord, game_setup, play_opponent_games
from connectx_gym.evaluation.openings import default_openings, load_openings, resolve_openings
from connectx_gym.evaluation.parallel import play_pairings
from connectx_gym.evaluation.plan import build_agent
from connectx_gym.evaluation.ratings import wilson_interval
from connectx_gym.evaluation.results import PairingResult, score_matrices
from connectx_gym.rules.bitboard import Position, geometry

BOARD_6X7 = {"rows": 6, "columns": 7, "inarow": 4}
BOARD_5X6 = {"rows": 5, "columns": 6, "inarow": 4}


def cli(capsys, *args):
    code = ev.main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


@dataclass
class Deterministic:
    """A player whose column depends on the position only (never on the game's generator); players of
    different ``shift`` choose different columns wherever there is a choice, so they never transpose."""

    shift: int
    name: str = "deterministic"

    def act(self, position: Position, rng) -> int:
        legal = position.legal_moves()
        return legal[(hash((position.stones[1], position.stones[2])) + self.shift) % len(legal)]


# ---------------------------------------------------------------------------------------- the loader
def test_shipped_suite_loads_distinct_unfinished_openings():
    openings = load_openings(OPENINGS_FILE)
    assert len(openings) == 120
    assert {opening.ply for opening in openings} == {2, 3, 4, 5, 6}
    assert len({opening.moves for opening in openings}) == 120
    assert all(abs(opening.score) <= 2 for opening in openings)
    assert openings[0].moves == (0, 3)


def test_a_good_file_loads_and_blank_lines_are_skipped(tmp_path):
    path = tmp_path / "suite.jsonl"
    path.write_text('{"moves": [3, 3], "ply": 2, "score": 0}\n\n{"moves": [0]}\n{"moves": []}\n')
    openings = load_openings(path)
    assert [opening.moves for opening in openings] == [(3, 3), (0,), ()]
    assert [opening.score for opening in openings] == [0, None, None]
    suite = resolve_openings(str(path), BOARD_6X7)
    assert suite.source == str(path) and suite.moves() == [(3, 3), (0,), ()]


BAD_LINES = [
    ("{not json", "not JSON"),
    ('{"ply": 2}', 'an object with a "moves" list'),
    ("[3, 3]", 'an object with a "moves" list'),
    ('{"moves": [3, "4"]}', '"moves" must be a list of column numbers'),
    ('{"moves": [3, true]}', '"moves" must be a list of column numbers'),
    ('{"moves": [3, 7]}', "move 2 (column 7) is illegal on the 6x7 with 4 in a row board"),
    ('{"moves": [-1]}', "move 1 (column -1) is illegal"),
    ('{"moves": [0, 0, 0, 0, 0, 0, 0]}', "move 7 (column 0) is illegal"),
    ('{"moves": [0, 1, 0, 1, 0, 1, 0]}', "the game is over after move 7 (won by player 1)"),
    ('{"moves": [3, 3], "ply": 3}', '"ply" is 3 but there are 2 moves'),
    ('{"moves": [3, 3], "score": "even"}', '"score" must be an integer'),
    ('{"moves": [2, 2]}', "repeats the opening of line 1"),
]


@pytest.mark.parametrize("line, message", BAD_LINES)
def test_a_bad_line_names_the_file_and_line(tmp_path, line, message):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"moves": [2, 2]}\n' + line + "\n")
    with pytest.raises(UserError) as caught:
        load_openings(path)
    text = str(caught.value)
    assert f"opening suite '{path}', line 2: " in text and message in text and "\n" not in text


def test_an_empty_or_missing_file_is_a_user_error(tmp_path):
    (tmp_path / "empty.jsonl").write_text("\n")
    with pytest.raises(UserError, match=r"opening suite '.*empty.jsonl' holds no opening"):
        load_openings(tmp_path / "empty.jsonl")
    with pytest.raises(UserError, match=r"cannot read the opening suite '.*gone.jsonl'"):
        load_openings(tmp_path / "gone.jsonl")


def test_the_suite_is_the_default_where_one_is_shipped_and_refused_elsewhere():
    board_7x8 = {"rows": 7, "columns": 8, "inarow": 4}
    assert default_openings(BOARD_6X7) == default_openings(BOARD_5X6) == "suite"
    assert default_openings(board_7x8) == "none"
    assert len(resolve_openings(None, BOARD_6X7)) == 120 and len(resolve_openings(None, BOARD_5X6)) == 60
    assert resolve_openings(None, board_7x8) is None and resolve_openings("none", BOARD_6X7) is None
    with pytest.raises(UserError, match="not the 7x8 with 4 in a row board"):
        resolve_openings("suite", board_7x8)


def test_balanced_openings_are_distinct_undecided_and_spread_over_plies(tmp_path):
    from connectx_gym.evaluation.openings import balanced_openings, main
    from connectx_gym.search.alphabeta import alphabeta_scores
    from connectx_gym.search.targets import DECIDED

    board = {"rows": 4, "columns": 5, "inarow": 3}
    openings = balanced_openings(board, 12, depth=4, plies=(2, 3))
    assert [o["ply"] for o in openings] == [2] * 6 + [3] * 6
    # 4x5 has 9 distinct 2-ply positions up to mirroring: the 3-ply ones make up the rest
    many = balanced_openings(board, 24, depth=4, plies=(2, 3))
    assert len(many) == 24 and 0 < sum(o["ply"] == 2 for o in many) < 12
    positions = set()
    for opening in openings:
        position = Position(geometry(4, 5, 3))
        for column in opening["moves"]:
            position.play(column)
        best = max(alphabeta_scores(position, 4).values())
        assert best == opening["score"] and abs(best) < DECIDED
        cells = tuple(position.to_kaggle())
        mirror = tuple(v for r in range(4) for v in reversed(cells[r * 5 : (r + 1) * 5]))
        assert cells not in positions and mirror not in positions
        positions.add(cells)
    path = tmp_path / "suite.jsonl"
    assert (
        main(["--rows", "4", "--columns", "5", "--inarow", "3", "--count", "6", "--depth", "4", "-o", str(path)]) == 0
    )
    assert len(load_openings(path, board)) == 6


def test_the_shipped_5x6_suite_is_what_the_generator_writes():
    from connectx_gym.data import openings_file
    from connectx_gym.evaluation.openings import balanced_openings

    shipped = [json.loads(line) for line in openings_file(BOARD_5X6).read_text().splitlines()]
    assert shipped == balanced_openings(BOARD_5X6, 60)


def test_a_suite_file_is_checked_on_the_board_played(tmp_path):
    path = tmp_path / "wide.jsonl"
    path.write_text('{"moves": [6, 6]}\n')
    assert len(resolve_openings(str(path), BOARD_6X7)) == 1
    with pytest.raises(UserError, match=r"line 1: move 1 \(column 6\) is illegal on the 5x6"):
        resolve_openings(str(path), BOARD_5X6)


# ---------------------------------------------------------------------------------------- paired games
def test_game_setup_pairs_openings_with_seats_swapped():
    assert [game_setup(g, 8, 3) for g in range(8)] == [
        (True, 0), (False, 0), (True, 1), (False, 1), (True, 2), (False, 2), (True, 0), (False, 0),
    ]  # fmt: skip
    assert [game_setup(g, 5) for g in range(5)] == [(True, None)] * 3 + [(False, None)] * 2  # the empty board


def test_games_are_paired_and_start_with_their_opening():
    openings = [opening.moves for opening in load_openings(OPENINGS_FILE)][:5]
    records = play_opponent_games("alphabeta:1", "random", 10, seed=7, openings=openings)
    for g, record in enumerate(records):
        assert (record.index, record.seed, record.opening) == (g, 7 + g, g // 2)
        assert record.agent_first == (g % 2 == 0)
        assert tuple(record.moves[: len(openings[g // 2])]) == openings[g // 2]
        position = Position(geometry())
        for column in record.moves:
            position.play(column)
        assert position.done  # the record replays to the finished game
    # any subset plays as in the full match
    assert play_opponent_games("alphabeta:1", "random", 10, seed=7, indices=[9, 4], openings=openings) == [
        records[9],
        records[4],
    ]


def test_deterministic_players_give_one_distinct_game_per_opening_and_seat():
    openings = [opening.moves for opening in load_openings(OPENINGS_FILE)]
    players = Deterministic(0), Deterministic(1)
    records = play_opponent_games(*players, 2 * len(openings), seed=0, openings=openings)
    result = PairingResult("a", "b", 0, 1, records)
    assert result.openings == 120
    # 240 games, one per opening and seat, except where a game from a short opening runs into a longer
    # opening of the suite and the players continue it as they would from there (a transposition)
    games: dict[tuple[int, ...], list[GameRecord]] = {}
    for game in records:
        games.setdefault(tuple(game.moves), []).append(game)
    for same in games.values():
        assert len({game.opening for game in same}) == len(same)  # the two seats of an opening never play alike
        lines = sorted((openings[game.opening] for game in same), key=len)
        assert all(longer[: len(lines[0])] == lines[0] for longer in lines)  # the openings extend each other
    transposed = sum(len(same) - 1 for same in games.values())
    assert result.distinct_games == 240 - transposed and transposed <= 12
    # the seed plays no part: these players replay the very same games with another seed, and around
    # the suite a second time
    again = play_opponent_games(*players, 4 * len(openings), seed=1000, openings=openings)
    assert [r.moves for r in again] == [r.moves for r in records] * 2
    assert PairingResult("a", "b", 0, 1, again).distinct_games == result.distinct_games
    # from the empty board the same players replay one game per seat
    empty = PairingResult("a", "b", 0, 1, play_opponent_games(*players, 40, seed=0))
    assert empty.distinct_games == 2 and empty.openings == 0


def test_records_do_not_depend_on_the_number_of_processes():
    openings = [opening.moves for opening in load_openings(OPENINGS_FILE)]
    agents = [build_agent(spec).agent for spec in ("alphabeta:1", "random", "negamax")]
    pairs = [(0, 1), (0, 2), (1, 2)]
    reference = play_pairings(agents, pairs, 12, seed=3, board=BOARD_6X7, num_processes=1, openings=openings)
    assert [[r.opening for r in records] for records in reference] == [[g // 2 for g in range(12)]] * 3
    assert play_pairings(agents, pairs, 12, seed=3, board=BOARD_6X7, num_processes=2, openings=openings) == reference
    assert play_pairings(agents, pairs, 12, seed=3, board=BOARD_6X7, num_processes=1) != reference  # no openings


# ---------------------------------------------------------------------------------------- intervals
def record(index, outcome, opening=None):
    return GameRecord(index=index, seed=index, agent_first=index % 2 == 0, outcome=outcome, opening=opening)


def test_intervals_count_openings_with_the_mean_of_their_two_games():
    outcomes = ["win", "win", "win", "loss", "draw", "loss"]  # openings 0, 1, 2: means 1, 1/2, 1/4
    result = PairingResult("a", "b", 0, 1, [record(g, o, g // 2) for g, o in enumerate(outcomes)])
    assert result.openings == 3 and result.games == 6
    assert result.score_ci == wilson_interval(1.75, 3)
    assert result.win_rate_ci == wilson_interval(1.5, 3)
    assert result.score == pytest.approx(3.5 / 6) and result.win_rate == pytest.approx(3 / 6)
    scores, trials = score_matrices([result], 2)
    assert (scores[0, 1], scores[1, 0], trials[0, 1]) == (1.75, 1.25, 3)
    document = result.to_dict()
    assert document["openings"] == 3 and document["score_ci95"] == [round(x, 6) for x in wilson_interval(1.75, 3)]
    # from the empty board every game is a trial, as before
    plain = PairingResult("a", "b", 0, 1, [record(g, o) for g, o in enumerate(outcomes)])
    assert plain.openings == 0 and plain.win_rate_ci == wilson_interval(3, 6)
    assert plain.score_ci == wilson_interval(3.5, 6) and score_matrices([plain], 2)[1][0, 1] == 6


def test_an_opening_played_twice_over_is_still_one_trial():
    # 4 games of one opening (the suite cycled): one trial scoring their mean
    result = PairingResult("a", "b", 0, 1, [record(g, o, 0) for g, o in enumerate(["win", "loss", "win", "win"])])
    assert result.trials({"win": 1.0, "draw": 0.5, "loss": 0.0}) == (0.75, 1)


# ---------------------------------------------------------------------------------------- the command
def test_the_suite_is_the_default_with_two_games_per_opening(capsys, tmp_path):
    code, out, err = cli(capsys, "random", "--opponents", "random", "--num-processes", 1, "--json", tmp_path / "m.json")
    assert code == 0, err
    assert "240 games per pairing (120 openings of 120 from the opening suite, each played in both seats)" in out
    assert "95% CI: over openings, not games" in out
    assert re.search(r"opponent\s+games\s+distinct\s+W\s+D\s+L\s+win rate\s+95% CI", out)
    document = json.loads((tmp_path / "m.json").read_text())
    pairing = document["pairings"][0]
    assert document["games_per_pairing"] == 240 and document["openings"] == {"source": "suite", "count": 120}
    assert pairing["openings"] == 120 and pairing["seats"]["first"]["games"] == 120
    assert 120 < pairing["distinct_games"] <= 240


def test_openings_none_is_the_empty_board_with_seat_halves(capsys, tmp_path):
    args = ["alphabeta:1", "--opponents", "random", "--openings", "none", "--num-processes", 1]
    code, out, err = cli(capsys, *args, "--games", 5, "--json", tmp_path / "n.json")
    assert code == 0, err
    assert "5 games per pairing (from the empty board, half in each seat)" in out
    assert "95% CI: Wilson interval over games" in out
    pairing = json.loads((tmp_path / "n.json").read_text())["pairings"][0]
    assert pairing["openings"] == 0 and pairing["seats"]["first"]["games"] == 3
    assert pairing["win_rate_ci95"] == [round(x, 6) for x in wilson_interval(pairing["wins"], 5)]
    code, out, err = cli(capsys, "alphabeta:1", "--opponents", "random", "--openings", "none", "--games", 1)
    assert code == 0 and "1 games per pairing" in out  # today's default count and odd counts still work


def test_a_suite_file_option_plays_its_openings(capsys, tmp_path):
    path = tmp_path / "two.jsonl"
    path.write_text('{"moves": [3]}\n{"moves": [0, 6]}\n')
    code, out, err = cli(
        capsys, "alphabeta:1", "--opponents", "random", "--openings", path, "--num-processes", 1,
        "--json", tmp_path / "f.json", "--replay-text", tmp_path / "g.txt", "--replay-game", 3,
    )  # fmt: skip
    assert code == 0, err
    assert f"4 games per pairing (2 openings of 2 from the openings of {path}" in out
    pairing = json.loads((tmp_path / "f.json").read_text())["pairings"][0]
    assert pairing["games"] == 4 and pairing["openings"] == 2
    listing = (tmp_path / "g.txt").read_text()
    assert "opening 1 of the suite: moves 1-2, played for both players" in listing
    assert "1. player 1 (random): column 0 (opening)" in listing
    assert "2. player 2 (alphabeta:1): column 6 (opening)" in listing


BAD_OPTIONS = [
    (["random", "--opponents", "negamax", "--games", "7"], "--games must be even with openings"),
    (["random", "--games", "4", "--rows", "7", "--columns", "8", "--openings", "suite"], "not the 7x8 with 4 in a row"),
    (["random", "--openings", "missing.jsonl"], "cannot read the opening suite 'missing.jsonl'"),
    (["random", "--games", "4", "--replay-game", "4"], "--replay-game must be in 0..3"),
    (["random", "--replay-game", "240"], "--replay-game must be in 0..239"),
    (["random", "--replay-game", "-1"], "--replay-game must be >= 0, got -1"),
]


@pytest.mark.parametrize("args, message", BAD_OPTIONS)
def test_bad_openings_options_are_one_line_and_exit_2(capsys, tmp_path, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    code, out, err = cli(capsys, *args)
    assert code == 2 and out == ""
    assert err.startswith("error: ") and err.count("\n") == 1 and message in err


def test_a_bad_suite_file_is_one_line_naming_the_file_and_line(capsys, tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"moves": [3]}\n{"moves": [9]}\n')
    code, out, err = cli(capsys, "random", "--openings", path)
    assert code == 2 and out == ""
    assert err == (
        f"error: opening suite '{path}', line 2: move 1 (column 9) is illegal on the 6x7 with 4 in a row board; "
        "legal columns were [0, 1, 2, 3, 4, 5, 6]\n"
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--count", "0"], "--count must be an integer >= 1, got 0"),
        (["--rows", "0"], "--rows must be an integer >= 1, got 0"),
        (["--rows", "2", "--columns", "2", "--inarow", "2"], "no undecided opening of 2-4 stones on the 2x2"),
    ],
)
def test_the_suite_command_refuses_bad_input_and_writes_nothing(capsys, tmp_path, args, message):
    from connectx_gym.evaluation.openings import main

    output = tmp_path / "suite.jsonl"
    assert main([*args, "-o", str(output)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and message in err and len(err.splitlines()) == 1
    assert not output.exists()
    assert main(["-o", str(tmp_path / "missing" / "suite.jsonl")]) == 2
    assert "the folder" in capsys.readouterr().err
