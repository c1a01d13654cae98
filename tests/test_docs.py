"""The README stays true: its config table is generated, its test command is what CI runs."""

from __future__ import annotations

import re
from pathlib import Path

from connectx_gym.config import config_reference_markdown

ROOT = Path(__file__).resolve().parent.parent


def test_readme_config_table_is_current():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    match = re.search(r"<!-- config-table:start -->\n(.*?)<!-- config-table:end -->", readme, re.S)
    assert match, "README lacks the config-table markers"
    assert match.group(1) == config_reference_markdown(), "run: python -m connectx_gym.config --markdown"


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    quickstart = readme.split("## Quickstart", 1)[1].split("```bash", 1)[1].split("```", 1)[0]
    commands = [line.split("#", 1)[0].strip() for line in quickstart.strip().splitlines()]
    assert len(commands) == 2
    assert commands[0].endswith("python -m connectx_gym.train")
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert commands[1] in ci.splitlines()
