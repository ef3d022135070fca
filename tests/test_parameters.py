"""Notebook parameters: the one `parameters` cell of literals, presets, and their injection."""

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from nbutils.lab.parameters import (
    ParametersError,
    apply_preset,
    load_preset,
    notebook_parameters,
    parameters_cell,
)


def notebook(*cells):
    nb = new_notebook(cells=list(cells))
    nb.metadata["kernelspec"] = {"name": "python3", "language": "python",
                                 "display_name": "Python 3"}
    return nb


def params(source):
    return new_code_cell(source, metadata={"tags": ["parameters"]})


def test_literals_are_read_without_running_anything():
    nb = notebook(new_markdown_cell("# t"), params("SIZE = 256  # px\nRATE = 0.5\nNAME = 'x'\n"
                                                  "FLAG = True\nFOLDER = None\nPAIR = (1, 2)"))
    assert notebook_parameters(nb) == {"SIZE": 256, "RATE": 0.5, "NAME": "x", "FLAG": True,
                                       "FOLDER": None, "PAIR": (1, 2)}


@pytest.mark.parametrize("source", ["EVERY = max(3, 1)", "A = B = 1", "print(1)", "x.y = 2",
                                    "N = 2 ** 8", "for i in []: pass"])
def test_anything_but_a_literal_assignment_is_refused(source):
    with pytest.raises(ParametersError, match="literal"):
        notebook_parameters(notebook(params(source)))


@pytest.mark.parametrize("cells", [[], [params("A = 1"), params("B = 2")]])
def test_exactly_one_parameters_cell(cells):
    with pytest.raises(ParametersError, match=f"has {len(cells)}"):
        parameters_cell(notebook(new_code_cell("x = 1"), *cells))


def test_preset_injects_only_the_notebooks_own_names_after_its_parameters_cell():
    nb = notebook(new_code_cell("import os"), params("IMG_SIZE = 256\nEPOCHS = 300"),
                  new_code_cell("print(IMG_SIZE, EPOCHS)"))
    out = apply_preset(nb, {"IMG_SIZE": 64, "EPOCHS": 3, "STEPS": 10})
    assert [c.source for c in nb.cells][1] == "IMG_SIZE = 256\nEPOCHS = 300"  # not modified
    injected = out.cells[2]
    assert "injected-parameters" in injected.metadata["tags"]
    namespace = {}
    exec(out.cells[1].source + "\n" + injected.source, namespace)  # what the kernel would see
    assert (namespace["IMG_SIZE"], namespace["EPOCHS"]) == (64, 3) and "STEPS" not in namespace
    assert out.cells[3].source == "print(IMG_SIZE, EPOCHS)"


def test_the_ci_preset_is_small_and_unknown_presets_are_named():
    ci = load_preset("ci")
    assert ci["IMG_SIZE"] < 256 and ci["EPOCHS"] < 300 and ci["STEPS"] < 1000
    with pytest.raises(ParametersError, match="known presets: ci"):
        load_preset("huge")


def test_a_stored_notebook_round_trips_through_nbformat(tmp_path):
    nb = notebook(params("A = 1"))
    nbformat.write(apply_preset(nb, {"A": 2}), tmp_path / "x.ipynb")
    assert notebook_parameters(nbformat.read(tmp_path / "x.ipynb", as_version=4)) == {"A": 1}
