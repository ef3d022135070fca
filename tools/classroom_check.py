"""The classroom, for real: JupyterHub, nbgrader's exchange, an instructor and three students.

    sudo .venv/bin/python tools/classroom_check.py [--out outputs/classroom] [--timeout 900]

Run as root (``make classroom-check``; CI runs it after ``make nbgrader-check``). Everything is
started by the check on 127.0.0.1 (free ports), in a class folder of its own under /tmp, and
stopped and removed at the end, accounts included; every wait is bounded.

1. The class is deployed as a lab would: Unix accounts for one instructor and three students
   (homes in the class folder); two venvs built from a Python every account can run, one for
   the servers (JupyterHub 5, JupyterLab, nbgrader 0.9: ``tools/classroom/requirements.txt``)
   and one for the kernels (nbutils' wheel, installed); JupyterHub with its proxy
   (configurable-http-proxy, ``npm ci`` in tools/classroom), PAM logins and one single-user
   server per account, configured by ``docs/classroom/*.py`` as they are.
2. Through the Hub's and the single-user servers' HTTP APIs, as each user (their own token):
   the instructor prepares the one shared weight cache (students may read it, not write it),
   emits the course (``python -m nbutils.lab.exercises --format nbgrader``), generates and
   releases ``face_recognition``; each student lists and fetches it, fills it in (the
   solutions; nothing; imports of nbutils' references), runs it in a kernel of their server
   and submits; the instructor collects, autogrades, generates and releases feedback; each
   student fetches theirs.
3. The scores (full marks, 0, 0; from the formgrader's API) and the feedback files (the
   checks' messages, the imports named) are read; the students' kernels report the shared
   cache; nothing was written to it.
4. A browser (Debian's chromium, driven by Playwright) logs in as a student on the Hub's
   login page, opens the fetched notebook in JupyterLab, runs the first exercise's check
   cell, reads its output, and opens nbgrader's Assignments panel. Screenshots: ``--out``.

The class's deployment is ``tools/classroom/deploy.py``; the hub and each user's server,
through their APIs, ``tools/classroom/hub.py``; the course's steps and the browser are here.
Exit 0 when all holds; 1 when something is wrong (one line per problem); 2 when a component
cannot start (one line naming it and what to do). Nothing is left behind in any case.
"""

from __future__ import annotations

import argparse
import html
import json
import os
import pwd
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import nbformat

sys.path.insert(0, str(Path(__file__).resolve().parent))
from browser_check import NO_CHROMIUM, Deadline, shorten  # noqa: E402
from classroom.deploy import (  # noqa: E402
    ROOT,
    CheckFailed,
    Classroom,
    SetupError,
    build_venvs,
    class_python,
    exists,
    leftovers,
    run,
    write_class_config,
    write_user_config,
)
from classroom.hub import Hub, Server, start_hub, start_server, text_of  # noqa: E402

PROXY = ROOT / "tools" / "classroom" / "node_modules" / ".bin" / "configurable-http-proxy"
NOTEBOOK = ROOT / "notebooks" / "face_recognition.py"
ASSIGNMENT = NOTEBOOK.stem
COURSE = "nbutils"
INSTRUCTOR = "nbc-instructor"
# The three students and what each does with the release before submitting it.
STUDENTS = {"nbc-ada": "solutions", "nbc-ben": "untouched", "nbc-cy": "imports"}
EXPECTED_SCORE = {"solutions": 1.0, "untouched": 0.0, "imports": 0.0}
CACHE_MARK = "classroom check, cache_dir:"

# ---------------------------------------------------------------------------------------
# The course's flow

def check_shell(server: Server, code: str, what: str, timeout: float = 900) -> str:
    """Run ``code`` in a kernel of ``server``; what it printed, or CheckFailed if it raised."""
    outputs = server.execute([code], timeout=timeout)[0]
    errors = [o for o in outputs if o["output_type"] == "error"]
    if errors:
        raise CheckFailed(f"{server.user}: {what}: {errors[0]['ename']}: "
                          f"{shorten(errors[0]['evalue'], 400)}")
    return text_of(outputs)

SUBPROCESS = """import subprocess, sys
done = subprocess.run({command!r}, capture_output=True, text=True)
print(done.stdout[-3000:], done.stderr[-3000:])
assert done.returncode == 0, f"exit {{done.returncode}}: {{done.stderr[-500:]}}"
"""

def instructor_prepares(room: Classroom, server: Server) -> None:
    """The shared cache, then the course, through the instructor's kernels."""
    python = str(room.kernel_venv / "bin" / "python")
    check_shell(server, SUBPROCESS.format(command=[python, "-m", "nbutils.prepare"]),
                "python -m nbutils.prepare (the shared cache)")
    room.cache.chmod(0o755)  # the instructor's; readable by all (umask), writable by them only
    source = room.home(INSTRUCTOR) / NOTEBOOK.name
    room.as_user(INSTRUCTOR, source, NOTEBOOK.read_text())  # the course's source, as cloned
    check_shell(server, SUBPROCESS.format(command=[
        python, "-m", "nbutils.lab.exercises", "--format", "nbgrader", "--out",
        str(room.home(INSTRUCTOR) / "course"), str(source)]),
        "python -m nbutils.lab.exercises --format nbgrader")
    server.nbgrader(f"assignment/{ASSIGNMENT}/assign")
    server.nbgrader(f"assignment/{ASSIGNMENT}/release")

def filled_in(release: Any, source: Any, role: str) -> Any:
    """What a student with ``role`` hands in: the release with its answer cells replaced by
    the source's solutions, by imports of nbutils' references, or untouched."""
    from nbutils.lab.checks import GRADED

    nb = nbformat.from_dict(release)
    answers = {c.metadata["nbgrader"]["grade_id"]: c.source for c in source.cells
               if c.metadata.get("nbgrader", {}).get("solution")}
    for cell in nb.cells:
        grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
        if role == "untouched" or grade_id not in answers:
            continue
        if role == "solutions":
            cell.source = "\n".join(line for line in answers[grade_id].splitlines()
                                    if not re.match(r"\s*### (BEGIN|END) SOLUTION", line))
        else:
            cell.source = f"from {GRADED[grade_id]} import {grade_id}"
    nb.cells.append(nbformat.v4.new_code_cell(
        f"from nbutils.settings import cache_dir\nprint({CACHE_MARK!r}, cache_dir())"))
    return nb

def student_works(room: Classroom, server: Server, role: str, source: Any) -> str:
    """List, fetch, fill in, run (in their own kernel), save, submit; the cache folder their
    kernel reported."""
    listed = server.api("GET", "/assignments", params={"course_id": COURSE})
    listed = json.loads(listed) if isinstance(listed, str) else listed
    names = {a["assignment_id"] for a in listed.get("value", [])}
    if ASSIGNMENT not in names:
        raise CheckFailed(f"{server.user}: {ASSIGNMENT} not in their assignment list "
                          f"({sorted(names) or listed})")
    server.nbgrader("fetch", course_id=COURSE, assignment_id=ASSIGNMENT)
    path = f"{ASSIGNMENT}/{ASSIGNMENT}.ipynb"
    nb = filled_in(server.contents(path)["content"], source, role)
    code = [c for c in nb.cells if c.cell_type == "code"]
    outputs = server.execute([c.source for c in code], path=path)
    for cell, out in zip(code, outputs, strict=True):
        cell.outputs = out
    server.put_notebook(path, nb)
    server.nbgrader("submit", course_id=COURSE, assignment_id=ASSIGNMENT)
    found = re.search(re.escape(CACHE_MARK) + r" (\S+)", text_of(outputs[-1]))
    return found.group(1) if found else f"(not printed: {shorten(text_of(outputs[-1]), 300)})"

def exercises(source: Any) -> list[str]:
    """The graded names of the instructor's source notebook, in order."""
    return [c.metadata["nbgrader"]["grade_id"] for c in source.cells
            if c.metadata.get("nbgrader", {}).get("solution")]

def tree_state(folder: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*"))}

def feedback_text(server: Server) -> str:
    """The feedback HTML the student fetched (the newest), as text."""
    folder = server.contents(f"{ASSIGNMENT}/feedback")
    stamps = sorted(item["path"] for item in folder["content"] if item["type"] == "directory")
    if not stamps:
        raise CheckFailed(f"{server.user}: no feedback folder after fetch_feedback")
    page = server.contents(f"{stamps[-1]}/{ASSIGNMENT}.html")["content"]
    return " ".join(html.unescape(re.sub(r"<[^>]+>", "", page)).split())

def classroom(room: Classroom, args: Any) -> tuple[dict[str, float], list[str], list[str]]:
    """The whole flow; (scores by student, problems found, notes for the last line)."""
    problems, notes = [], []
    timing = {}
    passwords = {user: secrets.token_urlsafe(12) for user in [INSTRUCTOR, *STUDENTS]}
    for user, password in passwords.items():
        room.add_account(user, password)
    python, room.env = class_python(room, next(iter(STUDENTS)))
    timing.update({f"venv {k}": v for k, v in build_venvs(room, python, room.env).items()})
    room.hub_version = run([str(room.server_venv / "bin" / "python"), "-c",
                            "import jupyterhub; print(jupyterhub.__version__)"], 60,
                           "the servers' venv", env=dict(os.environ, **room.env)).strip()
    write_class_config(room)
    entry = pwd.getpwnam(INSTRUCTOR)
    os.chown(room.cache, entry.pw_uid, entry.pw_gid)
    write_user_config(room, INSTRUCTOR, "instructor")
    for student in STUDENTS:
        write_user_config(room, student, "student")
    started = time.monotonic()
    hub = start_hub(room, room.server_venv, args, INSTRUCTOR, list(STUDENTS), COURSE)
    teacher = start_server(hub, INSTRUCTOR, room.deadline.bound(args.start_timeout))
    instructor_prepares(room, teacher)
    timing["instructor: cache, course, release"] = time.monotonic() - started
    before = tree_state(room.cache)
    source = nbformat.read(room.home(INSTRUCTOR) / "course" / "source" / ASSIGNMENT /
                           f"{ASSIGNMENT}.ipynb", as_version=4)
    servers, caches = {}, {}
    started = time.monotonic()

    def student(name: str, role: str) -> None:  # all three at once, as a class would
        servers[name] = start_server(hub, name, room.deadline.bound(args.start_timeout))
        caches[name] = student_works(room, servers[name], role, source)

    with ThreadPoolExecutor(len(STUDENTS)) as pool:
        for done in [pool.submit(student, *item) for item in STUDENTS.items()]:
            done.result()
    timing["students: fetch, run, submit"] = time.monotonic() - started
    started = time.monotonic()
    teacher.nbgrader(f"assignment/{ASSIGNMENT}/collect")
    for student in STUDENTS:  # the formgrader's Autograde, one submission at a time
        teacher.nbgrader(f"submission/{ASSIGNMENT}/{student}/autograde",
                         timeout=room.deadline.bound(600))
    teacher.nbgrader(f"assignment/{ASSIGNMENT}/generate_feedback", timeout=600)
    teacher.nbgrader(f"assignment/{ASSIGNMENT}/release_feedback")
    timing["instructor: collect, autograde, feedback"] = time.monotonic() - started
    submissions = teacher.api("GET", f"/formgrader/api/submissions/{ASSIGNMENT}")
    submissions = json.loads(submissions) if isinstance(submissions, str) else submissions
    scores = {s["student"]: s["score"] / s["max_score"] for s in submissions
              if s["student"] in STUDENTS and s.get("max_score")}
    for student, role in STUDENTS.items():
        servers[student].nbgrader("fetch_feedback", course_id=COURSE, assignment_id=ASSIGNMENT)
        feedback = feedback_text(servers[student])
        score = scores.get(student)
        if score is None or abs(score - EXPECTED_SCORE[role]) > 1e-9:
            problems.append(f"{student} ({role}): score {score}, expected "
                            f"{EXPECTED_SCORE[role]}")
        from nbutils.lab.checks import GRADED

        must = {"untouched": ["NotImplementedError"],
                "imports": [f"is the reference {GRADED[name]}.{name} itself, imported from "
                            "nbutils" for name in exercises(source)]}.get(role, [])
        for words in must:
            if words not in feedback:
                problems.append(f"{student} ({role}): the feedback does not say {words!r}")
        if role == "imports" and must and must[0] in feedback:
            notes.append(f"{student}'s feedback: {must[0]!r}")
        if caches[student] != str(room.cache):
            problems.append(f"{student}'s kernel used the cache {caches[student]}, not "
                            f"{room.cache}")
    if tree_state(room.cache) != before:
        problems.append(f"the shared cache {room.cache} was written to by a student")
    for student in STUDENTS:  # a student cannot write into the shared cache
        done = subprocess.run(["runuser", "-u", student, "--", "touch", str(room.cache / "x")],
                              capture_output=True, text=True)
        if done.returncode == 0:
            problems.append(f"{student} could write into the shared cache {room.cache}")
    started = time.monotonic()
    notes.append(browse(hub, next(iter(STUDENTS)), passwords, args))
    timing["browser"] = time.monotonic() - started
    for what, seconds in timing.items():
        print(f"  {what}: {seconds:.0f} s")
    return scores, problems, [n for n in notes if n]

# ---------------------------------------------------------------------------------------
# The browser

def browse(hub: Hub, student: str, passwords: dict[str, str], args: Any) -> str:
    """Log in as ``student`` on the Hub's page, run the first exercise's check cell in
    JupyterLab, open the Assignments panel; screenshots in ``args.out``."""
    from playwright.sync_api import Error as PlaywrightError
    from playwright.sync_api import sync_playwright

    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=args.chromium,
                                     args=["--no-sandbox", "--disable-gpu"])
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.set_default_timeout(60_000)
            try:
                page.goto(f"{hub.url}/hub/login")
                page.fill("input#username_input", student)
                page.fill("input#password_input", passwords[student])
                page.click("#login_submit")
                page.wait_for_url(re.compile(rf"/user/{student}/lab"), timeout=120_000)
                page.goto(f"{hub.url}/user/{student}/lab/tree/{ASSIGNMENT}/{ASSIGNMENT}.ipynb")
                return check_cell_in_page(page, out)
            except PlaywrightError as e:
                page.screenshot(path=out / "failed.png")
                raise CheckFailed(f"the browser: {shorten(str(e), 300)} "
                                  f"(screenshot {out / 'failed.png'})") from None
        finally:
            browser.close()

FIRST_CHECK = "check_triplet_loss"  # the first exercise's check cell calls it

def check_cell_in_page(page: Any, out: Path) -> str:
    """Run the cells up to the first exercise's check cell, from its first one, with
    Shift+Enter as a learner would; read the check cell's output; open the Assignments."""
    cells = page.locator(".jp-Notebook .jp-Cell")
    cells.first.wait_for()
    page.wait_for_function(r"""() => /\| Idle\b/.test(
        document.querySelector('#jp-main-statusbar')?.innerText ?? '')""", timeout=120_000)
    sources = cells.evaluate_all("cs => cs.map(c => c.innerText)")
    target = next(i for i, s in enumerate(sources) if FIRST_CHECK in s)
    cells.first.click()
    page.keyboard.press("Escape")
    for _ in range(target + 1):
        page.keyboard.press("Shift+Enter")
    cell = cells.nth(target)
    prompt = cell.locator(".jp-InputPrompt")
    page.wait_for_function("el => /\\[\\d+\\]/.test(el.innerText)", arg=prompt.element_handle(),
                           timeout=300_000)
    output = cell.locator(".jp-OutputArea").inner_text().strip()
    cell.scroll_into_view_if_needed()
    page.screenshot(path=out / "lab.png")
    errors = cell.locator('[data-mime-type="application/vnd.jupyter.stderr"]').count()
    if errors:
        raise CheckFailed(f"the check cell failed in the browser: {shorten(output, 300)}")
    page.locator(".lm-MenuBar-itemLabel", has_text="Nbgrader").click()
    page.locator(".lm-Menu-itemLabel", has_text="Assignment List").click()
    page.get_by_text(ASSIGNMENT).first.wait_for(timeout=60_000)
    page.screenshot(path=out / "assignments.png")
    return (f"browser ran the check cell in JupyterLab ({prompt.inner_text().strip()} "
            f"{FIRST_CHECK}, output {output!r})")

# ---------------------------------------------------------------------------------------

def preflight(args: Any) -> None:
    """What must be there before anything starts: one SetupError line each."""
    if os.geteuid() != 0:
        raise SetupError("run as root (it creates Unix accounts and JupyterHub spawns their "
                         "servers as them): sudo make classroom-check")
    for tool in ("useradd", "userdel", "chpasswd", "runuser"):
        if not shutil.which(tool):
            raise SetupError(f"{tool} is missing: apt-get install -y passwd util-linux")
    if not Path(args.proxy).is_file() or not os.access(args.proxy, os.X_OK):
        raise SetupError(f"no configurable-http-proxy at {args.proxy}: npm ci --prefix "
                         "tools/classroom (make classroom-check does it), or --proxy PATH")
    if args.port:
        import socket

        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", args.port))
            except OSError as e:
                raise SetupError(f"--port {args.port}: cannot listen on 127.0.0.1:{args.port} "
                                 f"({e.strerror}): stop what uses it, or pick another port "
                                 "(0: a free one)") from None
    if not args.chromium or not Path(args.chromium).exists():
        raise SetupError(NO_CHROMIUM)
    for user in [INSTRUCTOR, *STUDENTS]:
        if exists(user):
            raise SetupError(f"account {user} exists already (left by an earlier run?): "
                             f"remove it with `userdel -r {user}`, then run again")

def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python tools/classroom_check.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=ROOT / "outputs" / "classroom",
                        help="screenshots (default: %(default)s)")
    parser.add_argument("--chromium", default=shutil.which("chromium"),
                        help="the browser (default: chromium on PATH, Debian's)")
    parser.add_argument("--timeout", type=float, default=900,
                        help="seconds for the whole check (default: %(default)s)")
    parser.add_argument("--start-timeout", type=float, default=120,
                        help="seconds for the hub, or one user's server, to come up "
                        "(default: %(default)s)")
    parser.add_argument("--port", type=int, default=0,
                        help="the hub's public port on 127.0.0.1 (default: a free one)")
    parser.add_argument("--proxy", type=Path, default=PROXY,
                        help="configurable-http-proxy (default: %(default)s, from npm ci)")
    args = parser.parse_args(argv)
    deadline = Deadline(args.timeout)
    started = time.monotonic()
    try:
        preflight(args)
    except SetupError as e:
        print(f"classroom check: {e}", file=sys.stderr)
        return 2
    room = Classroom(Path(tempfile.mkdtemp(prefix="nbutils-classroom-")), deadline, Path())
    room.root.chmod(0o755)
    (room.root / "home").mkdir()

    def stop(signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, stop)
    status, message = 1, ""
    try:
        scores, problems, notes = classroom(room, args)
        if problems:
            message = "classroom check FAILED:\n" + "\n".join(f"  {p}" for p in problems)
        else:
            status = 0
    except SetupError as e:
        status, message = 2, f"classroom check: {e}"
    except CheckFailed as e:
        message = f"classroom check FAILED: {e}"
    except KeyboardInterrupt as e:
        message = f"classroom check interrupted ({e or 'Ctrl-C'}); cleaned up"
    except Exception as e:  # the room is removed whatever happened; say what
        message = f"classroom check FAILED: {type(e).__name__}: {shorten(str(e), 400)}"
    finally:
        logs = room.root / "hub" / "jupyterhub.log"
        if status and logs.exists():  # the class folder goes: its hub's log stays in --out
            args.out.mkdir(parents=True, exist_ok=True)
            shutil.copy(logs, args.out / logs.name)
            if status == 1:  # (a setup error's one line names it already)
                message += f"\n(the hub's log, the users' servers' too: {args.out / logs.name})"
        left = room.remove() + leftovers(room)
    if left:
        status = status or 1
        message += "\nleft behind: " + "; ".join(left)
    if status:
        print(message, file=sys.stderr)
        return status
    order = " / ".join(f"{scores[s]:.1f}" for s in STUDENTS)
    print(f"classroom: 1 instructor + {len(STUDENTS)} students via JupyterHub {room.hub_version}; "
          f"release, fetch, submit, collect, autograde, feedback ok; scores {order} "
          f"({', '.join(STUDENTS.values())}); {'; '.join(notes)} "
          f"({args.out / 'lab.png'}); {time.monotonic() - started:.0f} s")
    return 0

if __name__ == "__main__":
    sys.exit(main())
