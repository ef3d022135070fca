"""The grader's sandbox (`nbutils.lab.sandbox`): what a learner's code can reach, start,
write and use while it is graded, and what is left of it afterwards.

Each notebook here is made at run time and cheats or attacks the grading machine in every
exercise and in its kernel cells; each is graded once (a minute or two), and every test is
bounded (``--timeout``, subprocess timeouts, a few seconds' wait for what must be gone)."""

import functools
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest
from conftest import student_notebook

import nbutils
from nbutils.lab import answers, grade, sandbox
from nbutils.lab.checks import EXERCISES, check_total_cost

NAMES = ["gram_matrix", "total_cost", "triplet_loss"]
NBUTILS = Path(nbutils.__file__).resolve().parent
GRADE_S = 900  # bound on one grader run, in seconds (a minute or two here)
GONE_S = 10  # how long what a sandbox started may take to disappear after it


def run_grader(tmp_path, *args, env=None):
    """`python -m nbutils.lab.grade ... --json` in a process of its own, its temporary files
    in a folder of this test's: (exit status, report, stderr, that folder)."""
    temp = tmp_path / "grader_tmp"
    temp.mkdir(exist_ok=True)
    done = subprocess.run([sys.executable, "-m", "nbutils.lab.grade", *map(str, args), "--json"],
                          capture_output=True, text=True, timeout=GRADE_S, cwd=tmp_path,
                          env={**os.environ, "TMPDIR": str(temp), **(env or {})})
    return done.returncode, done.stdout, done.stderr, temp


def by_name(report):
    return {r["name"]: r for r in report["exercises"]}


def processes_with(*markers):
    """The command lines of the processes running now that hold one of ``markers``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if any(m.encode() in cmdline for m in markers):
            found.append(cmdline.replace(b"\0", b" ").decode(errors="replace")[:300])
    return found


def wait_until_gone(*markers):
    deadline = time.monotonic() + GONE_S
    while (left := processes_with(*markers)) and time.monotonic() < deadline:
        time.sleep(0.2)
    return left


@pytest.fixture(scope="module", autouse=True)
def sandbox_starts():
    why = sandbox.probe()
    assert why is None, f"the grader's sandbox cannot start here: {why}"


# ------------------------------------------------------------------ the parts, one by one

FRESH_COPY = """
import importlib.util, nbutils.style.costs as _costs
_spec = importlib.util.spec_from_file_location("my_costs", _costs.__file__)
fresh = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(fresh)
"""


def test_a_fresh_copy_of_a_reference_is_the_reference():
    """Loaded again from nbutils' files, a reference is not the withheld function object;
    its code objects still come from those files."""
    namespace = {}
    exec(compile(FRESH_COPY, "<exercise cell 3>", "exec"), namespace)
    fresh = namespace["fresh"]
    wrapper = functools.wraps(fresh.gram_matrix)(lambda A: 0)
    mine = {}
    exec(compile("def gram_matrix(A):\n    return A @ A.T\n", "<exercise cell 4>", "exec"), mine)

    def closure(A):
        return fresh.gram_matrix(A)

    for found in (fresh.gram_matrix, functools.partial(fresh.gram_matrix), wrapper,
                  fresh.gram_matrix.__get__(object()), closure.__code__.replace(
                      co_filename=fresh.__file__)):
        assert answers.nbutils_origin(found) == "nbutils/style/costs.py", found
    assert answers.nbutils_origin(mine["gram_matrix"]) is None
    assert answers.nbutils_origin(closure) is None  # calls it: in the sandbox that raises
    from nbutils.style.costs import gram_matrix as reference
    assert answers.nbutils_origin(functools.partial(reference), [reference]) is None
    [failure] = answers.outcomes_of("gram_matrix", fresh.gram_matrix,
                                    {"gram_matrix": reference}, [])
    assert failure["failure"].startswith("is the reference: its code comes from nbutils' own "
                                         "files (nbutils/style/costs.py)")
    # Outside the grader, the copy is a working reference: the cheat is real.
    assert check_total_cost(lambda *a, **k: fresh.total_cost(*a, **k), seed=5).passed


def test_the_cases_reach_the_answers_unchanged():
    """The grader draws the hidden cases and sends their inputs (never the seed)."""
    import numpy as np

    def same(a, b):
        if isinstance(a, list | tuple):
            return type(a) is type(b) and len(a) == len(b) and all(map(same, a, b))
        if isinstance(a, dict):
            return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
        if hasattr(a, "numpy") or isinstance(a, np.ndarray):
            x, y = np.asarray(a), np.asarray(b)
            return type(a) is type(b) and x.dtype == y.dtype and np.array_equal(x, y)
        return type(a) is type(b) and a == b

    for name, exercise in EXERCISES.items():
        for case in exercise.cases(12345):
            sent = json.loads(json.dumps(answers.encode_case(case)))
            assert same(case, answers.decode_case(sent)), (name, case[0])
            assert "12345" not in json.dumps(sent)


def test_withheld_files_and_the_seccomp_filter():
    source = (NBUTILS / "triplet.py").read_text()
    stub = sandbox.withheld_source(source, "nbutils.triplet", ["triplet_loss"])
    namespace = {}
    exec(compile(stub, "stub", "exec"), namespace)
    with pytest.raises(RuntimeError, match="withheld: nbutils.triplet.triplet_loss"):
        namespace["triplet_loss"](None, [])
    assert namespace["triplet_hinge"].__doc__ and "def triplet_hinge" in stub
    assert len(sandbox.seccomp_program("x86_64")) == len(sandbox.seccomp_program("aarch64")) == 96
    assert sandbox.seccomp_program("sparc") is None


def test_the_grader_refuses_without_its_sandbox(tmp_path, monkeypatch, capsys):
    path = student_notebook(tmp_path, "refused")
    monkeypatch.setattr(sandbox, "BWRAP", str(tmp_path / "no-bwrap"))
    assert grade.main([str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("error:") == 1 and "bubblewrap" in err and "--no-sandbox" in err
    fake = tmp_path / "bwrap"
    fake.write_text("#!/bin/sh\necho 'bwrap: No permissions to create a new namespace' >&2\n"
                    "exit 1\n")
    fake.chmod(0o755)
    monkeypatch.setattr(sandbox, "BWRAP", str(fake))
    assert grade.main([str(path), "--seed", "3"]) == 2
    err = capsys.readouterr().err
    assert "No permissions to create a new namespace" in err and err.count("\n") == 1


def test_a_secret_seed_comes_from_a_file_or_the_environment(tmp_path, monkeypatch):
    seed_file = tmp_path / "seed"
    seed_file.write_text("424242\n")
    args = grade.argparse.Namespace(seed=None, seed_file=str(seed_file))
    assert grade._seed(args) == (424242, True)
    monkeypatch.setenv(grade.SEED_ENV, "77")
    assert grade._seed(grade.argparse.Namespace(seed=None, seed_file=None)) == (77, True)
    assert grade._seed(grade.argparse.Namespace(seed=5, seed_file=None)) == (5, False)
    seed_file.write_text("-1")
    with pytest.raises(grade.GradeError, match="at least 0"):
        grade._seed(args)
    report = grade.format_report({"notebook": "n", "seed": None, "score": 0, "total": 1,
                                  "exercises": [{"name": "x", "passed": False, "reason": "r"}],
                                  "cell_errors": [], "sandbox": True})
    assert "hidden cases: a secret seed" in report and "424242" not in report


# ------------------------------------------------------------------ cheating

CHEATS = {
    # The function itself, loaded again from nbutils' files.
    "gram_matrix": FRESH_COPY + "gram_matrix = fresh.gram_matrix",
    # A function of the learner's that calls the copy.
    "total_cost": FRESH_COPY + "def total_cost(J_content, J_style, alpha=10, beta=40):\n"
                               "    return fresh.total_cost(J_content, J_style, alpha, beta)",
    # The answers' process (its __main__) patched to report what the copy computes.
    "triplet_loss": """
import importlib.util, sys, nbutils.triplet as _t
from nbutils.lab.checks import EXERCISES
from nbutils.lab.checks.core import encode
_spec = importlib.util.spec_from_file_location("my_triplet", _t.__file__)
fresh_triplet = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(fresh_triplet)
_main = sys.modules["__main__"]
_honest = getattr(_main, "outcomes_of", None)
_main.outcomes_of = lambda name, fn, refs, cases: _honest(name, fn, refs, cases) if (
    name != "triplet_loss") else [{"value": encode(EXERCISES[name].run(
        name, fresh_triplet.triplet_loss, c))} for c in cases]
def triplet_loss(y_true, y_pred, alpha=0.2):
    return 0.0
"""}


def test_a_fresh_copy_of_the_references_scores_zero(tmp_path):
    path = student_notebook(tmp_path, "fresh_copy", CHEATS)
    result = grade.grade(path, timeout=60, seed=5)
    results = by_name(result)
    assert result["score"] == 0 and result["sandbox"], results
    assert "is the reference: its code comes from nbutils' own files (nbutils/style/costs.py)" \
        in results["gram_matrix"]["reason"]
    assert "calls the reference nbutils.style.costs.total_cost" in results["total_cost"]["reason"]
    assert "calls the reference nbutils.triplet.triplet_loss" in results["triplet_loss"]["reason"]


def test_without_the_sandbox_the_report_says_so_first(tmp_path, capsys):
    path = student_notebook(tmp_path, "unsandboxed", {"gram_matrix": CHEATS["gram_matrix"]})
    assert grade.main([str(path), "--no-sandbox", "--timeout", "60"]) == 1
    out = capsys.readouterr().out
    assert out.splitlines()[0] == grade.NO_SANDBOX
    assert "is the reference: its code comes from nbutils' own files" in out
    assert grade.main([str(path), "--no-sandbox", "--timeout", "60", "--json"]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].strip() == '"sandbox": false,'


# ------------------------------------------------------------------ the grading machine

# Searches this process (its frames, every container the garbage collector tracks) and every
# process it can see (command lines, environments) for the grader's seeds, given masked.
SEARCH = """
def search_seeds(masked, mask):
    import gc, os, sys
    seeds = frozenset(m ^ mask for m in masked)
    texts = tuple(str(s) for s in seeds)
    mine = {id(seeds), id(texts)}
    def holds(obj):
        if isinstance(obj, int) and not isinstance(obj, bool):
            return obj in seeds
        if isinstance(obj, str | bytes):
            obj = obj.decode(errors="replace") if isinstance(obj, bytes) else obj
            return any(t in obj for t in texts)
        return False
    found, frames, objects, files = False, 0, 0, 0
    frame = sys._getframe(1)
    while frame is not None:
        frames += 1
        found |= any(holds(v) for v in frame.f_locals.values())
        frame = frame.f_back
    for obj in gc.get_objects():
        objects += 1
        if id(obj) in mine:
            continue
        if isinstance(obj, dict):
            found |= any(holds(k) or holds(v) for k, v in list(obj.items()))
        elif isinstance(obj, list | tuple | set | frozenset):
            found |= any(holds(v) for v in list(obj))
    for pid in os.listdir("/proc"):
        for name in ("cmdline", "environ"):
            try:
                with open(f"/proc/{pid}/{name}", "rb") as f:
                    found |= holds(f.read())
                files += 1
            except OSError:
                pass
    return f"seed found: {found} ({frames} frames, {objects} objects, {files} files)"
"""
SEED, SECRET_SEED, MASK = 918273645, 564738291, 0x5A5A5A5A
MARK = "nbutils-sandbox-test-MARK"  # names and contents the learner's code must never meet


def test_the_search_finds_a_seed_where_there_is_one():
    namespace = {}
    exec(SEARCH, namespace)
    grader_job = {"seed": SEED}  # noqa: F841 - what the old answers' process held
    assert namespace["search_seeds"]([SEED ^ MASK], MASK).startswith("seed found: True")


READ_AND_SEARCH = SEARCH + """
def gram_matrix(A):
    import os
    seen = {}
    for path in ["/etc/passwd", "/etc/shadow", "GRADER_FILES", os.path.expanduser("~/.bashrc"),
                 "/proc/1/environ", "/proc/%d/cmdline" % os.getppid()]:
        for name in ([path] if not os.path.isdir(path) else
                     [os.path.join(path, n) for n in os.listdir(path)]):
            try:
                with open(name, "rb") as f:
                    seen[name] = f.read(2000).decode(errors="replace")
            except OSError as err:
                seen[name] = type(err).__name__
    raise RuntimeError(search_seeds(MASKED, MASK) + " " + repr(seen)[:1200])
"""
LEAVE_THINGS = """
def total_cost(J_content, J_style, alpha=10, beta=40):
    import os, subprocess, time
    subprocess.Popen(["sleep", "3600.MARKNUM"], start_new_session=True)
    if os.fork() == 0:  # a daemon: a double fork, a session of its own
        os.setsid()
        if os.fork() == 0:
            os.execvp("sleep", ["sleep", "3601.MARKNUM"])
        os._exit(0)
    for path in ESCAPES:
        try:
            with open(path, "w") as f:
                f.write("MARK")
        except OSError:
            pass
    return alpha * J_content + beta * J_style
"""
SOCKETS = """
def triplet_loss(y_true, y_pred, alpha=0.2):
    import socket, urllib.request
    errors = []
    for address in [("127.0.0.1", PORT), ("1.1.1.1", 53), ("pypi.org", 443)]:
        try:
            socket.create_connection(address, timeout=5).close()
            errors.append(f"{address}: connected")
        except OSError as err:
            errors.append(f"{address}: {err}")
    raise OSError("; ".join(errors))
"""
KERNEL_CELL = SEARCH + """
import os, subprocess
subprocess.Popen(["sleep", "3602.MARKNUM"], start_new_session=True)
seen = {}
for path in ["/etc/passwd", "GRADER_FILES", "/proc/%d/cmdline" % os.getppid()]:
    for name in ([path] if not os.path.isdir(path) else
                 [os.path.join(path, n) for n in os.listdir(path)]):
        try:
            seen[name] = open(name, "rb").read(2000).decode(errors="replace")
        except OSError as err:
            seen[name] = type(err).__name__
for path in ESCAPES:
    try:
        open(path, "w").write("MARK")
    except OSError:
        pass
raise RuntimeError(search_seeds(MASKED, MASK) + " " + repr(seen)[:1200])
"""


def test_the_learner_s_code_cannot_reach_the_machine_nor_leave_anything(tmp_path):
    """Graded with --seed on the grader's command line (and a secret seed in its
    environment): the answers and the kernel read no file of the grader's (/etc/passwd, its
    folder, the gradebook, another submission), find neither seed (their processes'
    command lines and environments, the answers' frames and objects), reach no socket,
    and what they start or write outside their temporary folder is gone, or never was,
    once the grader has exited."""
    grader = tmp_path / "course"
    grader.mkdir()
    (grader / "gradebook.db").write_text(f"{MARK} gradebook")
    (grader / "other_submission.ipynb").write_text(f"{MARK} another learner")
    escapes = [str(tmp_path / f"{MARK}.txt"), f"/tmp/{MARK}.txt", f"/var/tmp/{MARK}.txt",
               str(NBUTILS / f"{MARK}.py"), os.path.expanduser(f"~/{MARK}.txt"),
               f"{MARK}_in_the_working_folder.txt"]
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.5)
    connections = []

    def serve():
        while server.fileno() != -1:
            try:
                connections.append(server.accept())
            except OSError:
                continue

    threading.Thread(target=serve, daemon=True).start()
    number = str(int(time.time() * 1000) % 10**9)

    def fill(source):
        return (source.replace("GRADER_FILES", str(grader)).replace("ESCAPES", repr(escapes))
                .replace("MASKED", repr([SEED ^ MASK, SECRET_SEED ^ MASK]))
                .replace("MASK", str(MASK)).replace("MARKNUM", number)
                .replace("PORT", str(server.getsockname()[1])))

    bodies = {"gram_matrix": fill(READ_AND_SEARCH), "total_cost": fill(LEAVE_THINGS),
              "triplet_loss": fill(SOCKETS)}
    path = student_notebook(grader, "submission", bodies, after=[fill(KERNEL_CELL)])
    try:
        status, out, err, temp = run_grader(tmp_path, path, "--seed", SEED, "--timeout", 60,
                                            env={grade.SEED_ENV: str(SECRET_SEED)})
    finally:
        server.close()
    assert status == 1, err[-3000:]
    report = json.loads(out)
    results = by_name(report)
    assert report["sandbox"] and report["seed"] == SEED and report["score"] == 1, results
    assert results["total_cost"]["passed"]  # what it started and wrote is checked below
    reading = results["gram_matrix"]["reason"]
    [kernel] = report["cell_errors"]
    host_passwd = Path("/etc/passwd").read_text().splitlines()[0]
    for said in (reading, kernel["error"]):
        assert "seed found: False" in said, said
        assert MARK not in said and host_passwd not in said, said
        assert "FileNotFoundError" in said and "learner:x:" in said, said
    frames, objects = map(int, re.search(r"\((\d+) frames, (\d+) objects", reading).groups())
    assert frames >= 3 and objects > 10_000, reading
    assert str(SECRET_SEED) not in out + err
    sockets = results["triplet_loss"]["reason"]
    assert "connected" not in sockets and not connections, sockets
    assert "refused" in sockets and "unreachable" in sockets, sockets
    # After the grader: nothing it or its sandboxes started, nothing written, no temp files.
    assert not wait_until_gone(*(f"360{n}.{number}" for n in range(3)), str(temp))
    for escape in escapes:
        assert not Path(escape).exists() and not (tmp_path / escape).exists(), escape
    assert not list(grader.glob(f"*{MARK}*")) and not list(temp.iterdir())


RESOURCES = {
    # Fills its temporary folder (a tmpfs of sandbox.answers_limits().tmp_size).
    "gram_matrix": """
def gram_matrix(A):
    written, i = 0, 0
    chunk = b"x" * 2**20
    while True:
        try:
            with open(f"fill_{i}", "wb") as f:
                while True:
                    f.write(chunk)
                    f.flush()
                    written += len(chunk)
        except OSError as err:
            if err.errno != 27:  # EFBIG: one file's limit; then the next file
                raise RuntimeError(f"disk full after {written // 2**20} MiB: {err}")
            i += 1
""",
    # Allocates without bound: at once, then block by block.
    "total_cost": """
def total_cost(J_content, J_style, alpha=10, beta=40):
    import mmap
    try:
        bytearray(2**42)
    except MemoryError:
        pass
    blocks = []
    try:
        while True:
            blocks.append(mmap.mmap(-1, 2**28))
    except (OSError, MemoryError) as err:
        raise MemoryError(f"stopped at {len(blocks) // 4} GiB: {err}")
""",
    # A fork bomb: every process forks until it cannot; the copies stay.
    "triplet_loss": """
def triplet_loss(y_true, y_pred, alpha=0.2):
    import os, time
    me = os.getpid()
    try:
        while True:
            os.fork()
    except OSError as err:
        if os.getpid() != me:
            while True:
                time.sleep(1)
        raise RuntimeError(f"fork bomb stopped: {err}")
"""}


def test_a_fork_bomb_a_full_disk_and_unbounded_memory_each_fail_alone(tmp_path, monkeypatch):
    limits = sandbox.answers_limits(60)
    temp = tmp_path / "grader_tmp"
    temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    path = student_notebook(tmp_path, "resources", RESOURCES)
    started = time.monotonic()
    result = grade.grade(path, timeout=60, seed=1)
    results = by_name(result)
    assert result["score"] == 0, results
    disk = results["gram_matrix"]["reason"]
    assert "No space left on device" in disk, disk
    assert int(disk.split("after ")[1].split()[0]) <= limits.tmp_size // 2**20
    memory = results["total_cost"]["reason"]
    assert "MemoryError: stopped at" in memory, memory
    assert int(memory.split("stopped at ")[1].split()[0]) <= limits.memory // 2**30
    bomb = results["triplet_loss"]["reason"]
    assert "fork bomb stopped" in bomb and "Resource temporarily unavailable" in bomb, bomb
    assert time.monotonic() - started < GRADE_S
    assert not wait_until_gone(str(temp)) and not list(temp.iterdir())
