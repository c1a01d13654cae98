"""The documentation and the shipped YAML files stay true: the config and sweep file references (on
the docs pages), and ``configs/default.yaml`` and ``configs/tune.yaml``, are what the schema dataclasses
generate; the README's test command is what CI runs; the site's navigation and its pages agree.
(CI builds the site itself with ``mkdocs build --strict``; the tests do not.)"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest
import yaml

from connectx_gym.config import config_reference_markdown, default_config_yaml
from connectx_gym.sweeps.reference import sweep_file_yaml, sweep_reference_markdown
from connectx_gym.sweeps.schema import AshaScheduler, FifoScheduler, Resources, SweepFile

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
README_MAX_LINES = 150


def generated_table(page: str, marker: str) -> str:
    text = (DOCS / page).read_text(encoding="utf-8")
    match = re.search(rf"<!-- {marker}:start -->\n(.*?)<!-- {marker}:end -->", text, re.S)
    assert match, f"docs/{page} lacks the {marker} markers"
    return match.group(1)


def test_docs_config_table_is_current():
    assert generated_table("configuration.md", "config-table") == config_reference_markdown(), (
        "run: python -m connectx_gym.config --markdown, and paste it into docs/configuration.md"
    )


def test_docs_sweep_table_is_current():
    assert generated_table("sweeps.md", "sweep-table") == sweep_reference_markdown(), (
        "run: python -m connectx_gym.sweeps --markdown, and paste it into docs/sweeps.md"
    )


class _MkDocsLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that reads MkDocs' ``!!python/...`` and ``!ENV`` tags as plain values."""


_MkDocsLoader.add_multi_constructor("tag:yaml.org,2002:python/", lambda loader, suffix, node: None)
_MkDocsLoader.add_multi_constructor("!", lambda loader, suffix, node: None)


def nav_pages(nav) -> list[str]:
    """Every page path in MkDocs' ``nav`` (a list of pages, ``{title: page}`` and ``{title: [section]}``)."""
    if isinstance(nav, str):
        return [] if "://" in nav else [nav]
    if isinstance(nav, list):
        return [page for item in nav for page in nav_pages(item)]
    if isinstance(nav, dict):
        return [page for value in nav.values() for page in nav_pages(value)]
    return []


def mkdocs_config() -> dict:
    return yaml.load((ROOT / "mkdocs.yml").read_text(encoding="utf-8"), Loader=_MkDocsLoader)


def test_docs_nav_and_pages_agree():
    pages = nav_pages(mkdocs_config()["nav"])
    assert len(pages) == len(set(pages)), "a page is listed twice in mkdocs.yml's nav"
    missing = [page for page in pages if not (DOCS / page).is_file()]
    assert not missing, f"mkdocs.yml's nav lists pages that do not exist under docs/: {missing}"
    on_disk = {path.relative_to(DOCS).as_posix() for path in DOCS.rglob("*.md")}
    unlisted = sorted(on_disk - set(pages))
    assert not unlisted, f"docs pages missing from mkdocs.yml's nav: {unlisted}"


def test_model_card_includes_model_md():
    config = mkdocs_config()
    snippets = next(
        ext["pymdownx.snippets"]
        for ext in config["markdown_extensions"]
        if isinstance(ext, dict) and "pymdownx.snippets" in ext
    )
    (base,) = snippets["base_path"]
    assert (ROOT / base / "MODEL.md").is_file()
    assert '--8<-- "MODEL.md"' in (DOCS / "model-card.md").read_text(encoding="utf-8")


def test_readme_is_short():
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    assert len(lines) <= README_MAX_LINES, f"README.md has {len(lines)} lines; move details into docs/"


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


def quickstart_commands(path: Path) -> list[str]:
    text = path.read_text(encoding="utf-8")
    quickstart = text.split("## Quickstart", 1)[1].split("```bash", 1)[1].split("```", 1)[0]
    return [line.split("#", 1)[0].strip() for line in quickstart.strip().splitlines()]


def test_ci_runs_the_readme_test_command():
    commands = quickstart_commands(ROOT / "README.md")
    assert len(commands) == 2
    assert commands[0].endswith("python -m connectx_gym.train")
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert commands[1] in ci.splitlines()
    assert "mkdocs build --strict" in commands[1]


def test_docs_quickstart_is_the_readme_quickstart():
    assert quickstart_commands(DOCS / "index.md") == quickstart_commands(ROOT / "README.md")
