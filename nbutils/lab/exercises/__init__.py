"""Student notebooks: the course notebooks with the graded functions left for the learner.

``python -m nbutils.lab.exercises [--out student] [notebooks...]`` rewrites each ``.ipynb``
(or jupytext ``.py``): the graded names (`nbutils.lab.checks.GRADED`) leave its nbutils
import, which is followed by a cell importing the helpers they need, then per name a title,
a stub (the reference's signature and docstring, body ``raise NotImplementedError``) and a
check cell. Outputs are cleared; the same input gives byte-identical files.
``--format nbgrader`` writes an nbgrader course instead (`nbutils.lab.nbgrader`).
"""

from __future__ import annotations

import ast
import builtins
import importlib
import inspect
import re
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell

from nbutils.lab.checks import CHECKS, GRADED, reference_of

STUB_BODY = "    # YOUR CODE HERE\n    raise NotImplementedError"
MAX_LINE = 100
#: The tag of the notebooks' optional widget cells (``# %% tags=["widget"]``).
WIDGET_TAG = "widget"
#: What `ast.parse` raises for a cell it cannot read: a syntax error (a null byte too), a
#: lone surrogate (ValueError), nesting too deep for the parser.
UNPARSABLE = (SyntaxError, ValueError, RecursionError, MemoryError)


class ExerciseError(ValueError):
    """A notebook cannot be turned into exercises (unparsable or unmappable import)."""


def _function_node(name: str) -> tuple[ast.FunctionDef, list[str], ModuleType]:
    """The reference's top-level ``def`` node, its module's source lines, and the module."""
    module = importlib.import_module(GRADED[name])
    source = inspect.getsource(module)
    for node in ast.parse(source).body:
        if isinstance(node, ast.FunctionDef) and node.name == name:
            return node, source.splitlines(), module
    raise ExerciseError(f"{name} is not a top-level function of {module.__name__}")


def stub_source(name: str) -> str:
    """The reference's ``def`` line(s) and docstring exactly, then ``raise NotImplementedError``."""
    node, lines, _ = _function_node(name)
    first = node.body[0]
    if not (isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant)
            and isinstance(first.value.value, str)):
        raise ExerciseError(f"{name} has no docstring to give the learner")
    return "\n".join(lines[node.lineno - 1:first.end_lineno]) + "\n" + STUB_BODY


def reference_body_lines(name: str) -> list[str]:
    """The reference's body after its docstring, as source lines (what must never leak)."""
    node, lines, _ = _function_node(name)
    return lines[node.body[0].end_lineno:node.end_lineno]


def _loaded_names(node: ast.AST) -> set[str]:
    return {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}


def helper_names(name: str) -> dict[str, Any]:
    """{name: object} of the non-graded public globals the reference uses, and those its
    private helpers use (the learner rewrites what a private helper did). References use
    public names only, so their bodies run as solutions (`nbutils.lab.nbgrader`)."""
    node, _, module = _function_node(name)
    tree = ast.parse(inspect.getsource(module))
    private = {n.name: n for n in tree.body
               if isinstance(n, ast.FunctionDef | ast.ClassDef) and n.name.startswith("_")}
    found: dict[str, Any] = {}
    todo, seen = [node], set()
    while todo:
        for used in sorted(_loaded_names(todo.pop())):
            if used in seen or used in GRADED or not hasattr(module, used):
                continue
            seen.add(used)
            if used in private:
                todo.append(private[used])
            elif not used.startswith("_") and not hasattr(builtins, used):
                found[used] = getattr(module, used)
    return found


def _import_lines(helpers: dict[str, Any], module_of: dict[str, str]) -> list[str]:
    """Import statements for helpers: ``from M import a, b`` grouped, ``import m as x``."""
    froms: dict[str, list[str]] = {}
    plain = []
    for name, obj in helpers.items():
        if isinstance(obj, ModuleType):
            plain.append(f"import {obj.__name__}" + ("" if obj.__name__ == name else f" as {name}"))
        else:
            froms.setdefault(module_of[name], []).append(name)
    lines = sorted(plain)
    for mod in sorted(froms):
        lines.append(_format_from(mod, sorted(froms[mod]), "", False))
    return lines


def _helper_module(obj: Any, name: str, fallback: str) -> str:
    """Where to import a helper from: the reference's module for nbutils objects."""
    mod = getattr(obj, "__module__", None)
    if isinstance(mod, str) and not mod.startswith("nbutils") and mod != "builtins":
        try:
            if getattr(importlib.import_module(mod), name, None) is obj:
                return mod
        except ImportError:
            pass
    return fallback


def _format_from(module: str, names: Sequence[str], indent: str, parenthesised: bool) -> str:
    one_line = f"{indent}from {module} import {', '.join(names)}"
    if len(one_line) <= MAX_LINE and not parenthesised:
        return one_line
    rows, row = [], indent + "    "
    for name in names:
        piece = name + ", "
        if len(row) + len(piece.rstrip()) > MAX_LINE and row.strip():
            rows.append(row.rstrip())
            row = indent + "    "
        row += piece
    rows.append(row.rstrip())
    return f"{indent}from {module} import (\n" + "\n".join(rows) + f"\n{indent})"


_MAGIC = re.compile(r"^(\s*)(%|!)")


def python_source(source: str) -> str:
    """The cell with IPython magics / shell lines replaced by ``pass`` (line count kept)."""
    return "\n".join(_MAGIC.sub(r"\1pass #", line) for line in source.splitlines())


def _graded_imports(source: str) -> list[tuple[ast.ImportFrom, list[str]]]:
    """The nbutils ``from`` imports of graded names in a cell: [(node, graded names)].

    Raises:
        ExerciseError: unparsable cell naming nbutils and a graded name, star import,
            alias, or a graded name that is not the reference's object.
    """
    try:
        tree = ast.parse(python_source(source))
    except UNPARSABLE as err:
        if "nbutils" in source and any(re.search(rf"\b{n}\b", source) for n in GRADED):
            why = (f"{err.msg}, line {err.lineno}" if isinstance(err, SyntaxError)
                   else "nested too deeply to be read"
                   if isinstance(err, RecursionError | MemoryError) else str(err))
            raise ExerciseError(f"cannot parse the import cell ({why}):\n{source}") from None
        return []
    found = []
    for node in ast.walk(tree):
        if not (isinstance(node, ast.ImportFrom) and node.level == 0 and node.module
                and node.module.split(".")[0] == "nbutils"):
            continue
        graded = []
        for alias in node.names:
            if alias.name == "*":
                raise ExerciseError(f"`from {node.module} import *`: cannot tell which graded "
                                    "names it imports; import them by name")
            if alias.name not in GRADED:
                continue
            if alias.asname not in (None, alias.name):
                raise ExerciseError(f"graded name {alias.name} imported as {alias.asname}")
            try:
                obj = getattr(importlib.import_module(node.module), alias.name)
            except (ImportError, AttributeError):
                obj = None
            if obj is not reference_of(alias.name):
                raise ExerciseError(f"cannot map `from {node.module} import {alias.name}` to "
                                    f"the graded {GRADED[alias.name]}.{alias.name}")
            graded.append(alias.name)
        if graded:
            found.append((node, graded))
    return found


def _rewrite(source: str, imports: list[tuple[ast.ImportFrom, list[str]]]) -> str:
    """The cell's source with the graded names removed from those imports."""
    lines = source.splitlines()
    for node, graded in sorted(imports, key=lambda item: -item[0].lineno):
        keep = [a.name if a.asname is None else f"{a.name} as {a.asname}"
                for a in node.names if a.name not in graded]
        first = lines[node.lineno - 1]
        indent = first[:len(first) - len(first.lstrip())]
        new = [] if not keep else _format_from(
            node.module or "", keep, indent, "(" in first).splitlines()
        lines[node.lineno - 1:node.end_lineno] = new
    return "\n".join(lines)


def _bound_by_imports(cells: Sequence[Any]) -> set[str]:
    bound = set()
    for cell in cells:
        if cell.cell_type != "code":
            continue
        try:
            tree = ast.parse(python_source(cell.source))
        except UNPARSABLE:
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Import | ast.ImportFrom):
                bound |= {(a.asname or a.name).split(".")[0] for a in node.names}
    return bound


def _exercise_cells(names: Sequence[str], already: set[str]) -> list[Any]:
    """Helper import cell (when needed), then title, stub and check for each name."""
    helpers: dict[str, Any] = {}
    module_of: dict[str, str] = {}
    for name in names:
        for helper, obj in helper_names(name).items():
            if helper not in already and helper not in helpers:
                helpers[helper] = obj
                module_of[helper] = _helper_module(obj, helper, GRADED[name])
    cells = []
    if helpers:
        cells.append(new_code_cell("\n".join(_import_lines(helpers, module_of)),
                                   metadata={"nbutils": {"helpers": sorted(helpers)}}))
        cells[-1].id = "exercise-helpers-" + "-".join(names)[:40]
    for name in names:
        title = new_markdown_cell(f"### Exercise: `{name}`", metadata={"nbutils": {"title": name}})
        stub = new_code_cell(stub_source(name), metadata={"nbutils": {"exercise": name}})
        check_fn = CHECKS[name].__name__
        check = new_code_cell(f"from nbutils.lab.checks import {check_fn}\n{check_fn}({name})",
                              metadata={"nbutils": {"check": name}})
        for cell, kind in ((title, "title"), (stub, "exercise"), (check, "check")):
            cell.id = f"{kind}-{name}"[:64]
        cells += [title, stub, check]
    return cells


def make_student(nb: Any) -> tuple[Any, list[str]]:
    """A student copy of a notebook (nbformat node) and the graded names it holds."""
    nb = nbformat.from_dict(nb)
    out, done = [], []
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
            cell.metadata.pop("execution", None)
            imports = _graded_imports(cell.source)
            if imports:
                cell.source = _rewrite(cell.source, imports)
                out.append(cell)
                names = [n for n in GRADED if n not in done
                         and any(n in graded for _, graded in imports)]
                done += names
                out += _exercise_cells(names, _bound_by_imports(out))
                continue
        out.append(cell)
    nb.cells = out
    return nb, done


def read_notebook(path: Path) -> Any:
    """A notebook from its ``.ipynb``, or from its plain-text source (a jupytext ``.py``).

    Raises:
        OSError: it cannot be read.
        ExerciseError: an ``.ipynb`` that is not a notebook (not JSON, JSON that is not an
            object with ``cells``, ``metadata`` and ``nbformat``, cells that are not cells,
            anything nbformat's schema refuses), saying what is wrong.
    """
    if Path(path).suffix == ".py":
        import jupytext

        return jupytext.read(path)
    with open(path, "rb") as f:
        raw = f.read()
    problem = notebook_json_problem(raw)
    if problem:
        raise ExerciseError(f"not a Jupyter notebook: {problem}")
    try:
        nb = nbformat.reads(raw.decode("utf-8"), as_version=4)
    except Exception as err:  # nbformat raises many unrelated types for bad input
        raise ExerciseError(f"not a Jupyter notebook ({_first_line(err)})") from None
    try:
        nbformat.validate(nb)
    except nbformat.ValidationError as err:
        raise ExerciseError(f"not a valid Jupyter notebook ({_first_line(err.message)})"
                            ) from None
    return nb


def _json_kind(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean",
            type(None): "null"}.get(type(value), "a number")


def notebook_json_problem(raw: bytes) -> str | None:
    """Why the bytes of an ``.ipynb`` cannot be a notebook, from their JSON alone, or None
    (nbformat and its schema check the rest)."""
    import json

    try:
        data = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as err:
        return f"not UTF-8 text (byte {err.start})"
    except json.JSONDecodeError as err:
        return f"not JSON ({err.msg}, line {err.lineno} column {err.colno})"
    except (RecursionError, MemoryError):
        return "JSON nested too deeply to be read"
    if not isinstance(data, dict):
        return (f"its JSON is {_json_kind(data)}, not an object with 'cells', 'metadata' and "
                "'nbformat'")
    version = data.get("nbformat")
    if not isinstance(version, int) or isinstance(version, bool):
        return "no 'nbformat' version number"
    if version >= 4:
        cells = data.get("cells")
        if not isinstance(cells, list):
            return f"'cells' is {_json_kind(cells) if 'cells' in data else 'missing'}, not a list"
        for i, cell in enumerate(cells):
            if not isinstance(cell, dict):
                return f"cell {i} is {_json_kind(cell)}, not an object"
    return None


def _first_line(err: object, limit: int = 120) -> str:
    """The first line of an error's text, cut to ``limit`` characters."""
    text = (str(err).strip().splitlines() or [type(err).__name__])[0]
    return text if len(text) <= limit else text[:limit - 3] + "..."


def write_student(path: Path, out_dir: Path) -> Path:
    """Read a notebook (``.ipynb`` or its ``.py`` source), write its student copy under
    ``out_dir`` as ``<name>.ipynb``."""
    student, _ = make_student(read_notebook(path))
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / f"{Path(path).stem}.ipynb"
    with open(target, "w", encoding="utf-8", newline="\n") as f:
        nbformat.write(student, f)
    return target
