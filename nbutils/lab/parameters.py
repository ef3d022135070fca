"""Notebook parameters: the one cell tagged ``parameters``, and presets that override it.

The cell (papermill's convention) holds plain literal assignments (``IMG_SIZE = 256``): a
learner edits numbers; nothing reads the environment. A preset
(``nbutils/lab/presets/<name>.yaml``) maps names to values; `apply_preset` injects those a
notebook declares in a cell after it. ``ci`` is the small setting of the tests and grader.
"""

from __future__ import annotations

import ast
import copy
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


def notebook_parameters(nb: Any) -> dict[str, Any]:
    """``{name: default}`` of the parameters cell; ParametersError for anything but
    ``NAME = literal`` in it."""
    source = parameters_cell(nb).source
    values = {}
    for node in ast.parse(source).body:
        target = node.targets[0] if isinstance(node, ast.Assign) and len(node.targets) == 1 \
            else None
        if not isinstance(target, ast.Name):
            raise ParametersError(f"the parameters cell may only assign plain literals to "
                                  f"names; line {node.lineno} is `{ast.unparse(node)}`")
        try:
            values[target.id] = ast.literal_eval(node.value)
        except ValueError:
            raise ParametersError(f"{target.id} = {ast.unparse(node.value)}: not a literal; "
                                  "compute it in the next cell") from None
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


def apply_preset(nb: Any, preset: dict[str, Any]) -> Any:
    """A copy of ``nb`` whose parameters cell is followed by papermill's injected cell with
    the preset's values for the names this notebook declares (other names are not its own).

    Raises:
        ParametersError: the notebook has no valid parameters cell.
    """
    from papermill.parameterize import parameterize_notebook

    declared = notebook_parameters(nb)
    own = {name: value for name, value in preset.items() if name in declared}
    nb = copy.deepcopy(nb)
    nb.metadata.setdefault("papermill", {})  # where papermill records what it injected
    for cell in nb.cells:  # as papermill's own notebook loader leaves them
        cell.metadata.setdefault("tags", [])
    return parameterize_notebook(nb, own, kernel_name="python3", language="python")
