"""The import graph of nbutils, read with `ast` (nothing is imported): no cycles, and the
seams that keep heavy modules apart.

Nodes are the modules under nbutils/ (a package is its ``__init__``). ``m -> t`` when m
imports t anywhere in its text: at the top, inside a function, under ``if TYPE_CHECKING``,
absolute or relative. ``from p import x`` counts as ``p.x`` when that is a module, else as
``p``. Importing ``a.b.c`` also runs the ``__init__`` of ``a`` and ``a.b``, so m gets an edge
to each of those too, except to its own enclosing packages, which are already running
before m's first line. Imports built from strings at run time (``importlib``) are not seen.
"""

from __future__ import annotations

import ast
import random
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "nbutils"

Graph = dict[str, set[str]]


# ----------------------------------------------------------------------------- the graph


def module_files(root: Path, package: str) -> dict[str, Path]:
    """Dotted module name -> file, for every .py file under ``root/package``."""
    modules = {}
    for path in sorted((root / package).rglob("*.py")):
        parts = path.relative_to(root).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules[".".join(parts)] = path
    return modules


def _enclosing_packages(module: str) -> list[str]:
    """'a.b.c' -> ['a', 'a.b']."""
    parts = module.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


def _known(name: str, modules: dict[str, Path]) -> str | None:
    """The longest prefix of a dotted name that is one of ``modules`` (None if none is)."""
    for candidate in [name, *reversed(_enclosing_packages(name))]:
        if candidate in modules:
            return candidate
    return None


def _from_base(module: str, node: ast.ImportFrom, modules: dict[str, Path]) -> str:
    """The module ``from <base> import ...`` names, relative imports resolved."""
    if not node.level:
        return node.module or ""
    is_package = modules[module].name == "__init__.py"
    package = module.split(".") if is_package else module.split(".")[:-1]
    package = package[: len(package) - (node.level - 1)]
    return ".".join(package + ([node.module] if node.module else []))


def imported_names(module: str, modules: dict[str, Path]) -> set[str]:
    """Every dotted name ``module`` imports (any package), as written, relative ones resolved;
    ``from p import x`` gives ``p.x`` when that is one of ``modules``, else ``p``."""
    tree = ast.parse(modules[module].read_text(encoding="utf-8"), str(modules[module]))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = _from_base(module, node, modules)
            for alias in node.names:
                child = f"{base}.{alias.name}"
                names.add(child if child in modules else base)
    return names


def import_graph(modules: dict[str, Path]) -> Graph:
    """module -> the modules it imports, with the package ``__init__``s those imports run."""
    graph: Graph = {}
    for module in modules:
        edges = set()
        already_running = set(_enclosing_packages(module))
        for name in imported_names(module, modules):
            target = _known(name, modules)
            if target is None:
                continue  # not ours: a third-party or standard module
            edges.add(target)
            edges.update(p for p in _enclosing_packages(target) if p not in already_running)
        edges.discard(module)
        graph[module] = edges
    return graph


# ----------------------------------------------------------------------------- cycles


def strongly_connected(graph: Graph) -> list[list[str]]:
    """Tarjan's algorithm, iterative: the strongly connected components, each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components = []
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, successors = work[-1]
            for succ in successors:
                if succ not in index:
                    index[succ] = low[succ] = len(index)
                    stack.append(succ)
                    on_stack.add(succ)
                    work.append((succ, iter(sorted(graph.get(succ, ())))))
                    break
                if succ in on_stack:
                    low[node] = min(low[node], index[succ])
            else:  # every successor seen: node is done
                work.pop()
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    components.append(sorted(component))
    return components


def _path_within(graph: Graph, start: str, goal: str, allowed: set[str]) -> list[str]:
    """A shortest path start -> ... -> goal through ``allowed`` nodes (breadth first)."""
    previous = {start: start}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for succ in sorted(graph.get(node, ())):
                if succ == goal:
                    path = [node]
                    while path[-1] != start:
                        path.append(previous[path[-1]])
                    return [*reversed(path), goal]
                if succ in allowed and succ not in previous:
                    previous[succ] = node
                    following.append(succ)
        frontier = following
    raise AssertionError(f"no path from {start} to {goal}")  # unreachable inside an SCC


def find_cycles(graph: Graph) -> list[list[str]]:
    """One concrete cycle [m1, m2, ..., m1] per strongly connected component that has one
    (two or more modules, or a module importing itself)."""
    cycles = []
    for component in strongly_connected(graph):
        first = component[0]
        if len(component) > 1 or first in graph.get(first, ()):
            cycles.append(_path_within(graph, first, first, set(component)))
    return cycles


def reachable(graph: Graph, start: str) -> set[str]:
    """Every module that importing ``start`` imports, directly or not (``start`` excluded)."""
    seen, todo = set(), [start]
    while todo:
        for succ in graph.get(todo.pop(), ()):
            if succ not in seen:
                seen.add(succ)
                todo.append(succ)
    seen.discard(start)
    return seen


@pytest.fixture(scope="module")
def modules() -> dict[str, Path]:
    return module_files(ROOT, PACKAGE)


@pytest.fixture(scope="module")
def graph(modules) -> Graph:
    return import_graph(modules)


# ----------------------------------------------------------------------------- self-tests


def test_find_cycles_on_hand_made_graphs():
    acyclic = {"a": {"b", "c"}, "b": {"c"}, "c": set(), "d": {"a"}}
    assert find_cycles(acyclic) == []
    tangled = {"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": {"e"}, "e": {"d"},
               "f": {"a"}, "g": {"g"}}
    cycles = find_cycles(tangled)
    assert sorted(map(tuple, cycles)) == [("a", "b", "c", "a"), ("d", "e", "d"), ("g", "g")]
    for cycle in cycles:  # each listed step is an edge of the graph
        assert all(b in tangled[a] for a, b in zip(cycle, cycle[1:], strict=False))


def test_strongly_connected_matches_brute_force_reachability():
    rng = random.Random(7)
    nodes = [f"m{i}" for i in range(12)]
    for _ in range(30):
        graph = {n: {m for m in nodes if rng.random() < 0.12} for n in nodes}
        closure = {n: reachable(graph, n) | {n} for n in nodes}
        expected = sorted({tuple(sorted(m for m in nodes if n in closure[m] and m in closure[n]))
                           for n in nodes})
        assert sorted(map(tuple, strongly_connected(graph))) == expected


def test_edges_of_a_hand_made_package(tmp_path):
    files = {
        "pkg/__init__.py": "from pkg.sub.leaf import f\n",
        "pkg/base.py": "import os\nimport numpy as np\n",
        "pkg/sub/__init__.py": "from . import leaf\n",
        "pkg/sub/leaf.py": "from ..base import thing\n\ndef f():\n    from pkg import other\n",
        "pkg/other.py": "import pkg.sub.leaf\nfrom pkg.sub import CONSTANT\n",
        "pkg/lone.py": "from .base import *\n",
    }
    for rel, text in files.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    modules = module_files(tmp_path, "pkg")
    assert set(modules) == {"pkg", "pkg.base", "pkg.sub", "pkg.sub.leaf", "pkg.other",
                            "pkg.lone"}
    assert imported_names("pkg.sub.leaf", modules) == {"pkg.base", "pkg.other"}
    assert imported_names("pkg.base", modules) == {"os", "numpy"}
    assert import_graph(modules) == {
        "pkg": {"pkg.sub.leaf", "pkg.sub"},          # a package's own children, and sub's init
        "pkg.base": set(),
        "pkg.sub": {"pkg.sub.leaf"},
        "pkg.sub.leaf": {"pkg.base", "pkg.other"},   # in a function too; no edge to its parents
        "pkg.other": {"pkg.sub.leaf", "pkg.sub"},    # pkg.sub's __init__ runs first
        "pkg.lone": {"pkg.base"},
    }
    cycles = find_cycles(import_graph(modules))
    assert cycles == [["pkg.other", "pkg.sub.leaf", "pkg.other"]]


# ----------------------------------------------------------------------------- nbutils


def test_graph_covers_every_module(modules, graph):
    assert {"nbutils", "nbutils.faces", "nbutils.faces.database", "nbutils.triplet",
            "nbutils.siamese.mining"} <= set(modules)
    assert "nbutils.faces.database" in graph["nbutils.faces.recognition"]
    assert "nbutils.triplet" in graph["nbutils.siamese.mining"]


def test_nbutils_has_no_import_cycle(graph):
    cycles = find_cycles(graph)
    listing = "\n".join(" -> ".join(cycle) for cycle in cycles)
    assert not cycles, f"import cycles in nbutils:\n{listing}"


PIPELINE = ("nbutils.faces.recognition", "nbutils.faces.detect", "nbutils.faces.encoder",
            "nbutils.faces.align", "keras", "tensorflow")


def _is_within(name: str, roots: tuple[str, ...]) -> bool:
    return any(name == root or name.startswith(root + ".") for root in roots)


def test_face_database_stays_apart_from_the_photo_pipeline(modules, graph):
    """database.py, and every nbutils module it pulls in, import no photo pipeline, no
    Keras and no TensorFlow (its own package's __init__ aside, which runs anyway)."""
    pulled_in = {"nbutils.faces.database"} | reachable(graph, "nbutils.faces.database")
    assert "nbutils.faces" not in pulled_in
    offending = {(module, name) for module in pulled_in
                 for name in imported_names(module, modules) if _is_within(name, PIPELINE)}
    assert not offending, f"the face database reaches the pipeline: {sorted(offending)}"


def test_siamese_never_imports_faces(modules, graph):
    """The Siamese code has no use for the face pipeline: no module of nbutils.siamese
    imports nbutils.faces, whose __init__ loads its names lazily but whose modules build the
    detector and the encoder (TensorFlow)."""
    siamese = [m for m in modules if _is_within(m, ("nbutils.siamese",))]
    assert "nbutils.siamese.mining" in siamese
    offending = {(m, t) for m in siamese for t in reachable(graph, m)
                 if _is_within(t, ("nbutils.faces",))}
    assert not offending, f"nbutils.siamese reaches nbutils.faces: {sorted(offending)}"
