"""Numbers that a notebook's prose quotes, checked against what the notebook prints (issue 22).

    python tools/prose_numbers.py [--rev COMMIT] [NOTEBOOK.ipynb ...]   # default: notebooks/

Prints one finding per offending number and exits 1 when there is any. ``--rev`` reads the
notebooks, and the files their sentences name, as they were at that commit (``git show``).

What is checked: in every markdown cell, each number that states a measurement,

- a number with a unit: a time (ms, s, sec, seconds, min, minutes, hours; also spelled out,
  "five minutes"), an image size (px, pixels), a percentage (%), a count of steps, passes,
  iterations or epochs ("300 steps", "300 Adam steps");
- a ratio: "145 times faster", "0.82x", "0.11 of their time", "a tenth of their time";
- a J value: the number right after J, J_content, J_style or $J$ ("J = 44.18", "J of
  0.27", "J went from 5.596e+04 to 44.18", "J near 19,000");
- any number written with thousands separators ("19,000", "2,002");
- both sides of a comparison "27 against 37" or "27 vs 37".

Numbers joined by "to", "-", "/", "x", "or", "against" or "vs" share the unit written after
the last one ("256 x 256 pixels", "0.2 to 0.3 s"). Not checked: numbers in LaTeX math
($...$, $$...$$), in code (`...`, fenced blocks), and bare numbers (section 6, 128 numbers).

A number is fine when

1. the notebook prints it: its outputs (stream, text/plain, text/html, text/markdown, and
   the stored widget state, where tqdm's bar keeps "1.23s/step" and its "06:37" clock), or
   the numbers in its code (not in comments: ``IMG_SIZE = 256`` makes "256 px" printed),
   hold a value that rounds to the prose's number at the prose's precision and lies within
   10% of it. "397 s" matches 397.04 s, "about 1.3 s" 1.32 s, "19,000" 18,869 (zeros after a
   thousands separator are not significant), but "about 1 s" does not match 1.23 s. Times
   compare as times, in any unit (a printed number with a time unit, or a clock: "7
   minutes" matches 06:37); a percentage also matches a printed fraction (92% and 0.919);
2. or its sentence says where it is quoted from: a repository file that holds the number
   (same rule), named by its path (`docs/design-notes.md`, benchmarks/nst_speed.py: a file
   that is not there, or does not hold the number, is no source); a paper citation
   (Ghiasi et al. (2017), Johnson, Alahi & Fei-Fei (2016), (Gatys, Ecker & Bethge, 2015)),
   or a web address (a link), either of which marks the whole sentence; or "the course"
   right before the number ("the course's 400 px", "the course uses 0.7").

A sentence's numbers stand together: when one of them is neither printed nor quoted, the
numbers in it that only the notebook's outputs or code match are reported as well. Such a
sentence describes another run (another image size, another machine), and its matches are
coincidences: "30 passes at 200 px leave J near 19,000" is not made true by the 1.902e+04
that the feed-forward image's J happens to print.
"""

from __future__ import annotations

import argparse
import html
import io
import math
import re
import subprocess
import sys
import tokenize
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent
FIX = ("print it from a code cell, or say where it comes from in the same sentence: the path "
       "of a repository file that holds it (`docs/design-notes.md`), a paper "
       "(Author et al. (2017)) or a link, or \"the course's\" right before it")

NUMBER = r"\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?(?:[eE][+-]?\d+)?"
TIME_UNITS = {"ms": 1e-3, "msec": 1e-3, "millisecond": 1e-3, "milliseconds": 1e-3,
              "s": 1.0, "sec": 1.0, "secs": 1.0, "second": 1.0, "seconds": 1.0,
              "min": 60.0, "mins": 60.0, "minute": 60.0, "minutes": 60.0,
              "h": 3600.0, "hour": 3600.0, "hours": 3600.0}
_TIME = "|".join(sorted(map(re.escape, TIME_UNITS), key=len, reverse=True))
SPELLED = {word: i for i, word in enumerate(
    "zero one two three four five six seven eight nine ten eleven twelve".split())}
SPELLED |= {"fifteen": 15, "twenty": 20, "thirty": 30, "forty": 40, "fifty": 50,
            "sixty": 60, "ninety": 90}
FRACTIONS = {"half": 1 / 2, "third": 1 / 3, "quarter": 1 / 4, "fifth": 1 / 5,
             "tenth": 1 / 10, "twentieth": 1 / 20, "hundredth": 1 / 100}

# --- what the notebook (or a named file) prints ------------------------------------------

_CLOCK = re.compile(r"(?<![\d:])(\d{1,2}):(\d{2})(?::(\d{2}))?(?![\d:])")
_PRINTED_TIME = re.compile(rf"(?<![\w.])({NUMBER})\s*({_TIME})(?![A-Za-z])")
_PRINTED_NUMBER = re.compile(rf"(?<![\w.])({NUMBER})")


def _value(text: str) -> float:
    return float(text.replace(",", "").replace("_", ""))


@dataclass
class Evidence:
    """The numbers a text prints, and among them the times (in seconds)."""

    numbers: list[float] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)

    def add_text(self, text: str) -> Evidence:
        text = html.unescape(re.sub(r"<[^>]*>", " ", text))
        text = re.sub(r"[\u2007\u202f\xa0]", " ", text)
        text = re.sub(r"(\d)[x×](\d)", r"\1 x \2", text)
        for m in _CLOCK.finditer(text):
            h, mnt, s = (m.group(1), m.group(2), m.group(3)) if m.group(3) else \
                ("0", m.group(1), m.group(2))
            self.seconds.append(int(h) * 3600 + int(mnt) * 60 + int(s))
        text = _CLOCK.sub(" ", text)
        for m in _PRINTED_TIME.finditer(text):
            self.seconds.append(_value(m.group(1)) * TIME_UNITS[m.group(2)])
        self.numbers += [_value(m.group(1)) for m in _PRINTED_NUMBER.finditer(text)]
        return self

    def add_code(self, source: str) -> Evidence:
        """The number literals of a code cell (comments and strings are not read)."""
        source = "\n".join("" if line.lstrip().startswith(("%", "!")) else line
                           for line in source.splitlines())
        try:
            tokens = list(tokenize.generate_tokens(io.StringIO(source + "\n").readline))
        except (tokenize.TokenError, SyntaxError, IndentationError):
            code = re.sub(r"#.*", "", source)
            self.numbers += [_value(m.group(1)) for m in _PRINTED_NUMBER.finditer(code)]
            return self
        for token in tokens:
            if token.type == tokenize.NUMBER:
                try:
                    self.numbers.append(abs(float(token.string.replace("_", ""))))
                except ValueError:  # 0x10, 1j: not quoted in prose
                    pass
        return self

    def holds(self, q: Quantity) -> bool:
        if q.kind == "time":
            candidates: Iterable[float] = (s / q.scale for s in self.seconds)
        elif q.kind == "percent":
            candidates = [*self.numbers, *(100 * x for x in self.numbers if 0 < x <= 1)]
        else:
            candidates = self.numbers
        return any(close(p, q.value, q.step) for p in candidates)


def close(printed: float, quoted: float, step: float) -> bool:
    """``printed`` rounds to ``quoted`` at the precision ``step`` and is within 10% of it."""
    difference = abs(abs(printed) - quoted)
    return (difference <= step / 2 * (1 + 1e-9) + 1e-12
            and difference <= 0.1 * max(quoted, abs(printed)) + 1e-12)


def _text(value) -> str:
    return value if isinstance(value, str) else "".join(value or ())


def notebook_evidence(nb) -> Evidence:
    """What a notebook prints: its outputs, its widgets' stored text, its code's numbers."""
    evidence = Evidence()
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        evidence.add_code(_text(cell.source))
        for output in cell.get("outputs", []):
            if output.get("output_type") == "stream":
                evidence.add_text(_text(output.get("text")))
            for mime in ("text/plain", "text/html", "text/markdown"):
                evidence.add_text(_text(output.get("data", {}).get(mime)))
    widgets = nb.metadata.get("widgets", {}).get("application/vnd.jupyter.widget-state+json", {})
    for model in widgets.get("state", {}).values():
        value = model.get("state", {}).get("value")
        if isinstance(value, str):
            evidence.add_text(value)
    return evidence


# --- what the prose quotes -----------------------------------------------------------------


@dataclass(frozen=True)
class Quantity:
    kind: str       # time, px, percent, count, ratio, J, number
    value: float    # in its own unit (minutes for "45 minutes")
    step: float     # the precision it is written with
    text: str       # as written, with its "about"
    scale: float = 1.0  # seconds per unit, for a time
    course: bool = False  # "the course's 400 px"


@dataclass(frozen=True)
class Sentence:
    text: str   # code and math replaced by placeholders
    shown: str  # as written (whitespace collapsed)
    code: tuple[str, ...]
    urls: tuple[str, ...] = ()


def _written(text: str) -> tuple[float, float]:
    """The value of a number as written, and its precision."""
    plain = text.replace(",", "")
    mantissa, _, exponent = plain.lower().partition("e")
    decimals = len(mantissa.partition(".")[2])
    step = 10.0 ** (int(exponent or 0) - decimals)
    if "," in text and "." not in text and plain.strip("0"):
        step = 10.0 ** (len(plain) - len(plain.rstrip("0")))
    return float(plain), step


def _placeholder(kind: str, i: int) -> str:
    letters = ""
    while True:
        letters = "abcdefghijklmnopqrstuvwxyz"[i % 26] + letters
        i = i // 26 - 1
        if i < 0:
            return f"⟦{kind}{letters}⟧"


_J_MATH = re.compile(r"^\s*(?:\\alpha|\\beta)?\s*J(?:_\{?[A-Za-z]+\}?)?(?:\([^)]*\))?\s*$")
_BLOCK_START = re.compile(r"^\s*(?:#{1,6}\s|[-*+]\s|\d+[.)]\s|\|)")
_ABBREVIATIONS = {"e.g", "i.e", "al", "etc", "vs", "cf", "fig", "approx", "eq", "resp"}


def sentences(markdown: str) -> list[Sentence]:
    """The sentences of a markdown cell: a heading, a list item, a table row or a paragraph
    is split at each '.', '!' or '?' followed by a space (not after e.g., i.e., et al., vs.)."""
    text = re.sub(r"<!--.*?-->", " ", markdown, flags=re.S)
    text = re.sub(r"^(```|~~~).*?^\1[^\n]*$", "\n\n", text, flags=re.S | re.M)
    code: list[str] = []
    math_parts: list[str] = []
    urls: list[str] = []

    def keep_code(m: re.Match) -> str:
        code.append(m.group(2))
        return _placeholder("c", len(code) - 1)

    def keep_math(m: re.Match) -> str:
        math_parts.append(m.group(0))
        return "J" if _J_MATH.match(m.group(1)) else _placeholder("m", len(math_parts) - 1)

    text = re.sub(r"(`+)(.+?)\1", keep_code, text, flags=re.S)
    text = re.sub(r"\$\$(.+?)\$\$", keep_math, text, flags=re.S)
    text = re.sub(r"(?<![\\$])\$(?!\$)(.+?)(?<!\\)\$", keep_math, text, flags=re.S)
    def keep_url(m: re.Match) -> str:
        url = m.group(m.lastindex)
        label = m.group(1) + " " if m.lastindex == 2 else ""
        if not re.match(r"[a-z]+://", url):
            return f"{label}({url})"  # a relative link: a path, checked as one
        urls.append(url)
        return label + _placeholder("u", len(urls) - 1)

    text = re.sub(r"!?\[([^\]]*)\]\(([^)\s]*)[^)]*\)", keep_url, text)
    text = re.sub(r"(https?://[^\s)>\]]+)", keep_url, text)
    text = re.sub(r"(?m)^(\s*)\*\s", r"\1- ", text).replace("*", "")  # emphasis, not lists

    blocks: list[list[str]] = []
    previous_was_row = False
    for line in text.splitlines():
        if not line.strip():
            blocks.append([])
            previous_was_row = False
            continue
        if not blocks or _BLOCK_START.match(line) or previous_was_row:
            blocks.append([])
        previous_was_row = line.lstrip().startswith("|")
        blocks[-1].append(re.sub(r"^\s*(?:#{1,6}\s|[-+]\s|\d+[.)]\s)", "", line))

    def restore(part: str) -> str:
        part = re.sub(r"⟦c([a-z]+)⟧", lambda m: f"`{code[_index(m.group(1))]}`", part)
        part = re.sub(r"⟦u([a-z]+)⟧", lambda m: f"({urls[_index(m.group(1))]})", part)
        return re.sub(r"⟦m([a-z]+)⟧", lambda m: math_parts[_index(m.group(1))], part)

    found = []
    for block in blocks:
        joined = " ".join(" ".join(block).split())
        start = 0
        for m in re.finditer(r"[.!?][)\"'’]*\s+(?=\S)", joined):
            word = re.search(r"([\w.]*)[.!?]$", joined[start:m.start() + 1]).group(1).lower()
            if word.rstrip(".") in _ABBREVIATIONS:
                continue
            found.append(joined[start:m.end()].strip())
            start = m.end()
        found.append(joined[start:].strip())
    result = []
    for part in filter(None, found):
        cited = tuple(code[_index(i)] for i in re.findall(r"⟦c([a-z]+)⟧", part))
        linked = tuple(urls[_index(i)] for i in re.findall(r"⟦u([a-z]+)⟧", part))
        result.append(Sentence(part, restore(part), cited, linked))
    return result


def _index(letters: str) -> int:
    i = 0
    for letter in letters:
        i = i * 26 + ord(letter) - ord("a") + 1
    return i - 1


_NUMBER = re.compile(rf"(?<![\w.⟦])({NUMBER})(?!\d)")
_JOIN = re.compile(r"^\s*,?\s*(to|or|against|vs\.?|versus|/|-|–|x|×)\s*(?:about\s+|~\s*)?$")
_UNIT_AFTER = re.compile(rf"^\s*-?\s*({_TIME}|px|pixels?|%|percent)(?![\w'’])")
_COUNT_AFTER = re.compile(r"^\s+(?:[A-Za-z][\w-]*\s+){0,2}?(passes|pass|steps|step|iterations"
                          r"|epochs)\b")
_RATIO_AFTER = re.compile(r"^(?:\s*[x×](?![\w\d])(?!\s*\d)|\s+times\s+(?:faster|slower|smaller"
                          r"|larger|bigger|longer|shorter|more|less|fewer|as|the)\b|\s+of\s+"
                          r"(?:its|their|the)\s+(?:\w+\s+)?(?:time|cost)\b)")
_J_BEFORE = re.compile(r"(?<![\w⟦])J(?:_\{?[A-Za-z]+\}?)?(?:\s+(?:went|is|was|of|near|at|from|"
                       r"about|around|roughly|reaches|reached|falls|fell|drops|dropped|to|by|"
                       r"only|stays|ends))*\s*(?:[=:≈~]\s*)?(?:about\s+)?$")
_COURSE_BEFORE = re.compile(r"\b(?:[Tt]he\s+course(?:'s|’s)?|course:)\s+(?:[\w-]+\s+){0,2}$")
_ABOUT_BEFORE = re.compile(r"(?:\b(?:about|around|roughly|nearly|almost|under|over|some)\s+|[~≈]"
                           r"\s*)$")
_SPELLED_TIME = re.compile(rf"\b({'|'.join(SPELLED)})[\s-]+({_TIME})(?![\w'’])", re.I)
_FRACTION = re.compile(rf"\b(?:a|one)\s+({'|'.join(FRACTIONS)})\s+(?:of\s+)?(?:its|their|the)"
                       r"\s+(?:\w+\s+)?(?:time|cost)\b", re.I)


def quantities(sentence: str) -> list[Quantity]:
    """The measured numbers a sentence quotes (its code and math already replaced)."""
    text = re.sub(r"(\d)[x×](\d)", r"\1 x \2", sentence)
    numbers = list(_NUMBER.finditer(text))
    runs: list[list[re.Match]] = []
    joiners: list[list[str]] = []
    for m in numbers:
        if runs:
            join = _JOIN.match(text[runs[-1][-1].end():m.start()])
            if join:
                runs[-1].append(m)
                joiners[-1].append(join.group(1))
                continue
        runs.append([m])
        joiners.append([])
    found = []
    for run, joins in zip(runs, joiners, strict=True):
        after = text[run[-1].end():]
        before = text[:run[0].start()]
        kind, scale, tail = None, 1.0, None
        if tail := _UNIT_AFTER.match(after):
            unit = tail.group(1)
            kind = ("time" if unit in TIME_UNITS else "percent" if unit in ("%", "percent")
                    else "px")
            scale = TIME_UNITS.get(unit, 1.0)
        elif tail := _COUNT_AFTER.match(after):
            kind = "count"
        elif tail := _RATIO_AFTER.match(after):
            kind = "ratio"
        elif _J_BEFORE.search(before):
            kind = "J"
        elif any(j in ("against", "vs", "vs.", "versus") for j in joins) \
                or any("," in m.group(1) for m in run):
            kind = "number"
        if kind is None:
            continue
        for i, m in enumerate(run):
            value, step = _written(m.group(1))
            about = _ABOUT_BEFORE.search(text[:m.start()])
            shown = (about.group(0) if about else "") + m.group(1)
            if i == len(run) - 1 and tail:
                shown += tail.group(0).rstrip()
            course = bool(_COURSE_BEFORE.search(text[:m.start()]))
            found.append(Quantity(kind, value, step, shown, scale, course))
    for m in _SPELLED_TIME.finditer(text):
        about = _ABOUT_BEFORE.search(text[:m.start()])
        found.append(Quantity("time", SPELLED[m.group(1).lower()], 1.0,
                              (about.group(0) if about else "") + m.group(0),
                              TIME_UNITS[m.group(2)]))
    for m in _FRACTION.finditer(text):
        value = FRACTIONS[m.group(1).lower()]
        about = _ABOUT_BEFORE.search(text[:m.start()])
        found.append(Quantity("ratio", value, 10.0 ** math.floor(math.log10(value)),
                              (about.group(0) if about else "") + m.group(0)))
    return found


_AUTHOR = r"[A-Z][a-zA-Z'’-]+"
_AUTHORS = rf"{_AUTHOR}(?: et al\.?(?:, {_AUTHOR})?|(?:, {_AUTHOR})*,? (?:&|and) {_AUTHOR})"
_YEAR = r"(?:19|20)\d\d\b"
CITATION = re.compile(rf"\b{_AUTHORS},? \(?{_YEAR}|\b{_AUTHOR},? \({_YEAR}|\b{_AUTHOR}, {_YEAR}"
                      rf"|\({_AUTHOR},? {_YEAR}")
PATH = re.compile(r"(?<![\w/.-])(?:\./)?((?:[\w.-]+/)+[\w-]+(?:\.[\w-]+)*\.[A-Za-z0-9]+)(?![\w/])")


# --- the check -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Finding:
    notebook: str
    cell: int
    sentence: str
    number: str
    reason: str

    def __str__(self) -> str:
        return (f"{self.notebook}, cell {self.cell}: {self.number!r} {self.reason}\n"
                f"    sentence: {self.sentence}\n    fix: {FIX}")


Reader = Callable[[str], "str | None"]


def repo_reader(root: Path = ROOT) -> Reader:
    """Reads a path named in prose from the working tree at ``root`` (None: no such file)."""
    def read(path: str) -> str | None:
        file = (root / path).resolve()
        if root.resolve() in file.parents and file.is_file():
            return file.read_text(errors="replace")
        return None
    return read


def git_reader(rev: str, root: Path = ROOT) -> Reader:
    """Reads a path as it was at commit ``rev``."""
    def read(path: str) -> str | None:
        done = subprocess.run(["git", "-C", str(root), "show", f"{rev}:{path}"],
                              capture_output=True, text=True, errors="replace")
        return done.stdout if done.returncode == 0 else None
    return read


def check_notebook(nb, name: str = "notebook", read_source: Reader | None = None
                   ) -> list[Finding]:
    """Every number of ``nb``'s markdown that the rule above does not accept."""
    printed = notebook_evidence(nb)
    files: dict[str, Evidence | None] = {}
    findings = []
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "markdown":
            continue
        for sentence in sentences(_text(cell.source)):
            quoted = quantities(sentence.text)
            if not quoted or sentence.urls or CITATION.search(sentence.text):
                continue
            sources = []
            for path in {*PATH.findall(sentence.text),
                         *(p for c in sentence.code for p in PATH.findall(c))}:
                if path not in files:
                    text = read_source(path) if read_source else None
                    files[path] = Evidence().add_text(text) if text is not None else None
                if files[path] is not None:
                    sources.append(files[path])
            missing, only_printed = [], []
            for q in quoted:
                if q.course or any(source.holds(q) for source in sources):
                    continue
                (only_printed if printed.holds(q) else missing).append(q)
            for q in missing:
                findings.append(Finding(
                    name, index, sentence.shown, q.text,
                    "is not printed by the notebook (its outputs or code), nor held by a "
                    "file its sentence names"))
            for q in only_printed if missing else []:
                findings.append(Finding(
                    name, index, sentence.shown, q.text,
                    "matches a printed value, but its sentence also quotes "
                    + ", ".join(repr(m.text) for m in missing)
                    + ", which nothing prints or holds: a sentence's numbers are checked "
                    "together"))
    return findings


def check_path(path: Path, read_source: Reader | None = None) -> list[Finding]:
    nb = nbformat.read(path, as_version=4)
    return check_notebook(nb, str(path), read_source or repo_reader())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python tools/prose_numbers.py",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("notebooks", nargs="*", type=Path)
    parser.add_argument("--rev", help="read the notebooks and named files at this commit")
    args = parser.parse_args(argv)
    paths = args.notebooks or sorted((ROOT / "notebooks").glob("*.ipynb"))
    findings = []
    for path in paths:
        if args.rev:
            relative = path.resolve().relative_to(ROOT).as_posix()
            read = git_reader(args.rev)
            nb = nbformat.reads(read(relative) or "", as_version=4)
            findings += check_notebook(nb, f"{args.rev}:{relative}", read)
        else:
            findings += check_path(path)
    for finding in findings:
        print(finding, end="\n\n")
    print(f"{len(findings)} number(s) not printed nor quoted", file=sys.stderr)
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main())
