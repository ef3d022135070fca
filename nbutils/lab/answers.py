"""Run a learner's answers in a process of their own, for the grader (`nbutils.lab.grade`).

``python -I -m nbutils.lab.answers`` reads a job (JSON, on stdin) and answers on stdout, one
JSON object per line; whatever the answers print goes to stderr. The job::

    {"folder": notebook's folder, "imports": [import statements of the notebook],
     "cells": [{"name", "index", "source"} of each exercise cell], "run": [names],
     "seed": the hidden cases' seed}

With every graded reference withheld first (`checks.core.withhold_references`), it runs the
imports and exercise cells in one namespace, prints ``{"defined": {name: error or null}}``,
then ``{"name": name, "outcomes": [...]}`` per name (`checks.core.answer_outcomes`). It
judges nothing: its output is untrusted data that `run_answers`, the grader's side, reads
with a deadline and bounded lines, restarting it without an answer that hangs or ends it.
"""

from __future__ import annotations

import json
import linecache
import os
import queue
import subprocess
import sys
import tempfile
import threading
from collections.abc import Sequence
from typing import IO, Any, TextIO

from nbutils.lab.checks import EXERCISES, GRADED, reference_of
from nbutils.lab.checks.core import answer_outcomes, withhold_references
from nbutils.lab.exercises import python_source


def _error(err: BaseException) -> str:
    return f"{type(err).__name__}: {err}"[:500]


def _execute(source: str, filename: str, namespace: dict[str, Any]) -> None:
    """Run a cell's source, registered with linecache (tracebacks, tf.function's autograph)."""
    source = python_source(source) + "\n"
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    exec(compile(source, filename, "exec"), namespace)


def run(job: dict[str, Any], out: TextIO) -> None:
    """Carry out a job (module docstring), writing its lines to ``out``."""
    references = {name: reference_of(name) for name in GRADED}
    withhold_references()
    os.chdir(job["folder"])
    sys.path.append(job["folder"])  # the learner's own modules, after the installed ones
    namespace: dict[str, Any] = {"__name__": "__main__"}
    for statement in job["imports"]:
        try:
            _execute(statement, "<notebook imports>", namespace)
        except BaseException:  # noqa: BLE001 - an import that fails here fails in the notebook
            pass
    errors: dict[str, str | None] = {}
    for cell in job["cells"]:
        try:
            _execute(cell["source"], f"<exercise cell {cell['index']}>", namespace)
            errors.setdefault(cell["name"], None)
        except BaseException as err:  # noqa: BLE001 - the learner's cell, reported
            errors[cell["name"]] = _error(err)
    out.write(json.dumps({"defined": errors}) + "\n")
    out.flush()
    for name in job["run"]:
        if errors.get(name):
            outcomes = [{"failure": f"its cell failed: {errors[name]}"}]
        else:
            exercise = EXERCISES[name]
            try:
                outcomes = answer_outcomes(exercise, namespace.get(name), references[name],
                                           exercise.cases(job["seed"]))
            except BaseException as err:  # noqa: BLE001 - e.g. SystemExit from the answer
                outcomes = [{"failure": f"`{name}` raised {_error(err)}"}]
        out.write(json.dumps({"name": name, "outcomes": outcomes}) + "\n")
        out.flush()


# ---------------------------------------------------------------- the grader's side

MAX_LINE = 16 * 2**20  # bytes; the checks' outcomes are a few kB
SETUP_S = 300  # start-up (TensorFlow's import) and the notebook's imports, seconds


def _reader(stream: IO[bytes], lines: queue.Queue) -> None:
    """Put each line of ``stream`` (None when over-long or at the end) into ``lines``."""
    while True:
        try:
            line = stream.readline(MAX_LINE + 1)
        except (OSError, ValueError):  # the stream closed under us: the process was ended
            line = b""
        if not line.endswith(b"\n"):
            lines.put(None)
            return
        lines.put(line)


def _next(lines: queue.Queue, timeout: float) -> tuple[dict | None, str]:
    """The next JSON object from the process, or (None, why not)."""
    try:
        line = lines.get(timeout=timeout)
    except queue.Empty:
        return None, f"ran past {timeout:.0f} s"
    if line is None:
        return None, "stopped the process that runs the answers"
    try:
        message = json.loads(line)
    except ValueError:
        return None, "garbled the answers' results"
    return (message, "") if isinstance(message, dict) else (None, "garbled the results")


def run_answers(folder: str, imports: Sequence[str], cells: Sequence[dict[str, Any]],
                names: Sequence[str], seed: int, timeout: float) -> dict[str, Any]:
    """Run the answers ``names`` in fresh processes: {name: outcomes, or the reason (str)
    that none came back}. ``timeout`` bounds each answer's cases, in seconds."""
    results: dict[str, Any] = {}
    pending = list(names)
    while pending:
        job = {"folder": folder, "imports": list(imports), "cells": list(cells),
               "run": pending, "seed": seed}
        with tempfile.TemporaryFile() as log, subprocess.Popen(
                [sys.executable, "-I", "-m", "nbutils.lab.answers"], stdin=subprocess.PIPE,
                stdout=subprocess.PIPE, stderr=log, cwd=folder) as process:
            assert process.stdin is not None and process.stdout is not None
            process.stdin.write(json.dumps(job).encode())
            process.stdin.close()
            lines: queue.Queue = queue.Queue()
            threading.Thread(target=_reader, args=(process.stdout, lines), daemon=True).start()
            message, why = _next(lines, SETUP_S + timeout)
            if message is None or not isinstance(message.get("defined"), dict):
                for name in pending:
                    results[name] = f"the exercise cells or the notebook's imports {why}"
                pending = []
            while pending:
                message, why = _next(lines, timeout)
                name = pending.pop(0)
                if message is None or message.get("name") != name:
                    results[name] = f"`{name}` {why or 'garbled the results'}"
                    break
                results[name] = message.get("outcomes")
            process.kill()
    return results


def main() -> None:
    out = os.fdopen(os.dup(1), "w", encoding="utf-8")  # the channel back to the grader
    os.dup2(2, 1)  # print() in an answer goes to stderr, never into the channel
    job = json.load(sys.stdin)
    run(job, out)
    out.close()


if __name__ == "__main__":
    main()
