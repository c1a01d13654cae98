"""kaggle-environments is the optional ``[kaggle]`` extra: without it, training never needs it, and each
feature that does says so on one line, naming the extra, before anything is written."""

from __future__ import annotations

import subprocess
import sys

import pytest

from connectx_gym import evaluate, export, play
from connectx_gym.agents import kaggle
from connectx_gym.agents.specs import make_opponent
from connectx_gym.errors import SpecError

HINT = 'install the extra: pip install -e ".[kaggle]"'


@pytest.fixture
def without_kaggle(monkeypatch):
    """As if kaggle-environments were not installed: importing it fails, and nothing is cached."""
    for name in [m for m in sys.modules if m == "kaggle_environments" or m.startswith("kaggle_environments.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "kaggle_environments", None)
    monkeypatch.setattr(kaggle, "_KAGGLE", None)
    assert not kaggle.kaggle_available()


@pytest.mark.parametrize("spec", ["kaggle:negamax", "kaggle:agent.py"])
def test_a_kaggle_agent_names_the_extra(without_kaggle, spec):
    with pytest.raises(SpecError) as info:
        make_opponent(spec)
    assert (
        str(info.value)
        == f"a Kaggle agent (kaggle:<name|file.py>) needs kaggle-environments, which is not installed; {HINT}"
    )


@pytest.mark.parametrize(
    ("command", "args", "needed_for"),
    [
        (export, ["model.zip", "-o", "sub.py", "--check"], "--check"),  # refused before the checkpoint is read
        (evaluate, ["random", "--opponents", "random", "--games", "2", "--replay", "game.html"], "--replay"),
        (play, ["random", "--replay", "game.html"], "--replay"),
    ],
)
def test_commands_refuse_the_features_that_need_it_before_writing(
    without_kaggle, tmp_path, monkeypatch, capsys, command, args, needed_for
):
    monkeypatch.chdir(tmp_path)
    assert command.main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {needed_for}") and err.rstrip().endswith(HINT) and err.count("\n") == 1, err
    assert list(tmp_path.iterdir()) == []


def test_training_and_the_pettingzoo_env_never_import_it():
    code = (
        "import sys, connectx_gym.train, connectx_gym.pettingzoo, connectx_gym.training.loop, connectx_gym.envs.vec; "
        "print('kaggle_environments' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and result.stdout.strip() == "False", result.stderr
