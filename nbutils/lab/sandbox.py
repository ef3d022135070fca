"""The grader's operating-system sandbox: bubblewrap around every process that runs a
learner's code (the answers' process and the kernel that executes the notebook).

`start` runs a command inside a sandbox of its own and hands back its process (stdin and
stdout are pipes, stderr is discarded). Inside:

- no network (a network namespace of its own: only its own loopback);
- its own PID namespace (``--unshare-pid --die-with-parent``): when the sandbox's process
  ends, or the grader does, every process started in it ends too;
- a filesystem of its own: ``/usr`` (with ``/bin``, ``/lib``...), the Python environment
  and nbutils, read-only; a minimal ``/etc`` (written here: ``passwd`` and ``group`` with
  one user, ``hosts``; the host's ``ld.so.cache``, ``localtime`` and ``fonts``); ``/proc``
  of its own PID namespace and a minimal ``/dev``; a private ``/tmp`` (a tmpfs of bounded
  size) that is the only writable place, holding the working folder ``/tmp/work`` and
  ``HOME`` ``/tmp/home``. Nothing else of the host: not the grader's home, working folder,
  seed, gradebook, notebook folder or other submissions;
- for the answers' process (``withhold=True``), nbutils' graded modules are replaced by
  copies whose graded functions only raise (and their ``__pycache__`` by an empty folder),
  so no file the answers can read holds a reference implementation, however it is loaded;
- an environment of its own (``--clearenv``; nothing of the grader's, e.g. the seed);
- limits (`Limits`), set by a wrapper inside before the command runs: CPU seconds, address
  space and file size per process, and the number of processes and threads; the learner's
  code runs as a user id of its own (a fresh one per sandbox, no capabilities,
  ``no_new_privs``), which is what makes the process limit count only the sandbox's own;
- a seccomp filter (x86-64 and arm64) refusing new user namespaces, so nothing inside can
  mount a filesystem or gain capabilities in a namespace of its own.

`probe` says why the sandbox cannot start (no bubblewrap, no namespaces), or None.
``start(..., sandboxed=False)`` runs the same command with the same limits and a fresh
working folder but none of the isolation: what the grader's ``--no-sandbox`` does.
"""

from __future__ import annotations

import ast
import contextlib
import json
import os
import platform
import secrets
import shutil
import struct
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

BWRAP = "bwrap"  # the bubblewrap command (Debian's `bubblewrap`)
TMP, WORK, HOME = "/tmp", "/tmp/work", "/tmp/home"
USER = "learner"
UIDS = (1_800_000_000, 1_900_000_000)  # the learner's code runs as one of these (grader: root)
MiB, GiB = 2**20, 2**30
PROBE_S = 60


@dataclass(frozen=True)
class Limits:
    """What a sandbox's processes may use: ``cpu_s`` CPU seconds, ``memory`` bytes of
    address space and ``file_size`` bytes per file, each per process; ``processes``
    processes and threads of the sandbox's user; ``tmp_size`` bytes in ``/tmp``."""

    cpu_s: int
    memory: int
    file_size: int
    processes: int
    tmp_size: int


def answers_limits(cpu_s: int) -> Limits:
    """The answers' process: TensorFlow and tiny cases (about 2 GiB of address space)."""
    return Limits(cpu_s=cpu_s, memory=6 * GiB, file_size=16 * MiB,
                  processes=64 + 4 * (os.cpu_count() or 1), tmp_size=64 * MiB)


def kernel_limits(cpu_s: int) -> Limits:
    """The notebook's kernel: the real networks at the preset's sizes."""
    return Limits(cpu_s=cpu_s, memory=16 * GiB, file_size=256 * MiB,
                  processes=128 + 8 * (os.cpu_count() or 1), tmp_size=512 * MiB)


# Runs first inside the sandbox (python -I -S -c WRAPPER CONFIG COMMAND...): the limits,
# then the learner's user id (when the grader is root), the folders, and the command.
WRAPPER = """
import json, os, resource, sys
config = json.loads(sys.argv[1])
for name, value in config["rlimits"].items():
    resource.setrlimit(getattr(resource, name), (value, value))
uid = config["uid"]
if uid is not None:
    os.setgroups([])
    os.setresgid(uid, uid, uid)
    os.setresuid(uid, uid, uid)
for folder in (config["work"], config["home"]):
    os.makedirs(folder, exist_ok=True)
os.chdir(config["work"])
os.execve(sys.argv[2], sys.argv[2:], config["env"])
"""


def _rlimits(limits: Limits, uid: int | None) -> dict[str, int]:
    processes = limits.processes
    if uid is None and os.geteuid() != 0:  # counted over all of this user's processes
        processes += _processes_of(os.geteuid())
    return {"RLIMIT_CPU": limits.cpu_s, "RLIMIT_AS": limits.memory,
            "RLIMIT_FSIZE": limits.file_size, "RLIMIT_NPROC": processes, "RLIMIT_CORE": 0}


def _processes_of(uid: int) -> int:
    """How many processes and threads ``uid`` runs now."""
    count = 0
    for entry in Path("/proc").iterdir():
        with contextlib.suppress(OSError):
            if entry.name.isdigit() and entry.stat().st_uid == uid:
                count += len(os.listdir(entry / "task"))
    return count


# ---------------------------------------------------------------- seccomp

_ARCHES = {  # audit arch, clone, unshare, clone3
    "x86_64": (0xC000003E, 56, 272, 435),
    "aarch64": (0xC00000B7, 220, 97, 435),
}
CLONE_NEWUSER = 0x10000000


def seccomp_program(machine: str | None = None) -> bytes | None:
    """A classic BPF seccomp filter: clone/unshare with CLONE_NEWUSER fail with EPERM,
    clone3 with ENOSYS (its flags cannot be read; the C library falls back to clone), other
    architectures' and x32 system calls with EPERM; everything else is allowed. None for a
    machine it does not know."""
    arch = _ARCHES.get(machine or platform.machine())
    if arch is None:
        return None
    audit_arch, nr_clone, nr_unshare, nr_clone3 = arch
    ld, jeq, jge, jset, ret = 0x20, 0x15, 0x35, 0x45, 0x06
    allow, errno = 0x7FFF0000, 0x00050000
    program = [
        (ld, 0, 0, 4),                   # 0: the architecture
        (jeq, 0, 8, audit_arch),         # 1: not ours -> 10 (deny)
        (ld, 0, 0, 0),                   # 2: the system call's number
        (jge, 6, 0, 0x40000000),         # 3: x32 -> 10 (deny)
        (jeq, 6, 0, nr_clone3),          # 4: -> 11 (ENOSYS)
        (jeq, 1, 0, nr_unshare),         # 5: -> 7 (its flags)
        (jeq, 0, 2, nr_clone),           # 6: -> 7, else -> 9 (allow)
        (ld, 0, 0, 16),                  # 7: the first argument's low 32 bits: the flags
        (jset, 1, 0, CLONE_NEWUSER),     # 8: a new user namespace -> 10 (deny)
        (ret, 0, 0, allow),              # 9
        (ret, 0, 0, errno | 1),          # 10: EPERM
        (ret, 0, 0, errno | 38),         # 11: ENOSYS
    ]
    return b"".join(struct.pack("=HBBI", *insn) for insn in program)


# ---------------------------------------------------------------- what the sandbox sees

def nbutils_dir() -> Path:
    """The folder of the nbutils package in use (resolved)."""
    import nbutils

    return Path(nbutils.__file__).resolve().parent


def python_paths() -> list[Path]:
    """The folders of this Python environment: its prefixes and package folders (never the
    current folder, nor anything the grader put on sys.path by hand)."""
    paths = {Path(sys.prefix), Path(sys.base_prefix), Path(sys.executable).resolve().parent}
    for entry in sys.path:
        if entry and Path(entry).is_dir() and Path(entry).name in ("site-packages",
                                                                  "dist-packages"):
            paths.add(Path(entry))
    paths.add(nbutils_dir())
    resolved = sorted({p.resolve() for p in paths if p.exists()})
    return [p for p in resolved if not any(q != p and q in p.parents for q in resolved)]


def withheld_source(source: str, module: str, names: Sequence[str]) -> str:
    """``source`` with the body of each top-level function in ``names`` replaced by one
    that raises the checks' "reference withheld" error (its docstring kept)."""
    from nbutils.lab.checks.core import WITHHELD

    tree = ast.parse(source)
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name in names:
            doc = ast.get_docstring(node, clean=False)
            message = ast.Constant(WITHHELD + f"{module}.{node.name}")
            node.body = ([ast.Expr(ast.Constant(doc))] if doc is not None else []) + [
                ast.Raise(ast.Call(ast.Name("RuntimeError", ast.Load()), [message], []))]
    return ast.unparse(ast.fix_missing_locations(tree)) + "\n"


def _withheld_files(folder: Path) -> list[tuple[Path, Path]]:
    """(file written in ``folder``, path it covers) for each graded module, and an empty
    folder over each of their ``__pycache__``."""
    import importlib.util

    from nbutils.lab.checks import GRADED

    covers = []
    empty = folder / "empty"
    empty.mkdir(mode=0o755)
    by_module: dict[str, list[str]] = {}
    for name, module in GRADED.items():
        by_module.setdefault(module, []).append(name)
    caches = set()
    for i, (module, names) in enumerate(sorted(by_module.items())):
        spec = importlib.util.find_spec(module)  # its file, without importing it
        path = Path(spec.origin if spec and spec.origin else "").resolve()
        stub = folder / f"withheld_{i}.py"
        stub.write_text(withheld_source(path.read_text(), module, names))
        stub.chmod(0o644)
        covers.append((stub, path))
        if (path.parent / "__pycache__").is_dir():
            caches.add(path.parent / "__pycache__")
    return covers + [(empty, cache) for cache in sorted(caches)]


def _etc_files(folder: Path, uid: int) -> dict[str, Path]:
    etc = folder / "etc"
    etc.mkdir(mode=0o755)
    files = {"passwd": f"root:x:0:0::/nonexistent:/usr/sbin/nologin\n"
                       f"{USER}:x:{uid}:{uid}::{HOME}:/bin/sh\n",
             "group": f"root:x:0:\n{USER}:x:{uid}:\n",
             "hosts": "127.0.0.1 localhost\n::1 localhost\n",
             "nsswitch.conf": "passwd: files\ngroup: files\nhosts: files\n"}
    for name, text in files.items():
        (etc / name).write_text(text)
        (etc / name).chmod(0o644)
    return {f"/etc/{name}": etc / name for name in files}


def _dirs(args: list[str], made: set[str], path: Path) -> None:
    """--dir for each folder above ``path`` not made yet (mode 0755: bubblewrap's own are
    not readable by the learner's user)."""
    for parent in reversed(path.parents):
        if str(parent) not in made and parent != Path("/"):
            made.add(str(parent))
            args += ["--perms", "0755", "--dir", str(parent)]


def bwrap_args(folder: Path, uid: int | None, limits: Limits, *, withhold: bool,
               read_only: Sequence[Path], seccomp_fd: int | None) -> list[str]:
    """The bubblewrap arguments (up to and excluding the command) of one sandbox."""
    root = uid is not None
    args = [BWRAP, "--unshare-ipc", "--unshare-pid", "--unshare-net", "--unshare-uts",
            "--unshare-cgroup-try", "--die-with-parent", "--new-session",
            "--hostname", "sandbox"]
    if root:  # the wrapper drops to the learner's uid, then every capability is gone
        args += ["--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID"]
    else:
        args += ["--unshare-user", "--disable-userns"]
    if seccomp_fd is not None:
        args += ["--seccomp", str(seccomp_fd)]
    args += ["--ro-bind", "/usr", "/usr"]
    for top in ("bin", "sbin", "lib", "lib32", "lib64", "libx32"):
        host = Path("/") / top
        if host.is_symlink():
            args += ["--symlink", os.readlink(host), str(host)]
        elif host.is_dir():
            args += ["--ro-bind", str(host), str(host)]
    args += ["--dev", "/dev", "--remount-ro", "/dev", "--proc", "/proc",
             "--size", str(limits.tmp_size), "--perms", "1777", "--tmpfs", TMP]
    made = {TMP}
    for path in [*python_paths(), *read_only]:
        _dirs(args, made, path)
        args += ["--ro-bind", str(path), str(path)]
    if withhold:
        for stub, path in _withheld_files(folder):
            args += ["--ro-bind", str(stub), str(path)]
    args += ["--perms", "0755", "--dir", "/etc"]
    for dest, source in _etc_files(folder, uid if root else os.getuid()).items():
        args += ["--ro-bind", str(source), dest]
    for name in ("ld.so.cache", "localtime", "fonts"):
        args += ["--ro-bind-try", f"/etc/{name}", f"/etc/{name}"]
    args += ["--remount-ro", "/", "--clearenv", "--chdir", "/"]
    return args


def environment(extra: Mapping[str, str] | None = None, work: str = WORK, home: str = HOME
                ) -> dict[str, str]:
    """The sandbox's whole environment (nothing is inherited from the grader's)."""
    env = {"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin", "HOME": home,
           "TMPDIR": str(Path(work).parent), "LANG": "C.UTF-8", "USER": USER,
           "LOGNAME": USER, "PYTHONNOUSERSITE": "1", "NBUTILS_OUTPUT_DIR": f"{work}/outputs"}
    return {**env, **(extra or {})}


@contextlib.contextmanager
def start(command: Sequence[str], limits: Limits, *, sandboxed: bool = True,
          withhold: bool = False, read_only: Sequence[Path] = (),
          env: Mapping[str, str] | None = None) -> Iterator[subprocess.Popen]:
    """Run ``command`` (an absolute executable first) in a sandbox of its own; yield its
    process (stdin, stdout: pipes); on leaving, the process and all it started are ended
    and nothing of the sandbox remains. ``withhold``: nbutils' references withheld in its
    files; ``read_only``: more host folders it sees; ``env``: more environment variables.
    ``sandboxed=False``: no isolation, only the limits and a fresh working folder."""
    with tempfile.TemporaryDirectory(prefix="nbutils-sandbox-") as host:
        folder = Path(host)
        seccomp_fd = None
        if sandboxed:
            uid = secrets.randbelow(UIDS[1] - UIDS[0]) + UIDS[0] if os.geteuid() == 0 else None
            program = seccomp_program()
            if program is not None:
                seccomp_fd = os.memfd_create("nbutils-seccomp", 0)
                os.write(seccomp_fd, program)
                os.lseek(seccomp_fd, 0, os.SEEK_SET)
            work, home = WORK, HOME
            prefix = bwrap_args(folder, uid, limits, withhold=withhold, read_only=read_only,
                                seccomp_fd=seccomp_fd)
        else:
            uid, prefix = None, []
            work, home = str(folder / "tmp" / "work"), str(folder / "tmp" / "home")
        config = {"rlimits": _rlimits(limits, uid), "uid": uid, "work": work, "home": home,
                  "env": environment(env, work, home)}
        argv = [*prefix, sys.executable, "-I", "-S", "-c", WRAPPER, json.dumps(config),
                *command]
        try:
            process = subprocess.Popen(
                argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                pass_fds=() if seccomp_fd is None else (seccomp_fd,), env={}, cwd=host,
                start_new_session=not sandboxed)
        finally:
            if seccomp_fd is not None:
                os.close(seccomp_fd)
        with process:
            try:
                yield process
            finally:
                _end(process, sandboxed)


def _end(process: subprocess.Popen, sandboxed: bool) -> None:
    """End the process and everything it started (its PID namespace, or its session)."""
    if not sandboxed:
        with contextlib.suppress(OSError):
            os.killpg(process.pid, 9)
    process.kill()
    process.wait()


def probe() -> str | None:
    """Why the sandbox cannot start here (bubblewrap missing, no namespaces, the Python
    environment unreadable inside), or None when it starts."""
    if shutil.which(BWRAP) is None:
        return f"bubblewrap ({BWRAP}) is not installed (Debian: apt-get install bubblewrap)"
    limits = answers_limits(PROBE_S)
    try:
        with start([sys.executable, "-I", "-c", "import nbutils.lab.checks; print('ok')"],
                   limits, withhold=True) as process:
            out, _ = process.communicate(timeout=PROBE_S)
            ok = out.strip() == b"ok"
    except (OSError, subprocess.SubprocessError) as err:
        return f"{BWRAP} could not be run: {err}"
    if ok:
        return None
    # Again, to read bubblewrap's own message (the sandbox's stderr is never read).
    uid = UIDS[0] if os.geteuid() == 0 else None
    with tempfile.TemporaryDirectory(prefix="nbutils-sandbox-") as host:
        args = bwrap_args(Path(host), uid, limits, withhold=False, read_only=(),
                          seccomp_fd=None)
        try:
            done = subprocess.run([*args, "/usr/bin/true"], capture_output=True, timeout=PROBE_S,
                                  env={})
        except (OSError, subprocess.SubprocessError) as err:
            return f"{BWRAP} could not be run: {err}"
    message = done.stderr.decode(errors="replace").strip().splitlines()
    if done.returncode != 0:
        return f"{BWRAP} failed: {message[-1] if message else f'exit status {done.returncode}'}"
    return "Python and nbutils cannot be imported inside the sandbox (are their files readable " \
           "by every user?)"


