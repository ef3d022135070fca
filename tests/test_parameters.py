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


# ------------------------------------------------------------- cells that cannot be read

DEEP = 10_000  # far past what Python's parser can nest


@pytest.mark.parametrize(("source", "line", "says"), [
    ("A = 1\nB = (1,", 2, "not valid Python"),                      # a syntax error
    ("A = 1\n\nB = 2\x00", 3, "a null byte"),
    ("A = 1\nB = " + "[" * 300 + "]" * 300, 2, "too many nested parentheses"),
    ("A = 1\nB = 2\nC = " + "not " * DEEP + "1", 3, "nested too deeply"),  # MemoryError
    ("A = 1\nB = " + "-" * DEEP + "1", 2, "nested too deeply"),            # RecursionError
    ("A = 1\nB = {[1]: 2}", 2, "unhashable type: 'list'"),                 # a dict, list key
    ("A = {1, [2]}", 1, "unhashable type: 'list'"),                        # a set of a list
    ("A = {1: {{}: 2}}", 1, "unhashable type: 'dict'"),
    ("A = 1\nB = '\ud800'", 2, "not valid text"),                          # JSON can hold it
])
def test_a_cell_that_cannot_be_read_names_the_notebook_and_line(source, line, says):
    with pytest.raises(ParametersError) as err:
        notebook_parameters(notebook(params(source)), "lab1.ipynb")
    message = str(err.value)
    assert message.startswith(f"lab1.ipynb: the parameters cell, line {line}: "), message
    assert says in message and "holds only `NAME = literal` lines" in message
    assert "\n" not in message and len(message) < 400


def test_the_deep_line_is_found_among_many():
    source = "\n".join(f"A{i} = {i}" for i in range(2000)) + "\nZ = " + "not " * DEEP + "1"
    with pytest.raises(ParametersError, match="line 2001: nested too deeply"):
        notebook_parameters(notebook(params(source)))


def test_apply_preset_and_the_grader_say_it_in_one_line(tmp_path, capsys):
    from nbutils.lab import grade

    source = "A = 1\nB = {[1]: 2}"
    with pytest.raises(ParametersError, match="^x.ipynb: the parameters cell, line 2: "):
        apply_preset(notebook(params(source)), {"A": 2}, "x.ipynb")
    nb = notebook(params(source), new_code_cell(
        "def gram_matrix(A):\n    return A", metadata={"nbutils": {"exercise": "gram_matrix"}}))
    nbformat.write(nb, tmp_path / "lab.ipynb")
    assert grade.main([str(tmp_path / "lab.ipynb")]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1, err
    assert err.startswith(f"error: {tmp_path / 'lab.ipynb'}: the parameters cell, line 2: ")
