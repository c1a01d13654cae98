"""The package's shape: layers, small modules, short functions, and no import cycle between modules.

These are the layout rules of docs/layout.md, checked on the source so that they
stay habits: a module over 500 lines or a function over 80 lines (without a ``# long:`` comment
right above it saying why) fails here, as does any cycle in the graph of imports between the
package's modules, or a layer that imports a layer listed after it, counting imports inside
functions too.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "connectx_gym"
MAX_MODULE_LINES = 500
MAX_FUNCTION_LINES = 80
LONG_MARKER = "# long:"


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}

#: the layers (a folder or a top-level module), each importing only layers before it
LAYERS = (
    "errors",
    "cli",
    "runtime",
    "rules",
    "search",
    "inference",
    "agents",
    "data",
    "config",
    "envs",
    "evaluation",
    "training",
    "submission",
    "sweeps",
    "train",
    "distil",
    "evaluate",
    "export",
    "tune",
    "web",
    "play",
    "pettingzoo",
    "",  # the package itself: registers ConnectX-v0
)


def layer_of(name: str) -> str:
    parts = name.split(".")
    return parts[1] if len(parts) > 1 else ""


def imported_modules(name: str, path: Path) -> set[str]:
    """The package modules that ``name`` imports anywhere in its source (functions included)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            # `from package import module` imports the module; `from module import name` the module
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base for alias in node.names]
        else:
            continue
        found.update(target for target in targets if target in MODULES and target != name)
    return found


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a list of modules (first repeated at the end), or None."""
    state: dict[str, str] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = "open"
        stack.append(node)
        for successor in sorted(graph.get(node, ())):
            if state.get(successor) == "open":
                return stack[stack.index(successor) :] + [successor]
            if successor not in state:
                cycle = visit(successor)
                if cycle:
                    return cycle
        stack.pop()
        state[node] = "done"
        return None

    for node in sorted(graph):
        if node not in state:
            cycle = visit(node)
            if cycle:
                return cycle
    return None


def test_find_cycle_finds_cycles_and_accepts_trees():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]


def test_no_import_cycle_between_modules():
    graph = {name: imported_modules(name, path) for name, path in MODULES.items()}
    # a package's __init__ importing its own submodules is not a cycle through the package
    graph = {name: {t for t in targets if not name.startswith(f"{t}.")} for name, targets in graph.items()}
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph) or [])


def test_every_module_is_in_a_layer():
    assert {layer_of(name) for name in MODULES} <= set(LAYERS)


@pytest.mark.parametrize("name", sorted(MODULES))
def test_module_imports_only_its_own_and_earlier_layers(name):
    rank = LAYERS.index(layer_of(name))
    later = sorted(t for t in imported_modules(name, MODULES[name]) if LAYERS.index(layer_of(t)) > rank)
    assert later == [], f"{name} imports a later layer: {later}"


@pytest.mark.parametrize("name", sorted(n for n in MODULES if layer_of(n) in ("rules", "search")))
def test_rules_and_search_know_no_files_or_networks(name):
    """The rules and the searches are handed positions and networks; checkpoint files, the machine and
    network inference are the layers above them."""
    imports = imported_modules(name, MODULES[name])
    assert sorted(t for t in imports if layer_of(t) in ("runtime", "inference", "agents")) == []


@pytest.mark.parametrize("name", sorted(MODULES))
def test_module_is_small(name):
    lines = MODULES[name].read_text(encoding="utf-8").count("\n")
    assert lines <= MAX_MODULE_LINES, f"{MODULES[name]} has {lines} lines (at most {MAX_MODULE_LINES})"


def long_functions(path: Path) -> list[str]:
    """Functions over the limit without a ``# long:`` comment just above them (or their decorators)."""
    source = path.read_text(encoding="utf-8")
    lines = source.splitlines()
    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        length = node.end_lineno - node.lineno + 1
        first = min([node.lineno] + [decorator.lineno for decorator in node.decorator_list])
        justified = first >= 2 and lines[first - 2].strip().startswith(LONG_MARKER)
        if length > MAX_FUNCTION_LINES and not justified:
            found.append(f"{path.name}:{node.lineno} {node.name} ({length} lines)")
    return found


def test_long_function_check_sees_long_functions(tmp_path):
    body = "\n".join(f"    x{i} = {i}" for i in range(MAX_FUNCTION_LINES))
    (tmp_path / "m.py").write_text(f"def short():\n    pass\n\n\ndef long():\n{body}\n")
    assert long_functions(tmp_path / "m.py") == [f"m.py:5 long ({MAX_FUNCTION_LINES + 1} lines)"]
    (tmp_path / "m.py").write_text(f"{LONG_MARKER} one table, read top to bottom\ndef long():\n{body}\n")
    assert long_functions(tmp_path / "m.py") == []


@pytest.mark.parametrize("name", sorted(MODULES))
def test_functions_are_short_or_say_why(name):
    assert long_functions(MODULES[name]) == []
