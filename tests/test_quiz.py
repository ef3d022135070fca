"""Quiz self-checks; the right answers are written out here from the course facts."""

from __future__ import annotations

from itertools import combinations
from typing import Any

import pytest

from nbutils.insight import quiz
from nbutils.insight.quiz import QUESTIONS, check, score, show_question

TRUE_FALSE = {1: True, 3: False, 5: True, 6: True, 7: False, 8: True}
SHAPE = (30, 30, 30, 32)
WRONG_SHAPES = [(30, 30, 30, 16), (32, 32, 32, 32), (30, 30, 30, 3), (30, 30, 30)]


def options_of(n: int) -> dict[str, str]:
    return quiz.get_question(n).options


def label_where(n: int, predicate) -> str:
    """The one option label of question n whose text satisfies ``predicate``."""
    labels = [label for label, text in options_of(n).items() if predicate(text)]
    assert len(labels) == 1, (n, labels)
    return labels[0]


def right_choices() -> dict[int, str | set[str]]:
    """The right option labels, found by the options' wording rather than the stored answer."""
    triplet = "max(||f(A) - f(P)||^2 - ||f(A) - f(N)||^2 + alpha, 0)"
    return {
        2: {label_where(2, lambda t: "single picture" in t),
            label_where(2, lambda t: "one-shot" in t)},
        4: label_where(4, lambda t: t == triplet),
        9: label_where(9, lambda t: "pixel" in t),
    }


def all_right() -> dict[int, Any]:
    return {**TRUE_FALSE, **right_choices(), 10: SHAPE}


def test_ten_questions_with_explanations_and_hints() -> None:
    assert [q.id for q in QUESTIONS] == list(range(1, 11))
    for q in QUESTIONS:
        assert q.explanation.strip() and q.hint.strip() and q.text.strip()
        assert q.kind in {"true_false", "single", "multiple", "shape"}
        if q.kind in {"single", "multiple"}:
            assert list(q.options) == [chr(ord("a") + i) for i in range(len(q.options))]
    assert {q.id for q in QUESTIONS if q.kind == "true_false"} == set(TRUE_FALSE)


@pytest.mark.parametrize("n", range(1, 11))
def test_right_answer_accepted(n: int, capsys: pytest.CaptureFixture[str]) -> None:
    assert check(n, all_right()[n]) is True
    out = capsys.readouterr().out
    assert out.startswith(f"Question {n}: right.")
    assert quiz.get_question(n).explanation in out


@pytest.mark.parametrize("n", sorted(TRUE_FALSE))
def test_true_false_opposite_rejected(n: int, capsys: pytest.CaptureFixture[str]) -> None:
    assert check(n, not TRUE_FALSE[n]) is False
    out = capsys.readouterr().out
    assert out.startswith(f"Question {n}: not quite.")
    assert "true" not in out.lower() and "false" not in out.lower()  # the hint tells nothing


@pytest.mark.parametrize("n", [4, 9])
def test_single_choice_wrong_options_rejected(n: int) -> None:
    right = right_choices()[n]
    wrong = [label for label in options_of(n) if label != right]
    assert len(wrong) == 3
    for label in wrong:
        assert check(n, label, quiet=True) is False


def test_multiple_choice_needs_the_exact_set() -> None:
    right = right_choices()[2]
    labels = set(options_of(2))
    assert check(2, right, quiet=True)
    for size in range(len(labels) + 1):
        for chosen in map(set, combinations(sorted(labels), size)):
            assert check(2, chosen, quiet=True) is (chosen == right), chosen
    for label in labels - right:  # supersets explicitly
        assert not check(2, right | {label}, quiet=True)
    for label in right:  # subsets explicitly
        assert not check(2, right - {label}, quiet=True)


@pytest.mark.parametrize("shape", WRONG_SHAPES)
def test_wrong_shapes_rejected(shape: tuple[int, ...]) -> None:
    assert check(10, shape, quiet=True) is False


@pytest.mark.parametrize("n", [2, 4, 9])
def test_wrong_choice_hint_does_not_name_the_right_option(
    n: int, capsys: pytest.CaptureFixture[str]
) -> None:
    right = right_choices()[n]
    right_set = {right} if isinstance(right, str) else right
    wrong = next(label for label in options_of(n) if label not in right_set)
    assert check(n, wrong) is False
    out = capsys.readouterr().out
    assert out.startswith(f"Question {n}: not quite.")
    for label in right_set:
        assert options_of(n)[label] not in out
        assert options_of(n)[label].rstrip(".").lower() not in out.lower()


def test_wrong_shape_hint_does_not_give_the_shape(capsys: pytest.CaptureFixture[str]) -> None:
    assert check(10, (30, 30, 30, 16)) is False
    out = capsys.readouterr().out
    assert out.startswith("Question 10: not quite.")
    assert "32" not in out and "30" not in out


@pytest.mark.parametrize(
    ("n", "answer", "expected"),
    [
        (4, " B ", True),
        (4, "b", True),
        (4, " a", False),
        (9, "C\n", True),
        (1, "true", True),
        (1, " TRUE ", True),
        (1, "False", False),
        (3, "false", True),
        (2, "a, c", True),
        (2, "C,A", True),
        (2, "a c", True),
        (2, ["a", "c"], True),
        (2, ("c", "a", "a"), True),
        (2, frozenset({"A", " c "}), True),
        (2, "a, b, c", False),
        (2, "", False),
        (10, "30x30x30x32", True),
        (10, "30 x 30 x 30 x 32", True),
        (10, "30X30X30X32", True),
        (10, "(30, 30, 30, 32)", True),
        (10, [30, 30, 30, 32], True),
        (10, "30x30x30x16", False),
    ],
)
def test_normalisation(n: int, answer: Any, expected: bool) -> None:
    assert check(n, answer, quiet=True) is expected


@pytest.mark.parametrize("n", [0, 11, -1, "1", 1.0, True, None])
def test_unknown_question_number(n: Any) -> None:
    with pytest.raises(ValueError, match="numbered 1 to 10"):
        check(n, True)
    with pytest.raises(ValueError, match="numbered 1 to 10"):
        show_question(n)


@pytest.mark.parametrize(
    ("n", "answer", "form"),
    [
        (1, {"answer": True}, "True or False"),
        (1, "maybe", "True or False"),
        (1, 1, "True or False"),
        (4, {"b": 1}, "option letter"),
        (4, "z", "option letter"),
        (4, ["b"], "option letter"),
        (2, {"a": 1, "c": 1}.items(), "set, list or tuple"),
        (2, "ac", "set, list or tuple"),
        (2, [1, 2], "set, list or tuple"),
        (10, {"shape": SHAPE}, "tuple or list of integers"),
        (10, "thirty cubed", "tuple or list of integers"),
        (10, (30.0, 30, 30, 32), "tuple or list of integers"),
        (10, (True, 30, 30, 32), "tuple or list of integers"),
    ],
)
def test_unusable_answer_raises_with_accepted_forms(n: int, answer: Any, form: str) -> None:
    with pytest.raises(ValueError, match=form):
        check(n, answer)


def test_show_question_prints_options_and_how_to_answer(
    capsys: pytest.CaptureFixture[str],
) -> None:
    for q in QUESTIONS:
        text = show_question(q.id)
        assert capsys.readouterr().out.strip() == text
        assert text.startswith(f"Question {q.id}") and "answer = " in text
        for label, option in q.options.items():
            assert f"{label})" in text
            assert " ".join(option.split()) in " ".join(text.split())
    assert "select every option" in show_question(2)
    shape_text = show_question(10)
    assert "(30, 30, 30, 32)" not in shape_text and "30x30x30x32" not in shape_text


def test_score_counts(capsys: pytest.CaptureFixture[str]) -> None:
    right = all_right()
    assert score(right) == (10, 10)
    wrong = {**right, 1: False, 4: "a", 10: (30, 30, 30, 16)}
    assert score(wrong) == (7, 10)
    assert score({n: right[n] for n in (2, 5, 9)}) == (3, 10)
    assert score({}) == (0, 10)
    assert capsys.readouterr().out == ""  # quiet by default
    assert score({3: False, 6: False}, quiet=False) == (1, 10)
    assert capsys.readouterr().out.count("Question") == 2


def test_score_rejects_unknown_questions_and_bad_answers() -> None:
    with pytest.raises(ValueError):
        score({11: True})
    with pytest.raises(ValueError):
        score({1: {"x": 1}})
