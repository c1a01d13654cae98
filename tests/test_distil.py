"""``python -m connectx_gym.distil``: positions from a checkpoint's games, labelled by its search, fitted by a
network of the config's shape and saved as a checkpoint that ``train.init_from`` accepts."""

from __future__ import annotations

import numpy as np
import pytest

from connectx_gym.config import load_config
from connectx_gym.distil import main
from connectx_gym.evaluation.accuracy import load_positions
from connectx_gym.inference.numpy_policy import load_checkpoint
from connectx_gym.runtime.checkpoints import read_network
from connectx_gym.search import solver as oracle
from connectx_gym.training import distillation

BOARD = {"rows": 6, "columns": 7, "inarow": 4}
SHAPE = ("--set", "policy.cnn_channels=[6,6,6]", "--set", "policy.net_arch=[12]")
SMALL = ("--positions", "120", "--epochs", "3", "--simulations", "8", "--num-processes", "1")


@pytest.fixture(scope="module")
def teacher(tmp_path_factory):
    from helpers import tiny_checkpoint

    return str(tiny_checkpoint(tmp_path_factory.mktemp("distil") / "teacher.zip", BOARD, steps=256))


def test_sampled_positions_are_distinct_unfinished_and_seeded(teacher):
    policy = load_checkpoint(teacher)
    first = distillation.sample_positions(policy, 300, seed=4, games=16)
    keys = [(p.mask, p.stones[1]) for p in first]
    assert len(first) == 300 and len(set(keys)) == 300 and not any(p.done for p in first)
    assert keys == [(p.mask, p.stones[1]) for p in distillation.sample_positions(policy, 300, seed=4, games=16)]
    assert keys != [(p.mask, p.stones[1]) for p in distillation.sample_positions(policy, 300, seed=5, games=16)]


def test_labels_are_the_same_on_one_process_or_two(teacher, monkeypatch):
    positions = distillation.sample_positions(load_checkpoint(teacher), 60, seed=0, games=8)
    monkeypatch.setattr(distillation, "LABEL_CHUNK", 25)
    seen = []
    one = distillation.label_positions(teacher, positions, 8, processes=1, progress=lambda d, t: seen.append((d, t)))
    two = distillation.label_positions(teacher, positions, 8, processes=2)
    assert seen == [(25, 60), (50, 60), (60, 60)]
    np.testing.assert_array_equal(one[0], two[0])
    np.testing.assert_array_equal(one[1], two[1])
    assert one[0].shape == (60, 7) and np.allclose(one[0].sum(axis=1), 1) and np.all(np.abs(one[1]) <= 1)


@pytest.mark.skipif(not oracle.solver_available(), reason="the solver extra is not installed")
def test_solver_labels_are_the_best_columns_and_the_values_sign_on_one_process_or_two(monkeypatch):
    labels = load_positions()
    index = sorted(np.random.default_rng(0).choice(len(labels), size=24, replace=False).tolist())
    positions, scores = [labels.positions()[i] for i in index], labels.scores[index]
    monkeypatch.setattr(distillation, "SOLVER_CHUNK", 5)  # several tasks a worker, gathered in order
    seen = []
    targets, values = distillation.solver_labels(positions, processes=1, progress=lambda *n: seen.append(n))
    assert seen == [(5, 24), (10, 24), (15, 24), (20, 24), (24, 24)]
    for row, target, value in zip(scores, targets, values):
        best = np.flatnonzero(row == np.nanmax(row))
        assert np.allclose(target[best], 1 / len(best)) and target.sum() == pytest.approx(1.0)
        assert value == np.sign(np.nanmax(row))
    assert {-1.0, 1.0} <= set(values.tolist())  # won and lost positions both among them
    pooled = distillation.solver_labels(positions, processes=2)
    assert np.array_equal(pooled[0], targets) and np.array_equal(pooled[1], values)


def test_the_command_writes_a_checkpoint_of_the_configs_shape_fitted_to_the_search(teacher, tmp_path, capsys):
    from connectx_gym.training.builders import check_init_from

    out = tmp_path / "student.zip"
    assert main([teacher, "-o", str(out), *SMALL, *SHAPE]) == 0
    printed = capsys.readouterr().out
    assert "labelled 120/120 positions" in printed and "greedy on the shipped positions: perfect" in printed
    losses = [float(line.split("loss ")[1].split()[0]) for line in printed.splitlines() if line.startswith("epoch")]
    assert len(losses) == 3 and losses[-1] < losses[0]
    config = load_config(None, ["policy.cnn_channels=[6,6,6]", "policy.net_arch=[12]", f"train.init_from={out}"])
    check_init_from(config)  # the trainer accepts it: this board, this shape
    # the same seed gives the same network; another seed another one
    again, other = tmp_path / "again.zip", tmp_path / "other.zip"
    assert main([teacher, "-o", str(again), *SMALL, *SHAPE]) == 0
    assert main([teacher, "-o", str(other), *SMALL, *SHAPE, "--seed", "1"]) == 0
    weights, same, different = (read_network(path)[1] for path in (out, again, other))
    assert all(np.array_equal(weights[name], same[name]) for name in weights)
    assert not all(np.array_equal(weights[name], different[name]) for name in weights)


def test_fitting_moves_the_network_toward_the_targets(teacher):
    from connectx_gym.distil import build_student
    from connectx_gym.inference.numpy_policy import from_sb3_model

    positions = distillation.sample_positions(load_checkpoint(teacher), 200, seed=0, games=16)
    targets, values = distillation.label_positions(teacher, positions, 8, processes=1)
    data = distillation.Dataset.of(positions, targets, values)
    model = build_student(load_config(None, ["policy.cnn_channels=[8]", "policy.net_arch=[16]"]), seed=0)

    def divergence() -> float:
        logits = np.where(data.masks, from_sb3_model(model).logits(data.planes), -np.inf)
        shifted = logits - logits.max(axis=1, keepdims=True)
        logs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
        targets = np.where(data.targets > 0, data.targets, 1)
        # the KL divergence from the targets to the network's distribution
        return float((data.targets * (np.log(targets) - np.where(data.masks, logs, 0))).sum(axis=1).mean())

    before = divergence()
    distillation.fit_policy(model.policy, data, epochs=30, seed=0, learning_rate=3e-3, batch=16)
    after = divergence()
    assert after < before / 2, (before, after)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--positions", "0"], "--positions must be an integer >= 1, got '0'"),
        (["--simulations", "two"], "--simulations must be an integer >= 1, got 'two'"),
        (["--learning-rate", "nan"], "--learning-rate must be a number > 0, got 'nan'"),
        (["--set", "policy.cnn_channels=[0]"], "policy.cnn_channels"),
        (["--set", "env.rows=5", "--set", "env.columns=6"], "plays on the board"),
    ],
)
def test_bad_input_is_one_line_and_writes_nothing(teacher, tmp_path, capsys, arguments, message):
    out = tmp_path / "student.zip"
    assert main([teacher, "-o", str(out), *arguments]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and err.count("\n") == 1
    assert not out.exists()


def test_bad_paths_are_refused(teacher, tmp_path, capsys):
    assert main([str(tmp_path / "nope.zip"), "-o", str(tmp_path / "s.zip")]) == 2
    assert main([teacher, "-o", str(tmp_path / "s.txt")]) == 2
    assert main([teacher, "-o", teacher]) == 2
    err = capsys.readouterr().err
    assert "does not exist" in err and "must name a .zip file" in err and "the teacher checkpoint itself" in err
    assert list(tmp_path.iterdir()) == []


def _weights(path):
    return read_network(path)[1]


def _same(one, two) -> bool:
    return one.keys() == two.keys() and all(np.array_equal(one[name], two[name]) for name in one)


def test_a_stop_while_labelling_saves_and_resume_ends_as_an_uninterrupted_run(teacher, tmp_path, monkeypatch, capsys):
    import os
    import signal

    from connectx_gym.training.distil_work import work_path

    monkeypatch.setattr(distillation, "LABEL_CHUNK", 40)  # before both runs: the batching of a chunk's searches
    whole = tmp_path / "whole.zip"
    assert main([teacher, "-o", str(whole), *SMALL, *SHAPE]) == 0
    calls, hung_up = [], []
    label_chunk = distillation.label_chunk

    def hang_up_in_the_second_chunk(job):
        calls.append(len(job[2]))
        if len(calls) == 2 and not hung_up:
            hung_up.append(True)
            os.kill(os.getpid(), signal.SIGHUP)  # the terminal closed
        return label_chunk(job)

    monkeypatch.setattr(distillation, "label_chunk", hang_up_in_the_second_chunk)
    out = tmp_path / "student.zip"
    capsys.readouterr()
    assert main([teacher, "-o", str(out), *SMALL, *SHAPE]) == 129
    err = capsys.readouterr().err
    partial = work_path(out)
    assert f"stopped by SIGHUP: saved {partial} (labelled 40/120 positions); continue with" in err
    assert partial.is_file() and not out.exists()
    # the work is not overwritten by a fresh start
    assert main([teacher, "-o", str(out), *SMALL, *SHAPE]) == 2
    assert "continue it with --resume" in capsys.readouterr().err
    calls.clear()
    assert main([teacher, "-o", str(out), *SMALL, *SHAPE, "--resume"]) == 0
    assert calls == [40, 40]  # only the 80 positions not yet labelled were searched
    assert "resuming from" in capsys.readouterr().out
    assert _same(_weights(out), _weights(whole)) and not partial.exists()


def test_a_stop_while_fitting_resumes_after_the_last_epoch(teacher, tmp_path, monkeypatch, capsys):
    import os
    import signal

    from connectx_gym.training.distil_work import work_path

    whole = tmp_path / "whole.zip"
    assert main([teacher, "-o", str(whole), *SMALL, *SHAPE]) == 0
    run_epoch = distillation.PolicyFit.run_epoch

    def interrupt_the_second_epoch(fit):
        if fit.epoch == 1:
            os.kill(os.getpid(), signal.SIGINT)
        return run_epoch(fit)

    monkeypatch.setattr(distillation.PolicyFit, "run_epoch", interrupt_the_second_epoch)
    out = tmp_path / "student.zip"
    assert main([teacher, "-o", str(out), *SMALL, *SHAPE]) == 130
    assert "(labelled 120 positions, fitted 1/3 epochs)" in capsys.readouterr().err
    monkeypatch.setattr(distillation.PolicyFit, "run_epoch", run_epoch)
    assert main([teacher, "-o", str(out), *SMALL, *SHAPE, "--resume"]) == 0
    printed = capsys.readouterr().out
    assert "epoch 1/3" not in printed and "epoch 3/3" in printed
    assert _same(_weights(out), _weights(whole)) and not work_path(out).exists()


def test_resume_with_other_settings_or_without_work_is_one_line(teacher, tmp_path, monkeypatch, capsys):
    from connectx_gym.training.distil_work import DistilWork, work_path

    out = tmp_path / "student.zip"
    assert main([teacher, "-o", str(out), *SMALL, "--resume"]) == 2
    assert "--resume: no saved work at" in capsys.readouterr().err
    work_path(out).write_bytes(b"not a work file")
    assert main([teacher, "-o", str(out), *SMALL, "--resume"]) == 2
    assert "is not a distil work file" in capsys.readouterr().err
    DistilWork({"seed": 5, "board": BOARD}).save(work_path(out))
    assert main([teacher, "-o", str(out), *SMALL, "--resume"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --resume:") and "seed 5 -> 0" in err and err.count("\n") == 1
    assert not out.exists()
