"""``python -m nbutils.faces identify``: real photos end to end, and every bad input giving
one ``error:`` line and status 2 before the encoder is loaded."""

from __future__ import annotations

import contextlib
import csv
import io
import math
import os
import shutil
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from nbutils.extras.cli import faces_checks as cli
from nbutils.extras.cli.faces import build_parser, main
from nbutils.extras.gallery import open_gallery
from nbutils.faces.database import DISTANCE_THRESHOLD
from nbutils.images import MAX_PIXELS
from nbutils.samples import real_photo_path


def run(argv: list[str]) -> tuple[int, str, str]:
    """main(argv) in this process: (status, stdout, stderr); argparse's exits included."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            status = main(argv)
        except SystemExit as exit_:
            status = exit_.code if isinstance(exit_.code, int) else 1
    return status, out.getvalue(), err.getvalue()


def rows(stdout: str) -> list[tuple[str, str, str]]:
    return [(Path(p).name, name, dist) for p, name, dist in csv.reader(io.StringIO(stdout))]


def copy_photo(name: str, to: Path) -> Path:
    to.parent.mkdir(parents=True, exist_ok=True)
    return Path(shutil.copy(real_photo_path(name), to))


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """known/{obama,biden}, a query folder (obama2 and a faceless image), a stranger."""
    root = tmp_path_factory.mktemp("faces_cli")
    copy_photo("obama", root / "known" / "obama" / "obama.jpg")
    copy_photo("biden", root / "known" / "biden" / "biden.jpg")
    copy_photo("obama2", root / "queries" / "obama2.jpg")
    Image.new("RGB", (240, 180), (120, 160, 200)).save(root / "queries" / "plain.png")
    copy_photo("biden", root / "stranger" / "biden.jpg")
    return {"root": root, "known": root / "known", "queries": root / "queries",
            "stranger": root / "stranger" / "biden.jpg", "db": root / "people.npz"}


@pytest.fixture(scope="module")
def enrolled(world: dict[str, Path]) -> tuple[int, str, str]:
    """One enrolment (saved with --save-db) and identification of the query folder."""
    return run(["identify", str(world["known"]), str(world["queries"]),
                "--save-db", str(world["db"])])


def test_defaults_are_the_library_s() -> None:
    args = build_parser().parse_args(["identify", "known", "photo.jpg"])
    assert args.threshold == DISTANCE_THRESHOLD
    assert args.backend == "exact" and args.db is None and args.save_db is None


def test_enrol_identify_and_no_face(enrolled: tuple[int, str, str]) -> None:
    status, out, err = enrolled
    assert status == 0, err
    found = rows(out)
    assert [(photo, name) for photo, name, _ in found] == [("obama2.jpg", "obama"),
                                                           ("plain.png", "no_face")]
    assert float(found[0][2]) < DISTANCE_THRESHOLD and found[1][2] == ""


def test_saved_gallery_stranger_is_unknown(enrolled: tuple[int, str, str],
                                           world: dict[str, Path]) -> None:
    assert enrolled[0] == 0
    with open_gallery(world["db"]) as gallery:  # what --save-db wrote
        assert gallery.names == ["biden", "obama"]
        gallery.delete("biden")  # biden becomes a stranger: no new enrolment to pay for
        gallery.save(world["root"] / "obama_only.npz")
    status, out, err = run(["identify", "--db", str(world["root"] / "obama_only.npz"),
                            str(world["stranger"])])
    assert status == 0, err
    [(photo, name, distance)] = rows(out)
    assert (photo, name) == ("biden.jpg", "unknown")
    assert float(distance) >= DISTANCE_THRESHOLD


@pytest.mark.parametrize("flag", ["--threshold", "--tolerance"])  # face_recognition's name
def test_threshold_decides(enrolled: tuple[int, str, str], world: dict[str, Path],
                           flag: str) -> None:
    assert enrolled[0] == 0
    distance = float(rows(enrolled[1])[0][2])
    photo = str(world["queries"] / "obama2.jpg")
    for threshold, expected in ((distance * 0.99, "unknown"), (distance * 1.01, "obama")):
        status, out, err = run(["identify", "--db", str(world["db"]), photo,
                                flag, repr(threshold)])
        assert status == 0, err
        assert rows(out)[0][1] == expected
        assert math.isclose(float(rows(out)[0][2]), distance, abs_tol=1e-4)


# ------------------------------------------------------------------------- bad input

@pytest.fixture
def no_model(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail the test if the encoder is loaded: every check must come before it."""
    def refuse() -> None:
        raise AssertionError("the encoder was loaded before the input was checked")
    monkeypatch.setattr(cli, "encoder", refuse)


def assert_one_error(argv: list[str], *words: str) -> None:
    status, out, err = run(argv)
    errors = [line for line in err.splitlines() if "error:" in line]
    assert status == 2 and out == "", (status, out, err)
    assert len(errors) == 1, err
    for word in words:
        assert word in errors[0], errors[0]


@pytest.fixture
def small(tmp_path: Path) -> dict[str, Path]:
    """A KNOWN_DIR whose photo is never encoded (the checks stop first) and a photo."""
    (tmp_path / "known" / "ann").mkdir(parents=True)
    Image.new("RGB", (8, 8)).save(tmp_path / "known" / "ann" / "a.jpg")
    Image.new("RGB", (8, 8)).save(tmp_path / "photo.png")
    return {"root": tmp_path, "known": tmp_path / "known", "photo": tmp_path / "photo.png"}


@pytest.mark.parametrize("flag", ["--threshold", "--tolerance"])
@pytest.mark.parametrize("threshold", ["nan", "-0.5", "0", "inf", "abc"])
def test_bad_threshold(no_model: None, small: dict[str, Path], flag: str,
                       threshold: str) -> None:
    assert_one_error(["identify", str(small["known"]), str(small["photo"]),
                      f"{flag}={threshold}"], flag)


def test_the_help_says_threshold() -> None:
    usage = build_parser()._subparsers._group_actions[0].choices["identify"].format_help()
    assert "--threshold" in usage and "tolerance" not in usage


def test_unknown_backend(no_model: None, small: dict[str, Path]) -> None:
    assert_one_error(["identify", str(small["known"]), str(small["photo"]),
                      "--backend", "annoy"], "--backend")


@pytest.mark.parametrize(("backend", "module"), [("ann", "faiss"), ("milvus", "pymilvus")])
def test_backend_not_installed(no_model: None, small: dict[str, Path],
                               monkeypatch: pytest.MonkeyPatch, backend: str,
                               module: str) -> None:
    monkeypatch.setitem(sys.modules, module, None)  # import now raises ImportError
    assert_one_error(["identify", str(small["known"]), str(small["photo"]),
                      "--backend", backend], "--backend", "pip install")


def test_known_dir_missing_empty_or_a_file(no_model: None, small: dict[str, Path]) -> None:
    root, photo = small["root"], str(small["photo"])
    assert_one_error(["identify", str(root / "nowhere"), photo], "does not exist")
    assert_one_error(["identify", photo, photo], "not a folder")
    (root / "empty" / "bob").mkdir(parents=True)
    (root / "empty" / "bob" / "notes.txt").write_text("no photos")
    assert_one_error(["identify", str(root / "empty"), photo], "holds no photos")
    assert_one_error(["identify", str(small["known"])], "KNOWN_DIR")


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads everything")
def test_unreadable_known_dir(no_model: None, small: dict[str, Path]) -> None:
    small["known"].chmod(0)
    try:
        assert_one_error(["identify", str(small["known"]), str(small["photo"])],
                         "permission denied")
    finally:
        small["known"].chmod(0o755)


def test_bad_photos(no_model: None, small: dict[str, Path]) -> None:
    root, known = small["root"], str(small["known"])
    assert_one_error(["identify", known, str(root / "missing.jpg")], "missing.jpg",
                     "does not exist")
    (root / "fake.jpg").write_text("not a JPEG")
    assert_one_error(["identify", known, str(small["photo"]), str(root / "fake.jpg")],
                     "fake.jpg", "cannot be read")
    (root / "nothing").mkdir()
    assert_one_error(["identify", known, str(root / "nothing")], "holds no images")


def test_bad_db(no_model: None, small: dict[str, Path]) -> None:
    root, photo = small["root"], str(small["photo"])
    assert_one_error(["identify", "--db", str(root / "none.npz"), photo], "--db",
                     "does not exist")
    (root / "junk.npz").write_bytes(b"not a zip file")
    assert_one_error(["identify", "--db", str(root / "junk.npz"), photo], "--db", "junk.npz")
    assert_one_error(["identify", "--db", str(small["known"]), photo], "--db", "not a file")


def test_bad_save_db(no_model: None, small: dict[str, Path]) -> None:
    known, photo = str(small["known"]), str(small["photo"])
    assert_one_error(["identify", known, photo, "--save-db", photo], "--save-db", "exists")
    assert_one_error(["identify", known, photo, "--save-db", str(small["photo"] / "g.npz")],
                     "--save-db", "cannot be written")
    assert_one_error(["identify", known, photo, "--save-db", "a.npz", "--db", "b.npz"],
                     "--save-db")


def test_module_runs_as_a_script(small: dict[str, Path]) -> None:
    """The real entry point: ``python -m nbutils.faces`` exits 2 with one error line."""
    done = subprocess.run([sys.executable, "-m", "nbutils.faces", "identify",
                           str(small["root"] / "nowhere"), str(small["photo"])],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and done.stdout == ""
    assert [line for line in done.stderr.splitlines() if "error:" in line] == [
        f"error: KNOWN_DIR {small['root'] / 'nowhere'} does not exist"]


def test_a_usage_error_is_reported_before_tensorflow_is_imported(small: dict[str, Path]
                                                                  ) -> None:
    """The checks and the gallery need no TensorFlow, so a mistyped command costs a
    fraction of a second rather than the seconds TensorFlow takes to import."""
    script = ("import runpy, sys\n"
              f"sys.argv = ['nbutils.faces', 'identify', {str(small['root'] / 'nowhere')!r},"
              f" {str(small['photo'])!r}, '--save-db', 'g.npz']\n"
              "try:\n"
              "    runpy.run_module('nbutils.faces', run_name='__main__', alter_sys=True)\n"
              "except SystemExit as exit_:\n"
              "    heavy = {'tensorflow', 'keras', 'mtcnn'} & set(sys.modules)\n"
              "    print(exit_.code, sorted(heavy))\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=120)
    assert done.stdout.split("\n")[0] == "2 []", (done.stdout, done.stderr)
    assert "does not exist" in done.stderr


# ------------------------------------------------------ huge photos, unwritable --save-db

def png_claiming(path: Path, width: int, height: int) -> Path:
    """A small valid PNG whose header claims ``width`` x ``height`` (its CRC fixed)."""
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buffer, "PNG")
    data = bytearray(buffer.getvalue())
    header = struct.pack(">II", width, height) + data[24:29]  # IHDR: size, then 5 bytes
    data[16:29] = header
    data[29:33] = struct.pack(">I", zlib.crc32(b"IHDR" + header))
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("side", [11_000, 20_000])  # over Pillow's warning, over its error
def test_a_photo_claiming_a_huge_size_is_one_error_line(small: dict[str, Path],
                                                        side: int) -> None:
    photo = png_claiming(small["root"] / "huge.png", side, side)
    done = subprocess.run([sys.executable, "-m", "nbutils.faces", "identify",
                           str(small["known"]), str(photo)],
                          capture_output=True, text=True, timeout=120)
    assert (done.returncode, done.stdout) == (2, ""), done.stderr
    assert done.stderr.splitlines() == [
        f"error: {photo} is too large: " + (f"{side} x {side} pixels, " if side == 11_000
                                            else "") + f"more than MAX_PIXELS = {MAX_PIXELS:,}; "
        "downscale it first"], done.stderr


def test_a_save_db_folder_that_cannot_be_written_is_found_by_trying(
        no_model: None, small: dict[str, Path], unwritable_folder: Path) -> None:
    known, photo = str(small["known"]), str(small["photo"])
    for target in (unwritable_folder / "g.npz", unwritable_folder / "new" / "g.npz"):
        assert_one_error(["identify", known, photo, "--save-db", str(target)], "--save-db",
                         str(target), f"cannot write in {unwritable_folder}")
    assert list(unwritable_folder.iterdir()) == []  # the probe left nothing


@pytest.mark.skipif(not Path("/sys/kernel").is_dir(), reason="Linux's /sys")
def test_a_save_db_where_no_file_can_be_made_even_by_root(no_model: None,
                                                          small: dict[str, Path]) -> None:
    """/sys takes no new files whatever its mode says (root's os.access says yes)."""
    known, photo = str(small["known"]), str(small["photo"])
    assert_one_error(["identify", known, photo, "--save-db", "/sys/kernel/gallery.npz"],
                     "--save-db /sys/kernel/gallery.npz", "cannot write in /sys/kernel")


def test_a_save_db_that_fails_after_the_work_is_one_error_line(
        small: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    """The folder is replaced by a file while the photos are encoded (the encoding is
    faked here): the save fails, and says so in one line naming the target."""
    import nbutils.faces.enroll as enroll_module
    from nbutils.faces.database import EMBEDDING_DIM, FaceDatabase

    folder = small["root"] / "galleries"
    folder.mkdir()
    target = folder / "people.npz"

    def encode_and_lose_the_folder(*args: object, **kwargs: object) -> FaceDatabase:
        folder.rmdir()
        folder.write_text("a file where the folder was")
        database = FaceDatabase()
        database.add("ann", np.full(EMBEDDING_DIM, EMBEDDING_DIM ** -0.5))
        return database

    monkeypatch.setattr(cli, "encoder", lambda: None)
    monkeypatch.setattr(enroll_module, "database_from_folder", encode_and_lose_the_folder)
    status, out, err = run(["identify", str(small["known"]), str(small["photo"]),
                            "--save-db", str(target)])
    assert (status, out) == (2, "") and len(err.splitlines()) == 1, err
    assert err.startswith(f"error: --save-db {target} could not be written: "), err
    assert f"{folder} is a file, not a folder" in err
