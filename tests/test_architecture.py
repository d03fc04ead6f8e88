"""The architecture stays as drawn in docs/architecture.md.

The layers contract itself is import-linter's (``lint-imports``, run by
``make test``); these tests add what it does not check: no import cycle
anywhere in the package, type-checking imports included, the facade
``qrpc`` among the modules; only the facade, the CLI and the test kit
import the node; and modules stay small.
"""

from __future__ import annotations

import ast
from pathlib import Path

import grimp
import pytest

SRC = Path(__file__).resolve().parent.parent / "src"
MAX_MODULE_LINES = 420  # "about 400": one job per module


@pytest.fixture(scope="module")
def graph() -> grimp.ImportGraph:
    return grimp.build_graph("qrpc", "qrpc_codecs", exclude_type_checking_imports=False)


def _cycles(graph: grimp.ImportGraph) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for imported in graph.find_modules_directly_imported_by(module):
            if imported not in index:
                visit(imported)
                low[module] = min(low[module], low[imported])
            elif imported in on_stack:
                low[module] = min(low[module], index[imported])
        if low[module] == index[module]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == module:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for module in sorted(graph.modules):
        if module not in index:
            visit(module)
    return found


def test_no_import_cycle_anywhere(graph: grimp.ImportGraph) -> None:
    assert _cycles(graph) == []


def test_the_cycle_finder_finds_a_cycle() -> None:
    fake = grimp.ImportGraph()
    for module in ("pkg", "pkg.a", "pkg.b", "pkg.c"):
        fake.add_module(module)
    fake.add_import(importer="pkg.a", imported="pkg.b")
    fake.add_import(importer="pkg.b", imported="pkg.a")
    fake.add_import(importer="pkg.c", imported="pkg.a")
    assert _cycles(fake) == [["pkg.a", "pkg.b"]]


def test_only_the_facade_the_app_the_cli_the_benchmarks_and_the_test_kit_import_the_node(
    graph: grimp.ImportGraph,
) -> None:
    importers = graph.find_modules_that_directly_import("qrpc.node")
    allowed = {"qrpc", "qrpc.cli", "qrpc.app"}
    ours = ("qrpc.testing", "qrpc.cli.", "qrpc.bench.")
    assert {m for m in importers if m not in allowed and not m.startswith(ours)} == set()


def test_modules_stay_small() -> None:
    sizes = {
        str(path.relative_to(SRC)): len(path.read_text().splitlines()) for path in SRC.rglob("*.py")
    }
    assert {name: n for name, n in sizes.items() if n > MAX_MODULE_LINES} == {}


def test_no_assert_statements_in_the_library() -> None:
    """Checks that matter must not vanish under ``python -O``: the library raises
    explicitly (type narrowing uses `typing.cast` or an explicit check)."""
    found = []
    for path in SRC.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Assert):
                found.append(f"{path.relative_to(SRC)}:{node.lineno}")
    assert found == []
