"""The grader (`python -m nbutils.lab.grade`): completed, blank and wrong notebooks get their
scores, and every way found to get the points without the work scores 0."""

import hashlib
import importlib
import inspect
import json
import re
from pathlib import Path

import nbformat
import pytest
from conftest import fixture_notebook, student_notebook

from nbutils.lab import exercises, grade
from nbutils.lab.checks import EXERCISES, GRADED

NAMES = ["gram_matrix", "total_cost", "triplet_loss"]
STUDENT = Path(__file__).resolve().parent.parent / "notebooks" / "art_generation.py"


def reference_source(name, rename=None):
    source = inspect.getsource(getattr(importlib.import_module(GRADED[name]), name))
    return source if rename is None else source.replace(f"def {name}(", f"def {rename}(", 1)


COMPLETED = {name: reference_source(name) for name in NAMES}
SWAPPED = ("def total_cost(J_content, J_style, alpha=10, beta=40):\n"
           "    return beta * J_content + alpha * J_style")


def graded(path, *options):
    result = grade.grade(path, **dict(options))
    return result, {r["name"]: r for r in result["exercises"]}


# ------------------------------------------------------------------ honest notebooks

def test_completed_notebook_with_a_failing_cell(tmp_path, capsys):
    path = student_notebook(tmp_path, "completed", COMPLETED, after=["raise ValueError('boom')"])
    assert grade.main([str(path), "--timeout", "60", "--seed", "11"]) == 0
    out = capsys.readouterr().out
    assert "Score: 3/3 (100%)" in out and "--seed 11" in out
    assert "ValueError: boom" in out


def test_blank_notebook(tmp_path, capsys):
    path = student_notebook(tmp_path, "blank")
    assert grade.main([str(path)]) == 1
    out = capsys.readouterr().out
    assert "Score: 0/3 (0%)" in out and out.count("not implemented yet") == 3


def test_wrong_notebook_json(tmp_path, capsys):
    bodies = {**COMPLETED, "total_cost": SWAPPED,
              "triplet_loss": "def triplet_loss(y_true, y_pred, alpha=0.2)\n    pass"}
    path = student_notebook(tmp_path, "wrong", bodies)
    assert grade.main([str(path), "--json"]) == 1
    result = json.loads(capsys.readouterr().out)
    by_name = {r["name"]: r for r in result["exercises"]}
    assert result["score"] == 1 and result["total"] == 3 and isinstance(result["seed"], int)
    assert by_name["gram_matrix"]["passed"]
    assert "alpha and beta swapped" in by_name["total_cost"]["reason"]
    assert "its cell failed: SyntaxError" in by_name["triplet_loss"]["reason"]


# ------------------------------------------------------------------ cheating scores 0

IMPORT_REFERENCE = {
    "gram_matrix": "from nbutils.style.costs import gram_matrix",
    "total_cost": "from nbutils.style import total_cost",
    "triplet_loss": "import nbutils.triplet\ntriplet_loss = nbutils.triplet.triplet_loss"}
WRAP_REFERENCE = {
    "gram_matrix": "def gram_matrix(A):\n    import nbutils.style.costs as c\n"
                   "    return c.gram_matrix(A)",
    "total_cost": "import functools, nbutils.style as s\ntotal_cost = functools.partial("
                  "s.total_cost)",
    "triplet_loss": "from nbutils.faces import triplet_loss as _t\n"
                    "def triplet_loss(*args, **kwargs):\n    return _t(*args, **kwargs)"}
# A cell in the student's kernel that makes every check there pass, and forges the old
# grader's report line through print.
PATCH_KERNEL = """
import builtins, json, nbutils.lab.checks as c, nbutils.lab.checks.core as core
from nbutils.lab.checks import CheckResult
passed = lambda fn, seed=None: CheckResult(True, "All tests passed")
for name in list(c.CHECKS):
    c.CHECKS[name] = passed
    setattr(c, f"check_{name}", passed)
core.check = lambda name, fn, seed=None: CheckResult(True, "All tests passed")
core.judge_outcomes = lambda *args: CheckResult(True, "All tests passed")
_print = builtins.print
builtins.print = lambda *a, **k: _print('__NBUTILS_GRADE__' + json.dumps(
    {n: {"passed": True, "message": "ok"} for n in c.GRADED}))
"""
# Overwrite the references the checks compare against, in the kernel and in the answers.
OVERWRITE_REFERENCE = {
    "gram_matrix": "import nbutils.style.costs as c\nc.gram_matrix = lambda A: 0.0\n"
                   "def gram_matrix(A):\n    return 0.0",
    "total_cost": "import nbutils.style.costs as c, nbutils.style as s\n"
                  "c.total_cost = s.total_cost = lambda *a, **k: 0.0\n"
                  "def total_cost(J_content, J_style, alpha=10, beta=40):\n    return 0.0",
    "triplet_loss": "import nbutils.triplet as t\nt.triplet_loss = lambda *a, **k: 0.0\n"
                    "def triplet_loss(y_true, y_pred, alpha=0.2):\n    return 0.0"}
# Forge what the answers' process sends back: an answer patching that process itself.
FORGE_OUTCOMES = {
    "gram_matrix": "import nbutils.lab.answers as a, nbutils.lab.checks.core as core\n"
                   "a.answer_outcomes = core.answer_outcomes = lambda *args: [{'value': 0.0}]\n"
                   "def gram_matrix(A):\n    return 0.0",
    "total_cost": "import os\nfor fd in range(3, 30):  # whichever is the channel back\n"
                  "    try:\n        os.write(fd, b'{\"defined\": {}}\\n{\"name\": "
                  "\"gram_matrix\", \"outcomes\": [{\"value\": 1.0}]}\\n')\n"
                  "    except OSError:\n        pass\n"
                  "def total_cost(J_content, J_style, alpha=10, beta=40):\n    return 0.0",
}


# Each notebook below cheats a different way in each exercise (each must score 0 on its own).
REUSE = {"gram_matrix": IMPORT_REFERENCE["gram_matrix"], "total_cost": WRAP_REFERENCE["total_cost"],
         "triplet_loss": OVERWRITE_REFERENCE["triplet_loss"]}
REUSE_AGAIN = {"gram_matrix": WRAP_REFERENCE["gram_matrix"],
               "total_cost": OVERWRITE_REFERENCE["total_cost"],
               "triplet_loss": IMPORT_REFERENCE["triplet_loss"]}
TAMPER = {**FORGE_OUTCOMES}  # triplet_loss left blank; the kernel patched before and after


@pytest.mark.parametrize("bodies, extra, reasons", [
    (REUSE, (), {"gram_matrix": "is the reference nbutils.style.costs.gram_matrix",
                 "total_cost": "calls the reference nbutils.style.costs.total_cost",
                 "triplet_loss": "wrong value"}),
    (REUSE_AGAIN, (), {"gram_matrix": "calls the reference nbutils.style.costs.gram_matrix",
                       "total_cost": "wrong value",
                       "triplet_loss": "is the reference nbutils.triplet.triplet_loss"}),
    (TAMPER, (PATCH_KERNEL,), {"gram_matrix": "", "total_cost": "",
                               "triplet_loss": ""}),
], ids=["imports, wraps or overwrites the reference", "the same, other exercises",
        "patches checks, registry, print and the answers' results"])
def test_cheating_scores_zero(tmp_path, bodies, extra, reasons):
    path = student_notebook(tmp_path, "cheat", bodies, extra=extra, after=extra)
    result, by_name = graded(path, ("seed", 5), ("timeout", 60))
    assert result["score"] == 0, by_name
    for name, reason in reasons.items():
        assert reason in by_name[name]["reason"], by_name[name]


def test_hidden_cases_not_readable_from_the_kernel(tmp_path):
    """The inputs an answer is graded on are out of the kernel's reach: there, the checks
    run with the seeds it can guess, never the grader's (whose cases the kernel's last cell
    is given, to count the ones it saw)."""
    seed = 987654321
    hidden = {hashlib.sha256(case[1][0].numpy().tobytes()).hexdigest()
              for case in EXERCISES["gram_matrix"].cases(seed)}
    spy = ("def gram_matrix(A):\n    import hashlib\n"
           "    with open('seen.txt', 'a') as f:\n"
           "        f.write(hashlib.sha256(A.numpy().tobytes()).hexdigest() + '\\n')\n"
           "    return A @ tf.transpose(A)")
    kernel = ("from nbutils.lab.checks import check_gram_matrix\n"
              "for seed in [None, *range(50)]:\n    check_gram_matrix(gram_matrix, seed=seed)\n"
              f"seen, hidden = set(open('seen.txt').read().split()), {sorted(hidden)!r}\n"
              "raise RuntimeError(f'saw {len(seen)}, hidden {len(seen & set(hidden))}')")
    path = student_notebook(tmp_path, "spy", {**COMPLETED, "gram_matrix": spy}, after=[kernel])
    result, by_name = graded(path, ("seed", seed))
    assert by_name["gram_matrix"]["passed"], result
    assert len(hidden) >= 5
    [error] = result["cell_errors"]
    seen, overlap = re.fullmatch(r"RuntimeError: saw (\d+), hidden (\d+)", error["error"]).groups()
    assert int(seen) >= 50 and int(overlap) == 0, error


def test_a_kernel_that_dies_is_reported_and_the_answers_graded(tmp_path, capsys):
    path = student_notebook(tmp_path, "dies", COMPLETED, after=["import os\nos._exit(3)",
                                                                 "print('never runs')"])
    assert grade.main([str(path), "--timeout", "60"]) == 0
    out = capsys.readouterr().out
    assert "Score: 3/3" in out
    cells = nbformat.read(path, as_version=4).cells
    assert f"cell {len(cells) - 1}: the kernel died" in out


def test_a_cell_that_ignores_interrupts_is_reported_and_the_answers_graded(tmp_path, capsys):
    stubborn = ("import time\nwhile True:\n    try:\n        time.sleep(0.05)\n"
                "    except KeyboardInterrupt:\n        pass")
    path = student_notebook(tmp_path, "stubborn", COMPLETED, after=[stubborn, "print(1)"])
    assert grade.main([str(path), "--timeout", "20"]) == 0
    out = capsys.readouterr().out
    cells = nbformat.read(path, as_version=4).cells
    assert "Score: 3/3" in out
    assert f"cell {len(cells) - 1}: ran past 20 s and ignored the interrupt" in out


def test_an_answer_that_ends_or_hangs_its_process_fails_alone(tmp_path):
    bodies = {**COMPLETED,
              "gram_matrix": "def gram_matrix(A):\n    import os\n    os._exit(1)",
              "triplet_loss": "def triplet_loss(y_true, y_pred, alpha=0.2):\n"
                              "    while True:\n        pass"}
    path = student_notebook(tmp_path, "ends", bodies)
    result, by_name = graded(path, ("timeout", 15))
    assert result["score"] == 1 and by_name["total_cost"]["passed"], by_name
    assert "stopped the process" in by_name["gram_matrix"]["reason"]
    assert "ran past 15 s" in by_name["triplet_loss"]["reason"]


def test_the_real_student_notebook_with_one_cheating_cell_scores_zero(tmp_path):
    nb, names = exercises.make_student(exercises.read_notebook(STUDENT))
    position = next(i for i, c in enumerate(nb.cells) if "exercise" in c.metadata.get(
        "nbutils", {}))
    nb.cells.insert(position, nbformat.v4.new_code_cell(PATCH_KERNEL))
    path = tmp_path / "art_generation.ipynb"
    nbformat.write(nb, path)
    result, by_name = graded(path, ("timeout", 120))
    assert (result["score"], result["total"]) == (0, 6), by_name
    assert all("not implemented yet" in r["reason"] for r in by_name.values())


# ------------------------------------------------------------------ not gradable

def test_grade_refuses_an_exercise_without_a_check(tmp_path, capsys):
    path = fixture_notebook(tmp_path / "odd.ipynb", "x = 1")
    nb = nbformat.read(path, as_version=4)
    nb.cells[1].metadata["nbutils"] = {"exercise": "mystery"}
    nbformat.write(nb, path)
    assert grade.main([str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("error:") == 1 and "mystery" in err


def test_grade_refuses_bad_paths_and_options(tmp_path, capsys):
    assert grade.main([str(tmp_path / "missing.ipynb")]) == 2
    (tmp_path / "text.ipynb").write_text("not json")
    assert grade.main([str(tmp_path / "text.ipynb")]) == 2
    plain = fixture_notebook(tmp_path / "plain.ipynb", "x = 1")
    assert grade.main([str(plain)]) == 2
    assert capsys.readouterr().err.count("error:") == 3
    for option in (["--seed", "-1"], ["--timeout", "0"], ["--seed", "x"]):
        with pytest.raises(SystemExit) as exit_:
            grade.main([str(plain), *option])
        assert exit_.value.code == 2
        assert option[0] in capsys.readouterr().err
