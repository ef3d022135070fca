"""Notebook parameters: the one cell tagged ``parameters``, and presets that override it.

The cell (papermill's convention) holds plain literal assignments (``IMG_SIZE = 256``): a
learner edits numbers; nothing reads the environment. A preset
(``nbutils/lab/presets/<name>.yaml``) maps names to values; `apply_preset` injects those a
notebook declares in a cell after it. ``ci`` is the small setting of the tests and grader.
"""

from __future__ import annotations

import ast
import copy
import io
from pathlib import Path
from typing import Any

PRESETS = Path(__file__).parent / "presets"
TAG = "parameters"


class ParametersError(ValueError):
    """A notebook's parameters cell or a preset is not what it must be."""


def parameters_cell(nb: Any) -> Any:
    """The notebook's one code cell tagged ``parameters`` (ParametersError: none or several)."""
    cells = [c for c in nb.cells
             if c.cell_type == "code" and TAG in c.get("metadata", {}).get("tags", [])]
    if len(cells) != 1:
        raise ParametersError(f"a notebook needs exactly one code cell tagged {TAG!r}; "
                              f"this one has {len(cells)}")
    return cells[0]


#: What a parameters cell may hold, said in every error about one.
ALLOWED = ("a parameters cell holds only `NAME = literal` lines: numbers, strings, bytes, "
           "True, False, None, and lists, tuples, sets and dicts of them (no list, set or "
           "dict as a dict key or set item); compute anything else in the next cell")
SHOWN = 60  # characters of a statement quoted in an error


def _shown(source: str, node: ast.AST) -> str:
    """The statement's own text, on one line, cut to `SHOWN` characters."""
    text = " ".join((ast.get_source_segment(source, node) or "").split())
    return text if len(text) <= SHOWN else text[:SHOWN - 3] + "..."


def _lines(source: str) -> list[str]:
    """The source's lines, ends kept, split where Python's parser splits them."""
    return io.StringIO(source, newline="").readlines()


def _depth_line(source: str) -> int:
    """The first line at which ``source`` is too deeply nested for the parser (bisection
    over prefixes of whole lines: a prefix without that line parses or is a syntax
    error)."""
    lines = _lines(source)
    low, high = 1, len(lines)  # the answer is in [low, high]
    while low < high:
        middle = (low + high) // 2
        try:
            ast.parse("".join(lines[:middle]))
        except SyntaxError:
            low = middle + 1
        except (RecursionError, MemoryError):
            high = middle
        else:
            low = middle + 1
    return high


def _parse(source: str, where: str) -> ast.Module:
    """The cell's syntax tree; ParametersError naming the line for anything unparsable."""
    if "\0" in source:
        line = next(i for i, text in enumerate(_lines(source), 1) if "\0" in text)
        raise ParametersError(f"{where}, line {line}: a null byte; {ALLOWED}")
    try:
        return ast.parse(source)
    except SyntaxError as err:
        raise ParametersError(f"{where}, line {err.lineno or 1}: not valid Python ({err.msg}); "
                              f"{ALLOWED}") from None
    except UnicodeError as err:  # a lone surrogate, which JSON's \\ud800 can hold
        line = len(_lines(source[:getattr(err, "start", 0) + 1])) or 1
        raise ParametersError(f"{where}, line {line}: not valid text ({err.reason}); "
                              f"{ALLOWED}") from None
    except (RecursionError, MemoryError):
        line = _depth_line(source)
    raise ParametersError(f"{where}, line {line}: nested too deeply to be read; {ALLOWED}")


def notebook_parameters(nb: Any, name: str | None = None) -> dict[str, Any]:
    """``{name: default}`` of the parameters cell.

    Args:
        name: the notebook's name or path, for the errors (None: callers prefix it).

    Raises:
        ParametersError: anything but ``NAME = literal`` in the cell (a syntax error, a
            null byte, nesting too deep to parse, a call, an unhashable dict key or set
            item...), naming the notebook (when ``name`` is given) and the line.
    """
    source = parameters_cell(nb).source
    where = f"{name}: the parameters cell" if name else "the parameters cell"
    values = {}
    for node in _parse(source, where).body:
        target = node.targets[0] if isinstance(node, ast.Assign) and len(node.targets) == 1 \
            else None
        if not isinstance(target, ast.Name):
            raise ParametersError(f"{where}, line {node.lineno}: `{_shown(source, node)}` is "
                                  f"not a plain literal assigned to a name; {ALLOWED}")
        try:
            values[target.id] = ast.literal_eval(node.value)
        except (ValueError, TypeError, SyntaxError, RecursionError, MemoryError) as err:
            why = (str(err) if isinstance(err, TypeError) and "unhashable" in str(err)
                   else "not a literal")
            raise ParametersError(f"{where}, line {node.lineno}: `{_shown(source, node)}`: "
                                  f"{why}; {ALLOWED}") from None
    return values


def load_preset(name: str = "ci") -> dict[str, Any]:
    """The preset ``nbutils/lab/presets/<name>.yaml``: ``{parameter name: value}``."""
    import yaml

    path = PRESETS / f"{name}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in PRESETS.glob("*.yaml"))
        raise ParametersError(f"no preset {name!r}; known presets: {', '.join(known)}")
    values = yaml.safe_load(path.read_text())
    if not isinstance(values, dict) or not all(isinstance(k, str) for k in values):
        raise ParametersError(f"{path}: a preset maps parameter names to values")
    return values


def apply_preset(nb: Any, preset: dict[str, Any], name: str | None = None) -> Any:
    """A copy of ``nb`` whose parameters cell is followed by papermill's injected cell with
    the preset's values for the names this notebook declares (other names are not its own).

    Raises:
        ParametersError: the notebook has no valid parameters cell (`notebook_parameters`;
            ``name`` names the notebook in it).
    """
    from papermill.parameterize import parameterize_notebook

    declared = notebook_parameters(nb, name)
    own = {name: value for name, value in preset.items() if name in declared}
    nb = copy.deepcopy(nb)
    nb.metadata.setdefault("papermill", {})  # where papermill records what it injected
    for cell in nb.cells:  # as papermill's own notebook loader leaves them
        cell.metadata.setdefault("tags", [])
    return parameterize_notebook(nb, own, kernel_name="python3", language="python")
