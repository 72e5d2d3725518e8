"""The modules of app/ and workers/ import each other at the top, in one direction, and each imports on its own.

An import inside a function hides a cycle until some process happens to import the modules in another
order; so does a module-level `__getattr__` that imports on first use. These tests read the source, so a
new module is covered the day it is added.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.brokers.registry import SPECS

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("app", "workers")
#: (file, function) -> why it imports project modules when called. None of these is about a cycle: the
#: import graph test below counts their imports as if they were at the top.
LAZY_IMPORTS = {
    ("app/__init__.py", "_register_web_layer"): "the web layer: worker and feeds processes import the package too",
    ("app/__init__.py", "_wire_edges"): "the web layer (metrics, the /api guard), for the same reason",
    # The specs name their classes as "module:Class" because the config reads the specs; the loader is the one
    # place that imports what a spec names (app/brokers/loader.py).
    ("app/brokers/loader.py", "load"): "the spec-driven loader of adapters, connectors and REST clients",
}
#: Calls that import a module by name at run time.
DYNAMIC_IMPORTS = frozenset({"import_module", "__import__"})
#: The module whose `load` imports what the specs name.
LOADER = "app.brokers.loader"


def module_files() -> dict[str, Path]:
    """Dotted module name -> file, for every module of the project's packages."""
    found = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


MODULES = module_files()


def is_project(name: str) -> bool:
    """A module of ours (app.*, workers.*)."""
    return name.split(".")[0] in PACKAGES


def absolute(module: str, node: ast.ImportFrom) -> str:
    """The module a (possibly relative) `from ... import` names."""
    if not node.level:
        return node.module or ""
    package = module if MODULES[module].name == "__init__.py" else module.rpartition(".")[0]
    for _ in range(node.level - 1):
        package = package.rpartition(".")[0]
    return f"{package}.{node.module}" if node.module else package


def dependencies(module: str, node: ast.Import | ast.ImportFrom) -> set[str]:
    """The project modules whose top-level code must have run for this import statement to succeed.

    Importing a.b.c runs a, a.b and a.b.c, except the importer's own packages, which are already running;
    `from a.b import name` also needs a.b itself to have defined `name` unless `name` is a submodule.
    """
    if isinstance(node, ast.Import):
        targets = [(alias.name, False) for alias in node.names]
    else:
        base = absolute(module, node)
        submodules = [f"{base}.{alias.name}" for alias in node.names if f"{base}.{alias.name}" in MODULES]
        targets = [(base, len(submodules) < len(node.names))] + [(name, False) for name in submodules]
    running = {module.rsplit(".", depth)[0] for depth in range(module.count(".") + 1)}
    needed = set()
    for target, reads_names in targets:
        parts = target.split(".")
        for prefix in (".".join(parts[:i]) for i in range(1, len(parts) + 1)):
            if prefix in MODULES and prefix != module and (prefix not in running or (prefix == target and reads_names)):
                needed.add(prefix)
    return needed


def is_type_checking(node: ast.AST) -> bool:
    """`if TYPE_CHECKING:` (or typing.TYPE_CHECKING): its body never runs."""
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)


def runtime_nodes(node: ast.AST, function: str | None = None) -> Iterator[tuple[ast.AST, str | None]]:
    """Every node below `node` that can run, with the function it is in (None: it runs at import time)."""
    for child in ast.iter_child_nodes(node):
        if is_type_checking(child):
            for other in child.orelse:
                yield other, function
                yield from runtime_nodes(other, function)
            continue
        yield child, function
        inner = child.name if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)) else function
        yield from runtime_nodes(child, inner)


def imports_of(module: str) -> Iterator[tuple[ast.AST, str | None]]:
    """The module's import statements and calls that import by name, with the function each is in."""
    tree = ast.parse(MODULES[module].read_text(), filename=str(MODULES[module]))
    for node, function in runtime_nodes(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node, function
        elif isinstance(node, ast.Call):
            name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
            if name in DYNAMIC_IMPORTS:
                yield node, function


def function_imports() -> dict[tuple[str, str], list[str]]:
    """(file, function) -> the project imports it makes when called (a call by name counts: it may be ours)."""
    found: dict[tuple[str, str], list[str]] = {}
    for module in MODULES:
        for node, function in imports_of(module):
            if function is None:
                continue
            if isinstance(node, ast.Call) or any(is_project(name) for name in dependencies(module, node)):
                found.setdefault((relative(module), function), []).append(f"line {node.lineno}: {ast.unparse(node)}")
    return found


def spec_named_modules() -> set[str]:
    """The modules the specs name as "module:Class", which the loader imports."""
    paths = [path for spec in SPECS for path in (spec.adapter, spec.rest, *(f.connector for f in spec.feeds)) if path]
    return {path.partition(":")[0] for path in paths}


def import_graph() -> dict[str, set[str]]:
    """Module -> the project modules it imports: at the top, in the allowed lazy imports, and through the loader."""
    graph: dict[str, set[str]] = {module: set() for module in MODULES}
    for module in MODULES:
        for node, _ in imports_of(module):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                graph[module] |= dependencies(module, node)
    graph[LOADER] |= spec_named_modules()
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def relative(module: str) -> str:
    """The module's file as the allow-list spells it."""
    return MODULES[module].relative_to(ROOT).as_posix()


def test_no_function_imports_a_project_module():
    offenders = {where: lines for where, lines in function_imports().items() if where not in LAZY_IMPORTS}
    listing = "\n".join(f"{file} {function}(): {'; '.join(lines)}" for (file, function), lines in offenders.items())
    assert not offenders, "import these at the top (and break the cycle instead of hiding it):\n" + listing


def test_the_lazy_imports_allowed_are_still_needed():
    """An allow-list entry whose function no longer imports anything is removed, not kept for later."""
    assert set(LAZY_IMPORTS) <= set(function_imports()), set(LAZY_IMPORTS) - set(function_imports())


def test_no_module_imports_on_attribute_access():
    """A module-level __getattr__ that imports on first use is an import inside a function by another name."""
    offenders = [
        relative(module)
        for module, path in MODULES.items()
        for node in ast.parse(path.read_text()).body
        if isinstance(node, ast.FunctionDef) and node.name == "__getattr__"
    ]
    assert not offenders, offenders


def test_the_import_graph_has_no_cycle():
    assert cycles(import_graph()) == []


def test_the_loader_names_real_modules():
    assert spec_named_modules() <= set(MODULES), spec_named_modules() - set(MODULES)


def test_the_cycle_finder_finds_cycles():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def third_party_modules() -> set[str]:
    """The libraries our modules import at the top (preloaded by the parent: they cannot lean on our modules)."""
    names = set()
    for module in MODULES:
        for node, function in imports_of(module):
            if function is None and isinstance(node, ast.Import):
                names |= {alias.name for alias in node.names if not is_project(alias.name)}
            elif function is None and isinstance(node, ast.ImportFrom) and not node.level:
                if not is_project(node.module or "") and node.module != "__future__":
                    names.add(node.module or "")
    return names


#: Run in a clean interpreter: each module imported in a forked child of a parent that imported none of ours
#: (only the libraries, for speed), so no module can lean on another one having been imported first.
ISOLATED_IMPORTS = """
import importlib, os, sys, traceback
separator = sys.argv.index("--")
for library in sys.argv[1:separator]:
    importlib.import_module(library)
assert not any(name.split(".")[0] in ("app", "workers") for name in sys.modules), "a library imported our code"
for name in sys.argv[separator + 1:]:
    pid = os.fork()
    if pid == 0:
        try:
            importlib.import_module(name)
        except BaseException:
            print(f"--- import {name} failed:", file=sys.stderr)
            traceback.print_exc()
            os._exit(1)
        os._exit(0)
    _, status = os.waitpid(pid, 0)
    if status:
        print(name)
"""


@pytest.mark.skipif(not hasattr(__import__("os"), "fork"), reason="needs os.fork")
def test_every_module_imports_first_in_a_fresh_interpreter():
    result = subprocess.run(
        [sys.executable, "-c", ISOLATED_IMPORTS, *sorted(third_party_modules()), "--", *MODULES],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.split() == [], result.stderr[-5000:]
