"""atomic_write: all or nothing, permissions kept, leftovers of killed writers removed,
errors that name the target; and the only place in nbutils that renames files into place."""

import ast
import errno
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from nbutils._internal.atomic import AtomicWriteError, atomic_write, remove_stale_temporaries

NBUTILS = Path(__file__).resolve().parent.parent / "nbutils"


def leftovers(target: Path) -> list[Path]:
    return sorted(target.parent.glob(f".{target.name}.*"))


def test_writes_new_content_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "sub" / "a.bin"  # the folder is created
    with atomic_write(target) as f:
        f.write(b"first")
    with atomic_write(target) as f:
        f.write(b"second")
    assert target.read_bytes() == b"second"
    assert leftovers(target) == []


def test_failure_keeps_the_old_file_and_cleans_up(tmp_path):
    target = tmp_path / "a.bin"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError, match="boom"):
        with atomic_write(target) as f:
            f.write(b"half of the new")
            raise RuntimeError("boom")
    assert target.read_bytes() == b"old"
    assert leftovers(target) == []


def test_existing_file_keeps_its_permissions(tmp_path):
    target = tmp_path / "a.bin"
    target.write_bytes(b"old")
    target.chmod(0o640)
    with atomic_write(target) as f:
        f.write(b"new")
    assert target.stat().st_mode & 0o777 == 0o640


def test_new_file_gets_the_umask_like_open(tmp_path):
    old = os.umask(0o027)
    try:
        with atomic_write(tmp_path / "new.bin") as f:
            f.write(b"x")
        with open(tmp_path / "plain.bin", "wb") as f:  # the reference: what open() gives
            f.write(b"x")
    finally:
        os.umask(old)
    mode = (tmp_path / "new.bin").stat().st_mode & 0o777
    assert mode == (tmp_path / "plain.bin").stat().st_mode & 0o777 == 0o640


WRITER = textwrap.dedent("""
    import sys, time
    from nbutils._internal.atomic import atomic_write
    with atomic_write(sys.argv[1]) as f:
        f.write(b"x" * 100_000)
        f.flush()
        print("writing", flush=True)
        time.sleep(60)
""")


def start_writer(target: Path) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(target)], stdout=subprocess.PIPE,
                            text=True)
    assert proc.stdout.readline().strip() == "writing"
    return proc


def test_leftover_of_a_killed_writer_is_removed_by_the_next_write(tmp_path):
    target = tmp_path / "db.npz"
    target.write_bytes(b"saved before")
    for _ in range(3):  # interrupted saves: each one clears its predecessor's leftover
        proc = start_writer(target)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert len(leftovers(target)) == 1 and target.read_bytes() == b"saved before"
    with atomic_write(target) as f:
        f.write(b"saved after")
    assert leftovers(target) == [] and target.read_bytes() == b"saved after"


def test_a_live_writers_temporary_is_left_alone(tmp_path):
    target = tmp_path / "db.npz"
    proc = start_writer(target)
    try:
        (theirs,) = leftovers(target)
        assert remove_stale_temporaries(target) == []
        with atomic_write(target) as f:
            f.write(b"mine")
        assert theirs.exists() and target.read_bytes() == b"mine"
    finally:
        proc.kill()
        proc.wait()
    time.sleep(0.05)
    assert remove_stale_temporaries(target) == [theirs]


def test_errors_name_the_target_and_what_to_do(tmp_path):
    target = tmp_path / "people.npz"
    with pytest.raises(AtomicWriteError) as err:
        with atomic_write(target) as f:
            raise OSError(errno.ENOSPC, "No space left on device")
    message = str(err.value)
    assert str(target) in message and "disk is full" in message and ".tmp" not in message
    assert isinstance(err.value, OSError) and err.value.errno == errno.ENOSPC
    assert leftovers(target) == []
    (tmp_path / "a_file").write_text("")
    with pytest.raises(AtomicWriteError, match="a_file/x.npz"):
        with atomic_write(tmp_path / "a_file" / "x.npz") as f:
            f.write(b"x")


def test_atomic_write_is_the_only_writer_that_renames_into_place():
    """No module but nbutils/_internal/atomic.py renames temporary files over a target itself."""
    offenders = []
    for path in NBUTILS.rglob("*.py"):
        if path.name == "atomic.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute) and node.attr in ("replace", "rename", "mkstemp",
                                                                 "NamedTemporaryFile"):
                owner = node.value
                if isinstance(owner, ast.Name) and owner.id in ("os", "tempfile"):
                    offenders.append(f"{path.relative_to(NBUTILS)}:{node.lineno} {node.attr}")
    assert offenders == []
