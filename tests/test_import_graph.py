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


def _lazy_homes(node: ast.Call, package: str) -> set[str]:
    """The modules a ``lazy_names(__name__, {"module": (...), ...})`` table names."""
    table = node.args[1] if len(node.args) > 1 else None
    if not isinstance(table, ast.Dict):
        return set()
    keys = [k.value for k in table.keys if isinstance(k, ast.Constant)]
    return {k if k.startswith("nbutils.") else f"{package}.{k}" for k in keys}


def imported_names(module: str, modules: dict[str, Path]) -> set[str]:
    """Every dotted name ``module`` imports (any package), as written, relative ones resolved;
    ``from p import x`` gives ``p.x`` when that is one of ``modules``, else ``p``. The
    modules of a package's ``lazy_names`` table count as imported by the package."""
    tree = ast.parse(modules[module].read_text(encoding="utf-8"), str(modules[module]))
    names = set()
    for node in ast.walk(tree):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                and node.func.id == "lazy_names"):
            names.update(_lazy_homes(node, module))
        elif isinstance(node, ast.Import):
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


# ----------------------------------------------------------------------------- layers

#: The parts of nbutils, lowest first. A module may import its own part, or a part with a
#: lower rank: lab and extras -> core -> internals, never back, and lab and extras never
#: each other. Entry points (``python -m`` commands) may import anything; nothing imports
#: them.
LAYERS = {"internals": 0, "core": 1, "lab": 2, "extras": 2, "entry": 3}


def layer_of(module: str) -> str:
    """Which part of nbutils ``module`` belongs to."""
    if module.endswith(".__main__") or module == "nbutils.prepare":
        return "entry"
    for prefix, part in (("nbutils._internal", "internals"), ("nbutils.lab", "lab"),
                         ("nbutils.extras", "extras")):
        if module == prefix or module.startswith(prefix + "."):
            return part
    return "core"


def wrong_way_imports(graph: Graph) -> list[tuple[str, str]]:
    """Every edge m -> t that runs against the layers: t's part is m's entry point, or of
    the same rank but another part, or higher."""
    wrong = []
    for module, targets in sorted(graph.items()):
        part = layer_of(module)
        for target in sorted(targets):
            other = layer_of(target)
            if other != part and (other == "entry" or LAYERS[other] >= LAYERS[part]):
                wrong.append((module, target))
    return wrong


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
            "nbutils.siamese.mining", "nbutils.lab.grade", "nbutils.extras.fast_style",
            "nbutils._internal.npz"} <= set(modules)
    assert "nbutils.style.costs" in graph["nbutils.style"]  # through its lazy_names table
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


def test_layers_of_the_parts():
    assert layer_of("nbutils._internal.weights.registry") == "internals"
    assert layer_of("nbutils.lab.checks.core") == "lab"
    assert layer_of("nbutils.extras.gallery.ann") == "extras"
    assert layer_of("nbutils.faces.__main__") == "entry"
    assert [layer_of(m) for m in ("nbutils", "nbutils.style.costs", "nbutils.vgg19",
                                  "nbutils.images", "nbutils.lab_notes")] == ["core"] * 5


def test_wrong_way_imports_on_a_hand_made_graph():
    graph = {
        "nbutils.style.costs": {"nbutils._internal.npz"},           # core -> internals: fine
        "nbutils.lab.grade": {"nbutils.style.costs", "nbutils.lab.checks"},  # fine
        "nbutils.extras.fast_style": {"nbutils.style.costs"},       # fine
        "nbutils.style.__main__": {"nbutils.extras.cli.style"},     # an entry point: fine
        "nbutils._internal.npz": {"nbutils.faces.database"},        # internals -> core
        "nbutils.faces.database": {"nbutils.extras.gallery.ann"},   # core -> extras
        "nbutils.extras.cli.style": {"nbutils.lab.checks"},         # extras -> lab
        "nbutils.lab.checks": {"nbutils.faces.__main__"},           # into an entry point
    }
    assert wrong_way_imports(graph) == [
        ("nbutils._internal.npz", "nbutils.faces.database"),
        ("nbutils.extras.cli.style", "nbutils.lab.checks"),
        ("nbutils.faces.database", "nbutils.extras.gallery.ann"),
        ("nbutils.lab.checks", "nbutils.faces.__main__"),
    ]


def test_a_planted_upward_import_is_found(tmp_path):
    """A copy of nbutils with one internal module importing the core fails the rule."""
    import shutil

    shutil.copytree(ROOT / PACKAGE, tmp_path / PACKAGE)
    planted = tmp_path / PACKAGE / "_internal" / "npz.py"
    planted.write_text(planted.read_text() + "\n\ndef _late():\n"
                       "    from nbutils.faces.database import FaceDatabase  # noqa: F401\n")
    wrong = wrong_way_imports(import_graph(module_files(tmp_path, PACKAGE)))
    assert ("nbutils._internal.npz", "nbutils.faces.database") in wrong


def test_imports_run_lab_and_extras_to_core_to_internals(graph):
    wrong = wrong_way_imports(graph)
    listing = "\n".join(f"{m} ({layer_of(m)}) -> {t} ({layer_of(t)})" for m, t in wrong)
    assert not wrong, f"imports against the layers (lab/extras -> core -> internals):\n{listing}"
