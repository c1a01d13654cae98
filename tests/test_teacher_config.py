"""The ``kickstart.teacher`` section: a mapping tagged by kind, each kind with only its own keys; the keys
that sat flat in ``kickstart`` are refused naming their new place; overrides merge into the teacher."""

from __future__ import annotations

import subprocess
import sys

import pytest
import yaml

from connectx_gym.config import (
    TEACHER_KINDS,
    config_from_dict,
    config_keys,
    config_to_dict,
    load_config,
    save_config,
)
from connectx_gym.config.kickstart import (
    AlphaBetaTeacherConfig,
    KickstartConfig,
    MctsTeacherConfig,
    SolverTeacherConfig,
)
from connectx_gym.errors import ConfigError


def test_the_default_teacher_is_alpha_beta_with_its_own_keys_only():
    teacher = load_config().kickstart.teacher
    assert teacher == AlphaBetaTeacherConfig(depth=4, temperature=0.1)
    assert not hasattr(teacher, "simulations") and not hasattr(teacher, "solver_from")


@pytest.mark.parametrize(
    "given, expected",
    [
        ({"kind": "mcts", "simulations": 8}, MctsTeacherConfig(simulations=8)),
        ({"kind": "solver", "solver_from": 18}, SolverTeacherConfig(solver_from=18)),
        ({"depth": 2}, AlphaBetaTeacherConfig(depth=2)),  # kind defaults to alphabeta
        ("mcts", MctsTeacherConfig()),  # a bare kind is short for {kind: mcts}
    ],
)
def test_each_kind_builds_its_own_section(given, expected):
    assert config_from_dict({"kickstart": {"teacher": given}}).kickstart.teacher == expected


@pytest.mark.parametrize(
    "teacher, message",
    [
        ({"kind": "oracle"}, "kickstart.teacher.kind must be one of alphabeta|solver|mcts, got 'oracle'"),
        (
            {"kind": "mcts", "depth": 3},
            "kickstart.teacher.depth is not a key of the mcts teacher (it takes kind, simulations, search_share, "
            "refresh_steps, value_coef, network, network_steps); depth belongs to kind alphabeta or solver",
        ),
        ({"kind": "alphabeta", "solver_from": 3}, "solver_from belongs to kind solver"),
        ({"kind": "mcts", "simulatoins": 3}, "unknown key 'kickstart.teacher.simulatoins'"),
        ({"kind": "mcts", "simulations": 0}, "kickstart.teacher.simulations must be an integer >= 1, got 0"),
        ([1, 2], "kickstart.teacher must be a mapping tagged by kind, e.g. {kind: mcts}, got [1, 2]"),
    ],
)
def test_bad_teachers_get_one_line_naming_the_key(teacher, message):
    with pytest.raises(ConfigError) as error:
        config_from_dict({"kickstart": {"teacher": teacher}})
    assert message in str(error.value) and "\n" not in str(error.value)


@pytest.mark.parametrize("old, new", sorted(KickstartConfig.moved_keys.items()))
def test_the_old_flat_keys_are_refused_naming_the_new_one(old, new, tmp_path):
    expected = f"kickstart.{old} is now kickstart.{new}"
    with pytest.raises(ConfigError, match=expected):
        config_from_dict({"kickstart": {old: 1}})
    with pytest.raises(ConfigError, match=expected):
        load_config(None, [f"kickstart.{old}=1"])
    path = tmp_path / "old.yaml"
    path.write_text(yaml.safe_dump({"kickstart": {"teacher": "mcts", old: 1}}))
    with pytest.raises(ConfigError, match=expected):
        load_config(path)


def test_overrides_merge_into_the_teacher_given_so_far(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("kickstart:\n  teacher: {kind: mcts, simulations: 64, value_coef: 2.0}\n")
    teacher = load_config(path, ["kickstart.teacher.simulations=8"]).kickstart.teacher
    assert teacher == MctsTeacherConfig(simulations=8, value_coef=2.0)
    assert load_config(None, ["kickstart.teacher.kind=mcts"]).kickstart.teacher == MctsTeacherConfig()
    assert load_config(None, ["kickstart.teacher=solver", "kickstart.teacher.depth=3"]).kickstart.teacher == (
        SolverTeacherConfig(depth=3)
    )
    # a key of another kind than the one given so far is refused, naming the kind it belongs to
    with pytest.raises(ConfigError, match="simulations belongs to kind mcts"):
        load_config(None, ["kickstart.teacher.simulations=8"])
    with pytest.raises(ConfigError, match="bad override 'kickstart.teacher.nope=1': unknown key"):
        load_config(None, ["kickstart.teacher.nope=1"])


def test_a_saved_config_reads_back_the_same(tmp_path):
    config = load_config(None, ["kickstart.teacher.kind=mcts", "kickstart.teacher.network_steps=5"])
    save_config(config, tmp_path / "config.yaml")
    assert load_config(tmp_path / "config.yaml") == config
    assert config_to_dict(config)["kickstart"]["teacher"]["kind"] == "mcts"


def test_every_teacher_key_is_a_config_key():
    keys = config_keys()
    for cls in TEACHER_KINDS.values():
        assert all(f"kickstart.teacher.{name}" in keys for name in cls.keys())
    assert "kickstart.depth" not in keys and "kickstart.teacher" in keys


def test_the_train_command_refuses_an_old_key_with_one_line(tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "connectx_gym.train",
            "--set",
            "kickstart.depth=5",
            "--set",
            f"train.output_dir={tmp_path}",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "kickstart.depth is now kickstart.teacher.depth" in result.stderr
    assert not any(tmp_path.iterdir())
