"""The schema machinery behind every YAML file the package reads: each file is declared as frozen
dataclasses ("sections") whose fields carry their one-line help and the rules their values must
meet, and one generic checker reads a field's annotation and rules, so constructing a section
converts and validates every value (lists become tuples, ``"1e-4"`` becomes ``0.0001``, mappings
become read-only) and raises a :class:`~connectx_gym.errors.ConfigError` whose one-line message
names the key, the value and the rule. The same metadata renders the files' reference tables and
commented YAML, so the documentation cannot drift from the checks. The training config
(:mod:`connectx_gym.config.training`) and the sweep file (:mod:`connectx_gym.sweeps.schema`) are
both declared this way.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import math
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import field
from typing import Any, ClassVar, Literal

from connectx_gym.errors import ConfigError, did_you_mean

__all__ = [
    "REQUIRED",
    "FrozenMapping",
    "Section",
    "check_field",
    "closest_name",
    "config_field",
    "field_default",
    "field_help",
    "field_lines",
    "is_directory_name",
    "block_lines",
    "reference_rows",
    "reference_table",
    "show",
    "type_hints",
    "unknown_key",
    "yaml_value",
]

#: the default of a field the user must give (its absence is reported like a null value)
REQUIRED: Any = dataclasses.MISSING
_RULES = {"ge", "gt", "le", "lt", "check", "rule", "raw", "kinds"}


def config_field(default: Any, help: str, **rules: Any) -> Any:
    """A dataclass field with its one-line ``help`` and its value ``rules`` in the metadata.

    :param default: the default value, or :data:`REQUIRED`
    :param rules: ``ge``/``gt``/``le``/``lt`` numeric bounds (element-wise for lists), ``check``
        (a predicate on the converted value), ``rule`` (text replacing the generated description
        of the allowed values, used in error messages), ``raw=True`` (the generic check leaves
        the value as given: the section's ``_validate`` parses it) and ``kinds`` (a tagged field: the
        section classes of its value by ``kind``, for the generated reference)
    """
    unknown = set(rules) - _RULES
    assert not unknown, f"unknown field rules {unknown}"
    assert "\n" not in help and "|" not in help, "help must be one line without '|'"
    metadata = {"help": help, **rules}
    if default is REQUIRED:
        return field(metadata=metadata)
    if isinstance(default, dict) or (isinstance(default, tuple) and any(isinstance(v, dict) for v in default)):
        return field(default_factory=functools.partial(copy.deepcopy, default), metadata=metadata)
    return field(default=default, metadata=metadata)


def field_default(f: dataclasses.Field) -> Any:
    """A field's default, whether given as a value or a factory (for dict defaults); REQUIRED if none."""
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return REQUIRED


# ------------------------------------------------------------------------------------------------
# Values: read-only mappings, conversion to an annotation, checking against the rules
# ------------------------------------------------------------------------------------------------


class FrozenMapping(dict):
    """A read-only, hashable dict: mapping values (opponent mixtures, curriculum stages) keep
    the config frozen and hashable like the rest of it."""

    def _read_only(self, *args: Any, **kwargs: Any) -> None:
        raise TypeError("config mappings are read-only; use dataclasses.replace or --set")

    __setitem__ = __delitem__ = clear = pop = popitem = setdefault = update = _read_only  # type: ignore[assignment]

    def __hash__(self) -> int:  # type: ignore[override]
        return hash(tuple(self.items()))

    def __reduce__(self):
        return (FrozenMapping, (dict(self),))

    def __deepcopy__(self, memo: dict) -> FrozenMapping:
        return FrozenMapping({k: copy.deepcopy(v, memo) for k, v in self.items()})


def freeze(value: Any) -> Any:
    """``value`` with every mapping read-only and every list a tuple, recursively."""
    if isinstance(value, Mapping):
        return FrozenMapping({k: freeze(v) for k, v in value.items()})
    if isinstance(value, list):
        return tuple(freeze(v) for v in value)
    return value


class _Mismatch(Exception):
    """The value does not have the annotated type (internal; becomes a ConfigError)."""


_BOUND_TEXT = (("gt", ">"), ("ge", ">="), ("lt", "<"), ("le", "<="))


def is_directory_name(value: str) -> bool:
    """Whether ``value`` names one directory inside another (not empty, ``.``, ``..`` or a path)."""
    return value not in ("", ".", "..") and "/" not in value and "\\" not in value


def show(value: Any) -> str:
    """A value as the user wrote it in YAML: null, true/false, 'text', [1, 2]."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(show(v) for v in value) + "]"
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{k}: {show(v)}" for k, v in value.items()) + "}"
    return repr(value)


def _to_int(value: Any) -> int:
    if isinstance(value, bool):
        raise _Mismatch
    if isinstance(value, int):
        return value
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return int(value)  # 1.0e6 written for 1000000
    if isinstance(value, str):
        try:
            return int(value)
        except ValueError:
            try:
                number = float(value)  # '1e6': PyYAML reads exponent-only numbers as strings
            except ValueError:
                raise _Mismatch from None
            if math.isfinite(number) and number.is_integer():
                return int(number)
    raise _Mismatch


def _to_float(value: Any) -> float:
    if isinstance(value, bool):
        raise _Mismatch
    if isinstance(value, (int, float)):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value)  # '1e-4': PyYAML reads exponent-only numbers as strings
        except ValueError:
            raise _Mismatch from None
    else:
        raise _Mismatch
    if not math.isfinite(number):
        raise _Mismatch
    return number


def _convert(value: Any, tp: Any) -> Any:
    """``value`` converted to annotation ``tp``, or raise ``_Mismatch``."""
    origin = typing.get_origin(tp)
    if tp is type(None):
        if value is None:
            return None
        raise _Mismatch
    if origin is Literal:
        for choice in typing.get_args(tp):
            if type(value) is type(choice) and value == choice:
                return value
        raise _Mismatch
    if origin in (typing.Union, types.UnionType):
        for member in typing.get_args(tp):
            try:
                return _convert(value, member)
            except _Mismatch:
                pass
        raise _Mismatch
    if origin is tuple:  # tuple[X, ...]: a YAML list, stored immutably
        if not isinstance(value, (list, tuple)):
            raise _Mismatch
        (item_type, _ellipsis) = typing.get_args(tp)
        return tuple(_convert(item, item_type) for item in value)
    if tp is dict:  # a mapping with string keys, e.g. an opponent mixture {spec: weight}
        if isinstance(value, Mapping) and all(isinstance(k, str) for k in value):
            return freeze(value)
        raise _Mismatch
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise _Mismatch
    if tp is int:
        return _to_int(value)
    if tp is float:
        return _to_float(value)
    if tp is str:
        if isinstance(value, str):
            return value
        raise _Mismatch
    raise TypeError(f"config annotation {tp!r} is not supported")


def _describe(tp: Any, bounds: str = "") -> str:
    """English for the values annotation ``tp`` allows, e.g. 'an integer >= 1 or null'."""
    origin = typing.get_origin(tp)
    if tp is type(None):
        return "null"
    if origin is Literal:
        choices = typing.get_args(tp)
        if len(choices) == 1:
            return repr(choices[0])
        return "one of " + "|".join(str(c) for c in choices)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_describe(member, bounds) for member in typing.get_args(tp))
    if origin is tuple:
        item = {int: "integers", float: "numbers", str: "strings", dict: "mappings"}[typing.get_args(tp)[0]]
        return f"a list of {item}{bounds}"
    names = {
        bool: "a boolean (true|false)",
        int: f"an integer{bounds}",
        float: f"a number{bounds}",
        str: "a string",
        dict: "a mapping",
    }
    return names[tp]


def _rule_text(tp: Any, meta: Mapping[str, Any]) -> str:
    if "rule" in meta:
        return meta["rule"]
    bounds = " and ".join(f"{op} {meta[key]}" for key, op in _BOUND_TEXT if key in meta)
    return _describe(tp, f" {bounds}" if bounds else "")


def _within_bounds(value: Any, meta: Mapping[str, Any]) -> bool:
    if isinstance(value, tuple):
        return all(_within_bounds(item, meta) for item in value)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return True  # bounds constrain numbers only ('auto', null and strings pass)
    return (
        ("gt" not in meta or value > meta["gt"])
        and ("ge" not in meta or value >= meta["ge"])
        and ("lt" not in meta or value < meta["lt"])
        and ("le" not in meta or value <= meta["le"])
    )


def check_field(path: str, value: Any, tp: Any, meta: Mapping[str, Any]) -> Any:
    """``value`` converted and checked against annotation ``tp`` and the rules ``meta`` of key ``path``."""
    try:
        converted = _convert(value, tp)
    except _Mismatch:
        converted = _Mismatch
    if (
        converted is _Mismatch
        or not _within_bounds(converted, meta)
        or ("check" in meta and not meta["check"](converted))
    ):
        raise ConfigError(f"{path} must be {_rule_text(tp, meta)}, got {show(value)}")
    return converted


@functools.cache
def type_hints(cls: type) -> dict[str, Any]:
    """The resolved annotations of ``cls`` (cached: every construction of a section reads them)."""
    return typing.get_type_hints(cls)


# ------------------------------------------------------------------------------------------------
# Sections and their keys
# ------------------------------------------------------------------------------------------------


class Section:
    """Shared behaviour of the sections (frozen dataclasses): check every field on init.

    ``section`` names the keys in messages (``ppo.gamma``); an empty ``section`` names them bare
    (a file's top-level keys).
    """

    section: ClassVar[str]

    def __post_init__(self) -> None:
        hints = type_hints(type(self))
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            if not f.metadata.get("raw"):
                value = check_field(self.key_path(f.name), getattr(self, f.name), hints[f.name], f.metadata)
                object.__setattr__(self, f.name, value)
        self._validate()

    def _validate(self) -> None:
        """Rules that involve several fields of the section (and the parsing of ``raw`` fields)."""

    @classmethod
    def key_path(cls, name: str) -> str:
        """The full name of key ``name`` in messages."""
        return f"{cls.section}.{name}" if cls.section else name

    @classmethod
    def keys(cls) -> list[str]:
        """The section's keys, in declaration order."""
        return [f.name for f in dataclasses.fields(cls)]  # type: ignore[arg-type]

    @classmethod
    def from_mapping(cls, value: Any, takes: Sequence[str] | None = None) -> Section:
        """The section from a YAML mapping whose keys must be among ``takes`` (default: its keys);
        a key left out takes its default, a required one left out is null."""
        where = cls.section
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where} must be a mapping, got {show(value)}")
        allowed = list(cls.keys() if takes is None else takes)
        for key in value:
            if key not in allowed:
                raise unknown_key(where, key, closest_name(str(key), allowed), allowed)
        required = {f.name: None for f in dataclasses.fields(cls) if field_default(f) is REQUIRED}  # type: ignore
        return cls(**{**required, **value})


def closest_name(name: str, choices: Sequence[str]) -> str:
    """did_you_mean, preferring a choice that ``name`` abbreviates (``grace`` -> ``grace_period``)."""
    longer = [choice for choice in choices if choice.startswith(name)]
    return f" (did you mean {longer[0]!r}?)" if len(longer) == 1 else did_you_mean(name, choices)


def unknown_key(where: str, key: Any, hint: str, takes: Sequence[str] = ()) -> ConfigError:
    """The error for key ``key`` of ``where`` that is not one of its keys.

    :param hint: a did-you-mean hint (``did_you_mean`` or :func:`closest_name`), or ''
    :param takes: the keys ``where`` takes, listed in the message when given
    """
    listing = f"; {where} takes {', '.join(takes)}" if takes else ""
    return ConfigError(f"unknown key '{where}.{key}'{hint}{listing}")


# ------------------------------------------------------------------------------------------------
# Generated documentation
# ------------------------------------------------------------------------------------------------


def yaml_value(value: Any) -> str:
    """A value as it is written in flow-style YAML (a section as the mapping of its keys)."""
    if isinstance(value, Section):
        value = {name: getattr(value, name) for name in value.keys()}
    if isinstance(value, (tuple, list)):
        return "[" + ", ".join(yaml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {yaml_value(v)}" for k, v in value.items()) + "}"
    if value is None or isinstance(value, bool):
        return show(value)
    return str(value)


def field_help(cls: type, f: dataclasses.Field) -> str:
    """A field's help, followed by its choices when it has a fixed set of them."""
    tp = type_hints(cls)[f.name]
    if typing.get_origin(tp) is Literal and len(typing.get_args(tp)) > 1:
        return f"{f.metadata['help']} One of: {', '.join(str(c) for c in typing.get_args(tp))}."
    return f.metadata["help"]


def reference_rows(cls: type, prefix: str = "", skip: Sequence[str] = (), note: str = "") -> list[str]:
    """Rows ``| `prefix.key` | `default` | help |`` of the fields of section class ``cls`` (a tagged field is
    followed by the rows of each of its kinds; ``note`` starts every row's help)."""
    rows = []
    for f in dataclasses.fields(cls):
        if f.name not in skip:
            default = field_default(f)
            shown = "required" if default is REQUIRED else f"`{yaml_value(default)}`"
            key = f"{prefix}.{f.name}" if prefix else f.name
            rows.append(f"| `{key}` | {shown} | {note}{field_help(cls, f)} |")
            kinds = f.metadata.get("kinds", {})
            if kinds:
                rows.append(f"| `{key}.kind` | `{default['kind']}` | One of: {', '.join(kinds)}. |")
            for kind, kind_cls in kinds.items():
                rows += reference_rows(kind_cls, key, skip=("kind",), note=f"({kind}) ")
    return rows


def reference_table(rows: Sequence[str]) -> str:
    """The markdown table ``| key | default | meaning |`` of ``rows`` (from :func:`reference_rows`)."""
    return "\n".join(["| key | default | meaning |", "| --- | --- | --- |", *rows]) + "\n"


def field_lines(section: Any, indent: str = "", skip: Sequence[str] = ()) -> list[str]:
    """``key: value  # help`` for the fields of ``section`` (an instance: its values; a class: its defaults).
    A tagged field is a block of its own, followed by the other kinds, commented out."""
    cls = section if isinstance(section, type) else type(section)
    lines = []
    for f in dataclasses.fields(cls):
        if f.name in skip:
            continue
        value = field_default(f) if isinstance(section, type) else getattr(section, f.name)
        kinds = f.metadata.get("kinds")
        if not kinds:
            lines.append(f"{indent}{f.name}: {yaml_value(value)}  # {field_help(cls, f)}")
            continue
        chosen = value if isinstance(value, Section) else kinds[value.get("kind")](**value)
        lines.append(f"{indent}{f.name}:  # {field_help(cls, f)}")
        lines += field_lines(chosen, indent + "  ")
        for kind, kind_cls in kinds.items():
            if kind != chosen.kind:
                doc = kind_cls.__doc__.split(":", 1)[1].strip().replace("\n", " ")
                lines.append(f"{indent}# {f.name}: {yaml_value(kind_cls())}  # {' '.join(doc.split())}")
    return lines


def block_lines(name: str, section: Any, comment: str | None = None) -> list[str]:
    """``section`` as a YAML block under key ``name``, commented with ``comment`` (default: the
    first line of its class's docstring) and its fields' help."""
    cls = section if isinstance(section, type) else type(section)
    comment = cls.__doc__.strip().splitlines()[0] if comment is None else comment
    return [f"{name}:  # {comment}", *field_lines(section, "  ")]
