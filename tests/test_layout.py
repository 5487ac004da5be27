"""The layout rules docs/architecture.md states hold for the tree: no import cycles, no
module over 400 lines, client/protocol never reach up into the package root, and every
module is named in the layout list."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

from helpers import ROOT

SRC = ROOT / "src"
PACKAGE = SRC / "runtimed"
MAX_LINES = 400
#: Modules at the root that import nothing of runtimed: anyone may use them.
LEAVES = {
    "runtimed.errors",
    "runtimed.files",
    "runtimed.paths",
    "runtimed.timeline",
    "runtimed.version",
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _runtime_imports(
    tree: ast.Module, name: str, is_package: bool, known: dict[str, Path]
) -> Iterator[str]:
    """Imports executed at import time or in functions; ``if TYPE_CHECKING`` excepted.
    ``from package import module`` is an import of the module, not of the package."""
    stack: list[ast.AST] = list(tree.body)
    while stack:
        node = stack.pop()
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            stack.extend(node.orelse)
            continue
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                package = name.split(".") if is_package else name.split(".")[:-1]
                package = package[: len(package) - node.level + 1]
                base = ".".join([*package, *([node.module] if node.module else [])])
            for alias in node.names:
                submodule = f"{base}.{alias.name}"
                yield submodule if submodule in known else base
        stack.extend(ast.iter_child_nodes(node))


def import_graph(lazy: bool) -> dict[str, set[str]]:
    """Module -> the runtimed modules it imports: at module level only, or also inside
    functions (``lazy``)."""
    mods = modules()
    graph: dict[str, set[str]] = {}
    for name, path in mods.items():
        tree = ast.parse(path.read_text())
        if not lazy:
            tree.body = [n for n in tree.body if not isinstance(n, ast.FunctionDef | ast.ClassDef)]
        found = _runtime_imports(tree, name, path.name == "__init__.py", mods)
        graph[name] = {m for m in found if m in mods and m != name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    found: list[list[str]] = []
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
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
                    found.append(sorted(component))
    return found


def test_no_import_cycles() -> None:
    assert cycles(import_graph(lazy=True)) == []


def test_no_module_over_the_limit() -> None:
    long = {
        name: n
        for name, path in modules().items()
        if (n := len(path.read_text().splitlines())) > MAX_LINES
    }
    assert long == {}, f"split these modules (over {MAX_LINES} lines): {long}"


def test_client_and_protocol_never_reach_up() -> None:
    allowed = ("runtimed.client", "runtimed.protocol", "runtimed.transport", "runtimed.documents")
    upward = {
        (name, target)
        for name, targets in import_graph(lazy=True).items()
        if name.startswith(("runtimed.client", "runtimed.protocol"))
        for target in targets
        if not target.startswith(allowed) and target not in LEAVES
    }
    assert upward == set()


def test_leaves_import_nothing_of_runtimed() -> None:
    graph = import_graph(lazy=True)
    assert {leaf: graph[leaf] for leaf in LEAVES if graph[leaf]} == {}


def test_the_documented_layout_names_every_module() -> None:
    """Every module (``name.py``, or its stem) and subpackage appears in the layout block
    of docs/architecture.md, and every ``name.py`` and ``dir/`` named there exists."""
    doc = (ROOT / "docs" / "architecture.md").read_text()
    layout = doc.split("## Layout", 1)[1].split("```", 2)[1]
    words = set(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", layout))
    missing = []
    for name, path in modules().items():
        if path.name == "__init__.py":
            stem = name.rsplit(".", 1)[-1]
            if name != "runtimed" and f"{stem}/" not in layout:
                missing.append(f"{stem}/")
        elif path.stem not in words and f"{path.stem}.py" not in layout:
            missing.append(str(path.relative_to(PACKAGE)))
    assert missing == [], f"docs/architecture.md's layout does not name: {missing}"
    files = {path.name for path in PACKAGE.rglob("*.py")}
    dirs = {f"{path.name}/" for path in [PACKAGE, *PACKAGE.rglob("*")] if path.is_dir()}
    named_files = set(re.findall(r"\b([a-z_]+\.py)\b", layout))
    named_dirs = set(re.findall(r"\b([a-z_]+/)", layout)) - {"src/"}
    assert named_files - files == set() and named_dirs - dirs == set()
