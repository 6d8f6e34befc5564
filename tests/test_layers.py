"""The package's shape: layers import downward only, no import cycles, no module over 400 lines.

Read from the source with `ast`, so the rule holds for imports made inside functions (the lazy ones)
as much as for those at the top; imports under `if TYPE_CHECKING:` are annotations, not dependencies.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.support.imports import loaded_by

ROOT = Path(__file__).resolve().parent.parent
MAX_LINES = 400

# Lowest first. A module may import its own layer or any below it; the longest matching prefix wins.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("function.errors", "function.deadline", "function.bounded", "function.reference", "function.verdict"),
    ("function.events", "function.registry.content", "function.registry.platform", "function.signing"),
    ("function.settings", "function.storage"),
    ("function.registry",),
    ("function.index",),
    ("function.learned", "function.rules", "function.signatures", "function.auditor"),
    ("function.github", "function.sweep"),
    ("function.services", "function.cli", "function.cloudlog", "function.table"),
    ("main", "function.__main__", "function"),
)


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def sources() -> dict[str, Path]:
    paths = [*sorted((ROOT / "function").rglob("*.py")), ROOT / "main.py"]
    return {module_name(path): path for path in paths}


def layer_of(module: str) -> int:
    best, rank = -1, -1
    for index, prefixes in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > best:
                best, rank = len(prefix), index
    assert rank >= 0, f"{module} belongs to no layer: add it to LAYERS"
    return rank


def is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def imports_of(module: str, path: Path, known: set[str]) -> set[str]:
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and is_type_checking(node):
            for branch in node.orelse:
                visit(branch)
            return
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join([*base, *([node.module] if node.module else [])])
            else:
                target = node.module or ""
            for alias in node.names:
                submodule = f"{target}.{alias.name}"
                found.add(submodule if submodule in known else target)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text(encoding="utf-8")))
    return {name for name in found if name in known and name != module}


def graph() -> dict[str, set[str]]:
    modules = sources()
    known = set(modules)
    return {name: imports_of(name, path, known) for name, path in modules.items()}


def test_every_import_points_to_the_same_layer_or_below() -> None:
    upward = [
        f"{module} (layer {layer_of(module)}) imports {target} (layer {layer_of(target)})"
        for module, targets in graph().items()
        for target in sorted(targets)
        if layer_of(target) > layer_of(module)
    ]
    assert upward == []


def test_the_import_graph_has_no_cycle() -> None:
    edges = graph()
    state: dict[str, int] = {}
    cycles: list[list[str]] = []

    def walk(node: str, trail: list[str]) -> None:
        state[node] = 1
        for target in sorted(edges[node]):
            if state.get(target) == 1:
                cycles.append([*trail[trail.index(target) :], target])
            elif target not in state:
                walk(target, [*trail, target])
        state[node] = 2

    for module in sorted(edges):
        if module not in state:
            walk(module, [module])
    assert cycles == []


@pytest.mark.parametrize("module", sorted(sources()))
def test_no_module_is_over_the_line_budget(module: str) -> None:
    lines = len(sources()[module].read_text(encoding="utf-8").splitlines())
    assert lines <= MAX_LINES, f"{module} has {lines} lines; split it by concept"


def test_the_rule_catches_an_upward_import(tmp_path: Path) -> None:
    """The checker itself can fail: a registry module importing the auditor is named."""
    fake = tmp_path / "client.py"
    fake.write_text("from function.auditor import Auditor\n", encoding="utf-8")
    targets = imports_of("function.registry.client", fake, set(sources()))
    assert targets == {"function.auditor"}
    assert layer_of("function.auditor") > layer_of("function.registry.client")


def test_the_cli_loads_no_cloud_or_http_library_at_import() -> None:
    """Cloud Logging is the functions' alone; storage and HTTP load when a command first needs them."""
    assert loaded_by(["function.cli"], ("google.cloud.logging", "google.cloud.storage", "requests", "urllib3")) == []
