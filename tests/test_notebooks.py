"""The notebooks: in step with their plain-text sources, one parameters cell, clean stored
outputs, and importing (never redefining) nbutils."""

import ast
import importlib
import importlib.util
from pathlib import Path

import jupytext
import nbformat
import pytest

from nbutils.lab.parameters import load_preset, notebook_parameters

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def code_cells(path):
    nb = nbformat.read(path, as_version=4)
    return [c.source for c in nb.cells if c.cell_type == "code"]


def python_source(cell: str) -> str:
    return "\n".join(line for line in cell.splitlines() if not line.lstrip().startswith("%"))


SOURCES = sorted((ROOT / "notebooks").glob("*.py"))


def cell_view(nb):
    """What the source decides about each cell: kind, text and tags (outputs aside)."""
    return [(c.cell_type, c.source, c.get("metadata", {}).get("tags", [])) for c in nb.cells]


def test_every_notebook_has_a_plain_text_source():
    assert [p.stem for p in SOURCES] == [p.stem for p in NOTEBOOKS]


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.name)
def test_notebook_is_in_sync_with_its_source(source):
    stored = nbformat.read(source.with_suffix(".ipynb"), as_version=4)
    assert cell_view(stored) == cell_view(jupytext.read(source)), (
        f"{source.name} and its .ipynb differ: run `make notebooks` (or "
        f"`jupytext --sync {source.relative_to(ROOT)}` for a change that needs no re-run)")
    assert stored.metadata["jupytext"]["formats"] == "ipynb,py:percent"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_has_one_parameters_cell_of_literals(path):
    values = notebook_parameters(nbformat.read(path, as_version=4))
    assert values and all(isinstance(v, int | float | str | bool | None) for v in values.values())


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_stored_notebook_is_clean(path):
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        assert "execution" not in cell.metadata, "per-cell timestamps are stored"
        for output in cell.get("outputs", []):
            text = output.get("text", "")
            assert "absl::InitializeLog" not in text and "cpu_feature_guard" not in text
            assert not (output.output_type == "stream" and output.name == "stderr"
                        and "oneDNN" in text)


def test_the_ci_preset_only_names_parameters_of_the_notebooks():
    declared = set()
    for path in NOTEBOOKS:
        declared |= set(notebook_parameters(nbformat.read(path, as_version=4)))
    assert set(load_preset("ci")) <= declared


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_defines_no_library_code(path):
    for cell in code_cells(path):
        tree = ast.parse(python_source(cell))
        defs = [n.name for n in ast.walk(tree)
                if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)]
        assert not defs, f"{path.name} defines {defs}: put them in nbutils and import them"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_nbutils_imports_exist(path):
    names = []
    for cell in code_cells(path):
        for node in ast.walk(ast.parse(python_source(cell))):
            if isinstance(node, ast.ImportFrom) and node.module.startswith("nbutils"):
                names += [(node.module, alias.name) for alias in node.names]
    assert names, f"{path.name} imports nothing from nbutils"
    for module, name in names:
        assert hasattr(importlib.import_module(module), name), f"{module}.{name} is missing"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_imports_each_function_from_the_module_that_defines_it(path):
    """One hop from a cell to the formula: no package re-export in between."""
    for cell in code_cells(path):
        for node in ast.walk(ast.parse(python_source(cell))):
            if isinstance(node, ast.ImportFrom) and node.module.startswith("nbutils"):
                for alias in node.names:
                    obj = getattr(importlib.import_module(node.module), alias.name)
                    home = getattr(obj, "__module__", node.module)
                    if callable(obj):
                        assert home == node.module, (
                            f"{path.name}: `from {node.module} import {alias.name}`: it is "
                            f"defined in {home}; import it from there")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_has_stored_check_outputs_and_no_errors(path):
    nb = nbformat.read(path, as_version=4)
    checks = [c for c in nb.cells if c.cell_type == "code" and "NBVAL_CHECK_OUTPUT" in c.source]
    assert checks, f"{path.name} has no check cells"
    assert all(c.outputs for c in checks), "a check cell has no stored output: execute it"
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs
              if o.output_type == "error"]
    assert not errors
