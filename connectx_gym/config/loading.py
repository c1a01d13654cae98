"""Reading and writing training configs: YAML files, ``section.key=value`` overrides, the
``{section: {key: value}}`` dicts between them and :class:`~connectx_gym.config.training.Config`,
with a one-line :class:`~connectx_gym.errors.ConfigError` for every unknown key, bad value or
unreadable file.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from connectx_gym.config.kickstart import moved_key_error
from connectx_gym.config.schema import Section, show, unknown_key
from connectx_gym.config.training import SECTIONS, Config
from connectx_gym.errors import ConfigError, did_you_mean
from connectx_gym.runtime.files import write_atomic

__all__ = [
    "config_from_dict",
    "config_keys",
    "config_to_dict",
    "load_config",
    "parse_set_value",
    "read_yaml",
    "save_config",
    "set_key",
    "yaml_problem",
]


def config_keys() -> list[str]:
    """Every ``section.key``, in declaration order, and every ``section.key.sub`` of a tagged key (each key of
    any of its kinds, once)."""
    keys = []
    for name, cls in SECTIONS.items():
        for f in dataclasses.fields(cls):
            keys.append(f"{name}.{f.name}")
            subkeys = [sub for kind in f.metadata.get("kinds", {}).values() for sub in kind.keys()]
            keys += [f"{name}.{f.name}.{sub}" for sub in dict.fromkeys(subkeys)]
    return keys


def set_key(data: dict[str, Any], key: str, value: Any) -> None:
    """Set ``section.key`` (or ``section.key.sub`` of a tagged key, merged into its mapping) in the config dict
    ``data`` (``{section: {key: value}}``), in place; the key must be one of :func:`config_keys`."""
    section, _dot, name = key.partition(".")
    head, dot, sub = name.partition(".")
    values = data.get(section)
    values = dict(values) if isinstance(values, Mapping) else {}
    if dot:
        inner = values.get(head)
        inner = {"kind": inner} if isinstance(inner, str) else dict(_plain(inner) if inner is not None else {})
        values[head] = {**inner, sub: value}
    else:
        values[name] = value
    data[section] = values


def _unknown_key(section: str, key: str) -> ConfigError:
    moved = getattr(SECTIONS[section], "moved_keys", {})
    if key in moved:
        return moved_key_error(section, key, moved[key])
    names = [f.name for f in dataclasses.fields(SECTIONS[section])]
    hint = did_you_mean(key, names)
    if not hint:  # right key, wrong section?
        elsewhere = [name for name, cls in SECTIONS.items() if key in {f.name for f in dataclasses.fields(cls)}]
        hint = f" (did you mean '{elsewhere[0]}.{key}'?)" if elsewhere else ""
    return unknown_key(section, key, hint)


def _unknown_section(section: Any) -> ConfigError:
    return ConfigError(f"unknown section {section!r}{did_you_mean(str(section), SECTIONS)}")


def config_from_dict(data: Mapping[str, Any]) -> Config:
    """A validated :class:`Config` from ``{section: {key: value}}``; missing keys take defaults."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"a config must be a mapping of sections, got {show(data)}")
    for section in data:
        if section not in SECTIONS:
            raise _unknown_section(section)
    sections = {}
    for name, cls in SECTIONS.items():
        values = data.get(name)
        if values is None:  # absent, or an empty 'section:' line in YAML
            values = {}
        if not isinstance(values, Mapping):
            raise ConfigError(f"section '{name}' must be a mapping of keys to values, got {show(values)}")
        known = {f.name for f in dataclasses.fields(cls)}
        for key in values:
            if key not in known:
                raise _unknown_key(name, key)
        sections[name] = cls(**values)
    return Config(**sections)


def _plain(value: Any) -> Any:
    """Plain YAML types: tuples become lists, sections mappings, recursively; dicts are copied."""
    if isinstance(value, Section):
        return {name: _plain(getattr(value, name)) for name in value.keys()}
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    return value


def config_to_dict(config: Config) -> dict[str, dict[str, Any]]:
    """``{section: {key: value}}`` of plain YAML types (lists, not tuples)."""
    return {
        name: {f.name: _plain(getattr(getattr(config, name), f.name)) for f in dataclasses.fields(SECTIONS[name])}
        for name in SECTIONS
    }


def read_yaml(path: str | os.PathLike) -> Any:
    """The YAML document at ``path``; a missing, unreadable or malformed file is a ConfigError naming it."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"config file '{os.fspath(path)}' not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        problem = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ConfigError(f"cannot read config file '{os.fspath(path)}': {problem}") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file '{os.fspath(path)}' is not valid YAML: {yaml_problem(exc)}") from None


def yaml_problem(exc: yaml.YAMLError) -> str:
    """A one-line summary of a PyYAML error."""
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    return f"{problem} (line {mark.line + 1}, column {mark.column + 1})" if mark else problem


def parse_set_value(text: str, where: str) -> Any:
    """The value of a ``key=value`` setting, read as YAML (``null``, ``[64, 64]``, ``1e-4``).

    :param where: how the error starts, naming the setting (e.g. ``bad override 'ppo.gamma=['``)
    """
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{where}: value is not valid YAML: {yaml_problem(exc)}") from None


def _apply_override(data: dict[str, Any], override: str) -> None:
    key, sep, text = override.partition("=")
    section, dot, name = key.strip().partition(".")
    if not sep or not dot or not section or not name:
        raise ConfigError(f"bad override {override!r}: expected section.key=value, e.g. ppo.learning_rate=1e-4")
    if section not in SECTIONS:
        raise ConfigError(f"bad override {override!r}: {_unknown_section(section)}")
    if f"{section}.{name}" not in config_keys():
        head = name.partition(".")[0]
        if head in {f.name for f in dataclasses.fields(SECTIONS[section])}:  # an unknown key of a tagged key
            raise ConfigError(f"bad override {override!r}: unknown key '{section}.{name}'")
        raise ConfigError(f"bad override {override!r}: {_unknown_key(section, name)}")
    set_key(data, f"{section}.{name}", parse_set_value(text, f"bad override {override!r}"))


def load_config(path: str | os.PathLike | None = None, overrides: Sequence[str] = ()) -> Config:
    """Defaults, updated by the YAML file at ``path`` (if any), updated by ``section.key=value``
    ``overrides`` (values parsed as YAML: ``train.run_name=null``, ``policy.net_arch=[64,64]``)."""
    if isinstance(overrides, str):
        overrides = [overrides]
    data: Any = {} if path is None else read_yaml(path)
    if data is None:
        raise ConfigError(
            f"config file '{os.fspath(path)}' is empty (no sections, only blanks or comments); give at least one "
            "section, e.g. 'train: {total_timesteps: 100000}', or leave out --config to use every default"
        )
    if not isinstance(data, Mapping):
        raise ConfigError(
            f"config file '{os.fspath(path)}' must contain a mapping of sections, "
            f"got {type(data).__name__} {show(data)}"
        )
    data = dict(data)
    for override in overrides:
        _apply_override(data, override)
    return config_from_dict(data)


def save_config(config: Config, path: str | os.PathLike) -> None:
    """Write ``config`` as YAML to ``path`` atomically (temp file in the same directory + os.replace)."""
    text = yaml.safe_dump(config_to_dict(config), sort_keys=False, default_flow_style=None)
    write_atomic(path, text.encode("utf-8"))
