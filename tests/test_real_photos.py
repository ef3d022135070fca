"""Real photos of the same person (face_recognition 1.3.0's test images): pinned, fetched
from the sdist through the weights' machinery, found by `real_photo_path`, and told apart by
the real encoder. The fetch tests use no network: pip must never be called."""

import dataclasses
import hashlib
import io
import tarfile
from pathlib import Path

import numpy as np
import pytest

from nbutils._internal.weights import download
from nbutils._internal.weights.download import fetch
from nbutils._internal.weights.integrity import ChecksumError, WeightsNotFoundError
from nbutils._internal.weights.registry import (
    FACE_RECOGNITION,
    REAL_PHOTO_FILES,
    REAL_PHOTOS_FOLDER,
)
from nbutils.faces.database import DISTANCE_THRESHOLD
from nbutils.faces.encoder import load_face_encoder
from nbutils.faces.recognition import img_to_encoding
from nbutils.samples import REAL_PHOTOS, real_photo_path

# Written down independently of the registry: the sdist's digest as PyPI publishes it, and
# each photo's digest, computed once from that sdist.
SDIST_SHA256 = "5e5efdd1686aa566af0d3cc1313b131e4b197657a8ffd03669e6d3fad92705ec"
PHOTO_SHA256 = {
    "obama.jpg": "0930e3aa8cae5920329c0c8cbc6a2ab70f47b0e67b432875beaa95cbf7e741f6",
    "obama2.jpg": "a7efcc907375274796f39646510704aa86672d59f6d5469d69af3c85590976a6",
    "obama3.jpg": "76ac6bf97c36dc2da0ad16a537d6a5ac1b10f48d49aac29a0cca9a17cdbc3ca3",
    "obama_partial_face.jpg": "c2d1f09e7ef3042352b41e41286e6eb0522f64f88308be13886991b95db52117",
    "obama_partial_face2.jpg": "9a812347f97633542b8cd9992de22def11b74f79d82056bc3ee830f13878e028",
    "biden.jpg": "3c17508bb91554c637a2eabddfae790e5bb1caba93130814fc2ac50be9760c4c",
    "32bit.png": "44dca895a7d635a4aedddd91a4f37af9a8a5b44e66154282a24645a757b5f627",
}


@pytest.fixture(scope="session")
def prepared_photos() -> dict[str, bytes]:
    """The photos `python -m nbutils.prepare` fetched (session scope: read before a test's
    own cache folder replaces the user's)."""
    return {name: file.verified().read_bytes() for name, file in REAL_PHOTO_FILES.items()}


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    """An empty cache folder, with a ``downloads/`` for hand-placed archives; pip, if called,
    fails the test (everything here must work offline)."""
    monkeypatch.setenv("NBUTILS_CACHE_DIR", str(tmp_path / "cache"))
    (tmp_path / "cache" / "downloads").mkdir(parents=True)

    def no_pip(package, folder):
        raise AssertionError(f"pip was called for {package.requirement}")

    monkeypatch.setattr(download, "_pip_download", no_pip)
    return tmp_path / "cache"


def sdist(path: Path, photos: dict[str, bytes]) -> str:
    """A tar.gz laid out like face_recognition's sdist; returns its SHA-256."""
    with tarfile.open(path, "w:gz") as tf:
        members = {f"tests/test_images/{name}": data for name, data in photos.items()}
        for name, data in {"setup.py": b"", **members}.items():
            info = tarfile.TarInfo(f"face_recognition-1.3.0/{name}")
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_the_sdist_and_every_photo_are_pinned():
    assert FACE_RECOGNITION.requirement == "face_recognition==1.3.0"
    assert FACE_RECOGNITION.archive == "face_recognition-1.3.0.tar.gz"
    assert FACE_RECOGNITION.sha256 == SDIST_SHA256
    assert {name: file.sha256 for name, file in REAL_PHOTO_FILES.items()} == PHOTO_SHA256
    for name, file in REAL_PHOTO_FILES.items():
        assert file.package is FACE_RECOGNITION
        assert file.path == f"tests/test_images/{name}"
        assert file.destination == f"{REAL_PHOTOS_FOLDER}/{name}"
    assert set(REAL_PHOTOS) == {name.rsplit(".", 1)[0] for name in REAL_PHOTO_FILES}


def test_a_corrupt_cached_archive_is_refused(cache):
    archive = cache / "downloads" / FACE_RECOGNITION.archive
    archive.write_bytes(b"\x1f\x8b not the published sdist")
    with pytest.raises(ChecksumError) as err:
        fetch(REAL_PHOTO_FILES.values())
    message = str(err.value)
    assert str(archive) in message and SDIST_SHA256 in message
    assert "face_recognition==1.3.0" in message and "Delete it" in message
    assert not (cache / REAL_PHOTOS_FOLDER).exists()  # nothing extracted


def test_photos_come_out_of_a_hand_placed_sdist_offline(cache, prepared_photos):
    """The offline path: the archive in downloads/, only the photos extracted, each checked
    against its own pin (the archive's digest is this test's own)."""
    archive = cache / "downloads" / FACE_RECOGNITION.archive
    package = dataclasses.replace(FACE_RECOGNITION, sha256=sdist(archive, prepared_photos))
    files = [dataclasses.replace(file, package=package) for file in REAL_PHOTO_FILES.values()]
    paths = fetch(files)
    assert paths == [cache / REAL_PHOTOS_FOLDER / name for name in REAL_PHOTO_FILES]
    for name, path in zip(REAL_PHOTO_FILES, paths, strict=True):
        assert hashlib.sha256(path.read_bytes()).hexdigest() == PHOTO_SHA256[name]
    assert sorted(p.name for p in (cache / REAL_PHOTOS_FOLDER).iterdir()) == \
        sorted(REAL_PHOTO_FILES)  # no setup.py, no temporary
    assert not (cache / "packages").exists()
    assert real_photo_path("obama2") == cache / REAL_PHOTOS_FOLDER / "obama2.jpg"


def test_a_photo_that_differs_from_its_pin_is_refused(cache, prepared_photos):
    archive = cache / "downloads" / FACE_RECOGNITION.archive
    package = dataclasses.replace(
        FACE_RECOGNITION, sha256=sdist(archive, {**prepared_photos, "biden.jpg": b"swapped"}))
    files = [dataclasses.replace(file, package=package) for file in REAL_PHOTO_FILES.values()]
    with pytest.raises(ChecksumError, match="biden.jpg has sha256"):
        fetch(files)
    assert not (cache / REAL_PHOTOS_FOLDER / "biden.jpg").exists()


def test_real_photo_path_says_what_to_do(cache, tmp_path, monkeypatch):
    with pytest.raises(KeyError, match="valid names are: obama, obama2"):
        real_photo_path("obama4")
    # A `tests/test_images/` on sys.path is not the package's: only the cache counts.
    impostor = tmp_path / "elsewhere" / "tests" / "test_images" / "obama.jpg"
    impostor.parent.mkdir(parents=True)
    impostor.write_bytes(b"someone else")
    monkeypatch.syspath_prepend(str(tmp_path / "elsewhere"))
    with pytest.raises(WeightsNotFoundError) as err:  # also a FileNotFoundError
        real_photo_path("obama")
    assert isinstance(err.value, FileNotFoundError)
    assert "face_recognition==1.3.0" in str(err.value)
    assert "python -m nbutils.prepare" in str(err.value)
    tampered = cache / REAL_PHOTOS_FOLDER / "obama.jpg"
    tampered.parent.mkdir(parents=True)
    tampered.write_bytes(b"someone else")
    with pytest.raises(ChecksumError, match=r"delete .*obama\.jpg.*python -m nbutils\.prepare"):
        real_photo_path("obama")


# ------------------------------------------------------------------- the real encoder
# face_recognition's own test suite asserts the same decisions with dlib itself: its three
# photos of Obama within 0.6 of each other, Biden's beyond 0.6 from each.


@pytest.fixture(scope="module")
def encodings(prepared_photos) -> dict[str, np.ndarray]:
    model = load_face_encoder()
    return {name: img_to_encoding(real_photo_path(name), model)
            for name in ["obama", "obama2", "obama3", "biden", "32bit"]}


def test_three_photos_of_obama_match_and_biden_does_not(encodings):
    obama = ["obama", "obama2", "obama3"]
    for i, a in enumerate(obama):
        for b in obama[i + 1:]:
            d = np.linalg.norm(encodings[a] - encodings[b])
            assert d < DISTANCE_THRESHOLD, f"{a} vs {b}: {d:.3f}"
        d = np.linalg.norm(encodings[a] - encodings["biden"])
        assert d > DISTANCE_THRESHOLD, f"{a} vs biden: {d:.3f}"


def test_an_rgba_png_of_a_photo_encodes_like_the_jpeg(encodings):
    """32bit.png is obama2.jpg as opaque RGBA (pixels within JPEG noise of it)."""
    assert np.linalg.norm(encodings["32bit"] - encodings["obama2"]) < 0.1
