"""``mcts:`` agents (agents/mcts.py): the spec, budgets, board checks, cheap pickles, seeded moves,
batched answers equal to one-by-one answers, and the agent in evaluate (matches, --accuracy with the
value report, tournaments), play and the ladder's machinery."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest
from helpers import random_positions, tiny_checkpoint

from connectx_gym import evaluate as ev
from connectx_gym.agents.checkpoint import BoardMismatchError
from connectx_gym.agents.mcts import DEFAULT_SIMULATIONS, MctsAgent, split_argument
from connectx_gym.agents.specs import OpponentSpec, make_agent, parse_spec
from connectx_gym.errors import SpecError
from connectx_gym.evaluation.match import match_result_from_games, play_opponent_games
from connectx_gym.inference.numpy_policy import from_sb3_model
from connectx_gym.rules.bitboard import Position, geometry

BOARD = {"rows": 6, "columns": 7, "inarow": 4}


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return str(tiny_checkpoint(tmp_path_factory.mktemp("mcts") / "model.zip", BOARD, steps=64))


@pytest.fixture(scope="module")
def policy(checkpoint):
    from connectx_gym.inference.numpy_policy import load_checkpoint

    return load_checkpoint(checkpoint)


# ---------------------------------------------------------------------- the spec
@pytest.mark.parametrize(
    "spec, argument",
    [
        ("mcts:model.zip", "model.zip"),
        ("mcts:runs/a/best_model.zip:200", "runs/a/best_model.zip:200"),
        ("mcts: model.zip:250ms ", "model.zip:250ms"),
        ("mcts:C:\\runs\\model.zip:64", "C:\\runs\\model.zip:64"),
    ],
)
def test_mcts_specs_parse(spec, argument):
    assert parse_spec(spec) == OpponentSpec("mcts", argument)


def test_split_argument_reads_the_budget_after_the_zip():
    assert split_argument("a.zip") == ("a.zip", None)
    assert split_argument("C:\\x\\a.zip:300") == ("C:\\x\\a.zip", "300")
    assert split_argument("dir:with:colons/a.zip:40ms") == ("dir:with:colons/a.zip", "40ms")


@pytest.mark.parametrize(
    "spec, message",
    [
        ("mcts", "needs the path of a checkpoint"),
        ("mcts:model.pt", "must end in .zip"),
        ("mcts:model.zip:0", "budget of 'mcts:model.zip:0'"),
        ("mcts:model.zip:fast", "got 'fast'"),
        ("mcts:model.zip:-5ms", "got '-5ms'"),
        ("mcts:model.zip:10s", "got '10s'"),
    ],
)
def test_bad_mcts_specs_name_the_problem(spec, message):
    with pytest.raises(SpecError, match=message):
        parse_spec(spec)


def test_the_spec_builds_the_agent_with_its_budget(checkpoint):
    agent = make_agent(f"mcts:{checkpoint}")
    assert isinstance(agent, MctsAgent) and agent.simulations == DEFAULT_SIMULATIONS and agent.milliseconds is None
    assert agent.name == f"mcts:{checkpoint}" and agent.board == BOARD
    timed = make_agent(f"mcts:{checkpoint}:30ms")
    assert timed.simulations is None and timed.milliseconds == 30 and timed.name.endswith(":30ms")
    assert make_agent(f"mcts:{checkpoint}:50").simulations == 50


# ---------------------------------------------------------------------- playing
def test_moves_are_legal_seeded_and_the_same_batched_or_alone(policy):
    agent = MctsAgent(policy, simulations=48)
    positions = random_positions(BOARD, 20, seed=5)
    rngs = [np.random.default_rng(i) for i in range(len(positions))]
    alone = [agent.act(p, r) for p, r in zip(positions, rngs)]
    assert all(p.is_legal(c) for p, c in zip(positions, alone))
    assert [agent.act(p, np.random.default_rng(0)) for p in positions] == alone  # no state between calls
    assert agent.act_many(positions, rngs) == alone  # one tree at a time by default: the moves of act
    # in lockstep groups: each group's moves equal one search call per group
    grouped = MctsAgent(policy, simulations=48, group=16)
    many = grouped.act_many(positions, rngs)
    groups = [r.move for start in range(0, 20, 16) for r in grouped.search(positions[start : start + 16])]
    assert many == groups and all(p.is_legal(c) for p, c in zip(positions, many))


def test_the_search_wins_where_the_network_would_not(policy):
    """An immediate win is always taken and a single threat always blocked, whatever the network says."""
    agent = MctsAgent(policy, simulations=4)
    g = geometry(**BOARD)
    win = Position(g)
    for column in (0, 6, 0, 6, 0, 5):
        win.play(column)
    assert agent.act(win, np.random.default_rng(0)) == 0
    block = Position(g)
    for column in (6, 0, 5, 0, 2, 0):
        block.play(column)
    assert agent.act(block, np.random.default_rng(0)) == 0
    assert agent.last_result.move == 0


def test_boards_and_finished_games_are_refused(policy):
    agent = MctsAgent(policy, simulations=8)
    with pytest.raises(BoardMismatchError, match="trained on a 6x7 with 4 in a row board"):
        agent.act(Position(geometry(5, 6, 4)), np.random.default_rng(0))
    over = Position(geometry(**BOARD))
    for column in (0, 1, 0, 1, 0, 1, 0):
        over.play(column)
    with pytest.raises(ValueError, match="game is over"):
        agent.act(over, np.random.default_rng(0))


def test_pickles_as_weights_and_settings(policy):
    agent = MctsAgent(policy, simulations=16, reuse=True)
    agent.act(Position(geometry(**BOARD)), np.random.default_rng(0))
    payload = pickle.dumps(agent)
    clone = pickle.loads(payload)
    assert clone == agent and clone.simulations == 16 and clone._search is None and clone._last is None
    assert len(payload) < 2 * len(pickle.dumps(policy)) + 2000
    assert b"torch" not in payload and b"stable_baselines3" not in payload


def test_reuse_keeps_the_tree_between_moves_of_a_game(policy):
    agent = MctsAgent(policy, simulations=200, reuse=True)
    position = Position(geometry(**BOARD))
    first = agent.act(position, np.random.default_rng(0))
    position.play(first)
    position.play(3)
    agent.act(position, np.random.default_rng(0))
    # the new root came out of the last tree: it had visits before this search added its own 200
    assert agent.last_result.simulations > 200 and agent.last_result.evaluations <= 200


def test_games_against_alphabeta_are_reproducible(checkpoint):
    def games():
        records = play_opponent_games(f"mcts:{checkpoint}:24", "alphabeta:1", 4, seed=9, board=geometry(**BOARD))
        return [(r.moves, r.outcome) for r in records]

    first = games()
    assert first == games()
    assert (
        match_result_from_games(
            play_opponent_games(f"mcts:{checkpoint}:24", "random", 4, seed=3, board=geometry(**BOARD)), "random"
        ).total.games
        == 4
    )


# ---------------------------------------------------------------------- through evaluate
def cli(capsys, *args):
    code = ev.main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def test_evaluate_match_and_tournament_take_mcts_specs(capsys, checkpoint):
    code, out, err = cli(capsys, f"mcts:{checkpoint}:16", "--opponents", "random", "--games", "4", "--openings", "none")
    assert code == 0, err
    assert f"mcts:{checkpoint}:16" in out and "random" in out
    code, out, err = cli(
        capsys,
        "--tournament",
        f"mcts:{checkpoint}:8",
        checkpoint,
        "alphabeta:1",
        "--games",
        "2",
        "--openings",
        "none",
        "--num-processes",
        "1",
    )
    assert code == 0, err
    assert f"mcts:{checkpoint}:8" in out


def test_evaluate_accuracy_reports_search_moves_and_the_value_head(capsys, checkpoint, tmp_path):
    positions = tmp_path / "positions.jsonl"
    from connectx_gym.data import POSITIONS_FILE

    positions.write_text("".join(POSITIONS_FILE.read_text().splitlines(keepends=True)[::70]))

    def accuracy(report, processes):
        spec = f"mcts:{checkpoint}:16"
        return cli(capsys, spec, "--accuracy", "--positions", positions, "--json", report, "--num-processes", processes)

    code, out, err = accuracy(tmp_path / "report.json", 2)
    assert code == 0, err
    assert "value head" in out and "decided: sign right" in out and "drawn: |value| <= 0.2" in out
    document = json.loads((tmp_path / "report.json").read_text())
    assert document["overall"]["positions"] == 50 and document["illegal_moves"] == 0
    value = document["value"]
    assert value["draw_threshold"] == 0.2
    assert set(value["overall"]) == {"decided", "won", "drawn", "lost", "all"}
    assert set(value["phases"]) <= {"opening", "middle", "late"}
    assert value["overall"]["all"]["positions"] == 50
    # the moves do not depend on the number of processes
    code, _, err = accuracy(tmp_path / "one.json", 1)
    assert code == 0, err
    one = json.loads((tmp_path / "one.json").read_text())
    assert one["overall"] == document["overall"]


def test_value_accuracy_grades_signs_and_draws():
    from connectx_gym.evaluation.accuracy import LabelledPositions, value_accuracy

    labels = LabelledPositions(
        [[], [3], [3, 3], [3, 3, 2]],
        np.array([[1, 2, 3, 4, 3, 2, 1], [0, 0, 0, 0, 0, 0, 0], [-1, -2, -3, -1, -2, -3, -4], [5] * 7], dtype=float),
        ["opening"] * 4,
    )
    graded = value_accuracy(labels, np.array([0.5, 0.1, 0.3, -0.9]), threshold=0.2)
    overall = graded.overall
    assert overall["won"] == [1, 2] and overall["drawn"] == [1, 1] and overall["lost"] == [0, 1]
    assert overall["decided"] == [1, 3] and overall["all"] == [2, 4]
    assert graded.mean["won"] == pytest.approx(-0.2)
    with pytest.raises(ValueError, match="3 values for 4 positions"):
        value_accuracy(labels, np.zeros(3))


def test_play_shows_the_search(checkpoint):
    from connectx_gym.play import play_game

    agent = make_agent(f"mcts:{checkpoint}:32")
    said: list[str] = []
    moves = iter(["0", "0", "0", "q"])
    play_game(agent, "mcts", BOARD, True, 0, False, read=lambda _: next(moves), say=said.append)
    searched = [line for line in said if line.startswith("search: ")]
    assert searched and "visits" in searched[0] and ("root value" in searched[0] or "proven" in searched[0])
    assert any("move probabilities" in line for line in said)


def test_from_sb3_model_and_numpy_policy_value_agree(policy, checkpoint, monkeypatch):
    """A batch larger than a slice of the convolutions (SLICE_ROWS) passes in slices, and its logits and
    values are those of one position at a time and those of the torch model's numpy copy."""
    from connectx_gym.inference.network import SLICE_ROWS
    from connectx_gym.runtime.checkpoints import load_model

    planes = (np.random.default_rng(1).random((2 * SLICE_ROWS + 5, 4, 6, 7)) < 0.3).astype(np.float32)
    network = policy.network
    slices = []
    convolve = network._convolve
    monkeypatch.setattr(network, "_convolve", lambda x: slices.append(len(x)) or convolve(x))
    logits, values = policy.policy_value(planes)
    assert slices == [SLICE_ROWS, SLICE_ROWS, 5]
    monkeypatch.undo()
    alone = [policy.policy_value(position[None]) for position in planes]
    np.testing.assert_allclose(logits, np.concatenate([a for a, _ in alone]), atol=1e-6, rtol=0)
    np.testing.assert_allclose(values, np.concatenate([v for _, v in alone]), atol=1e-6, rtol=0)
    other = from_sb3_model(load_model(checkpoint))
    assert np.allclose(logits, other.logits(planes), atol=1e-5) and np.allclose(values, other.values(planes), atol=1e-5)


def test_a_small_resnet_reads_back_from_its_checkpoint_with_torchs_values(tmp_path):
    """Residual blocks (policy.res_blocks) survive the checkpoint: the numpy forward pass of the file gives
    torch's logits and values, and the blocks are really there (a plain CNN's numbers differ)."""
    import torch

    from connectx_gym.inference.numpy_policy import load_checkpoint
    from connectx_gym.runtime.checkpoints import load_model

    settings = dict(features="cnn", cnn_channels=[6], kernel_size=3, net_arch=[8], activation="relu", res_blocks=2)
    path = tiny_checkpoint(tmp_path / "resnet.zip", BOARD, settings=settings, steps=64)
    policy = load_checkpoint(path)
    assert len(policy.blocks) == 2 and len(policy.conv_layers) == 1
    planes = (np.random.default_rng(2).random((9, 4, 6, 7)) < 0.3).astype(np.float32)
    logits, values = policy.policy_value(planes)
    model = load_model(path)
    with torch.no_grad():
        observations = torch.as_tensor(planes)
        expected_values = model.policy.predict_values(observations).numpy()[:, 0]
        features = model.policy.extract_features(observations, model.policy.pi_features_extractor)
        expected_logits = model.policy.action_net(model.policy.mlp_extractor.forward_actor(features)).numpy()
    np.testing.assert_allclose(values, expected_values, atol=1e-5, rtol=0)
    np.testing.assert_allclose(logits, expected_logits, atol=1e-5, rtol=0)
    plain = type(policy)(
        {k: v for k, v in policy.arrays().items() if ".blocks." not in k}, policy.activation, policy.board
    )
    assert not np.allclose(plain.values(planes), values, atol=1e-3)
