"""Checks of the graded exercises: the learner's function against nbutils's reference.

``check_<name>(fn, seed=None)`` runs ``fn`` and the reference on the same cases (a few shapes
and seeds; ``seed=N`` draws hidden cases from N, which the learner never sees), compares the
results (``np.allclose``, rtol 1e-4), prints "All tests passed" or what differs, and returns a
`CheckResult`. Classic mistakes are named when the wrong value matches a deliberately wrong
variant (alpha/beta swapped, reshape without transpose, max of the sum, ...). An exception
in the learner's code is reported as a failure, never raised; an answer that is, or calls,
nbutils' own implementation fails (`core.references_withheld`).

The registry of the graded functions, in course order: ``GRADED`` (name -> module of the
reference, in `nbutils.lab.checks.core`), ``CHECKS`` (name -> check) and ``EXERCISES``
(name -> its cases, run and judge). `nbutils.lab.exercises`, `nbutils.lab.grade` and
`nbutils.lab.answers` read them from here.
"""

from nbutils.lab.checks.core import GRADED, CheckResult, Exercise, reference_of
from nbutils.lab.checks.faces import check_triplet_loss, check_verify, check_who_is_it
from nbutils.lab.checks.style import (
    check_compute_content_cost,
    check_compute_layer_style_cost,
    check_compute_style_cost,
    check_gram_matrix,
    check_make_train_step,
    check_total_cost,
)

_BY_NAME = {check.exercise.name: check for check in (
    check_compute_content_cost, check_gram_matrix, check_compute_layer_style_cost,
    check_compute_style_cost, check_total_cost, check_make_train_step,
    check_triplet_loss, check_verify, check_who_is_it)}
#: Graded function name -> ``check_<name>``, in course order (a KeyError: a check is missing).
CHECKS = {name: _BY_NAME[name] for name in GRADED}
#: Graded function name -> its `Exercise`, in course order.
EXERCISES: dict[str, Exercise] = {name: check.exercise for name, check in CHECKS.items()}
__all__ = ["CHECKS", "EXERCISES", "GRADED", "CheckResult", "reference_of", *(
    check.__name__ for check in CHECKS.values())]
