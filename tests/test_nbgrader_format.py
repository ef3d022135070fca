"""nbgrader source assignments (``python -m nbutils.lab.exercises --format nbgrader``), without
nbgrader: `make nbgrader-check` runs the real one (tools/nbgrader_roundtrip.py)."""

import ast
import re
from pathlib import Path

import nbformat
import pytest
from traitlets.config import Config

from nbutils.lab import exercises, nbgrader
from nbutils.lab.checks import CHECKS, GRADED
from nbutils.lab.exercises import __main__ as exercises_cli
from nbutils.lab.parameters import load_preset

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
SOURCES = {"art_generation": list(GRADED)[:6], "face_recognition": list(GRADED)[6:]}
SEED = 424242
KEYS = {"grade", "grade_id", "locked", "schema_version", "solution", "task"}


def emit(out, *options, notebooks=tuple(SOURCES)):
    argv = ["--format", "nbgrader", "--out", str(out), *options]
    return exercises_cli.main(argv + [str(NOTEBOOKS / f"{n}.py") for n in notebooks])


def source_path(course, name, assignment=None):
    return course / "source" / (assignment or name) / f"{name}.ipynb"


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    out = tmp_path_factory.mktemp("course")
    assert emit(out, "--seed", str(SEED)) == 0
    return out


@pytest.fixture(scope="module", params=list(SOURCES))
def source(request, course):
    return request.param, nbformat.read(source_path(course, request.param), as_version=4)


def role(cell):
    return cell.metadata.get("nbutils", {})


def release(cell):
    """The cell as ``nbgrader generate_assignment`` releases it: each solution region
    replaced by the indented code stub, hidden test regions removed."""
    out, skip = [], False
    for line in cell.source.split("\n"):
        indent = line[:len(line) - len(line.lstrip())]
        if nbgrader.BEGIN_SOLUTION in line:
            out += [indent + stub for stub in nbgrader.CODE_STUB.split("\n")]
            skip = True
        elif nbgrader.BEGIN_HIDDEN in line:
            skip = True
        elif nbgrader.END_SOLUTION in line or nbgrader.END_HIDDEN in line:
            skip = False
        elif not skip:
            out.append(line)
    return "\n".join(out)


def test_layout_and_config(course):
    assert sorted(p.relative_to(course).as_posix() for p in course.rglob("*") if p.is_file()) \
        == ["nbgrader_config.py", "source/art_generation/art_generation.ipynb",
            "source/face_recognition/face_recognition.ipynb"]
    c = Config()
    exec((course / "nbgrader_config.py").read_text(), {"get_config": lambda: c})
    assert c.CourseDirectory.root == str(course.resolve())
    assert c.ClearSolutions.code_stub == {"python": "# YOUR CODE HERE\nraise NotImplementedError()"}
    assert c.ExecutePreprocessor.timeout == nbgrader.CELL_TIMEOUT >= 60


def test_every_cell_has_schema_3_metadata_and_unique_ids(source):
    _, nb = source
    ids = []
    for cell in nb.cells:
        meta = cell.metadata["nbgrader"]
        assert set(meta) == KEYS | ({"points"} if meta["grade"] else set()), meta
        assert meta["schema_version"] == 3 and meta["task"] is False
        assert re.fullmatch(r"[a-zA-Z0-9_-]+", meta["grade_id"])
        assert cell.id == meta["grade_id"]
        ids.append(meta["grade_id"])
    assert len(ids) == len(set(ids))


def test_answers_tests_and_locked_cells(source):
    name, nb = source
    kinds = [("solution" if m["solution"] else "tests" if m["grade"] else "readonly",
              m["locked"]) for m in (c.metadata["nbgrader"] for c in nb.cells)]
    assert kinds.count(("solution", False)) == kinds.count(("tests", True)) == len(SOURCES[name])
    assert kinds.count(("readonly", True)) == len(nb.cells) - 2 * len(SOURCES[name])
    for cell in nb.cells:
        meta = cell.metadata["nbgrader"]
        assert meta["solution"] == ("exercise" in role(cell)) == (cell.cell_type == "code"
                                                                 and not meta["locked"])
        assert meta["grade"] == ("check" in role(cell))
        if meta["grade"]:
            assert meta["points"] == nbgrader.POINTS.get(role(cell)["check"], 1) > 0
    helpers = [c for c in nb.cells if "helpers" in role(c)]
    titles = [c for c in nb.cells if "title" in role(c)]
    assert len(helpers) == 1 and len(titles) == len(SOURCES[name])
    assert all(c.metadata["nbgrader"]["locked"] for c in helpers + titles)


def test_solution_is_the_reference_body_between_the_delimiters(source):
    name, nb = source
    answers = {role(c)["exercise"]: c.source for c in nb.cells if "exercise" in role(c)}
    assert list(answers) == SOURCES[name]
    for graded, text in answers.items():
        head = exercises.stub_source(graded).removesuffix(exercises.STUB_BODY)
        assert text.startswith(head + f"    {nbgrader.BEGIN_SOLUTION}\n")
        assert text.endswith(f"\n    {nbgrader.END_SOLUTION}")
        region = text[len(head):].split("\n")[1:-1]
        body = exercises.reference_body_lines(graded)
        assert [line for line in region if line.strip()] == [line for line in body if line.strip()]
        ast.parse(text)  # the source notebook runs


def test_release_is_the_student_stub(source):
    _, nb = source
    for cell in nb.cells:
        if "exercise" in role(cell):
            stub = exercises.stub_source(role(cell)["exercise"])
            assert release(cell) == stub.replace("raise NotImplementedError",
                                                 "raise NotImplementedError()")


def test_test_cell_runs_the_visible_then_the_hidden_check(source):
    name, nb = source
    for cell in nb.cells:
        if "check" in role(cell):
            graded, check = role(cell)["check"], CHECKS[role(cell)["check"]].__name__
            assert cell.source == (
                f"from nbutils.lab.checks import {check}\n"
                f"result = {check}({graded})\nassert result.passed, result.message\n"
                f"### BEGIN HIDDEN TESTS\n"
                f"result = {check}({graded}, seed={SEED})\nassert result.passed, result.message\n"
                f"### END HIDDEN TESTS")
            assert str(SEED) not in release(cell) and "HIDDEN" not in release(cell)


def test_parameters_are_the_presets(course):
    preset = load_preset("ci")
    art = nbformat.read(source_path(course, "art_generation"), as_version=4)
    injected = [c for c in art.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert len(injected) == 1 and injected[0].metadata["nbgrader"]["locked"]
    values = {n.targets[0].id: ast.literal_eval(n.value)
              for n in ast.parse(injected[0].source).body}
    assert values == {"IMG_SIZE": preset["IMG_SIZE"], "EPOCHS": preset["EPOCHS"]}
    face = nbformat.read(source_path(course, "face_recognition"), as_version=4)
    assert not [c for c in face.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert "jupytext" not in art.metadata and "jupytext" not in face.metadata


def test_same_seed_same_bytes_and_a_fresh_seed_by_default(course, tmp_path):
    assert emit(tmp_path / "again", "--seed", str(SEED)) == 0
    assert emit(tmp_path / "a", notebooks=["face_recognition"]) == 0
    assert emit(tmp_path / "b", notebooks=["face_recognition"]) == 0
    for name in SOURCES:
        assert source_path(tmp_path / "again", name).read_bytes() \
            == source_path(course, name).read_bytes()
    seeds = [set(re.findall(r"seed=(\d+)", source_path(tmp_path / d, "face_recognition")
                            .read_text())) for d in "ab"]
    assert len(seeds[0]) == len(seeds[1]) == 1 and seeds[0] != seeds[1]


def test_one_assignment_for_all(tmp_path):
    assert emit(tmp_path, "--seed", "1", "--assignment", "ps1") == 0
    assert all(source_path(tmp_path, n, "ps1").is_file() for n in SOURCES)


def test_a_config_of_the_instructor_is_kept(tmp_path, capsys):
    (tmp_path / "nbgrader_config.py").write_text("c = get_config()\n")
    assert emit(tmp_path, "--seed", "1", notebooks=["face_recognition"]) == 0
    assert (tmp_path / "nbgrader_config.py").read_text() == "c = get_config()\n"
    assert "nbgrader_config.py" not in capsys.readouterr().out


@pytest.mark.parametrize(("argv", "says"), [
    (["--preset", "nope", str(NOTEBOOKS / "face_recognition.py")], "no preset 'nope'"),
    ([str(NOTEBOOKS / "convnet_insight.py")], "convnet_insight.py: no graded function"),
])
def test_errors_name_the_file_or_option(tmp_path, capsys, argv, says):
    assert exercises_cli.main(["--format", "nbgrader", "--out", str(tmp_path), *argv]) == 2
    assert says in capsys.readouterr().err


@pytest.mark.parametrize("option", [["--seed", "1"], ["--preset", "ci"], ["--assignment", "a"]])
def test_nbgrader_options_are_refused_for_student_notebooks(tmp_path, capsys, option):
    with pytest.raises(SystemExit):
        exercises_cli.main(["--out", str(tmp_path), *option,
                            str(NOTEBOOKS / "face_recognition.py")])
    assert f"{option[0]}: only for --format nbgrader" in capsys.readouterr().err


@pytest.mark.parametrize("name", SOURCES)
def test_student_format_unchanged(tmp_path, name):
    notebook = NOTEBOOKS / f"{name}.ipynb"  # stored cell ids: comparable bytes
    assert exercises_cli.main(["--out", str(tmp_path / "default"), str(notebook)]) == 0
    assert exercises_cli.main(["--format", "student", "--out", str(tmp_path / "s"),
                               str(notebook)]) == 0
    direct = exercises.write_student(notebook, tmp_path / "direct")
    for folder in ("default", "s"):
        assert (tmp_path / folder / f"{name}.ipynb").read_bytes() == direct.read_bytes()
    assert "nbgrader" not in direct.read_text()


def test_cell_metadata_refuses_inconsistent_kinds():
    with pytest.raises(ValueError, match="kind must be"):
        nbgrader.cell_metadata("manual", "a")
    with pytest.raises(ValueError, match="points"):
        nbgrader.cell_metadata("solution", "a", points=1)
    with pytest.raises(ValueError, match="points"):
        nbgrader.cell_metadata("tests", "a")


def test_every_planted_mistake_still_finds_its_line_in_the_reference():
    """`make nbgrader-check` plants each of tools/nbgrader_roundtrip.py's MISTAKES in a
    graded function's solution (its reference body): a reference rewritten so that the line
    is gone would fail only there, after `make test`; this finds it in `make test`."""
    import importlib.util
    import sys

    path = Path(__file__).resolve().parent.parent / "tools" / "nbgrader_roundtrip.py"
    spec = importlib.util.spec_from_file_location("nbgrader_roundtrip", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while defining
    try:
        spec.loader.exec_module(module)
    finally:
        del sys.modules[spec.name]
    assert module.MISTAKES
    for mistake in module.MISTAKES:
        body = "\n".join(exercises.reference_body_lines(mistake.name))
        assert mistake.old in body, f"{mistake.name}'s reference no longer has {mistake.old!r}"


# ----------------------------------------------------- a JSON file that is not a notebook

def small_notebook(path):
    """A notebook with a parameters cell and one graded import: a course of one exercise."""
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell("IMG_SIZE = 256", metadata={"tags": ["parameters"]}),
        nbformat.v4.new_code_cell("from nbutils.style import total_cost")])
    nb.metadata["kernelspec"] = {"name": "python3", "language": "python",
                                 "display_name": "Python 3"}
    nbformat.write(nb, path)
    return path


V4 = '"nbformat": 4, "nbformat_minor": 5, "metadata": {}'


@pytest.mark.parametrize(("content", "says"), [
    ("[1, 2]", "its JSON is a list, not an object"),
    ('{"cells": 5}', "no 'nbformat' version number"),
    ('"x"', "its JSON is a string, not an object"),
    ("null", "its JSON is null, not an object"),
    ("7", "its JSON is a number, not an object"),
    ("{" + V4 + ', "cells": 5}', "'cells' is a number, not a list"),
    ("{" + V4 + ', "cells": [5]}', "cell 0 is a number, not an object"),
    ("{" + V4 + ', "cells": [{"cell_type": "code"}]}', "missing an expected key"),
    ("{" + V4 + ', "cells": [], "worksheets": 5}', "not a valid Jupyter notebook"),
    ("not JSON at all", "not JSON"),
    ("[" * 100_000, "nested too deeply"),
])
def test_a_json_file_that_is_not_a_notebook_is_refused_before_any_work(tmp_path, capsys,
                                                                      content, says):
    good, bad = small_notebook(tmp_path / "good.ipynb"), tmp_path / "bad.ipynb"
    bad.write_text(content)
    out = tmp_path / "course"
    assert exercises_cli.main(["--format", "nbgrader", "--out", str(out), str(good),
                               str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"error: {bad}: not a "), err
    assert says in err
    assert not out.exists()  # the good notebook before it was not written either
    assert exercises_cli.main(["--out", str(out), str(bad)]) == 2  # the student format
    assert capsys.readouterr().err.startswith(f"error: {bad}: not a ")


def test_a_parameters_cell_nested_too_deeply_is_one_line(tmp_path, capsys):
    path = small_notebook(tmp_path / "deep.ipynb")
    assert exercises_cli.main(["--format", "nbgrader", "--out", str(tmp_path / "course"),
                               str(path)]) == 0  # as it is, a course
    assert source_path(tmp_path / "course", "deep").is_file()
    nb = nbformat.read(path, as_version=4)
    nb.cells[0].source = "IMG_SIZE = " + "not " * 10_000 + "1"
    nbformat.write(nb, path)
    assert exercises_cli.main(["--format", "nbgrader", "--out", str(tmp_path / "c"),
                               str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{path}: the parameters cell, line 1: nested too" in err


def test_widget_cells_build_nothing_when_autograded(source):
    """nbgrader's autograde can hang for good on a widget cell (nbclient issue 312): in the
    assignment each one is a locked cell whose code is all comments, its lines kept."""
    name, nb = source
    original = {c.source for c in exercises.read_notebook(NOTEBOOKS / f"{name}.py").cells
                if exercises.WIDGET_TAG in c.metadata.get("tags", [])}
    widgets = [c for c in nb.cells if exercises.WIDGET_TAG in c.metadata.get("tags", [])]
    assert len(widgets) == len(original) >= 2
    for cell in widgets:
        assert ast.parse(cell.source).body == []  # nothing runs
        assert cell.metadata["nbgrader"]["locked"] and not cell.metadata["nbgrader"]["grade"]
        kept = "\n".join(line[2:] if line.startswith("# ") else "" for line in
                         cell.source.splitlines()[3:])
        assert kept in original
