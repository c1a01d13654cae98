"""Agents as opponents: checkpoint specs, bare paths, greedy legal play, board checks, cheap pickles,
and games between two opponents (``match.play_opponent_games``)."""

from __future__ import annotations

import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers import random_positions, tiny_checkpoint

from connectx_gym.agents import checkpoint as checkpoint_agents
from connectx_gym.agents import specs
from connectx_gym.agents.specs import OpponentSpec, make_agent, make_opponent, parse_spec, resolve_bare_path
from connectx_gym.errors import SpecError, UserError
from connectx_gym.evaluation.match import match_result_from_games, play_opponent_game, play_opponent_games
from connectx_gym.rules.bitboard import Position, geometry
from connectx_gym.runtime.checkpoints import CheckpointError

BOARD = {"rows": 5, "columns": 6, "inarow": 4}


def train_tiny_checkpoint(path, board=BOARD, steps=64, seed=0):
    """A few PPO steps of a tiny CNN policy, saved like the trainer does (board recorded)."""
    tiny_checkpoint(path, board, seed=seed, steps=steps)
    return path


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return str(train_tiny_checkpoint(tmp_path_factory.mktemp("agents") / "model.zip"))


# ---------------------------------------------------------------------------------------- specs
@pytest.mark.parametrize(
    "spec, resolved",
    [
        ("models/x/final_model.zip", "checkpoint:models/x/final_model.zip"),
        ("  model.ZIP ", "checkpoint:model.ZIP"),
        ("submission.py", "kaggle:submission.py"),
        ("checkpoint:a.zip", "checkpoint:a.zip"),
        ("kaggle:agent.py", "kaggle:agent.py"),
        ("C:\\runs\\model.zip", "checkpoint:C:\\runs\\model.zip"),
        ("random", "random"),
        ("alphabeta:4", "alphabeta:4"),
        ("negamax ", "negamax"),
    ],
)
def test_resolve_agent_spec_makes_bare_paths_explicit(spec, resolved):
    assert resolve_bare_path(spec) == resolved


def test_checkpoint_kind_is_registered_with_its_form():
    assert "checkpoint:<path/to/model.zip>" in specs.OPPONENT_FORMS
    assert parse_spec("checkpoint:models/x/final_model.zip") == OpponentSpec("checkpoint", "models/x/final_model.zip")
    assert parse_spec("models/x/final_model.zip", agent=True) == OpponentSpec("checkpoint", "models/x/final_model.zip")
    assert parse_spec("agent.py", agent=True) == OpponentSpec("kaggle", "agent.py")


@pytest.mark.parametrize(
    "spec, problem",
    [
        ("checkpoint:", "needs the path of a checkpoint .zip"),
        ("checkpoint:model.pt", "must end in .zip"),
        ("negamx", "did you mean 'negamax'"),
    ],
)
def test_bad_agent_specs_name_the_problem_and_list_the_forms(spec, problem):
    with pytest.raises(SpecError) as error:
        parse_spec(spec, agent=True)
    message = str(error.value)
    assert problem in message
    assert "checkpoint:<path/to/model.zip>" in message and "bare path ending in .zip" in message
    assert "\n" not in message


def test_missing_or_foreign_checkpoint_is_a_user_error(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        make_agent(str(tmp_path / "missing.zip"))
    (tmp_path / "junk.zip").write_bytes(b"not a zip")
    with pytest.raises(UserError, match="junk.zip"):
        make_opponent(f"checkpoint:{tmp_path / 'junk.zip'}")


# ---------------------------------------------------------------------------------------- checkpoint agent
def test_checkpoint_agent_plays_legal_greedy_moves(checkpoint):
    agent = make_agent(checkpoint)
    assert isinstance(agent, checkpoint_agents.CheckpointOpponent)
    assert agent.board == BOARD and agent.name == f"checkpoint:{checkpoint}"
    assert make_opponent(f"checkpoint:{checkpoint}") == agent
    rng = np.random.default_rng(0)
    for position in random_positions(BOARD, 60, seed=1):
        before = (position.mask, list(position.stones), position.to_move)
        column = agent.act(position, rng)
        assert type(column) is int and position.is_legal(column)
        assert (position.mask, list(position.stones), position.to_move) == before
        assert agent.act(position, np.random.default_rng(99)) == column  # greedy: the rng is not used


def test_checkpoint_agent_prefers_its_best_logit_among_legal_columns(checkpoint):
    from connectx_gym.rules.planes import encode_position

    agent = make_agent(checkpoint)
    position = Position(geometry(**BOARD))
    logits = agent.policy.logits(encode_position(position)[None])[0]
    best = int(np.argmax(logits))
    assert agent.act(position, np.random.default_rng(0)) == best
    for _ in range(BOARD["rows"]):  # fill the favourite column: the agent must pick the best legal one
        position.play(best)
    logits = agent.policy.logits(encode_position(position)[None])[0]
    legal = position.legal_moves()
    assert best not in legal
    assert agent.act(position, np.random.default_rng(0)) == max(legal, key=lambda column: logits[column])


def test_checkpoint_agent_refuses_another_board_size(checkpoint):
    agent = make_agent(checkpoint)
    with pytest.raises(
        checkpoint_agents.BoardMismatchError, match=r"trained on a 5x6 with 4 in a row board.*6x7 with 4 in a row"
    ):
        agent.act(Position(geometry(6, 7, 4)), np.random.default_rng(0))
    with pytest.raises(checkpoint_agents.BoardMismatchError, match="5x6 with 3 in a row"):
        agent.act(Position(geometry(5, 6, 3)), np.random.default_rng(0))
    # in a game, refusing forfeits, like any opponent that raises
    record = play_opponent_game(
        agent, make_opponent("random"), True, seed=0, board={"rows": 6, "columns": 7, "inarow": 4}
    )
    assert record.forfeit == "agent" and record.outcome == "loss" and "BoardMismatchError" in record.error


def test_checkpoint_agent_pickles_as_numpy_weights_without_torch(checkpoint, tmp_path):
    agent = make_agent(checkpoint)
    payload = pickle.dumps(agent)
    assert len(payload) < 200_000
    clone = pickle.loads(payload)
    for position in random_positions(BOARD, 10, seed=2):
        assert clone.act(position, None) == agent.act(position, None)
    (tmp_path / "agent.pkl").write_bytes(payload)
    code = (
        "import pickle, sys; from connectx_gym.rules.bitboard import Position, geometry\n"
        f"agent = pickle.load(open({str(tmp_path / 'agent.pkl')!r}, 'rb'))\n"
        "print(agent.act(Position(geometry(5, 6, 4)), None),\n"
        "      'torch' in sys.modules, 'stable_baselines3' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    column, torch_loaded, sb3_loaded = result.stdout.split()
    assert int(column) == agent.act(Position(geometry(5, 6, 4)), None)
    assert (torch_loaded, sb3_loaded) == ("False", "False")
    assert result.stderr == ""


# ---------------------------------------------------------------------------------------- games between opponents
class Scripted:
    """Plays the given answers in order (then the first legal column)."""

    def __init__(self, answers=(), name="scripted"):
        self.answers = list(answers)
        self.name = name

    def act(self, position, rng):
        if self.answers:
            answer = self.answers.pop(0)
            if isinstance(answer, Exception):
                raise answer
            return answer
        return position.legal_moves()[0]


def test_opponent_games_are_seeded_split_by_seat_and_schedule_independent():
    full = play_opponent_games("negamax", "random", 9, seed=5, board=BOARD)
    assert [r.index for r in full] == list(range(9))
    assert [r.seed for r in full] == [5 + i for i in range(9)]
    assert [r.agent_first for r in full] == [True] * 5 + [False] * 4
    assert play_opponent_games("negamax", "random", 9, seed=5, board=BOARD) == full
    subset = play_opponent_games("negamax", "random", 9, seed=5, board=BOARD, indices=[7, 2])
    assert subset == [full[7], full[2]]
    for record in full:  # the moves replay to the recorded outcome
        position = Position(geometry(**BOARD))
        for column in record.moves:
            position.play(column)
        agent_mark = 1 if record.agent_first else 2
        expected = "draw" if position.winner == 0 else ("win" if position.winner == agent_mark else "loss")
        assert position.done and record.outcome == expected and record.forfeit is None
    result = match_result_from_games(full, "random")
    assert result.total.games == 9 and result.seats["first"].games == 5


def test_opponent_games_use_one_generator_per_game_shared_by_both_sides():
    draws = []

    class Recorder:
        name = "recorder"

        def act(self, position, rng):
            draws.append(float(rng.random()))
            return position.legal_moves()[0]

    play_opponent_game(Recorder(), Recorder(), True, seed=11, board=BOARD)
    expected = np.random.default_rng(11).random(len(draws))
    assert np.array_equal(draws, expected)


@pytest.mark.parametrize(
    "answers, error",
    [
        ([9], "illegal move 9"),
        (["2"], "illegal move '2'"),
        ([None], "illegal move None"),
        ([RuntimeError("boom")], "raised RuntimeError: boom"),
    ],
)
def test_illegal_answer_or_exception_forfeits_and_is_recorded(answers, error):
    record = play_opponent_game(Scripted(answers), make_opponent("random"), True, seed=0, board=BOARD)
    assert (record.forfeit, record.outcome, record.moves) == ("agent", "loss", [])
    assert error in record.error
    assert record.illegal_column == (9 if answers == [9] else None)
    # the opponent always answers column 0: once the agent's first-legal-column play and its own fill it, it forfeits
    record = play_opponent_game(Scripted(), Scripted([0] * 10), True, seed=0, board=BOARD)
    assert (record.forfeit, record.outcome, record.moves) == ("opponent", "win", [0] * BOARD["rows"])
    assert record.illegal_column == 0 and "illegal move 0" in record.error
    assert match_result_from_games([record], "scripted").opponent_errors == [record.error]


@pytest.mark.parametrize("name", ["model.zip", "continued.zip", "alphazero.zip"])
def test_the_shipped_pretrained_models_load_and_play(name):
    pretrained = Path(__file__).resolve().parent.parent / "models" / "pretrained" / name
    agent = make_agent(str(pretrained))
    assert agent.board == {"rows": 6, "columns": 7, "inarow": 4}
    position = Position(geometry(6, 7, 4))
    assert position.is_legal(agent.act(position, np.random.default_rng(0)))
