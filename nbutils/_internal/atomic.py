"""One way to write a file so that a crash never leaves half of it: ``atomic_write``.

    with atomic_write("people.npz") as f:   # f: a binary file in the target's folder
        np.savez(f, **arrays)

The bytes go to ``.<name>.<pid>.<random>.tmp`` in the target's folder, are fsynced, given
the target's mode (a new file: ``0o666`` minus the umask, as ``open()`` gives), and renamed
over it; the folder is fsynced too. Readers see the old file or the new one; any failure
leaves the target as it was. A writer holds an ``flock`` on its temporary file, which dies
with it, so the next write removes a ``kill -9``'d writer's leftovers, never a live one's.

``folder_write_problem(folder)`` says, before a long run, why a file could not be written
there: it tries, so it holds for root and read-only or immutable folders too.
"""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

try:  # POSIX: the lock that tells a live writer's temporary file from a dead one's
    import fcntl
except ImportError:  # Windows: leftovers are removed when their writer's pid is gone
    fcntl = None

TMP_SUFFIX = ".tmp"


def _prefix(target: Path) -> str:
    return f".{target.name}."


def _umask() -> int:
    """The process's umask, read without changing it where the platform allows."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)  # elsewhere: set and restore (not thread-safe, but brief)
    os.umask(mask)
    return mask


def _target_mode(target: Path) -> int:
    try:
        return target.stat().st_mode & 0o7777
    except FileNotFoundError:
        return 0o666 & ~_umask()


def _writer_is_dead(tmp: Path) -> bool:
    """True when no live process is writing ``tmp`` (its lock can be taken, or its pid is gone)."""
    if fcntl is not None:
        try:
            fd = os.open(tmp, os.O_RDONLY)
        except OSError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except OSError:
            return False
        finally:
            os.close(fd)  # closing releases the lock we may have taken
    try:
        pid = int(tmp.name[len(_prefix(tmp)):].split(".")[0])
        os.kill(pid, 0)
    except (ValueError, IndexError, ProcessLookupError):
        return True
    except OSError:
        return False
    return False


def remove_stale_temporaries(target: str | os.PathLike) -> list[Path]:
    """Delete the temporary files that killed writers left beside ``target``; returns them."""
    target = Path(target)
    removed = []
    try:
        candidates = list(target.parent.glob(f"{_prefix(target)}*{TMP_SUFFIX}"))
    except OSError:
        return removed
    for tmp in candidates:
        if tmp.is_file() and _writer_is_dead(tmp):
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
                removed.append(tmp)
    return removed


def fsync_folder(folder: Path) -> None:
    """Make a rename in ``folder`` durable (POSIX); a no-op where folders cannot be opened."""
    if not hasattr(os, "O_DIRECTORY"):
        return
    try:
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def nearest_existing(path: Path) -> Path:
    """``path`` or its nearest ancestor that exists (a broken link counts as existing)."""
    for candidate in (path, *path.parents):
        if os.path.lexists(candidate):
            return candidate
    return Path(path.anchor or ".")


_WHY_NOT = {errno.EACCES: "permission denied", errno.EROFS: "read-only file system",
            errno.EPERM: "operation not permitted: the folder may be immutable"}


def folder_write_problem(folder: str | os.PathLike) -> str | None:
    """Why files cannot be written in ``folder``, or in the folders `atomic_write` would
    create to reach it (one phrase naming the path at fault), or None.

    The nearest existing folder is tried by creating and removing an empty file in it.
    Permission bits and ``os.access`` would say yes to root, who bypasses them, but not a
    read-only mount, an immutable folder (``chattr +i``), or a file system such as /sys
    that makes no files; the probe answers for every one of them.
    """
    existing = nearest_existing(Path(folder))
    if not existing.is_dir():
        return f"{existing} is not a folder (a file is in the way)"
    try:
        fd, name = tempfile.mkstemp(dir=existing, prefix=".nbutils-probe.", suffix=TMP_SUFFIX)
    except OSError as err:
        why = _WHY_NOT.get(err.errno, (err.strerror or str(err)).lower())
        return f"cannot write in {existing} ({why})"
    os.close(fd)
    with contextlib.suppress(OSError):
        os.unlink(name)
    try:
        longest = os.pathconf(existing, "PC_NAME_MAX")
    except (OSError, ValueError, AttributeError):  # not POSIX, or not told
        longest = 255
    for part in Path(folder).parts[len(existing.parts):]:  # the folders still to create
        if len(os.fsencode(part)) > longest:
            return f"cannot create {part[:20]}... in {existing} (a name over {longest} bytes)"
    return None


class AtomicWriteError(OSError):
    """Writing a file failed; the message names the target file (not the temporary one).

    ``errno`` is the original error's; ``filename`` is the target. The original error (which
    names the temporary file) is kept as ``__context__`` but not shown in tracebacks.
    """

    def __str__(self) -> str:
        return self.strerror or super().__str__()


def _file_in_the_way(target: Path) -> Path | None:
    """The nearest existing parent of ``target`` that is not a folder, if there is one."""
    for parent in target.parents:
        if os.path.lexists(parent):
            return None if parent.is_dir() else parent
    return None


def _fail(target: Path, err: OSError) -> AtomicWriteError:
    reason = err.strerror or str(err)
    blocker = _file_in_the_way(target) if err.errno in (errno.EEXIST, errno.ENOTDIR) else None
    if blocker is not None:  # mkdir's "File exists" would not say which file, nor why
        reason, hint = (f"{blocker} is a file, not a folder",
                        "choose a path in a folder, or move that file away")
    else:
        hint = {
            errno.ENOENT: "the folder does not exist or was removed while writing",
            errno.EACCES: "you may not write in that folder: choose another path",
            errno.EPERM: "you may not write in that folder: choose another path",
            errno.EROFS: "the file system is read-only: choose a writable folder",
            errno.ENOSPC: "the disk is full: free some space or choose another disk",
            errno.EDQUOT: "your disk quota is exhausted: free some space",
            errno.EISDIR: "the path is a folder: give a file name",
        }.get(err.errno, "check the path and the folder's permissions")
    return AtomicWriteError(err.errno, f"cannot write {target}: {reason} ({hint}); "
                            "the previous file, if any, is unchanged", str(target))


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike) -> Iterator[BinaryIO]:
    """Open a binary file whose content replaces ``path`` only when the block succeeds.

    Parent folders are created. On success the target has the new bytes (fsynced) and its
    old permissions; on any exception the target is untouched, the temporary file is gone,
    and an ``OSError`` is re-raised as `AtomicWriteError` naming ``path``.
    """
    target = Path(path)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_temporaries(target)
        fd, name = tempfile.mkstemp(dir=target.parent, prefix=f"{_prefix(target)}{os.getpid()}.",
                                    suffix=TMP_SUFFIX)
    except OSError as err:
        raise _fail(target, err) from None  # the message says it all; see AtomicWriteError
    tmp = Path(name)
    try:
        with os.fdopen(fd, "wb") as f:
            if fcntl is not None:
                fcntl.flock(f.fileno(), fcntl.LOCK_EX)  # released when the process dies
            yield f
            f.flush()
            os.fsync(f.fileno())
            os.chmod(tmp, _target_mode(target))
            if fcntl is not None:  # rename while still holding the lock: no cleaner can race
                os.replace(tmp, target)
        if fcntl is None:  # Windows cannot rename an open file
            os.replace(tmp, target)
    except BaseException as err:
        with contextlib.suppress(OSError):
            tmp.unlink()
        if isinstance(err, OSError) and not isinstance(err, AtomicWriteError):
            # from None: the chained original names the temporary file, which the user
            # never asked for and which no longer exists
            raise _fail(target, err) from None
        raise
    fsync_folder(target.parent)
