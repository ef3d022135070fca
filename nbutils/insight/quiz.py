"""Self-check cells for the week's ten quiz topics: face recognition and neural style transfer.

In a notebook::

    from nbutils.insight.quiz import check, show_question
    show_question(4)
    check(4, "a")        # prints whether it is right, with an explanation or a hint

The right answers live in `QUESTIONS` and are compared by code; a wrong answer gets a hint
that says what to reconsider without naming the right option.
"""

from __future__ import annotations

import re
import textwrap
from dataclasses import dataclass, field
from numbers import Integral
from typing import Any, Literal

Kind = Literal["true_false", "single", "multiple", "shape"]
Answer = bool | str | frozenset[str] | tuple[int, ...]

WIDTH = 88

# How to answer each kind of question; the examples are deliberately not the right answers.
HOW_TO_ANSWER: dict[str, str] = {
    "true_false": "answer = True   # or False",
    "single": 'answer = "a"   # one option letter',
    "multiple": 'answer = {"a", "b"}   # the set of every letter that applies',
    "shape": "answer = (8, 8, 8, 4)   # the output shape as a tuple of integers",
}

ACCEPTED_FORMS: dict[str, str] = {
    "true_false": "True or False, or the strings 'true' / 'false' (any case)",
    "single": 'one option letter as a string, such as "b" or " B "',
    "multiple": 'a set, list or tuple of letters such as {"a", "b"}, or a string like "a, b"',
    "shape": 'a tuple or list of integers such as (8, 8, 8, 4), or a string like "8x8x8x4"',
}


@dataclass(frozen=True)
class Question:
    """One quiz question: its wording, options, checked answer, explanation and hint."""

    id: int
    text: str
    kind: Kind
    answer: Answer
    explanation: str
    hint: str
    options: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.kind in ("single", "multiple"):
            wanted = {self.answer} if isinstance(self.answer, str) else set(self.answer)
            if not wanted <= set(self.options):
                raise ValueError(f"question {self.id}: answer {self.answer!r} is not an option")
        elif self.options:
            raise ValueError(f"question {self.id}: a {self.kind} question takes no options")


QUESTIONS: list[Question] = [
    Question(
        id=1,
        kind="true_false",
        text="Face verification checks a new photo against the stored face of one claimed "
        "person, whereas face recognition checks it against the faces of K people.",
        answer=True,
        explanation="Verification is a 1:1 check (is this who they claim to be?); recognition "
        "is a 1:K search (which of the K people is this, if any?).",
        hint="Count how many stored identities each task has to compare the new photo with.",
    ),
    Question(
        id=2,
        kind="multiple",
        text="Why does face verification learn a similarity function d(img1, img2) instead "
        "of a classifier with one output per person? Select every reason that applies.",
        options={
            "a": "It lets the system recognise a new person from a single picture of them.",
            "b": "It needs many more training pictures of each person, which makes it "
            "more accurate.",
            "c": "It is how the one-shot learning problem is handled.",
            "d": "A softmax over all the people is cheap to retrain every time someone "
            "new joins.",
        },
        answer=frozenset({"a", "c"}),
        explanation="d compares two faces, so one stored photo is enough to recognise a person "
        "later and newcomers need no retraining: that is the answer to one-shot learning.",
        hint="Keep the statements that follow from comparing two images directly, and drop "
        "those about data needs or about a per-person classifier.",
    ),
    Question(
        id=3,
        kind="true_false",
        text="You have 100,000 photos of 100,000 different people, exactly one photo each. "
        "That is a sensible training set for learning the parameters of a face "
        "recognition network with the triplet loss.",
        answer=False,
        explanation="Every triplet needs an anchor and a positive of the same person, so "
        "training needs several photos per person; one photo each gives no positive pairs.",
        hint="Think about what an anchor-positive pair has to be made of.",
    ),
    Question(
        id=4,
        kind="single",
        text="For an anchor A, a positive P, a negative N, an encoding f and a margin "
        "alpha > 0, which expression is the triplet loss?",
        options={
            "a": "max(||f(A) - f(N)||^2 - ||f(A) - f(P)||^2 + alpha, 0)",
            "b": "max(||f(A) - f(P)||^2 - ||f(A) - f(N)||^2 + alpha, 0)",
            "c": "max(||f(A) - f(P)||^2 - ||f(A) - f(N)||^2 - alpha, 0)",
            "d": "min(||f(A) - f(P)||^2 - ||f(A) - f(N)||^2 + alpha, 0)",
        },
        answer="b",
        explanation="The loss is zero once the anchor is closer to the positive than to the "
        "negative by at least alpha, and grows with the shortfall otherwise.",
        hint="Decide which distance must come out small, where the margin goes so that it "
        "demands a gap, and whether a satisfied triplet should cost exactly zero.",
    ),
    Question(
        id=5,
        kind="true_false",
        text="In a Siamese network the two branches receive different input images but use "
        "exactly the same parameters.",
        answer=True,
        explanation="Both images pass through one and the same network (shared weights), so "
        "their encodings live in the same space and can be compared.",
        hint="Ask what comparing two encodings would mean if they came from networks with "
        "different weights.",
    ),
    Question(
        id=6,
        kind="true_false",
        text="In a ConvNet trained to tell apart 100 object classes you find a unit that "
        "fires strongly on pictures of cats. That unit is more likely to be in layer 4 "
        "than in layer 1.",
        answer=True,
        explanation="Early units see small patches and respond to edges or colours; deeper "
        "units combine them into detectors of large, complex things such as animals.",
        hint="Compare how large an image patch a unit sees, and how complex its favourite "
        "pattern is, in early and in deep layers.",
    ),
    Question(
        id=7,
        kind="true_false",
        text="Neural style transfer is a supervised learning problem: a network is trained on "
        "labelled examples to map a content image and a style image to the output image.",
        answer=False,
        explanation="There is no labelled training set: a pretrained network stays frozen and "
        "gradient descent changes the pixels of G to lower J(G).",
        hint="Ask what is actually being optimised, and where labelled examples would come "
        "from.",
    ),
    Question(
        id=8,
        kind="true_false",
        text="In the deep layers of a ConvNet each channel acts as a feature detector. The "
        "style (Gram) matrix G^[l] measures how strongly the activations of different "
        "feature detectors in layer l vary together across positions.",
        answer=True,
        explanation="G^[l]_kk' sums a_ijk * a_ijk' over all positions (i, j), so it is large "
        "when channels k and k' tend to fire in the same places.",
        hint="Look at which activations an entry G^[l]_kk' multiplies and what it sums over.",
    ),
    Question(
        id=9,
        kind="single",
        text="In neural style transfer, what does each iteration of gradient descent change?",
        options={
            "a": "The weights of the pretrained network.",
            "b": "The content image C.",
            "c": "The pixel values of the generated image G.",
            "d": "The style-layer weights lambda^[l].",
        },
        answer="c",
        explanation="The network, the content and style images and the weights of the cost "
        "all stay fixed; only the pixels of G are updated.",
        hint="Sort the candidates into fixed inputs, fixed settings and the one thing the "
        "cost is minimised over.",
    ),
    Question(
        id=10,
        kind="shape",
        text="A 3D convolution is applied to an input of shape 32 x 32 x 32 x 16 (a 32-cube "
        "with 16 channels). It uses 32 filters, each of shape 3 x 3 x 3 x 16, with stride 1 "
        "and no padding. What is the output shape?",
        answer=(30, 30, 30, 32),
        explanation="Each spatial size becomes (32 - 3) / 1 + 1 = 30, and each of the 32 "
        "filters gives one output channel: 30 x 30 x 30 x 32.",
        hint="Use n - f + 1 for each of the three spatial sizes (stride 1, no padding), and "
        "count one output channel per filter, not per input channel.",
    ),
]

_BY_ID: dict[int, Question] = {q.id: q for q in QUESTIONS}


def get_question(n: int) -> Question:
    """Question number ``n``; a ValueError if there is no such question."""
    if isinstance(n, bool) or not isinstance(n, Integral) or int(n) not in _BY_ID:
        raise ValueError(f"there is no question {n!r}: questions are numbered 1 to "
                         f"{len(QUESTIONS)}")
    return _BY_ID[int(n)]


def show_question(n: int) -> str:
    """Print question ``n`` with its options and how to answer it; return the same text."""
    q = get_question(n)
    heading = f"Question {q.id}"
    if q.kind == "multiple":
        heading += " (select every option that applies)"
    lines = [heading, textwrap.fill(q.text, WIDTH)]
    lines += [textwrap.fill(f"  {label}) {text}", WIDTH, subsequent_indent="     ")
              for label, text in q.options.items()]
    lines.append(f"Answer with, for example:  {HOW_TO_ANSWER[q.kind]}")
    text = "\n".join(lines)
    print(text)
    return text


def _unusable(q: Question, answer: Any, why: str = "") -> ValueError:
    reason = why or f"an answer of type {type(answer).__name__} cannot be checked"
    return ValueError(f"question {q.id}: {reason}; give {ACCEPTED_FORMS[q.kind]}")


def _letter(q: Question, raw: Any) -> str:
    if not isinstance(raw, str):
        raise _unusable(q, raw, f"option {raw!r} is not a letter")
    letter = raw.strip().lower()
    if letter not in q.options:
        raise _unusable(q, raw, f"{raw!r} is not one of the options "
                                f"{', '.join(q.options)}")
    return letter


def _shape_part(q: Question, raw: Any) -> int:
    if isinstance(raw, bool) or not isinstance(raw, Integral):
        raise _unusable(q, raw, f"{raw!r} is not a whole number")
    return int(raw)


def normalise(q: Question, answer: Any) -> Answer:
    """``answer`` in the form of ``q.answer``; a ValueError listing the accepted forms if the
    answer cannot be read (e.g. a dict, or an option letter that does not exist)."""
    if q.kind == "true_false":
        if isinstance(answer, bool):
            return answer
        if isinstance(answer, str) and answer.strip().lower() in ("true", "false"):
            return answer.strip().lower() == "true"
    elif q.kind == "single":
        if isinstance(answer, str):
            return _letter(q, answer)
    elif q.kind == "multiple":
        if isinstance(answer, str):
            answer = [part for part in re.split(r"[\s,;]+", answer) if part]
        if isinstance(answer, set | frozenset | list | tuple):
            return frozenset(_letter(q, part) for part in answer)
    elif q.kind == "shape":
        if isinstance(answer, str):
            parts = re.split(r"\s*[xX×*,]\s*|\s+", answer.strip().strip("()[]").strip())
            if not all(part.isdigit() for part in parts):
                raise _unusable(q, answer, f"cannot read {answer!r} as a shape")
            return tuple(int(part) for part in parts)
        if isinstance(answer, list | tuple):
            return tuple(_shape_part(q, part) for part in answer)
    raise _unusable(q, answer)


def check(n: int, answer: Any, *, quiet: bool = False) -> bool:
    """Whether ``answer`` is right for question ``n``; prints the explanation or a hint
    unless ``quiet``. Raises ValueError for an unknown question or an unreadable answer."""
    q = get_question(n)
    right = normalise(q, answer) == q.answer
    if not quiet:
        if right:
            print(f"Question {q.id}: right. {q.explanation}")
        else:
            print(f"Question {q.id}: not quite. {q.hint}")
    return right


def score(answers: dict[int, Any], *, quiet: bool = True) -> tuple[int, int]:
    """(number right, number of questions) for ``answers`` mapping question number to answer.

    Unanswered questions count as not right. Each answer is checked silently unless
    ``quiet`` is False. Raises ValueError for an unknown question or an unreadable answer.
    """
    right = sum(check(n, answer, quiet=quiet) for n, answer in answers.items())
    return right, len(QUESTIONS)
