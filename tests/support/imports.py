"""The package's import graph read from source with `ast`, never by importing it, for tests/test_structure.py.

Importing the code would hide exactly what the structure test looks for: an import inside a function or
under `if TYPE_CHECKING:` runs late or never, yet it is still a dependency between two files. So every
`import` and `from ... import` statement anywhere in a file is an edge, resolved to the file it loads:
`from .pkg import name` goes to `pkg/name.py` (or `pkg/name/__init__.py`) when that exists, else to
`pkg/__init__.py`, whose own imports are edges like any other file's, so a re-export is followed.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Edge:
    """One import statement's dependency: `source` (a module name) loads `target` at `line`."""

    source: str
    target: str
    line: int


@dataclass(frozen=True)
class Unresolved:
    """An import of the package that names no file: a typo, or a check the graph would silently miss."""

    source: str
    line: int
    name: str


@dataclass(frozen=True, repr=False)
class Graph:
    """Every module of one package (dotted name -> file), the edges between them, and what did not resolve."""

    root: Path
    modules: Mapping[str, Path]
    edges: tuple[Edge, ...]
    unresolved: tuple[Unresolved, ...]

    def __repr__(self) -> str:  # pytest prints a failed test's arguments: not every edge
        return f"Graph({self.root.name}: {len(self.modules)} files, {len(self.edges)} imports)"

    def path(self, module: str) -> str:
        """The module's file relative to the directory holding the package, as a reader finds it."""
        return str(self.modules[module].relative_to(self.root.parent))


def module_files(package_dir: Path) -> dict[str, Path]:
    """Dotted name -> file for every .py file under `package_dir`; a package's `__init__.py` is the package."""
    name = package_dir.name
    modules: dict[str, Path] = {}
    for path in sorted(package_dir.rglob("*.py")):
        parts = [name, *path.relative_to(package_dir).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(parts)] = path
    return modules


def _is_package(path: Path) -> bool:
    return path.name == "__init__.py"


def _relative_base(module: str, is_package: bool, level: int, name: str | None) -> str | None:
    """What `from <level dots><name> import ...` means in `module`; None when it climbs out of the tree."""
    package = module.split(".") if is_package else module.split(".")[:-1]
    if level - 1 >= len(package):
        return None
    package = package[: len(package) - (level - 1)]
    return ".".join([*package, name] if name else package)


def _is_ours(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def file_imports(
    module: str, path: Path, modules: Mapping[str, Path], package: str
) -> tuple[list[Edge], list[Unresolved]]:
    """Every import of `package` anywhere in one file (top level, functions, TYPE_CHECKING, try), resolved."""
    tree = ast.parse(path.read_bytes(), filename=str(path))
    edges: list[Edge] = []
    unresolved: list[Unresolved] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if not _is_ours(alias.name, package):
                    continue
                if alias.name in modules:
                    edges.append(Edge(module, alias.name, node.lineno))
                else:
                    unresolved.append(Unresolved(module, node.lineno, f"import {alias.name}"))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = _relative_base(module, _is_package(path), node.level, node.module)
            elif node.module and _is_ours(node.module, package):
                base = node.module
            else:
                continue  # the standard library or a third-party package
            missing = []
            for alias in node.names:
                # A submodule of that name, else a name the module or package __init__ defines.
                candidates = [] if base is None else [base] if alias.name == "*" else [f"{base}.{alias.name}", base]
                found = next((c for c in candidates if c in modules), None)
                if found is None:
                    missing.append(alias.name)
                else:
                    edges.append(Edge(module, found, node.lineno))
            if missing:
                statement = f"from {'.' * node.level}{node.module or ''} import {', '.join(missing)}"
                unresolved.append(Unresolved(module, node.lineno, statement))
    # ast.walk goes breadth first: a reader wants them in the file's order.
    return sorted(edges, key=lambda e: e.line), sorted(unresolved, key=lambda u: u.line)


def import_graph(package_dir: Path) -> Graph:
    """The whole package's graph; `package_dir` is the directory named after the package."""
    modules = module_files(package_dir)
    edges: list[Edge] = []
    unresolved: list[Unresolved] = []
    for module, path in modules.items():
        found, missing = file_imports(module, path, modules, package_dir.name)
        edges += found
        unresolved += missing
    return Graph(package_dir, modules, tuple(edges), tuple(unresolved))


def strongly_connected(nodes: Iterable[str], edges: Iterable[Edge]) -> list[list[str]]:
    """Tarjan's strongly connected components; each cycle of files is one component (sorted, for stable output)."""
    successors: dict[str, set[str]] = defaultdict(set)
    for edge in edges:
        successors[edge.source].add(edge.target)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(successors[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component: list[str] = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            components.append(sorted(component))

    for node in sorted(nodes):
        if node not in index:
            visit(node)
    return sorted(components)


def cycles(graph: Graph) -> list[str]:
    """One paragraph per cycle: a component of several files, or a file importing itself, with its edges."""
    reports = []
    for component in strongly_connected(graph.modules, graph.edges):
        members = set(component)
        inside = [e for e in graph.edges if e.source in members and e.target in members]
        if len(component) == 1 and not inside:
            continue
        lines: dict[tuple[str, str], set[int]] = defaultdict(set)
        for edge in inside:
            lines[(edge.source, edge.target)].add(edge.line)
        names = ", ".join(graph.path(m) for m in component)
        body = [
            f"    {graph.path(source)}:{','.join(map(str, sorted(at)))} -> {graph.path(target)}"
            for (source, target), at in sorted(lines.items())
        ]
        reports.append("\n".join([f"cycle among {len(component)} file(s): {names}", *body]))
    return reports
