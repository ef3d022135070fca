"""Student notebooks (nbutils.lab.exercises), their checks (nbutils.lab.checks) and the grader."""

import importlib
import inspect
import re
from pathlib import Path

import nbformat
import pytest
from conftest import fixture_notebook

from nbutils.lab import exercises
from nbutils.lab.checks import GRADED
from nbutils.lab.exercises import __main__ as exercises_cli

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
REAL = {"art_generation.ipynb": list(GRADED)[:6], "face_recognition.ipynb": list(GRADED)[6:]}


def reference(name):
    return getattr(importlib.import_module(GRADED[name]), name)


# ------------------------------------------------------------------ the generator

@pytest.fixture(scope="module")
def students(tmp_path_factory):
    out = tmp_path_factory.mktemp("student")
    assert exercises_cli.main(["--out", str(out)] + [str(NOTEBOOKS / n) for n in REAL]) == 0
    return out


@pytest.mark.parametrize("filename", REAL)
def test_student_notebook_from_the_plain_text_source_is_the_same(students, filename, tmp_path):
    source = (NOTEBOOKS / filename).with_suffix(".py")
    assert exercises_cli.main(["--out", str(tmp_path), str(source)]) == 0
    from_source = nbformat.read(tmp_path / filename, as_version=4)
    from_ipynb = nbformat.read(students / filename, as_version=4)
    assert [(c.cell_type, c.source, c.metadata.get("nbutils")) for c in from_source.cells] \
        == [(c.cell_type, c.source, c.metadata.get("nbutils")) for c in from_ipynb.cells]


@pytest.mark.parametrize("filename", REAL)
def test_every_exercise_present_with_check(students, filename):
    nb = nbformat.read(students / filename, as_version=4)
    tagged = [c.metadata["nbutils"] for c in nb.cells if "nbutils" in c.metadata]
    assert [t["exercise"] for t in tagged if "exercise" in t] == REAL[filename]
    assert [t["check"] for t in tagged if "check" in t] == REAL[filename]
    for cell in nb.cells:
        if cell.metadata.get("nbutils", {}).get("exercise"):
            name = cell.metadata["nbutils"]["exercise"]
            assert cell.source.startswith(f"def {name}(")
            assert cell.source.endswith("# YOUR CODE HERE\n    raise NotImplementedError")
            assert inspect.getdoc(reference(name)).splitlines()[0] in cell.source


@pytest.mark.parametrize("filename", REAL)
def test_no_solution_line_and_outputs_cleared(students, filename):
    text = (students / filename).read_text()
    nb = nbformat.reads(text, as_version=4)
    lines = {line.strip() for cell in nb.cells for line in cell.source.splitlines()}
    for name in REAL[filename]:
        body = [line.strip() for line in exercises.reference_body_lines(name)
                if any(ch.isalnum() for ch in line)]  # not a lone ")"
        assert body, name
        assert not lines & set(body), (name, lines & set(body))
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None
    assert "iopub.execute_input" not in text


@pytest.mark.parametrize("filename", REAL)
def test_other_cells_unchanged(students, filename):
    original = nbformat.read(NOTEBOOKS / filename, as_version=4)
    student = nbformat.read(students / filename, as_version=4)
    untouched = [c for c in student.cells if "nbutils" not in c.metadata]
    assert len(untouched) == len(original.cells)
    changed = [(o, s) for o, s in zip(original.cells, untouched, strict=True)
               if o.source != s.source]
    assert len(changed) == 1  # the import cell, graded names removed, nothing else
    before, after = changed[0]
    assert before.id == after.id
    for name in REAL[filename]:
        assert name in before.source and name not in after.source
    words = [set(re.findall(r"\w+", cell.source)) for cell in (before, after)]
    # only the graded names go, and the module of an import left with none of its names
    removed, graded = words[0] - words[1], set(REAL[filename])
    module_words = {w for name in graded for w in GRADED[name].split(".")}
    assert graded <= removed and removed - graded <= module_words and words[1] <= words[0]
    # the helpers the stubs need at definition time, then the exercises, right after it
    index = student.cells.index(after)
    assert "helpers" in student.cells[index + 1].metadata["nbutils"]
    assert student.cells[index + 2].source == f"### Exercise: `{REAL[filename][0]}`"


def test_helpers_given_private_helpers_not():
    assert {"unroll_channels"} <= set(exercises.helper_names("compute_layer_style_cost"))
    assert "STYLE_LAYERS" in exercises.helper_names("compute_style_cost")
    assert "clip_0_1" in exercises.helper_names("make_train_step")
    verify_helpers = exercises.helper_names("verify")
    assert {"img_to_encoding", "as_database"} <= set(verify_helpers)
    assert not any(n.startswith("_") for n in exercises.helper_names("compute_content_cost"))


def test_deterministic(tmp_path):
    paths = [str(NOTEBOOKS / n) for n in REAL]
    exercises_cli.main(["--out", str(tmp_path / "a")] + paths)
    exercises_cli.main(["--out", str(tmp_path / "b")] + paths)
    for name in REAL:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


@pytest.mark.parametrize("source", [
    "from nbutils.images import gram_matrix",          # not where the graded one lives
    "from nbutils.style import *",                      # cannot tell
    "from nbutils.style import total_cost as tc",       # alias
    "from nbutils.style import (total_cost,\n",         # unparsable
])
def test_refuses_unmappable_imports(tmp_path, capsys, source):
    path = fixture_notebook(tmp_path / "bad.ipynb", source)
    with pytest.raises(exercises.ExerciseError):
        exercises.make_student(nbformat.read(path, as_version=4))
    assert exercises_cli.main(["--out", str(tmp_path / "out"), str(path)]) == 2
    assert "error:" in capsys.readouterr().err
    assert not (tmp_path / "out" / "bad.ipynb").exists()


def test_single_line_import_rewritten_and_magics_kept(tmp_path):
    source = "%matplotlib inline\nfrom nbutils.style import STYLE_LAYERS, total_cost"
    path = fixture_notebook(tmp_path / "nb.ipynb", source)
    student, names = exercises.make_student(nbformat.read(path, as_version=4))
    assert names == ["total_cost"]
    assert student.cells[1].source == "%matplotlib inline\nfrom nbutils.style import STYLE_LAYERS"


@pytest.mark.parametrize("deep", ["x = " + "not " * 10_000 + "1", "x = " + "-" * 10_000 + "1"])
def test_a_cell_nested_too_deeply_to_parse_is_left_as_it_is(tmp_path, deep):
    path = fixture_notebook(tmp_path / "nb.ipynb", deep, "from nbutils.style import total_cost")
    student, names = exercises.make_student(nbformat.read(path, as_version=4))
    assert names == ["total_cost"] and student.cells[1].source == deep
