"""Student notebooks (nbutils.exercises), their checks (nbutils.checks) and the grader."""

import importlib
import inspect
import json
import re
from pathlib import Path

import nbformat
import numpy as np
import pytest
import tensorflow as tf
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from nbutils import checks, exercises, grade
from nbutils.checks import GRADED

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
REAL = {"art_generation.ipynb": list(GRADED)[:6], "face_recognition.ipynb": list(GRADED)[6:]}


def reference(name):
    return getattr(importlib.import_module(GRADED[name]), name)


# ------------------------------------------------------------------ the generator

@pytest.fixture(scope="module")
def students(tmp_path_factory):
    out = tmp_path_factory.mktemp("student")
    assert exercises.main(["--out", str(out)] + [str(NOTEBOOKS / n) for n in REAL]) == 0
    return out


@pytest.mark.parametrize("filename", REAL)
def test_student_notebook_from_the_plain_text_source_is_the_same(students, filename, tmp_path):
    source = (NOTEBOOKS / filename).with_suffix(".py")
    assert exercises.main(["--out", str(tmp_path), str(source)]) == 0
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
    assert words[0] - words[1] == set(REAL[filename]) and words[1] <= words[0]
    # the helpers the stubs need at definition time, then the exercises, right after it
    index = student.cells.index(after)
    assert "helpers" in student.cells[index + 1].metadata["nbutils"]
    assert student.cells[index + 2].source == f"### Exercise: `{REAL[filename][0]}`"


def test_helpers_given_private_helpers_not():
    assert {"unroll_channels"} <= set(exercises.helper_names("compute_layer_style_cost"))
    assert "STYLE_LAYERS" in exercises.helper_names("compute_style_cost")
    assert "clip_0_1" in exercises.helper_names("make_train_step")
    verify_helpers = exercises.helper_names("verify")
    assert {"img_to_encoding", "FaceDatabase"} <= set(verify_helpers)
    assert not any(n.startswith("_") for n in exercises.helper_names("compute_content_cost"))


def test_deterministic(tmp_path):
    paths = [str(NOTEBOOKS / n) for n in REAL]
    exercises.main(["--out", str(tmp_path / "a")] + paths)
    exercises.main(["--out", str(tmp_path / "b")] + paths)
    for name in REAL:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


def fixture_notebook(path, *sources):
    nb = new_notebook(cells=[new_markdown_cell("# fixture")] + [new_code_cell(s) for s in sources],
                      metadata={"kernelspec": {"display_name": "Python 3", "language": "python",
                                               "name": "python3"}})
    for i, cell in enumerate(nb.cells):
        cell.id = f"cell-{i}"
    nbformat.write(nb, path)
    return path


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
    assert exercises.main(["--out", str(tmp_path / "out"), str(path)]) == 2
    assert "error:" in capsys.readouterr().err
    assert not (tmp_path / "out" / "bad.ipynb").exists()


def test_single_line_import_rewritten_and_magics_kept(tmp_path):
    source = "%matplotlib inline\nfrom nbutils.style import STYLE_LAYERS, total_cost"
    path = fixture_notebook(tmp_path / "nb.ipynb", source)
    student, names = exercises.make_student(nbformat.read(path, as_version=4))
    assert names == ["total_cost"]
    assert student.cells[1].source == "%matplotlib inline\nfrom nbutils.style import STYLE_LAYERS"


# ------------------------------------------------------------------ the checks


def stub(*args, **kwargs):
    raise NotImplementedError


@pytest.mark.parametrize("name", list(GRADED))
def test_check_passes_reference_fails_stub(name, capsys):
    result = checks.CHECKS[name](reference(name), hidden=True)
    assert result.passed, result.message
    assert "All tests passed" in capsys.readouterr().out
    result = checks.CHECKS[name](stub)
    assert not result.passed and "not implemented yet" in result.message
    assert "not implemented yet" in capsys.readouterr().out


def swapped_total_cost(J_content, J_style, alpha=10, beta=40):
    return beta * J_content + alpha * J_style


def layer_style_no_transpose(a_S, a_G):
    _, n_H, n_W, n_C = a_G.shape

    def gram(a):
        A = tf.reshape(a, [n_C, n_H * n_W])
        return tf.matmul(A, A, transpose_b=True)

    return tf.reduce_sum(tf.square(gram(a_S) - gram(a_G))) / (4 * n_C**2 * (n_H * n_W) ** 2)


def layer_style_no_factor(a_S, a_G):
    from nbutils.style.costs import gram_matrix, unroll_channels
    return tf.reduce_sum(tf.square(gram_matrix(unroll_channels(a_S))
                                   - gram_matrix(unroll_channels(a_G))))


def content_without_four(content_output, generated_output):
    return tf.reduce_mean(tf.square(content_output[-1] - generated_output[-1]))


def triplet_max_of_sum(y_true, y_pred, alpha=0.2):
    a, p, n = y_pred
    basic = (tf.reduce_sum(tf.square(a - p), axis=-1) - tf.reduce_sum(tf.square(a - n), axis=-1)
             + alpha)
    return tf.maximum(tf.reduce_sum(basic), 0.0)


def triplet_unsquared(y_true, y_pred, alpha=0.2):
    a, p, n = y_pred
    basic = tf.norm(a - p, axis=-1) - tf.norm(a - n, axis=-1) + alpha
    return tf.reduce_sum(tf.maximum(basic, 0.0))


def triplet_axis0(y_true, y_pred, alpha=0.2):
    a, p, n = y_pred
    basic = tf.reduce_sum(tf.square(a - p), axis=0) - tf.reduce_sum(tf.square(a - n), axis=0)
    return tf.reduce_sum(tf.maximum(basic + alpha, 0.0))


def verify_wrong_side(image_path, identity, database, model=None, threshold=0.6):
    dist = float(np.linalg.norm(img_to_encoding(image_path, model) - database[identity]))
    return dist, dist > threshold


def who_is_it_no_none(image_path, database, model=None, threshold=0.6):
    encoding = img_to_encoding(image_path, model)
    dists = {name: float(np.linalg.norm(encoding - e)) for name, e in database.items()}
    identity = min(dists, key=dists.get)
    return dists[identity], identity


def img_to_encoding(image_path, model=None):  # replaced by the checks' stand-in
    raise AssertionError("the check must inject its own img_to_encoding")


def train_step_without_clip(vgg_model_outputs, a_C, a_S, optimizer, alpha=10, beta=40,
                            style_layers=(), return_all=False):
    from nbutils.style.costs import compute_content_cost, compute_style_cost

    @tf.function
    def train_step(generated_image):
        with tf.GradientTape() as tape:
            a_G = vgg_model_outputs(generated_image)
            J = alpha * compute_content_cost(a_C, a_G) + beta * compute_style_cost(
                a_S, a_G, style_layers)
        optimizer.apply_gradients([(tape.gradient(J, generated_image), generated_image)])
        return J

    return train_step


def gram_transposed(A):
    return tf.matmul(A, A, transpose_a=True)


def total_cost_vector(J_content, J_style, alpha=10, beta=40):
    return tf.stack([alpha * J_content, beta * J_style])


@pytest.mark.parametrize("name, fn, reason", [
    ("total_cost", swapped_total_cost, "alpha and beta swapped"),
    ("total_cost", total_cost_vector, "not a scalar"),
    ("compute_layer_style_cost", layer_style_no_transpose, "without a transpose"),
    ("compute_layer_style_cost", layer_style_no_factor, "forgot the normalisation factor"),
    ("compute_content_cost", content_without_four, "wrong normalisation"),
    ("gram_matrix", gram_transposed, "A^T A"),
    ("triplet_loss", triplet_max_of_sum, "max of the sum"),
    ("triplet_loss", triplet_unsquared, "SQUARED"),
    ("triplet_loss", triplet_axis0, "axis 0"),
    ("verify", verify_wrong_side, "threshold on the wrong side"),
    ("who_is_it", who_is_it_no_none, "must return None"),
    ("make_train_step", train_step_without_clip, "not clipped to [0, 1]"),
    ("gram_matrix", lambda A: A @ undefined_name, "NameError"),  # noqa: F821
])
def test_check_names_the_mistake(name, fn, reason, capsys):
    result = checks.CHECKS[name](fn, hidden=True)
    assert not result.passed
    assert reason in result.message, result.message
    assert reason in capsys.readouterr().out


def test_fake_encoder_restored():
    assert checks.check_verify(verify_wrong_side).passed is False
    with pytest.raises(AssertionError):
        img_to_encoding(np.zeros(128))


# ------------------------------------------------------------------ the grader (kernels)

def student_fixture(tmp_path, name, bodies=None, extra=()):
    """A small student notebook: exercises for gram_matrix, total_cost and triplet_loss."""
    path = fixture_notebook(
        tmp_path / f"{name}_src.ipynb",
        "import numpy as np\nimport tensorflow as tf\n"
        "from nbutils.style import gram_matrix, total_cost\nfrom nbutils.faces import triplet_loss",
        *extra, "print(float(total_cost(1.0, 0.0)))")
    nb, names = exercises.make_student(nbformat.read(path, as_version=4))
    assert names == ["gram_matrix", "total_cost", "triplet_loss"]
    for cell in nb.cells:
        exercise = cell.metadata.get("nbutils", {}).get("exercise")
        if bodies and exercise in bodies:
            cell.source = bodies[exercise]
    out = tmp_path / f"{name}.ipynb"
    nbformat.write(nb, out)
    return out


def source_of(fn, name):
    return inspect.getsource(fn).replace(f"def {fn.__name__}(", f"def {name}(")


def test_grade_completed_notebook_with_a_failing_cell(tmp_path, capsys):
    bodies = {n: inspect.getsource(reference(n))
              for n in ("gram_matrix", "total_cost", "triplet_loss")}
    path = student_fixture(tmp_path, "completed", bodies, extra=["raise ValueError('boom')"])
    assert grade.main([str(path), "--timeout", "60"]) == 0
    out = capsys.readouterr().out
    assert "Score: 3/3 (100%)" in out and "ValueError: boom" in out


def test_grade_blank_notebook(tmp_path, capsys):
    path = student_fixture(tmp_path, "blank")
    assert grade.main([str(path)]) == 1
    out = capsys.readouterr().out
    assert "Score: 0/3 (0%)" in out and out.count("not implemented yet") == 3


def test_grade_wrong_notebook_json(tmp_path, capsys):
    bodies = {"gram_matrix": inspect.getsource(reference("gram_matrix")),
              "total_cost": source_of(swapped_total_cost, "total_cost"),
              "triplet_loss": "def triplet_loss(y_true, y_pred, alpha=0.2)\n    pass"}
    path = student_fixture(tmp_path, "wrong", bodies)
    assert grade.main([str(path), "--json"]) == 1
    result = json.loads(capsys.readouterr().out)
    by_name = {r["name"]: r for r in result["exercises"]}
    assert result["score"] == 1 and result["total"] == 3
    assert by_name["gram_matrix"]["passed"]
    assert "alpha and beta swapped" in by_name["total_cost"]["reason"]
    assert "its cell failed: SyntaxError" in by_name["triplet_loss"]["reason"]


def test_registry_one_check_per_graded_reference():
    assert list(GRADED) == list(checks.CHECKS)
    for name, module in GRADED.items():
        fn = reference(name)
        assert fn.__module__ == module and fn.__name__ == name
        assert checks.CHECKS[name] is getattr(checks, f"check_{name}")
        assert checks.reference_of(name) is fn
    assert GRADED["triplet_loss"] == "nbutils.triplet"


def test_grade_refuses_an_exercise_without_a_check(tmp_path, capsys):
    path = fixture_notebook(tmp_path / "odd.ipynb", "x = 1")
    nb = nbformat.read(path, as_version=4)
    nb.cells[1].metadata["nbutils"] = {"exercise": "mystery"}
    nbformat.write(nb, path)
    assert grade.main([str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("error:") == 1 and "mystery" in err


def test_grade_refuses_bad_paths(tmp_path, capsys):
    assert grade.main([str(tmp_path / "missing.ipynb")]) == 2
    (tmp_path / "text.ipynb").write_text("not json")
    assert grade.main([str(tmp_path / "text.ipynb")]) == 2
    plain = fixture_notebook(tmp_path / "plain.ipynb", "x = 1")
    assert grade.main([str(plain)]) == 2
    assert capsys.readouterr().err.count("error:") == 3
