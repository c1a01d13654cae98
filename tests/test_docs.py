"""The README and the shipped YAML files stay true: the config and sweep file references, and
``configs/default.yaml`` and ``configs/tune.yaml``, are what the schema dataclasses generate; the
README's test command is what CI runs."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from connectx_gym.config import config_reference_markdown, default_config_yaml
from connectx_gym.sweeps.reference import sweep_file_yaml, sweep_reference_markdown
from connectx_gym.sweeps.schema import AshaScheduler, FifoScheduler, Resources, SweepFile

ROOT = Path(__file__).resolve().parent.parent


def readme_table(marker: str) -> str:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    match = re.search(rf"<!-- {marker}:start -->\n(.*?)<!-- {marker}:end -->", readme, re.S)
    assert match, f"README lacks the {marker} markers"
    return match.group(1)


def test_readme_config_table_is_current():
    assert readme_table("config-table") == config_reference_markdown(), "run: python -m connectx_gym.config --markdown"


def test_readme_sweep_table_is_current():
    assert readme_table("sweep-table") == sweep_reference_markdown(), "run: python -m connectx_gym.sweeps --markdown"


@pytest.mark.parametrize(
    "name, generate, command",
    [
        ("default.yaml", default_config_yaml, "python -m connectx_gym.config > configs/default.yaml"),
        ("tune.yaml", sweep_file_yaml, "python -m connectx_gym.sweeps > configs/tune.yaml"),
    ],
)
def test_shipped_yaml_is_generated(name, generate, command):
    assert (ROOT / "configs" / name).read_text(encoding="utf-8") == generate(), f"regenerate: {command}"


@pytest.mark.parametrize("cls", [SweepFile, FifoScheduler, AshaScheduler, Resources])
def test_every_sweep_key_has_one_line_help(cls):
    for f in dataclasses.fields(cls):
        help_text = f.metadata.get("help")
        assert help_text and "\n" not in help_text and "|" not in help_text, f"{cls.__name__}.{f.name}"


def test_sweep_reference_has_a_row_per_key():
    rows = sweep_reference_markdown().strip().splitlines()[2:]
    keys = [row.split("`")[1] for row in rows]
    assert keys[: len(dataclasses.fields(SweepFile))] == [f.name for f in dataclasses.fields(SweepFile)]
    assert {"scheduler.grace_period", "scheduler.reduction_factor", "scheduler.brackets"} <= set(keys)
    assert {"resources_per_trial.cpu", "resources_per_trial.gpu"} <= set(keys)
    assert "| `name` | required | " in sweep_reference_markdown()


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    quickstart = readme.split("## Quickstart", 1)[1].split("```bash", 1)[1].split("```", 1)[0]
    commands = [line.split("#", 1)[0].strip() for line in quickstart.strip().splitlines()]
    assert len(commands) == 2
    assert commands[0].endswith("python -m connectx_gym.train")
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert commands[1] in ci.splitlines()
