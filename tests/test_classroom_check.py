"""tools/classroom_check.py's refusals: what is missing or in the way is said in one line,
exit 2, before any account, folder or process is made (the whole check, ~10 min, is
``make classroom-check``)."""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TOOL = ROOT / "tools" / "classroom_check.py"
ACCOUNTS = ("nbc-instructor", "nbc-ada", "nbc-ben", "nbc-cy")


def class_folders() -> set[str]:
    return {p.name for p in Path(tempfile.gettempdir()).glob("nbutils-classroom-*")}


def accounts() -> set[str]:
    return {entry.pw_name for entry in pwd.getpwall()} & set(ACCOUNTS)


def refuse(*args: str) -> str:
    """Run the check with ``args``; it must exit 2 with one line, leaving nothing."""
    folders, users = class_folders(), accounts()
    done = subprocess.run([sys.executable, str(TOOL), *args], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 2, (done.returncode, done.stdout, done.stderr)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("classroom check: "), done.stderr
    assert class_folders() == folders and accounts() == users
    return lines[0]


needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="the check runs as root")


def test_not_root_is_refused() -> None:
    if os.geteuid() == 0:
        if shutil.which("runuser") is None:
            pytest.skip("no runuser")
        done = subprocess.run(["runuser", "-u", "nobody", "--", sys.executable, "-c",
                               "import os; print(os.geteuid())"], capture_output=True)
        if done.returncode != 0:
            pytest.skip("nobody cannot run this Python")
        line = subprocess.run(["runuser", "-u", "nobody", "--", sys.executable, str(TOOL)],
                              capture_output=True, text=True, timeout=120).stderr.strip()
    else:
        line = refuse()
    assert "run as root" in line


@needs_root
def test_missing_browser_is_named(tmp_path: Path) -> None:
    # a proxy that is there (a fresh clone has none before npm ci), so the browser is next
    line = refuse("--chromium", str(tmp_path / "no-chromium"), "--proxy", sys.executable)
    assert "no chromium" in line and "apt-get install -y chromium" in line


@needs_root
def test_missing_proxy_is_named(tmp_path: Path) -> None:
    line = refuse("--proxy", str(tmp_path / "configurable-http-proxy"),
                  "--chromium", sys.executable)
    assert "configurable-http-proxy" in line and "npm ci --prefix tools/classroom" in line


@needs_root
def test_port_in_use_is_named() -> None:
    proxy = ROOT / "tools" / "classroom" / "node_modules" / ".bin" / "configurable-http-proxy"
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        line = refuse("--port", str(port), "--chromium", sys.executable,
                      "--proxy", str(proxy if proxy.exists() else sys.executable))
    assert f"--port {port}: cannot listen" in line


@needs_root
def test_an_account_in_the_way_is_named_and_kept() -> None:
    if shutil.which("useradd") is None or "nbc-ben" in accounts():
        pytest.skip("no useradd, or nbc-ben exists")
    subprocess.run(["useradd", "--no-create-home", "nbc-ben"], check=True)
    try:
        line = refuse("--chromium", sys.executable, "--proxy", sys.executable)
        assert "account nbc-ben exists already" in line and "userdel -r nbc-ben" in line
        assert "nbc-ben" in accounts()  # somebody's account: never removed by the check
    finally:
        subprocess.run(["userdel", "nbc-ben"], check=False)


def load_tool():
    import importlib.util

    sys.path.insert(0, str(TOOL.parent))  # it imports browser_check from its own folder
    spec = importlib.util.spec_from_file_location("classroom_check", TOOL)
    module = importlib.util.module_from_spec(spec)
    sys.modules["classroom_check"] = module  # for its dataclasses
    spec.loader.exec_module(module)
    return module


def test_what_each_student_hands_in() -> None:
    """The three submissions, against the cells written here by hand."""
    from nbformat.v4 import new_code_cell, new_notebook

    tool = load_tool()

    def graded(grade_id: str, source: str) -> object:
        return new_code_cell(source, metadata={"nbgrader": {"grade_id": grade_id,
                                                            "solution": True}})

    solution = ("def verify(x):\n    ### BEGIN SOLUTION\n    return x + 1\n"
                "    ### END SOLUTION")
    source = new_notebook(cells=[new_code_cell("import numpy"), graded("verify", solution)])
    stub = "def verify(x):\n    # YOUR CODE HERE\n    raise NotImplementedError()"
    release = new_notebook(cells=[new_code_cell("import numpy"), graded("verify", stub)])

    bodies = {role: [c.source for c in tool.filled_in(release, source, role).cells]
              for role in ("solutions", "untouched", "imports")}
    assert bodies["solutions"][:2] == ["import numpy", "def verify(x):\n    return x + 1"]
    assert bodies["untouched"][:2] == ["import numpy", stub]
    assert bodies["imports"][:2] == ["import numpy",
                                     "from nbutils.faces.recognition import verify"]
    for cells in bodies.values():  # each reports the cache its kernel reads
        assert cells[2].endswith("cache_dir())") and tool.CACHE_MARK in cells[2]
    assert [c.source for c in release.cells] == ["import numpy", stub]  # not changed
    assert tool.exercises(source) == ["verify"]
