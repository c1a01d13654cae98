"""``python -m connectx_gym.play`` through a pseudo-terminal (pexpect): typed moves, bad input, quitting,
Ctrl-C, a whole game with its replay, and a trained checkpoint's value and move probabilities."""

from __future__ import annotations

import io
import signal
import sys

import pytest

pexpect = pytest.importorskip("pexpect")

from connectx_gym.play import play_game, render  # noqa: E402
from connectx_gym.rules.bitboard import Position, geometry  # noqa: E402

PROMPT = r"your move \(0-6, q quits\): "
#: a Kaggle agent file that always plays the leftmost free column
LEFTMOST = """
def agent(observation, configuration):
    return next(c for c in range(configuration.columns) if observation.board[c] == 0)
"""


def spawn(*args: str, cwd=None):
    child = pexpect.spawn(
        sys.executable,
        ["-m", "connectx_gym.play", *args],
        cwd=cwd,
        encoding="utf-8",
        timeout=90,
        echo=False,
        # Ctrl-C as at a terminal, even when the tests run where SIGINT is ignored (a shell's background job
        # ignores it, and children inherit that)
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    child.logfile_read = io.StringIO()  # everything the game printed
    return child


def finish(child) -> tuple[int, str]:
    rest = child.read()
    child.close()
    return child.exitstatus, rest


@pytest.fixture
def leftmost(tmp_path):
    path = tmp_path / "leftmost.py"
    path.write_text(LEFTMOST)
    return str(path)


def test_bad_input_is_asked_again_and_q_quits(leftmost):
    child = spawn(leftmost, "--no-color")
    child.expect("you \\(X\\) vs .*leftmost.py \\(O\\) on 6x7 with 4 in a row; you move first")
    for typed, answer in (("x", "'x' is not a column"), ("", "'' is not a column"), ("9", "column 9 is off the board")):
        child.expect(PROMPT)
        child.sendline(typed)
        child.expect(answer)
    child.expect(PROMPT)
    child.sendline("-1")
    child.expect("column -1 is off the board")
    for _ in range(3):  # you and the agent fill column 0: X O X O X O, no line
        child.expect(PROMPT)
        child.sendline("0")
        child.expect("plays column 0")
    child.expect(PROMPT)
    child.sendline("0")
    child.expect("column 0 is full; the free columns are 1 2 3 4 5 6")
    child.expect(PROMPT)
    child.sendline("q")
    code, rest = finish(child)
    assert code == 0 and "quit" in rest and "Traceback" not in rest
    assert "\033[" not in child.logfile_read.getvalue()  # --no-color


def test_ctrl_c_quits_cleanly(leftmost):
    child = spawn(leftmost)
    child.expect(PROMPT)
    child.sendintr()
    code, rest = finish(child)
    assert code == 130 and "interrupted" in rest and "Traceback" not in rest


def test_end_of_input_quits(leftmost):
    child = spawn(leftmost)
    child.expect(PROMPT)
    child.sendeof()
    code, rest = finish(child)
    assert code == 0 and "quit" in rest


def test_a_whole_game_in_colour_then_its_kaggle_replay(leftmost, tmp_path):
    replay = tmp_path / "game.html"
    child = spawn(leftmost, "--replay", str(replay))
    for _ in range(3):  # four stones in column 1 beat an agent that only fills column 0
        child.expect(PROMPT)
        child.sendline("1")
        child.expect("plays column 0")
    child.expect(PROMPT)
    child.sendline("1")
    child.expect("you win")
    code, rest = finish(child)
    assert code == 0 and f"saved the replay to {replay}" in rest
    assert "\033[1;31mX\033[0m" in child.logfile_read.getvalue()  # stones are coloured on a terminal
    html = replay.read_text()
    assert "<html" in html.lower() and '"TeamNames": ["you"' in html.replace("'", '"')


def test_a_checkpoint_shows_its_value_and_move_probabilities(tmp_path):
    from helpers import tiny_model

    from connectx_gym.runtime.checkpoints import save_model

    save_model(tiny_model({"rows": 6, "columns": 7, "inarow": 4}), tmp_path / "tiny.zip")
    child = spawn(str(tmp_path / "tiny.zip"), "--second", "--seed", "3")
    child.expect(r"agent's value estimate [+-]\d\.\d\d \(-1: it expects to lose, \+1: to win\); move probabilities ")
    child.expect(r"0:\d+%  1:\d+%  2:\d+%  3:\d+%  4:\d+%  5:\d+%  6:\d+%")
    child.expect("plays column [0-6]")
    child.expect(PROMPT)
    child.sendline("q")
    assert finish(child)[0] == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["nosuch.zip"], "error: checkpoint 'nosuch.zip' does not exist"),
        (["negamx"], "negamx"),
        (["random", "--first", "--second"], "not allowed with argument"),
        (["random", "--replay", "game.txt"], "--replay must name an .html file, got 'game.txt'"),
        (["random", "--seed", "-1"], "--seed must be an integer >= 0, got -1"),
    ],
)
def test_bad_arguments_are_one_line_exit_2_and_write_nothing(tmp_path, args, message):
    child = spawn(*args, cwd=str(tmp_path))
    code, rest = finish(child)
    assert code == 2 and message in rest and rest.strip().count("\n") == 0, rest
    assert list(tmp_path.iterdir()) == []


def test_play_game_in_process_records_the_moves_and_the_forfeit():
    class Raising:
        def act(self, position, rng):
            raise RuntimeError("no move")

    said = []
    typed = iter(["3"])
    record = play_game(
        Raising(), "raising", {"rows": 4, "columns": 5, "inarow": 3}, True, 0, False, lambda _: next(typed), said.append
    )
    assert record.moves == [3] and record.outcome == "win" and record.forfeit == "opponent"
    assert "raising raised RuntimeError: no move" in said and said[-1] == "you win: the agent forfeits"
    position = Position(geometry(4, 5, 3))
    position.play(3)
    assert render(position, color=False).splitlines() == [
        ". . . . .",
        ". . . . .",
        ". . . . .",
        ". . . X .",
        "0 1 2 3 4",
    ]
