"""The MCP server package's imports go one way (no cycles), and its modules stay small."""

from __future__ import annotations

import ast
from pathlib import Path

import runtimed.mcp_server

PACKAGE = "runtimed.mcp_server"
ROOT = Path(runtimed.mcp_server.__file__).parent
MAX_LINES = 400


def imported_modules(path: Path, modules: set[str]) -> set[str]:
    """The package's modules that ``path`` imports, at any level (function-level included)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            # `from pkg import mod` imports the module mod; `from pkg.mod import x`, mod
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        else:
            continue
        for name in names:
            if name.startswith(PACKAGE + "."):
                module = name[len(PACKAGE) + 1 :].split(".")[0]
                if module in modules:
                    found.add(module)
    return found


def import_graph() -> dict[str, set[str]]:
    modules = {p.stem for p in ROOT.glob("*.py")}
    return {m: imported_modules(ROOT / f"{m}.py", modules) - {m} for m in sorted(modules)}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every cycle found by a depth-first search (each reported once, from its first node)."""
    found: list[list[str]] = []
    state: dict[str, int] = {}  # 1: on the stack, 2: done

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                found.append([*stack[stack.index(nxt) :], nxt])
            elif nxt not in state:
                visit(nxt, stack)
        stack.pop()
        state[node] = 2

    for node in graph:
        if node not in state:
            visit(node, [])
    return found


def test_cycle_finder_finds_a_cycle() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c", "a"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_mcp_server_imports_have_no_cycle() -> None:
    graph = import_graph()
    assert "tools_cells" in graph["server"] and "server" not in graph["tools_cells"]
    assert cycles(graph) == []


def test_mcp_server_modules_are_under_400_lines() -> None:
    sizes = {p.name: len(p.read_text().splitlines()) for p in ROOT.glob("*.py")}
    assert {name: n for name, n in sizes.items() if n > MAX_LINES} == {}


def test_pattern_worker_imports_only_the_standard_library() -> None:
    # It runs as `python -I -S`: no site-packages, and not this package.
    tree = ast.parse((ROOT / "pattern_worker.py").read_text())
    imported = {
        a.name.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for a in node.names
    } | {
        node.module.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module
    }
    stdlib = {"__future__", "contextlib", "json", "os", "re", "resource", "struct", "sys", "typing"}
    assert imported <= stdlib
