"""The processes that run a learner's code for the grader (`nbutils.lab.grade`), each in a
sandbox of its own (`nbutils.lab.sandbox`), and the grader's side of them.

``python -I -m nbutils.lab.answers`` runs the answers. It reads a job (JSON, on stdin) and
answers on stdout, one JSON object per line; whatever the answers print goes to stderr. The
job::

    {"imports": [import statements of the notebook],
     "cells": [{"name", "index", "source"} of each exercise cell], "run": [names],
     "cases": {name: [the hidden cases' inputs, `encode_case`]}}

It never gets the seed the cases were drawn from: the grader draws them. With every graded
reference withheld first (`checks.core.withhold_references`; in the sandbox their files are
withheld too), it runs the imports and exercise cells in one namespace, in its working
folder, prints ``{"defined": {name: error or null}}``, then ``{"name": name, "outcomes":
[...]}`` per name (`checks.core.answer_outcomes`). An answer whose code comes from nbutils'
own files, however it was loaded, is the reference (`nbutils_origin`). It judges nothing: its
output is untrusted data that `run_answers` reads with a deadline and bounded lines,
restarting it without an answer that hangs or ends it.

``python -I -m nbutils.lab.answers --notebook`` executes a notebook (job: ``{"notebook",
"timeout"}``) in a fresh kernel, cell by cell, and prints ``{"index": i, "error": what went
wrong or null}`` per code cell, then ``{"done": true}``; `run_notebook` reads it.
"""

from __future__ import annotations

import json
import linecache
import os
import queue
import sys
import threading
import types
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import IO, Any, TextIO

from nbutils.lab import sandbox
from nbutils.lab.checks import EXERCISES, GRADED, reference_of
from nbutils.lab.checks.core import MAX_TEXT, answer_outcomes, withhold_references
from nbutils.lab.exercises import python_source

GRACE_S = 10  # how long an interrupted cell has to stop before the kernel is stopped


def _error(err: BaseException) -> str:
    return f"{type(err).__name__}: {err}"[:500]


def _execute(source: str, filename: str, namespace: dict[str, Any]) -> None:
    """Run a cell's source, registered with linecache (tracebacks, tf.function's autograph)."""
    source = python_source(source) + "\n"
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    exec(compile(source, filename, "exec"), namespace)


# ---------------------------------------------------------------- the cases, as JSON

def encode_case(value: Any) -> Any:
    """A case (label, args, kwargs: tensors, arrays, lists, tuples, dicts, numbers, strings,
    None) as JSON-able data that `decode_case` turns back into equal values."""
    import numpy as np

    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, list | tuple):
        return {type(value).__name__: [encode_case(v) for v in value]}
    if isinstance(value, dict):
        return {"dict": [[encode_case(k), encode_case(v)] for k, v in value.items()]}
    if isinstance(value, np.ndarray | np.generic):
        return {"array": str(value.dtype), "shape": list(np.shape(value)),
                "data": np.ravel(value).tolist(), "scalar": isinstance(value, np.generic)}
    if type(value).__module__.startswith("tensorflow") and hasattr(value, "numpy"):
        array = value.numpy()
        return {"tensor": str(array.dtype), "shape": list(array.shape),
                "data": array.ravel().tolist()}
    raise TypeError(f"a case holds a {type(value).__name__}, which cannot be sent")


def decode_case(data: Any) -> Any:
    """The inverse of `encode_case`."""
    if not isinstance(data, dict):
        return data
    import numpy as np

    if "list" in data:
        return [decode_case(v) for v in data["list"]]
    if "tuple" in data:
        return tuple(decode_case(v) for v in data["tuple"])
    if "dict" in data:
        return {decode_case(k): decode_case(v) for k, v in data["dict"]}
    kind = "tensor" if "tensor" in data else "array"
    array = np.asarray(data["data"], dtype=data[kind]).reshape(data["shape"])
    if kind == "tensor":
        import tensorflow as tf

        return tf.constant(array)
    return array[()] if data.get("scalar") else array


# ---------------------------------------------------------------- nbutils' own code

def nbutils_origin(fn: Any, exclude: Sequence[Any] = (), depth: int = 0,
                   seen: set[int] | None = None) -> str | None:
    """The file of nbutils (relative to its parent folder) that some code object of ``fn``
    comes from, or None: ``fn``'s code and the code nested in it, what it wraps (closures,
    ``__wrapped__``, ``functools.partial``, bound methods, ``tf.function``, a callable
    object's ``__call__``), recursively; the objects in ``exclude`` are not looked into."""
    seen = set() if seen is None else seen
    if depth > 12 or id(fn) in seen or any(fn is x for x in exclude):
        return None
    seen.add(id(fn))
    if isinstance(fn, types.CodeType):
        path = os.path.realpath(fn.co_filename)
        root = str(sandbox.nbutils_dir())
        if path == root or path.startswith(root + os.sep):
            return os.path.relpath(path, os.path.dirname(root))
        nested = [c for c in fn.co_consts if isinstance(c, types.CodeType)]
        return next(filter(None, (nbutils_origin(c, exclude, depth + 1, seen) for c in nested)),
                    None)
    inner: list[Any] = []
    if isinstance(fn, types.FunctionType):
        inner.append(fn.__code__)
        inner += [_cell(c) for c in fn.__closure__ or ()]
    elif isinstance(fn, types.MethodType):
        inner.append(fn.__func__)
    elif callable(fn) and not isinstance(fn, type | types.BuiltinFunctionType):
        inner.append(type(fn).__call__)
    for attribute in ("__wrapped__", "func", "python_function"):
        try:
            inner.append(getattr(fn, attribute, None))
        except Exception:  # noqa: BLE001 - the learner's object, whatever it does
            pass
    for obj in inner:
        if obj is not None and (callable(obj) or isinstance(obj, types.CodeType)):
            found = nbutils_origin(obj, exclude, depth + 1, seen)
            if found:
                return found
    return None


def _cell(cell: Any) -> Any:
    try:
        return cell.cell_contents
    except ValueError:  # an empty cell
        return None


def outcomes_of(name: str, fn: Any, references: dict[str, Callable[..., Any]], cases: list
                ) -> list[dict]:
    """The answer's outcomes on the cases (`checks.core.answer_outcomes`), or the failure
    that it is nbutils' own code. The graded references themselves are left to the checks,
    which name them (the answer is, or calls, the reference)."""
    reference = references[name]
    origin = None if fn is reference else nbutils_origin(fn, list(references.values()))
    if origin:
        return [{"failure": f"is the reference: its code comes from nbutils' own files "
                            f"({origin}), however it was loaded; write your own "
                            "implementation"}]
    return answer_outcomes(EXERCISES[name], fn, reference, cases)


def run(job: dict[str, Any], out: TextIO) -> None:
    """Carry out a job (module docstring), writing its lines to ``out``."""
    references = {name: reference_of(name) for name in GRADED}
    withhold_references()
    cases = {name: [decode_case(c) for c in job["cases"][name]] for name in job["run"]}
    sys.path.append(os.getcwd())  # the learner's own modules, after the installed ones
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
            try:
                outcomes = outcomes_of(name, namespace.get(name), references, cases[name])
            except BaseException as err:  # noqa: BLE001 - e.g. SystemExit from the answer
                outcomes = [{"failure": f"`{name}` raised {_error(err)}"}]
        out.write(json.dumps({"name": name, "outcomes": outcomes}) + "\n")
        out.flush()


# ---------------------------------------------------------------- the notebook's run

def execute_notebook(nb: Any, folder: Path, timeout: int) -> Iterator[tuple[int, str | None]]:
    """Execute every code cell of ``nb`` in a fresh kernel: (cell index, what went wrong or
    None) per cell run; a dead kernel, or a cell that ignores the interrupt, ends the run."""
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import DeadKernelError
    from nbclient.util import run_sync

    replies: dict[int, dict] = {}

    def on_cell_executed(cell: Any, cell_index: int, execute_reply: dict[str, Any]) -> None:
        replies[cell_index] = execute_reply.get("content", {})

    client = NotebookClient(
        nb, timeout=timeout, kernel_name="python3", allow_errors=True,
        interrupt_on_timeout=True, record_timing=False,
        error_on_timeout={"ename": "Timeout", "evalue": f"ran past {timeout} s"},
        on_cell_executed=on_cell_executed, resources={"metadata": {"path": str(folder)}})
    probe = nbformat.v4.new_code_cell("pass")
    with client.setup_kernel():
        for index, cell in enumerate(nb.cells):
            if cell.cell_type != "code":
                continue
            try:
                client.execute_cell(cell, index)
            except DeadKernelError:
                yield index, "the kernel died; the cells after it did not run"
                return
            reply = replies.get(index, {})
            error = None
            if reply.get("status") == "error":
                error = f"{reply.get('ename', 'Error')}: {reply.get('evalue', '')}"
            if reply.get("ename") == "Timeout":  # interrupted: has it stopped?
                client.timeout = GRACE_S
                nb.cells.append(probe)
                client.execute_cell(probe, len(nb.cells) - 1)
                nb.cells.pop()
                client.timeout = timeout
                if replies.pop(len(nb.cells), {}).get("ename") == "Timeout":
                    yield index, (f"ran past {timeout} s and ignored the interrupt; the kernel "
                                  "was stopped and the cells after it did not run")
                    run_sync(client.km.shutdown_kernel)(now=True)
                    return
            yield index, error


def notebook_job(job: dict[str, Any], out: TextIO) -> None:
    """Carry out a notebook job (module docstring), writing its lines to ``out``."""
    import nbformat

    _undumpable()
    nb = nbformat.from_dict(job["notebook"])
    for index, error in execute_notebook(nb, Path.cwd(), int(job["timeout"])):
        out.write(json.dumps({"index": index, "error": error}) + "\n")
        out.flush()
    out.write(json.dumps({"done": True}) + "\n")
    out.flush()


def _undumpable() -> None:
    """Keep the kernel (the learner's code, same user) out of this process's /proc files:
    its channel back to the grader."""
    import ctypes

    try:
        ctypes.CDLL(None).prctl(4, 0, 0, 0, 0)  # PR_SET_DUMPABLE 0
    except (OSError, AttributeError):
        pass


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


def _lines(process: Any, job: dict[str, Any]) -> queue.Queue:
    """Send ``job`` to the process; its lines, as they come."""
    assert process.stdin is not None and process.stdout is not None
    try:
        process.stdin.write(json.dumps(job).encode())
        process.stdin.close()
    except OSError:  # it ended already: its lines say so
        pass
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=_reader, args=(process.stdout, lines), daemon=True).start()
    return lines


def _command(*options: str) -> list[str]:
    return [sys.executable, "-I", "-m", "nbutils.lab.answers", *options]


def run_answers(imports: Sequence[str], cells: Sequence[dict[str, Any]], names: Sequence[str],
                cases: dict[str, list], timeout: float, sandboxed: bool = True
                ) -> dict[str, Any]:
    """Run the answers ``names`` on their ``cases`` (`encode_case`d) in fresh processes,
    each in a sandbox: {name: outcomes, or the reason (str) that none came back}.
    ``timeout`` bounds each answer's cases, in seconds."""
    results: dict[str, Any] = {}
    pending = list(names)
    while pending:
        job = {"imports": list(imports), "cells": list(cells), "run": pending,
               "cases": {name: cases[name] for name in pending}}
        limits = sandbox.answers_limits(int(2 * (SETUP_S + timeout * len(pending))))
        with sandbox.start(_command(), limits, sandboxed=sandboxed, withhold=True) as process:
            lines = _lines(process, job)
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
    return results


def run_notebook(nb: Any, timeout: int, sandboxed: bool = True) -> dict[int, str]:
    """Execute ``nb`` in a fresh kernel in a sandbox: {cell index: what went wrong}."""
    from nbutils._internal.cache import CACHE_ENV, cache_dir

    code = [i for i, cell in enumerate(nb.cells) if cell.cell_type == "code"]
    cache = cache_dir().resolve()
    limits = sandbox.kernel_limits(2 * (SETUP_S + len(code) * (timeout + GRACE_S)))
    errors: dict[int, str] = {}
    with sandbox.start(_command("--notebook"), limits, sandboxed=sandboxed,
                       read_only=[cache] if cache.is_dir() else [],
                       env={CACHE_ENV: str(cache)}) as process:
        lines = _lines(process, {"notebook": nb, "timeout": timeout})
        last, wait = -1, SETUP_S + timeout + GRACE_S
        while True:
            message, why = _next(lines, wait)
            wait = timeout + 2 * GRACE_S
            if message is not None and message.get("done") is True:
                break
            index = None if message is None else message.get("index")
            if index not in code or index <= last:
                after = [i for i in code if i > last]
                if after:
                    what = why if why.startswith("ran past") else "stopped or garbled its results"
                    errors[after[0]] = (f"the process that ran the notebook {what} here; the "
                                        "cells after it did not run")
                break
            last = index
            if message.get("error") is not None:
                errors[index] = str(message["error"])[:MAX_TEXT]
    return errors


def main() -> None:
    out = os.fdopen(os.dup(1), "w", encoding="utf-8")  # the channel back to the grader
    os.set_inheritable(out.fileno(), False)
    os.dup2(2, 1)  # print() in an answer goes to stderr, never into the channel
    job = json.load(sys.stdin)
    if sys.argv[1:] == ["--notebook"]:
        notebook_job(job, out)
    else:
        run(job, out)
    out.close()


if __name__ == "__main__":
    main()
