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
3. The gradebook (full marks, 0, 0) and the feedback files (the checks' messages, the import
   named) are read; the students' kernels report the shared cache; nothing was written to it.
4. A browser (Debian's chromium, driven by Playwright) logs in as a student on the Hub's
   login page, opens the fetched notebook in JupyterLab, runs the first exercise's check
   cell, reads its output, and opens nbgrader's Assignments panel. Screenshots: ``--out``.

Exit 0 when all holds; 1 when something is wrong (one line per problem); 2 when a component
cannot start (one line naming it and what to do). Nothing is left behind in any case.
"""

from __future__ import annotations

import argparse
import contextlib
import grp
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
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nbformat

sys.path.insert(0, str(Path(__file__).resolve().parent))
from browser_check import LAB_SETTINGS, NO_CHROMIUM, Deadline, free_port, shorten  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / "docs" / "classroom"
PROXY = ROOT / "tools" / "classroom" / "node_modules" / ".bin" / "configurable-http-proxy"
SERVER_REQUIREMENTS = ROOT / "tools" / "classroom" / "requirements.txt"
NOTEBOOK = ROOT / "notebooks" / "face_recognition.py"
ASSIGNMENT = NOTEBOOK.stem
COURSE = "nbutils"
INSTRUCTOR = "nbc-instructor"
# The three students and what each does with the release before submitting it.
STUDENTS = {"nbc-ada": "solutions", "nbc-ben": "untouched", "nbc-cy": "imports"}
EXPECTED_SCORE = {"solutions": 1.0, "untouched": 0.0, "imports": 0.0}
ACCOUNT_PREFIX = "nbc-"
CACHE_MARK = "classroom check, cache_dir:"


class SetupError(Exception):
    """A component could not start: one line naming it and what to do (exit 2)."""


class CheckFailed(Exception):
    """The classroom did not behave (exit 1)."""


def one_line(text: str, width: int = 300) -> str:
    return shorten(text, width)


def run(command: list[str], timeout: float, what: str, **kwargs: Any) -> str:
    """Run ``command``; its output, or SetupError naming ``what`` with the output's tail."""
    try:
        kwargs.setdefault("stdin", None if "input" in kwargs else subprocess.DEVNULL)
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout,
                              **kwargs)
    except subprocess.TimeoutExpired:
        raise SetupError(f"{what}: still running after {timeout:.0f} s") from None
    except OSError as e:
        raise SetupError(f"{what}: {e}") from None
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        raise SetupError(f"{what} failed (exit {done.returncode}): {one_line(' | '.join(tail))}")
    return done.stdout


# ---------------------------------------------------------------------------------------
# The class folder, its accounts and venvs


@dataclass
class Classroom:
    """The class folder (``root``), its accounts, and everything started in it."""

    root: Path
    deadline: Deadline
    log: Path
    accounts: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)  # what the class's Python needs
    hub_version: str = ""
    processes: list[subprocess.Popen] = field(default_factory=list)

    @property
    def server_venv(self) -> Path:
        return self.root / "server-venv"

    @property
    def kernel_venv(self) -> Path:
        return self.root / "kernel-venv"

    @property
    def cache(self) -> Path:
        return self.root / "cache"

    def home(self, user: str) -> Path:
        return self.root / "home" / user

    def add_account(self, user: str, password: str) -> None:
        """A Unix account with its home in the class folder and ``password`` (for PAM)."""
        with contextlib.suppress(KeyError):
            pwd.getpwnam(user)
            raise SetupError(f"account {user} exists already (left by an earlier run?): "
                             f"remove it with `userdel -r {user}`, then run again")
        run(["useradd", "--create-home", "--home-dir", str(self.home(user)), "--shell",
             "/bin/bash", "--user-group", user], 30, f"useradd {user}")
        self.accounts.append(user)
        run(["chpasswd"], 30, f"chpasswd for {user}", input=f"{user}:{password}\n")

    def as_user(self, user: str, path: Path, text: str, mode: int = 0o644) -> None:
        """Write ``text`` to ``path`` (under ``user``'s home), owned by ``user``."""
        entry = pwd.getpwnam(user)
        home = self.home(user)
        for folder in reversed([p for p in path.parents if home in p.parents or p == home]):
            if not folder.exists():
                folder.mkdir()
                os.chown(folder, entry.pw_uid, entry.pw_gid)
        path.write_text(text)
        path.chmod(mode)
        os.chown(path, entry.pw_uid, entry.pw_gid)

    def remove(self) -> list[str]:
        """Stop every process of the class's accounts, remove the accounts and the folder;
        what could not be cleaned up."""
        import psutil

        left = []
        for proc in self.processes:
            stop_tree(proc)
        uids = set()
        for user in self.accounts:
            with contextlib.suppress(KeyError):
                uids.add(pwd.getpwnam(user).pw_uid)
        for _ in range(3):
            mine = [p for p in psutil.process_iter(["uids"]) if p.info["uids"]
                    and p.info["uids"].real in uids]
            if not mine:
                break
            for p in mine:
                with contextlib.suppress(psutil.NoSuchProcess):
                    p.kill()
            psutil.wait_procs(mine, timeout=5)
        for shared in (Path("/tmp"), Path("/var/tmp"), Path("/dev/shm")):  # their files there
            with contextlib.suppress(OSError):
                for entry in shared.iterdir():
                    with contextlib.suppress(OSError):
                        if entry.lstat().st_uid in uids and entry != self.root:
                            if entry.is_dir() and not entry.is_symlink():
                                shutil.rmtree(entry, ignore_errors=True)
                            else:
                                entry.unlink()
        for user in self.accounts:
            done = subprocess.run(["userdel", "--remove", user], capture_output=True, text=True)
            with contextlib.suppress(KeyError):
                grp.getgrnam(user)
                subprocess.run(["groupdel", user], capture_output=True)
            with contextlib.suppress(KeyError):
                pwd.getpwnam(user)
                left.append(f"account {user} ({done.stderr.strip()})")
        shutil.rmtree(self.root, ignore_errors=True)
        if self.root.exists():
            left.append(f"folder {self.root}")
        return left


def stop_tree(proc: subprocess.Popen, grace: float = 15) -> None:
    """SIGTERM ``proc`` (leader of its own session: the hub stops its proxy and the users'
    servers itself), then SIGKILL its group and anything it started that is still alive."""
    import psutil

    with contextlib.suppress(psutil.NoSuchProcess):
        children = psutil.Process(proc.pid).children(recursive=True)
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=grace)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    for child in locals().get("children", []):
        with contextlib.suppress(psutil.NoSuchProcess):
            child.kill()
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=5)


def class_python(room: Classroom, student: str) -> tuple[str, dict[str, str]]:
    """A Python of this project's version that every account can run, and the environment it
    needs: this one's base interpreter where the students can run it, else a copy of its
    installation (without its site-packages) in the class folder, which finds its
    libpython through LD_LIBRARY_PATH (a pyenv build under /root links to its own path)."""
    exe = Path(sys._base_executable).resolve()  # noqa: SLF001 (the venv's interpreter)
    if runnable(student, str(exe), {}):
        return str(exe), {}
    copy = room.root / "python"

    def link(src: str, dst: str) -> None:  # hard links where possible: no space, no time
        try:
            os.link(src, dst)
        except OSError:
            shutil.copy2(src, dst)

    shutil.copytree(sys.base_prefix, copy, symlinks=True, copy_function=link,
                    ignore=shutil.ignore_patterns("site-packages", "test", "idlelib"))
    python = str(copy / "bin" / exe.name)
    env = {"LD_LIBRARY_PATH": str(copy / "lib")}
    if not runnable(student, python, env):
        raise SetupError(f"no Python {sys.version_info.major}.{sys.version_info.minor} that "
                         f"the students' accounts can run: {exe} is not theirs to run, nor "
                         f"its copy {python}; install one system-wide (a lab does)")
    return python, env


def runnable(user: str, python: str, env: dict[str, str]) -> bool:
    """Whether ``user`` can run ``python`` (this project's version, with venv)."""
    want = "{}.{}".format(*sys.version_info[:2])
    done = subprocess.run(["runuser", "-u", user, "--", "env", *[f"{k}={v}" for k, v in
                                                               env.items()],
                           python, "-c", "import sys, venv; print('%d.%d' % sys.version_info[:2])"],
                          capture_output=True, text=True, timeout=60)
    return done.returncode == 0 and done.stdout.strip() == want


def build_venvs(room: Classroom, python: str, env: dict[str, str]) -> dict[str, float]:
    """The servers' venv and the kernels' venv (nbutils' wheel), built at once; seconds."""
    dist = room.root / "dist"
    started = time.monotonic()
    run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
         "-w", str(dist), str(ROOT)], room.deadline.bound(300), "building nbutils' wheel")
    wheel = next(dist.glob("nbutils-*.whl"))
    jobs = {
        "servers": (room.server_venv, ["-r", str(SERVER_REQUIREMENTS)]),
        "kernels": (room.kernel_venv, ["-c", str(ROOT / "constraints.txt"),
                                       f"{wheel}[notebooks,ann,milvus]"]),
    }
    procs = {}
    env = dict(os.environ, **env)
    env.pop("VIRTUAL_ENV", None)
    for name, (venv, args) in jobs.items():
        run([python, "-m", "venv", str(venv)], 120, f"python -m venv {venv}", env=env)
        procs[name] = subprocess.Popen(
            [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet",
             "--disable-pip-version-check", *args], env=env,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    room.processes += procs.values()  # stopped on the way out, whatever happens
    times = {}
    for name, proc in procs.items():
        try:
            output, _ = proc.communicate(timeout=room.deadline.bound(900))
        except subprocess.TimeoutExpired:
            raise SetupError(f"pip install into the {name}' venv ran past the check's time "
                             "limit: a slow package registry? --timeout longer") from None
        if proc.returncode != 0:
            lines = [line for line in output.strip().splitlines() if "ERROR" in line]
            tail = " | ".join((lines or output.strip().splitlines())[-2:])
            raise SetupError(f"pip install into the {name}' venv failed: {one_line(tail)}")
        times[name] = time.monotonic() - started
    for venv in (room.server_venv, room.kernel_venv):  # every account reads them
        subprocess.run(["chmod", "-R", "a+rX", str(venv)], check=True)
    return times


def write_class_config(room: Classroom) -> None:
    """CLASSROOM_ROOT/jupyter: the kernelspec (the kernels' venv) and nbgrader's config."""
    jupyter = room.root / "jupyter"
    kernel = jupyter / "kernels" / "python3"
    kernel.mkdir(parents=True)
    (kernel / "kernel.json").write_text(json.dumps({
        "argv": [str(room.kernel_venv / "bin" / "python"), "-m", "ipykernel_launcher",
                 "-f", "{connection_file}"],
        "display_name": "Python 3 (nbutils)", "language": "python", "env": room.env},
        indent=1))
    shutil.copy(CONFIG / "nbgrader_config.py", jupyter / "nbgrader_config.py")
    exchange = room.root / "exchange"
    exchange.mkdir()
    exchange.chmod(0o777)  # nbgrader's exchange: every account writes; nbgrader's modes inside
    room.cache.mkdir()
    hub = room.root / "hub"
    hub.mkdir(mode=0o700)


def write_user_config(room: Classroom, user: str, role: str) -> None:
    """The user's own Jupyter settings: the instructor's course folder; students without the
    instructor's extensions (as ``jupyter labextension disable --level=user`` would)."""
    home = room.home(user)
    for name, values in LAB_SETTINGS.items():  # no news pop-up, no autosave, no windowing
        room.as_user(user, home / ".jupyter" / "lab" / "user-settings" / name,
                     json.dumps(values))
    if role == "instructor":
        course = home / "course"
        room.as_user(user, home / ".jupyter" / "nbgrader_config.py", (
            "c = get_config()  # noqa: F821\n"
            f"c.CourseDirectory.root = {str(course)!r}\n"
            "# what `python -m nbutils.lab.exercises --format nbgrader` writes there\n"
            f"load_subconfig({str(course / 'nbgrader_config.py')!r})  # noqa: F821\n"))
        return
    room.as_user(user, home / ".jupyter" / "jupyter_server_config.json", json.dumps(
        {"ServerApp": {"jpserver_extensions": {
            "nbgrader.server_extensions.formgrader": False,
            "nbgrader.server_extensions.validate_assignment": False}}}, indent=1))
    room.as_user(user, home / ".jupyter" / "labconfig" / "page_config.json", json.dumps(
        {"disabledExtensions": {"@jupyter/nbgrader:formgrader": True,
                                "@jupyter/nbgrader:create-assignment": True}}, indent=1))


# ---------------------------------------------------------------------------------------
# The hub, and each user's server through its API


@dataclass
class Hub:
    url: str  # the proxy's public URL
    token: str  # the classroom-check service's
    log: Path
    proc: subprocess.Popen
    keep: Path | None = None  # where its log is copied when something fails

    def request(self, method: str, path: str, token: str | None = None, timeout: float = 30,
                **kwargs: Any) -> Any:
        import requests

        if self.proc.poll() is not None:
            raise CheckFailed(f"JupyterHub exited (status {self.proc.returncode}); its log: "
                              f"{self.log}")
        response = requests.request(method, f"{self.url}{path}", timeout=timeout, headers={
            "Authorization": f"token {token or self.token}"}, **kwargs)
        if response.status_code >= 400:
            raise CheckFailed(f"{method} {path}: HTTP {response.status_code}: "
                              f"{one_line(response.text, 400)}")
        return response.json() if response.content and "json" in response.headers.get(
            "content-type", "") else response.text


def start_hub(room: Classroom, python_venv: Path, args: Any) -> Hub:
    """JupyterHub (root, PAM, LocalProcessSpawner) and its proxy on 127.0.0.1, up: the public
    port ``args.port`` (else a free one), the hub's and the proxy's APIs on free ones."""
    import requests

    timeout = args.start_timeout
    port, hub_port, api_port = args.port or free_port(), free_port(), free_port()
    token = secrets.token_hex(32)
    env = dict(
        os.environ, CLASSROOM_ROOT=str(room.root), CLASSROOM_VENV=str(python_venv),
        CLASSROOM_INSTRUCTOR=INSTRUCTOR, CLASSROOM_STUDENTS=",".join(STUDENTS),
        CLASSROOM_COURSE=COURSE, CLASSROOM_URL=f"http://127.0.0.1:{port}",
        CLASSROOM_HUB_PORT=str(hub_port), CLASSROOM_PROXY_API_PORT=str(api_port),
        CLASSROOM_PROXY=str(args.proxy), CLASSROOM_CHECK_TOKEN=token,
        CLASSROOM_START_TIMEOUT=str(int(timeout)), **room.env,
        PATH=f"{python_venv / 'bin'}:/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin")
    env.pop("VIRTUAL_ENV", None)
    log = room.root / "hub" / "jupyterhub.log"
    with open(log, "w") as out:
        proc = subprocess.Popen([str(python_venv / "bin" / "jupyterhub"), "-f",
                                 str(CONFIG / "jupyterhub_config.py")],
                                cwd=room.root / "hub", env=env, stdout=out,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)
    room.processes.append(proc)
    hub = Hub(f"http://127.0.0.1:{port}", token, log, proc, args.out)
    end = time.monotonic() + room.deadline.bound(timeout)
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise SetupError(f"JupyterHub exited at start (status {proc.returncode}): "
                             f"{hub_problem(log, args.out)}")
        with contextlib.suppress(requests.RequestException):
            if requests.get(f"{hub.url}/hub/api/", timeout=5).status_code == 200:
                return hub
        time.sleep(0.5)
    raise SetupError(f"JupyterHub did not answer on {hub.url} within {timeout:.0f} s: "
                     f"{hub_problem(log, args.out)}")


def hub_problem(log: Path, keep: Path | None = None) -> str:
    """What the hub's log says went wrong, in a line: the proxy's failure first, else its
    last error line; the log is copied to ``keep`` (the class folder does not stay)."""
    lines = log.read_text(errors="replace").splitlines() if log.exists() else []
    where = log
    if keep is not None and log.exists():
        keep.mkdir(parents=True, exist_ok=True)
        where = keep / log.name
        shutil.copy(log, where)
    proxy = [line for line in lines if "Proxy failed" in line or "Proxy stopped" in line]
    if proxy:
        said = proxy[-1][proxy[-1].index("Proxy"):]
        return (f"the proxy did not start ({one_line(said, 120)}): check --proxy (npm ci "
                f"--prefix tools/classroom) and that its ports are free; log: {where}")
    errors = [line for line in lines if line.startswith(("[E", "[C")) or "Error:" in line]
    return f"{one_line(errors[-1], 250) if errors else 'no error line'}; log: {where}"


@dataclass
class Server:
    """One user's single-user server, driven with the user's own token."""

    hub: Hub
    user: str
    token: str

    @property
    def prefix(self) -> str:
        return f"/user/{self.user}"

    def api(self, method: str, path: str, timeout: float = 60, **kwargs: Any) -> Any:
        return self.hub.request(method, f"{self.prefix}{path}", self.token, timeout, **kwargs)

    def nbgrader(self, action: str, timeout: float = 300, **args: str) -> dict:
        """An nbgrader action of the assignment list (fetch, submit, fetch_feedback) or the
        formgrader (its API paths); its JSON reply, which must say success."""
        if action in ("fetch", "submit", "fetch_feedback"):
            reply = self.api("POST", f"/assignments/{action}", timeout, data=args)
        else:
            reply = self.api("POST", f"/formgrader/api/{action}", timeout)
        reply = json.loads(reply) if isinstance(reply, str) else reply
        if not reply.get("success", False):
            said = reply.get("value") or reply.get("error") or reply
            raise CheckFailed(f"{self.user}: nbgrader {action} failed: "
                              f"{one_line(str(said), 500)}")
        return reply

    def contents(self, path: str) -> dict:
        return self.api("GET", f"/api/contents/{path}")

    def put_notebook(self, path: str, nb: Any) -> None:
        self.api("PUT", f"/api/contents/{path}", json={"type": "notebook", "format": "json",
                                                       "content": nb})

    def execute(self, code: list[str], path: str = "", timeout: float = 600
                ) -> list[list[dict]]:
        """Run each of ``code`` in a new kernel of this server (its working folder ``path``'s
        folder, as for a notebook there); each one's outputs (nbformat), errors included."""
        import websocket

        session = self.api("POST", "/api/sessions", json={
            "path": path or f"check-{uuid.uuid4().hex}.ipynb", "type": "notebook",
            "name": "", "kernel": {"name": "python3"}})
        kernel = session["kernel"]["id"]
        ws_url = self.hub.url.replace("http", "ws", 1)
        try:
            ws = websocket.create_connection(
                f"{ws_url}{self.prefix}/api/kernels/{kernel}/channels",
                header=[f"Authorization: token {self.token}"], timeout=timeout)
            try:
                return [run_cell(ws, source, timeout) for source in code]
            finally:
                ws.close()
        finally:
            with contextlib.suppress(CheckFailed, OSError):
                self.api("DELETE", f"/api/sessions/{session['id']}")


def run_cell(ws: Any, source: str, timeout: float) -> list[dict]:
    """One execute_request over the kernel's websocket; its outputs once the kernel is idle."""
    msg_id = uuid.uuid4().hex
    ws.send(json.dumps({
        "header": {"msg_id": msg_id, "msg_type": "execute_request", "username": "",
                   "session": uuid.uuid4().hex, "version": "5.3", "date": ""},
        "parent_header": {}, "metadata": {}, "channel": "shell", "buffers": [],
        "content": {"code": source, "silent": False, "store_history": True,
                    "user_expressions": {}, "allow_stdin": False, "stop_on_error": False}}))
    outputs, end = [], time.monotonic() + timeout
    while time.monotonic() < end:
        msg = json.loads(ws.recv())
        if msg.get("parent_header", {}).get("msg_id") != msg_id or msg["channel"] != "iopub":
            continue
        kind = msg["msg_type"]
        if kind == "status" and msg["content"]["execution_state"] == "idle":
            return outputs
        if kind in ("stream", "display_data", "execute_result", "error"):
            msg["header"]["msg_type"] = kind
            outputs.append(nbformat.v4.output_from_msg(msg))
        elif kind == "clear_output":
            outputs.clear()
    raise CheckFailed(f"a cell ran past {timeout:.0f} s: {one_line(source, 80)}")


def text_of(outputs: list[dict]) -> str:
    parts = []
    for out in outputs:
        if out["output_type"] == "stream":
            parts.append(out["text"])
        elif out["output_type"] == "error":
            parts.append(f"{out['ename']}: {out['evalue']}")
        elif "text/plain" in out.get("data", {}):
            parts.append(out["data"]["text/plain"])
    return "".join(parts)


def start_server(hub: Hub, user: str, timeout: float) -> Server:
    """The user's own token (made through the Hub's API) and their server, ready."""
    token = hub.request("POST", f"/hub/api/users/{user}/tokens", json={
        "note": "classroom check", "expires_in": 3600})["token"]
    hub.request("POST", f"/hub/api/users/{user}/server", token)
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        model = hub.request("GET", f"/hub/api/users/{user}", token)
        server = model.get("servers", {}).get("")
        if server and server.get("ready"):
            return Server(hub, user, token)
        if not server and not model.get("pending"):
            raise CheckFailed(f"{user}'s server stopped while starting: "
                              f"{hub_problem(hub.log, hub.keep)}")
        time.sleep(1)
    raise CheckFailed(f"{user}'s server was not up within {timeout:.0f} s: "
                      f"{hub_problem(hub.log, hub.keep)}")


# ---------------------------------------------------------------------------------------
# The course's flow


def check_shell(server: Server, code: str, what: str, timeout: float = 900) -> str:
    """Run ``code`` in a kernel of ``server``; what it printed, or CheckFailed if it raised."""
    outputs = server.execute([code], timeout=timeout)[0]
    errors = [o for o in outputs if o["output_type"] == "error"]
    if errors:
        raise CheckFailed(f"{server.user}: {what}: {errors[0]['ename']}: "
                          f"{one_line(errors[0]['evalue'], 400)}")
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
    return found.group(1) if found else f"(not printed: {one_line(text_of(outputs[-1]))})"


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
    hub = start_hub(room, room.server_venv, args)
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
                raise CheckFailed(f"the browser: {one_line(str(e), 300)} "
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
        raise CheckFailed(f"the check cell failed in the browser: {one_line(output, 300)}")
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
        if _exists(user):
            raise SetupError(f"account {user} exists already (left by an earlier run?): "
                             f"remove it with `userdel -r {user}`, then run again")


def leftovers(room: Classroom) -> list[str]:
    """What of the class is still on the machine: processes, accounts, the folder."""
    import psutil

    left = [f"account {u}" for u in room.accounts if _exists(u)]  # those it made
    for p in psutil.process_iter(["username", "cmdline"]):
        with contextlib.suppress(psutil.Error):
            if (p.info["username"] or "").startswith(ACCOUNT_PREFIX) or str(room.root) in " ".join(
                    p.info["cmdline"] or []):
                left.append(f"process {p.pid} ({one_line(' '.join(p.info['cmdline']), 80)})")
    if room.root.exists():
        left.append(f"folder {room.root}")
    return left


def _exists(user: str) -> bool:
    try:
        pwd.getpwnam(user)
        return True
    except KeyError:
        return False


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
        message = f"classroom check FAILED: {type(e).__name__}: {one_line(str(e), 400)}"
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
