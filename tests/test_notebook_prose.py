"""The numbers that the notebooks' prose quotes are the ones they print (issue 22, section 6).

The checker is ``tools/prose_numbers.py`` (also a command: ``python tools/prose_numbers.py``);
its docstring states the rule in full. In short:

- Checked: in markdown cells, numbers with a unit (ms, s, seconds, minutes, hours, px,
  pixels, %, steps, passes; "five minutes"), ratios ("145 times faster", "0.82x", "a tenth
  of their time"), J values ("J = 44.18", "J of 0.27", "J near 19,000"), any number with
  thousands separators ("19,000") and both sides of "27 against 37". Numbers joined by
  "to", "-", "/", "x", "or", "against", "vs" share the unit after the last. LaTeX math and
  code (spans and fenced blocks) are not read.
- Printed: the outputs (stream, text/plain, text/html, text/markdown, tqdm's bar in the
  stored widget state) or the number literals of the code cells (not comments) hold a value
  that rounds to the prose's number at the prose's precision and lies within 10% of it
  ("397 s" ~ 397.04 s, "about 1.3 s" ~ 1.32 s, "19,000" ~ 18,869; "about 1 s" is not
  1.23 s). Times compare with printed times only, in any unit, tqdm's clocks included.
- Quoted: the sentence names a repository file that holds the number (its path), cites a
  paper (Author et al. (2017), Author & Author (2015)) or links a web page, or says "the
  course's" right before the number.
- A sentence's numbers stand together: if one is neither printed nor quoted, those that
  only the notebook's outputs or code match are reported with it (a sentence about another
  run matches printed values by coincidence).
"""

import importlib.util
import json
import sys
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(__file__).parent / "data"


def _load_checker():
    spec = importlib.util.spec_from_file_location("prose_numbers",
                                                  ROOT / "tools" / "prose_numbers.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


prose = _load_checker()
NOTEBOOKS = ["art_generation", "face_recognition", "siamese_training", "convnet_insight"]
# Numbers the stored notebooks quote without printing or sourcing them (listed for the
# prose fix of issue 22); remove a notebook from here once its prose is fixed: strict xfail
# fails as soon as it passes, so the guard cannot stay switched off.
PROSE_TO_FIX: set[str] = set()


def report(findings) -> str:
    return "\n\n".join(map(str, findings))


@pytest.mark.parametrize("name", [
    pytest.param(name, marks=pytest.mark.xfail(
        strict=True, reason="issue 22: prose numbers not printed yet (see PROSE_TO_FIX)"))
    if name in PROSE_TO_FIX else name
    for name in NOTEBOOKS])
def test_stored_notebooks_quote_only_what_they_print(name):
    findings = prose.check_path(ROOT / "notebooks" / f"{name}.ipynb",
                                prose.repo_reader(ROOT))
    assert not findings, "numbers in the prose that the notebook does not print:\n\n" \
        + report(findings)


# --- the stale numbers of issue 22, on the notebooks as stored at 4228e58 ------------------


def _old_notebooks():
    """The cells of tests/data/prose_4228e58.json at their own indices, empty cells between."""
    fixture = json.loads((DATA / "prose_4228e58.json").read_text())
    notebooks = {}
    for name, entry in fixture["notebooks"].items():
        nb = new_notebook(metadata=entry.get("metadata", {}))
        nb.cells = [nbformat.from_dict(entry["cells"][str(i)]) if str(i) in entry["cells"]
                    else new_markdown_cell("") for i in range(entry["length"])]
        notebooks[name] = nb
    return notebooks, fixture["files"].get


OLD_NOTEBOOKS, OLD_FILES = _old_notebooks()
OLD_FINDINGS = {name: prose.check_notebook(nb, name, OLD_FILES)
                for name, nb in OLD_NOTEBOOKS.items()}

STALE = [  # notebook, cell, the number as the checker quotes it, why it is stale
    ("art_generation.ipynb", 2, "about 45 minutes", "Settings: printed nowhere"),
    ("art_generation.ipynb", 2, "about 1 s", "Settings: the bar prints 1.23s/step at 256 px"),
    ("art_generation.ipynb", 38, "19,000", "section 8, at 400 px: 1.902e+04 is another J"),
    ("art_generation.ipynb", 38, "56,000", "section 8, at 400 px: 5.596e+04 is 256 px's"),
    ("art_generation.ipynb", 38, "about 27", "section 8: '27 against 37' passes"),
    ("art_generation.ipynb", 38, "37", "section 8: '27 against 37' passes"),
    ("art_generation.ipynb", 38, "about a tenth of their time",
     "section 8: benchmarks/nst_speed.py, which it names, does not hold it"),
    ("face_recognition.ipynb", 52, "60 ms", "section 7: 60 ms at a million, printed nowhere"),
]


@pytest.mark.parametrize(("notebook", "cell", "number", "why"), STALE,
                         ids=[f"{n.split('_')[0]}-{c}-{q}" for n, c, q, _ in STALE])
def test_catches_each_stale_number_of_issue_22(notebook, cell, number, why):
    reported = {(f.cell, f.number) for f in OLD_FINDINGS[notebook]}
    assert (cell, number) in reported, f"{why}; reported:\n" + report(OLD_FINDINGS[notebook])


def test_the_stale_section_8_matches_are_reported_as_coincidences():
    """19,000 and 56,000 round to J values the old notebook does print (the feed-forward
    image's 1.902e+04, section 6's first 5.596e+04): their sentence's 200 px gives them
    away."""
    by_number = {f.number: f for f in OLD_FINDINGS["art_generation.ipynb"] if f.cell == 38}
    for number in ("19,000", "56,000"):
        assert "checked together" in by_number[number].reason
        assert "'200 px'" in by_number[number].reason


def test_the_stale_findings_say_where_and_how_to_fix():
    finding = next(f for f in OLD_FINDINGS["face_recognition.ipynb"] if f.number == "60 ms")
    text = str(finding)
    assert "face_recognition.ipynb, cell 52: '60 ms'" in text
    assert "60 ms at a million." in finding.sentence
    assert "print it from a code cell" in text and "docs/design-notes.md" in text
    assert "Author et al. (2017)" in text and "the course's" in text


# --- the rule, on hand-made notebooks --------------------------------------------------------


def notebook(markdown: str, code: str = "", printed: str = "", widget_text: str = ""):
    cell = new_code_cell(code, outputs=[new_output("stream", name="stdout", text=printed)])
    nb = new_notebook(cells=[new_markdown_cell(markdown), cell])
    if widget_text:
        nb.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": {
            "state": {"bar": {"model_name": "HTMLModel", "state": {"value": widget_text}}}}}
    return nb


def flagged(markdown: str, code: str = "", printed: str = "", files=None,
            widget_text: str = "") -> list[str]:
    read = (files or {}).get
    return [f.number for f in prose.check_notebook(
        notebook(markdown, code, printed, widget_text), "hand-made", read)]


@pytest.mark.parametrize(("markdown", "printed"), [
    ("Section 6 took 397 s.", "J went from 5.596e+04 to 44.18 in 397.4 s"),
    ("That is about 1.3 s a step.", "300 steps in 396 s, 1.32 s/step"),
    ("It took 0.4 s.", "time 412ms/step"),
    ("The run took about 7 minutes.", "300/300 [06:37<00:00, 1.23s/step]"),
    ("Coarse scales leave J near 19,000.", "J 18,869"),
    ("Coarse scales leave J near 19,000.", "J 1.887e+04"),
    ("The final J = 44.18.", "total=44.18, content=0.02676"),
    ("J went from 5.596e+04 to 44.18.", "J: 55960.1 -> 44.18"),
    ("It is right on 92% of the pairs.", "accuracy on unseen pairs 0.919"),
    ("Encoding took 0.27 ms, 145 times faster.", "0.27 ms per query, 145.4x faster"),
    ("A ~6 ms query, then 6.0 to 6.5 ms.", "6.2 ms p50, 6.0 ms min, 6.5 ms max"),
])
def test_a_printed_value_matches_at_the_prose_precision(markdown, printed):
    assert flagged(markdown, printed=printed) == []


@pytest.mark.parametrize(("markdown", "printed", "number"), [
    ("One step takes about 1 s.", "1.23s/step", "about 1 s"),  # 19% off: not "about"
    ("Section 6 took 400 s.", "in 397 s", "400 s"),
    ("Section 6 took 1.3 s a step.", "1.23 s/step", "1.3 s"),
    ("300 s of training.", "300 steps done", "300 s"),  # a count is not a time
    ("It takes about 45 minutes.", "in 397 s", "about 45 minutes"),
    ("It takes about five minutes.", "41s per epoch", "about five minutes"),
    ("Here J of 0.27 keeps the content.", "J_content 0.02676", "0.27"),
    ("L-BFGS needs 27 against 37 passes.", "27 passes", "37 passes"),
    ("It reaches it in about a tenth of the time.", "0.18 of the time",
     "about a tenth of the time"),
    ("We enrol 2,002 people.", "2001 people", "2,002"),
    ("It is 99.38% right.", "accuracy 0.99", "99.38%"),
])
def test_an_unprinted_number_is_reported(markdown, printed, number):
    assert number in flagged(markdown, printed=printed)


def test_code_numbers_count_but_not_comments():
    code = "IMG_SIZE = 256  # course: 400\nEPOCHS = 300"
    assert flagged("At 256 px, 300 steps.", code=code) == []
    assert flagged("It also runs at 400 px.", code=code) == ["400 px"]


def test_the_progress_bar_in_the_widget_state_is_printed():
    bar = "\u2007300/300\u2007[06:37&lt;00:00,\u2007\u20071.23s/step,\u2007total=44.18]"
    assert flagged("A step took 1.23 s; J = 44.18.", widget_text=bar) == []
    assert flagged("A step took 1.23 s.") == ["1.23 s"]


def test_a_sentence_that_names_a_file_holding_the_number_quotes_it():
    notes = {"docs/notes.md": "300 Adam steps took 940 s at 400 px; 38 passes in 99 s."}
    sentence = "At 400 px, 300 Adam steps took 940 s and 38 passes 99 s ({})."
    assert flagged(sentence.format("`docs/notes.md`"), files=notes) == []
    assert flagged(sentence.format("docs/notes.md"), files=notes) == []
    assert flagged(sentence.format("`docs/other.md`"), files=notes) == [
        "400 px", "300 Adam steps", "940 s", "38 passes", "99 s"]
    # the file must hold the number: naming a script that could measure it is not enough
    assert flagged("`docs/notes.md` measures it at 3 s a step.", files=notes) == ["3 s"]
    # a source in another sentence does not count
    assert flagged("It took 940 s. See `docs/notes.md`.", files=notes) == ["940 s"]


def test_a_paper_or_the_course_quotes_the_number():
    assert flagged("Dlib's encoder is right on 99.38% of LFW.") == ["99.38%"]
    assert flagged("Dlib's encoder is right on 99.38% of LFW (King 2009).") == []
    assert flagged("Dlib's encoder is right on 99.38% of LFW (King, 2009).") == []
    assert flagged("Schroff et al. 2015 trained at 96 px.") == []
    assert flagged("In 2015 it took 3 s.") == ["3 s"]  # a year alone is no citation
    assert flagged("Ghiasi et al. (2017) stylise in 0.1 s.") == []
    assert flagged("Johnson, Alahi & Fei-Fei (2016) stylise at 256 px.") == []
    assert flagged("(Gatys, Ecker & Bethge, 2015) used 512 px.") == []
    assert flagged("At the course's 400 px it is slower.") == []
    assert flagged("The course uses 2501 steps.") == []
    assert flagged("At 400 px, as in the course, it is slower.") == ["400 px"]


def test_a_link_quotes_the_number_but_a_relative_link_is_a_path():
    assert flagged("dlib reports 99.38% on LFW ([its example](http://dlib.net/a_ex.cpp.html)).") \
        == []
    assert flagged("dlib reports 99.38% on LFW (https://github.com/davisking/dlib).") == []
    assert flagged("Served at `http://host:19530`, it takes 6 ms.") == ["6 ms"]
    notes = {"docs/notes.md": "6.2 ms per query"}
    assert flagged("A query takes 6 ms ([notes](docs/notes.md)).", files=notes) == []
    assert flagged("A query takes 9 ms ([notes](docs/notes.md)).", files=notes) == ["9 ms"]


def test_code_and_math_are_not_read():
    markdown = ("Run `python bench.py --size 400 --budget 45 s` to measure it.\n\n"
                "```bash\nsleep 45 s  # 400 px\n```\n\n"
                "The cost is $J = 10 \\times 4.4 + 40 s$, and\n"
                "$$J_{style} = 45\\,\\mathrm{s} \\cdot 400\\,px$$\n"
                "with $p = 99.9\\%$.")
    assert flagged(markdown) == []


def test_bare_numbers_are_not_checked():
    assert flagged("## 8 - Going further\n\nSection 6 gives 128 numbers, one 2-core CPU, "
                   "a 150 x 150 chip, 16 x 4 batches.") == []


def test_a_sentences_numbers_stand_together():
    printed = "J 18,869 at the end"
    assert flagged("Coarse scales leave J near 19,000.", printed=printed) == []
    assert flagged("30 passes at 200 px leave J near 19,000.", printed=printed) == [
        "30 passes", "200 px", "19,000"]
    # another sentence of the same paragraph is not its sentence
    assert flagged("Here J is near 19,000. At 200 px it was lower.", printed=printed) == [
        "200 px"]


def test_sentences_split_at_full_stops_not_abbreviations():
    parts = prose.sentences("Ghiasi et al. (2017) took 1 s, e.g. at 256 px. Then 2 s.\n"
                            "- a list item at **3 s**\n* another\n  continued.\n"
                            "## 4.6 - Robustness\n"
                            "| a | b |\n| 1 s | 2 s |")
    assert [p.shown for p in parts] == ["Ghiasi et al. (2017) took 1 s, e.g. at 256 px.",
                                        "Then 2 s.", "a list item at 3 s", "another continued.",
                                        "4.6 - Robustness", "| a | b |", "| 1 s | 2 s |"]


def test_the_command_line_reports_and_exits_nonzero(tmp_path, capsys):
    path = tmp_path / "stale.ipynb"
    nbformat.write(notebook("One step at 400 px takes about 1 s.", printed="1.23s/step"), path)
    assert prose.main([str(path)]) == 1
    out = capsys.readouterr().out
    assert "'about 1 s'" in out and "One step at 400 px takes about 1 s." in out
    nbformat.write(notebook("One step takes about 1.2 s.", printed="1.23s/step"), path)
    assert prose.main([str(path)]) == 0
