"""Tests of ``connectx_gym.agents.opponents``, ``specs`` and ``kaggle_agent``: spec parsing, building,
Kaggle agents, pickling, seeding."""

from __future__ import annotations

import pickle
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from connectx_gym.agents import specs
from connectx_gym.agents.kaggle import KaggleAgentOpponent
from connectx_gym.agents.opponents import AlphaBetaOpponent, NegamaxOpponent, Opponent, OpponentError, RandomOpponent
from connectx_gym.agents.specs import (
    OPPONENT_FORMS,
    OpponentKind,
    OpponentSpec,
    make_opponent,
    parse_spec,
    register_opponent_kind,
)
from connectx_gym.errors import SpecError, UserError
from connectx_gym.rules.bitboard import Position, geometry
from connectx_gym.search.negamax import kaggle_immediate_win, kaggle_negamax_scores


def positions(count: int, seed: int, rows: int = 6, columns: int = 7, inarow: int = 4) -> list[Position]:
    g = geometry(rows, columns, inarow)
    rng = np.random.default_rng(seed)
    found = []
    while len(found) < count:
        position = Position(g)
        target = int(rng.integers(0, g.size))
        while position.moves_played < target and not position.done:
            legal = position.legal_moves()
            position.play(legal[int(rng.integers(len(legal)))])
        if not position.done:
            found.append(position)
    return found


def play_game(first: Opponent, second: Opponent, seed: int, rows: int = 6, columns: int = 7) -> list[int]:
    rng = np.random.default_rng(seed)
    position = Position(geometry(rows, columns, 4))
    moves = []
    while not position.done:
        player = first if position.to_move == 1 else second
        moves.append(int(player.act(position, rng)))
        position.play(moves[-1])
    return moves


def write_agent(tmp_path, body: str, name: str = "agent.py") -> str:
    path = tmp_path / name
    path.write_text(textwrap.dedent(body))
    return str(path)


RIGHTMOST_AGENT = """
    import random

    def helper(board, columns):
        return [c for c in range(columns) if board[c] == 0]

    def my_agent(observation, configuration):
        # attribute and item access both work, as on Kaggle
        assert observation["mark"] == observation.mark
        assert configuration["columns"] == configuration.columns
        assert observation.step == sum(1 for cell in observation.board if cell)
        return max(helper(observation.board, configuration.columns))
"""

# ---------------------------------------------------------------------------------------- parse_spec


@pytest.mark.parametrize(
    "spec,expected",
    [
        ("random", OpponentSpec("random")),
        ("  negamax\n", OpponentSpec("negamax")),
        ("alphabeta:4", OpponentSpec("alphabeta", "4")),
        ("alphabeta: 12 ", OpponentSpec("alphabeta", "12")),
        ("kaggle:negamax", OpponentSpec("kaggle", "negamax")),
        ("kaggle:path/to/agent.py", OpponentSpec("kaggle", "path/to/agent.py")),  # syntax only: no file check
        ("kaggle:C:\\agents\\a.py", OpponentSpec("kaggle", "C:\\agents\\a.py")),
    ],
)
def test_parse_spec_accepts_valid_specs(spec, expected):
    parsed = parse_spec(spec)
    assert parsed == expected
    assert parse_spec(str(parsed)) == parsed


@pytest.mark.parametrize(
    "spec,problem",
    [
        ("negamx", "did you mean 'negamax'"),
        ("Random", "did you mean 'random'"),
        ("alphabeta4", "did you mean 'alphabeta'"),
        ("minimax", "unknown opponent spec"),
        ("alphabeta:0", "depth must be an integer >= 1, got '0'"),
        ("alphabeta:-2", "depth must be an integer >= 1"),
        ("alphabeta:x", "depth must be an integer >= 1, got 'x'"),
        ("alphabeta:2.5", "depth must be an integer >= 1"),
        ("alphabeta:", "needs a search depth"),
        ("alphabeta:3:1", "epsilon (the chance of a random move) must be a number in [0, 1), got '1'"),
        ("alphabeta:3:-0.1", "epsilon (the chance of a random move) must be a number in [0, 1)"),
        ("alphabeta:3:lots", "got 'lots' in 'alphabeta:3:lots'"),
        ("alphabeta:x:0.1", "depth must be an integer >= 1, got 'x'"),
        ("alphabeta", "needs a search depth"),
        ("kaggle:", "needs a built-in Kaggle agent name or the path"),
        ("kaggle", "needs a built-in Kaggle agent name or the path"),
        ("random:3", "takes no argument"),
        ("negamax:", "takes no argument"),
        ("", "empty opponent spec"),
        ("   ", "empty opponent spec"),
    ],
)
def test_parse_spec_rejects_bad_specs_naming_them_and_listing_the_forms(spec, problem):
    with pytest.raises(SpecError) as caught:
        parse_spec(spec)
    message = str(caught.value)
    assert repr(spec) in message
    assert problem in message
    for form in OPPONENT_FORMS:
        assert form in message


def test_parse_spec_rejects_non_strings():
    with pytest.raises(SpecError, match="must be a string"):
        parse_spec(None)  # type: ignore[arg-type]


def test_spec_errors_are_user_errors():
    assert issubclass(SpecError, UserError)


def test_forms_describe_every_kind():
    assert OPPONENT_FORMS == (
        "random",
        "negamax",
        "alphabeta:<depth>[:<epsilon>]  (depth >= 1; epsilon in [0, 1): chance of a random move)",
        "kaggle:<builtin-name or path/to/agent.py>",
        "selfplay[:greedy]  (a snapshot of the learner from the self-play pool)",
        "solver[:weak]  (perfect play on 6x7x4; needs the solver extra)",
        "checkpoint:<path/to/model.zip>",
        "mcts:<path/to/model.zip>[:<simulations>|:<N>ms]  (the checkpoint searched by PUCT; default 800 simulations)",
    )


def test_parsing_and_building_solvers_do_not_import_kaggle():
    code = (
        "import sys\n"
        "from connectx_gym.agents.specs import parse_spec, make_opponent\n"
        "parse_spec('kaggle:negamax'); parse_spec('kaggle:x.py')\n"
        "for spec in ('random', 'negamax', 'alphabeta:3'): make_opponent(spec)\n"
        "assert not [m for m in sys.modules if m.startswith('kaggle_environments')]\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""


# ---------------------------------------------------------------------------------------- make_opponent


@pytest.mark.parametrize(
    "spec,cls,name",
    [
        ("random", RandomOpponent, "random"),
        ("negamax", NegamaxOpponent, "negamax"),
        (" alphabeta:3 ", AlphaBetaOpponent, "alphabeta:3"),
        ("kaggle:negamax", KaggleAgentOpponent, "kaggle:negamax"),
        ("kaggle:random", KaggleAgentOpponent, "kaggle:random"),
    ],
)
def test_make_opponent_builds_every_kind(spec, cls, name):
    opponent = make_opponent(spec)
    assert type(opponent) is cls
    assert isinstance(opponent, Opponent)
    assert opponent.name == name
    assert make_opponent(opponent.name) == opponent
    rng = np.random.default_rng(0)
    for position in positions(5, seed=1):
        assert opponent.act(position, rng) in position.legal_moves()


def test_make_opponent_passes_opponents_through():
    opponent = AlphaBetaOpponent(2)
    assert make_opponent(opponent) is opponent

    class Custom:
        name = "custom"

        def act(self, position, rng):
            return 0

    custom = Custom()
    assert make_opponent(custom) is custom
    assert make_opponent(OpponentSpec("alphabeta", "5")) == AlphaBetaOpponent(5)


def test_make_opponent_rejects_other_objects_and_bad_specs():
    with pytest.raises(SpecError, match="spec string or have act"):
        make_opponent(42)  # type: ignore[arg-type]
    with pytest.raises(SpecError, match="did you mean 'negamax'"):
        make_opponent("negamx")


def test_alphabeta_opponent_validates_depth():
    with pytest.raises(ValueError):
        AlphaBetaOpponent(0)
    assert AlphaBetaOpponent(7).depth == 7
    for epsilon in (-0.1, 1.0, True):
        with pytest.raises(ValueError, match="epsilon"):
            AlphaBetaOpponent(2, epsilon)


def test_alphabeta_epsilon_plays_random_moves_at_that_rate():
    """With three stones stacked in column 0, alphabeta:2 always completes the line; with epsilon 0.3
    about 30% of its moves are random, 6/7 of which miss it: 0.3 * 6/7 = 25.7% expected."""
    position = Position(geometry(6, 7, 4))
    for column in (0, 1, 0, 1, 0, 1):
        position.play(column)
    plain, noisy = make_opponent("alphabeta:2"), make_opponent("alphabeta:2:0.3")
    assert (plain.name, noisy.name) == ("alphabeta:2", "alphabeta:2:0.3")
    assert noisy == AlphaBetaOpponent(2, 0.3)
    rng = np.random.default_rng(0)
    assert {plain.act(position, rng) for _ in range(50)} == {0}
    missed = sum(noisy.act(position, np.random.default_rng(seed)) != 0 for seed in range(2000))
    assert 0.21 < missed / 2000 < 0.31  # binomial sd 1.0%: about 5 sd either side
    again = [noisy.act(position, np.random.default_rng(seed)) for seed in range(50)]
    assert again == [noisy.act(position, np.random.default_rng(seed)) for seed in range(50)]


def test_registry_accepts_new_kinds(monkeypatch):
    monkeypatch.setattr(specs, "OPPONENT_KINDS", dict(specs.OPPONENT_KINDS))
    monkeypatch.setattr(specs, "OPPONENT_FORMS", specs.OPPONENT_FORMS)
    register_opponent_kind(
        OpponentKind("firstcol", "firstcol[:<ignored>]", lambda argument: RandomOpponent(), argument="optional")
    )
    assert parse_spec("firstcol") == OpponentSpec("firstcol")
    assert parse_spec("firstcol:x") == OpponentSpec("firstcol", "x")
    assert isinstance(make_opponent("firstcol"), RandomOpponent)
    assert "firstcol[:<ignored>]" in specs.OPPONENT_FORMS
    with pytest.raises(SpecError, match=r"firstcol\[:<ignored>\]"):
        parse_spec("nope")
    with pytest.raises(ValueError):
        register_opponent_kind(OpponentKind("a:b", "a:b", lambda argument: RandomOpponent()))


# ---------------------------------------------------------------------------------------- behaviour


def test_random_opponent_is_uniform_over_legal_columns():
    position = Position(geometry(6, 7, 4))
    for column in (0, 0, 0, 0, 0, 0):  # fill column 0 (alternating marks does not matter here)
        position.play(column)
    rng = np.random.default_rng(3)
    counts = np.bincount([RandomOpponent().act(position, rng) for _ in range(1200)], minlength=7)
    assert counts[0] == 0
    assert all(150 <= c <= 250 for c in counts[1:]), counts


def test_negamax_opponent_agrees_with_kaggles_builtin_agent():
    ours = NegamaxOpponent()
    kaggle = KaggleAgentOpponent("negamax")
    rng = np.random.default_rng(4)
    for position in positions(6, seed=5, rows=5, columns=6) + positions(3, seed=6):
        scores = kaggle_negamax_scores(position)
        if scores is None:
            allowed = {kaggle_immediate_win(position)}
        else:
            allowed = {c for c, s in scores.items() if s == max(scores.values())}
        assert kaggle.act(position, rng) in allowed
        assert ours.act(position, rng) in allowed


def test_opponents_do_not_change_the_position():
    position = positions(1, seed=7)[0]
    before = (position.stones[:], position.mask, position.to_move, position.moves_played)
    rng = np.random.default_rng(0)
    for spec in ("random", "negamax", "alphabeta:3", "kaggle:negamax"):
        make_opponent(spec).act(position, rng)
        assert (position.stones, position.mask, position.to_move, position.moves_played) == before


# ---------------------------------------------------------------------------------------- Kaggle files


def test_kaggle_file_agent_uses_the_last_callable(tmp_path):
    path = write_agent(tmp_path, RIGHTMOST_AGENT)
    opponent = make_opponent(f"kaggle:{path}")
    assert isinstance(opponent, KaggleAgentOpponent)
    assert opponent.name == f"kaggle:{path}"
    rng = np.random.default_rng(0)
    for position in positions(10, seed=8):
        assert opponent.act(position, rng) == max(position.legal_moves())


def test_kaggle_file_agent_with_one_parameter_gets_only_the_observation(tmp_path):
    path = write_agent(
        tmp_path,
        """
        def agent(observation):
            return observation.mark - 1
        """,
    )
    opponent = KaggleAgentOpponent(path)
    position = Position(geometry())
    assert opponent.act(position, np.random.default_rng(0)) == 0
    position.play(3)
    assert opponent.act(position, np.random.default_rng(0)) == 1


def test_kaggle_file_agent_sees_kaggles_configuration(tmp_path):
    path = write_agent(
        tmp_path,
        """
        seen = []

        def agent(observation, configuration):
            seen.append((dict(configuration), sorted(observation)))
            assert len(observation.board) == configuration.rows * configuration.columns
            return configuration.inarow
        """,
    )
    opponent = KaggleAgentOpponent(path)
    assert opponent.act(Position(geometry(5, 9, 3)), np.random.default_rng(0)) == 3
    configuration, observation_keys = opponent._agent.__globals__["seen"][0]
    assert {k: configuration[k] for k in ("rows", "columns", "inarow", "actTimeout", "timeout")} == {
        "rows": 5,
        "columns": 9,
        "inarow": 3,
        "actTimeout": 2,
        "timeout": 2,
    }
    assert observation_keys == ["board", "mark", "remainingOverageTime", "step"]


def test_kaggle_agent_answers_are_returned_unchecked(tmp_path):
    for answer in ("99", "-1", "'3'", "None", "2.0"):
        path = write_agent(tmp_path, f"def agent(obs, config):\n    return {answer}\n", name=f"a{abs(hash(answer))}.py")
        assert KaggleAgentOpponent(path).act(Position(geometry()), np.random.default_rng(0)) == eval(answer)


def test_kaggle_agent_exceptions_become_opponent_errors(tmp_path):
    path = write_agent(
        tmp_path,
        """
        def agent(obs, config):
            print("noise that Kaggle would capture")
            raise KeyError("boom")
        """,
    )
    opponent = KaggleAgentOpponent(path)
    with pytest.raises(OpponentError) as caught:
        opponent.act(Position(geometry()), np.random.default_rng(0))
    error = caught.value
    assert isinstance(error, RuntimeError)
    assert error.opponent_name == f"kaggle:{path}"
    assert isinstance(error.cause, KeyError)
    assert path in str(error) and "boom" in str(error)
    clone = pickle.loads(pickle.dumps(error))
    assert clone.opponent_name == error.opponent_name and str(clone) == str(error)


def test_missing_kaggle_file_is_a_spec_error(tmp_path):
    path = str(tmp_path / "missing.py")
    with pytest.raises(SpecError) as caught:
        make_opponent(f"kaggle:{path}")
    assert path in str(caught.value)
    with pytest.raises(SpecError, match="is a directory"):
        KaggleAgentOpponent(str(tmp_path))


def test_unknown_builtin_kaggle_agent_is_a_spec_error_with_a_hint():
    with pytest.raises(SpecError, match="did you mean 'negamax'"):
        make_opponent("kaggle:negamx")


def test_kaggle_file_with_a_syntax_error_is_a_spec_error(tmp_path):
    path = write_agent(tmp_path, "def agent(obs, config:\n    return 0\n")
    with pytest.raises(SpecError) as caught:
        make_opponent(f"kaggle:{path}")
    assert path in str(caught.value) and "syntax error at line 1" in str(caught.value)


def test_kaggle_file_without_a_callable_is_a_spec_error(tmp_path):
    path = write_agent(tmp_path, "import math\nANSWER = 3\n")
    with pytest.raises(SpecError) as caught:
        make_opponent(f"kaggle:{path}")
    assert path in str(caught.value) and "no callable" in str(caught.value)


def test_kaggle_file_that_fails_to_import_is_a_spec_error(tmp_path):
    path = write_agent(tmp_path, "import no_such_module_for_connectx\ndef agent(obs, config):\n    return 0\n")
    saved = list(sys.path)
    with pytest.raises(SpecError) as caught:
        make_opponent(f"kaggle:{path}")
    assert path in str(caught.value) and "no_such_module_for_connectx" in str(caught.value)
    assert sys.path == saved


def test_kaggle_file_can_import_its_neighbours(tmp_path):
    write_agent(tmp_path, "def pick(columns):\n    return columns - 1\n", name="neighbour_for_connectx.py")
    path = write_agent(
        tmp_path,
        """
        from neighbour_for_connectx import pick

        def agent(obs, config):
            return pick(config.columns)
        """,
    )
    try:
        assert KaggleAgentOpponent(path).act(Position(geometry()), np.random.default_rng(0)) == 6
    finally:
        sys.modules.pop("neighbour_for_connectx", None)


# ---------------------------------------------------------------------------------------- pickling, seeding


def test_every_opponent_pickles_and_plays_the_same_after(tmp_path):
    path = write_agent(tmp_path, RIGHTMOST_AGENT)
    for opponent in (
        RandomOpponent(),
        NegamaxOpponent(),
        AlphaBetaOpponent(3),
        make_opponent("kaggle:random"),
        make_opponent(f"kaggle:{path}"),
    ):
        opponent.act(Position(geometry()), np.random.default_rng(0))  # loaded and used before pickling
        clone = pickle.loads(pickle.dumps(opponent))
        assert clone == opponent and clone.name == opponent.name
        for position in positions(4, seed=9):
            assert clone.act(position, np.random.default_rng(1)) == opponent.act(position, np.random.default_rng(1))


def test_pickled_kaggle_file_agent_does_not_carry_the_function(tmp_path):
    path = write_agent(tmp_path, RIGHTMOST_AGENT)
    opponent = KaggleAgentOpponent(path)
    opponent.act(Position(geometry()), np.random.default_rng(0))
    data = pickle.dumps(opponent)
    assert b"my_agent" not in data
    assert pickle.loads(data)._agent is None


@pytest.mark.parametrize("spec", ["random", "negamax", "alphabeta:2", "kaggle:random"])
def test_games_are_reproducible_from_the_seed(spec):
    first, second = make_opponent(spec), make_opponent("random")
    assert play_game(first, second, seed=10, rows=5, columns=6) == play_game(first, second, seed=10, rows=5, columns=6)
    assert len({tuple(play_game(first, second, seed=s, rows=5, columns=6)) for s in range(5)}) > 1


def test_kaggle_random_agent_is_seeded_by_rng_not_global_state():
    import random

    opponent = make_opponent("kaggle:random")
    position = Position(geometry())
    random.seed(1)
    a = [opponent.act(position, np.random.default_rng(s)) for s in range(20)]
    random.seed(2)
    b = [opponent.act(position, np.random.default_rng(s)) for s in range(20)]
    assert a == b
    assert len(set(a)) > 3
