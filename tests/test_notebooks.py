"""The notebooks: in step with their builder, and importing (never redefining) nbutils."""

import ast
import importlib
import importlib.util
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def code_cells(path):
    nb = nbformat.read(path, as_version=4)
    return [c.source for c in nb.cells if c.cell_type == "code"]


def python_source(cell: str) -> str:
    return "\n".join(line for line in cell.splitlines() if not line.lstrip().startswith("%"))


BUILDERS = sorted((ROOT / "tools").glob("build_*.py"))


def test_every_notebook_has_a_builder():
    assert {p.stem.removeprefix("build_") for p in BUILDERS} == {p.stem for p in NOTEBOOKS}


@pytest.mark.parametrize("script", BUILDERS, ids=lambda p: p.name)
def test_notebook_matches_its_builder(script, monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "tools"))
    spec = importlib.util.spec_from_file_location(script.stem, script)
    builder = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(builder)
    built = [(c.cell_type, c.source) for c in builder.nb.build().cells]
    stored = [(c.cell_type, c.source) for c in nbformat.read(builder.nb.path, 4).cells]
    assert stored == built, f"{builder.nb.path.name} and {script.name} differ: rebuild it"
    sys.modules.pop("nbbuild", None)


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
def test_notebook_has_stored_check_outputs_and_no_errors(path):
    nb = nbformat.read(path, as_version=4)
    checks = [c for c in nb.cells if c.cell_type == "code" and "NBVAL_CHECK_OUTPUT" in c.source]
    assert checks, f"{path.name} has no check cells"
    assert all(c.outputs for c in checks), "a check cell has no stored output: execute it"
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs
              if o.output_type == "error"]
    assert not errors
