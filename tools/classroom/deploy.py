"""The class's deployment for tools/classroom_check.py: its folder, its Unix accounts, the
Python every account can run, the servers' and the kernels' venvs, the class's and each
user's Jupyter configuration, and the removal of all of it (`Classroom.remove`)."""

from __future__ import annotations

import contextlib
import grp
import json
import os
import pwd
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from browser_check import LAB_SETTINGS, Deadline, shorten

ROOT = Path(__file__).resolve().parent.parent.parent
CONFIG = ROOT / "docs" / "classroom"  # jupyterhub_config.py, nbgrader_config.py: as shipped
SERVER_REQUIREMENTS = ROOT / "tools" / "classroom" / "requirements.txt"
ACCOUNT_PREFIX = "nbc-"  # the check's accounts: nbc-instructor, nbc-ada, ...


class SetupError(Exception):
    """A component could not start: one line naming it and what to do (exit 2)."""


class CheckFailed(Exception):
    """The classroom did not behave (exit 1)."""


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
        raise SetupError(f"{what} failed (exit {done.returncode}): "
                         f"{shorten(' | '.join(tail), 300)}")
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
            raise SetupError(f"pip install into the {name}' venv failed: {shorten(tail, 300)}")
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


def leftovers(room: Classroom) -> list[str]:
    """What of the class is still on the machine: processes, accounts, the folder."""
    import psutil

    left = [f"account {u}" for u in room.accounts if exists(u)]  # those it made
    for p in psutil.process_iter(["username", "cmdline"]):
        with contextlib.suppress(psutil.Error):
            if (p.info["username"] or "").startswith(ACCOUNT_PREFIX) or str(room.root) in " ".join(
                    p.info["cmdline"] or []):
                left.append(f"process {p.pid} ({shorten(' '.join(p.info['cmdline']), 80)})")
    if room.root.exists():
        left.append(f"folder {room.root}")
    return left


def exists(user: str) -> bool:
    try:
        pwd.getpwnam(user)
        return True
    except KeyError:
        return False
