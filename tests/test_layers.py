"""The declared package order holds: nothing imports upward, and no two modules import each other.

Layers, lowest first (docs/architecture.md):

    drivers → recordings → policies → teleop_app (the core) → ui → teleop_app.cli

A module may import its own layer and the layers below it. Within ``recordings``,
the file format never imports the speed analysis (``recordings.analysis``).
Every import counts — at module level, inside functions, and under
``TYPE_CHECKING`` — because each is a dependency a reader of the code has to follow.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("drivers", "recordings", "policies", "teleop_app", "ui")
LAYERS = ("drivers", "recordings", "policies", "teleop_app", "ui", "teleop_app.cli")


def layer_of(module: str) -> int | None:
    """Index in LAYERS of the longest layer name that ``module`` is in (None: not ours)."""
    best = None
    for i, name in enumerate(LAYERS):
        if module == name or module.startswith(name + "."):
            if best is None or len(name) > len(LAYERS[best]):
                best = i
    return best


def why_forbidden(module: str, imported: str) -> str | None:
    """Why ``module`` may not import ``imported`` (None: it may)."""
    mine, theirs = layer_of(module), layer_of(imported)
    if mine is None or theirs is None:
        return None
    if theirs > mine:
        return f"{LAYERS[mine]} imports {imported} ({LAYERS[theirs]})"
    if (LAYERS[mine] == "recordings" and imported.startswith("recordings.analysis")
            and not module.startswith("recordings.analysis")):
        return f"the file format imports the speed analysis ({imported})"
    return None


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path) -> list[tuple[str, int]]:
    """Every module ``path`` imports (absolute names), with the line."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            found.append((base, node.lineno))
            # "from package import module" imports that module
            found += [(f"{base}.{alias.name}", node.lineno) for alias in node.names]
    return sorted(set(found), key=lambda item: item[1])


def our_modules() -> dict[str, Path]:
    out = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            out[module_name(path)] = path
    return out


def resolve(name: str, modules: dict[str, Path]) -> str | None:
    """The module of ours that ``name`` refers to (a module, or a name inside one), else None."""
    while name:
        if name in modules:
            return name
        name = name.rpartition(".")[0]
    return None


def test_nothing_imports_upward():
    modules = our_modules()
    assert len(modules) > 80
    wrong = []
    for name, path in modules.items():
        for imported, line in imports_of(path):
            target = resolve(imported, modules)
            why = None if target is None or target == name else why_forbidden(name, target)
            if why:
                wrong.append(f"{path.relative_to(ROOT)}:{line}: {why}")
    assert not wrong, "imports against the declared order:\n" + "\n".join(wrong)


def test_no_import_cycles():
    modules = our_modules()
    graph = {name: set() for name in modules}
    for name, path in modules.items():
        for imported, _ in imports_of(path):
            target = resolve(imported, modules)
            if target is not None and target != name and not name.startswith(target + "."):
                graph[name].add(target)
    # Tarjan's strongly connected components: any component with two or more modules is a cycle.
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in graph:
        if v not in index:
            visit(v)
    assert not cycles, "modules that import each other (directly or round a loop):\n" + "\n".join(
        " ↔ ".join(c) for c in cycles)


@pytest.mark.parametrize("module, imported, expected", [
    ("drivers.types", "teleop_app.loop", True),
    ("recordings.writer", "drivers.types", False),
    ("teleop_app.operator_session", "teleop_app.cli.main", True),
    ("ui.app", "teleop_app.cli.errors", True),
    ("teleop_app.cli.main", "ui.app", False),
    ("recordings.library", "recordings.analysis.metrics", True),
])
def test_the_rule_itself(module, imported, expected):
    """The checker forbids exactly the imports the order forbids (so a passing suite means something)."""
    assert (why_forbidden(module, imported) is not None) is expected
