"""Detection and alignment: MTCNN's weights read safely, and chips cut exactly as dlib cuts them."""

import math

import joblib
import numpy as np
import pytest

from nbutils._internal import weights as w
from nbutils._internal.weights.registry import MTCNN_WEIGHTS
from nbutils.faces import align
from nbutils.faces.detect import detect_faces


def test_similarity_transform_recovers_a_known_transform():
    rng = np.random.default_rng(0)
    src = rng.uniform(0, 150, (5, 2))
    s, a, t = 2.5, math.radians(-17), np.array([40.0, -12.0])
    R = np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
    dst = s * src @ R.T + t
    M = align.similarity_transform(src, dst)
    np.testing.assert_allclose(M, np.hstack([s * R, t[:, None]]), atol=1e-9)


def test_similarity_transform_never_reflects():
    src = np.array([(0, 0), (4, 0), (0, 1), (1, 3.0)])
    dst = src * [-1, 1]  # a mirror image: the best similarity must still not be a reflection
    M = align.similarity_transform(src, dst)
    assert np.linalg.det(M[:, :2]) > 0


def test_pyramid_down_matches_a_direct_5x5_filter():
    rng = np.random.default_rng(1)
    image = rng.integers(0, 256, (23, 18, 3), dtype=np.uint8)
    k = np.array([1, 4, 6, 4, 1])
    kernel = np.outer(k, k)  # sums to 256
    out = align.pyramid_down(image)
    assert out.shape == ((23 - 3) // 2, (18 - 3) // 2, 3)
    for r in range(out.shape[0]):
        for c in range(out.shape[1]):
            window = image[2 * r:2 * r + 5, 2 * c:2 * c + 5].astype(int)
            expected = (window * kernel[..., None]).sum((0, 1)) // 256
            np.testing.assert_array_equal(out[r, c], expected)


def test_bilinear_sampling_hand_case():
    image = np.zeros((2, 2, 3), np.uint8)
    image[0, 1] = 100  # top-right
    image[1, 1] = 200  # bottom-right
    # At (x=0.5, y=0.5): (0 + 100 + 0 + 200) / 4 = 75; at (0.25, 0): 25; outside: black.
    out = align.bilinear(image, np.array([[0.5, 0.5], [0.25, 0.0], [1.5, 0.0]]))
    np.testing.assert_array_equal(out[:, 0], [75, 25, 0])


def test_chips_from_dlib_landmarks_equal_dlib_chips(dlib_photos, dlib_photo_reference,
                                                    dlib_chip_reference):
    """Given dlib's own landmarks, our crop reproduces dlib's get_face_chip bit for bit."""
    chips = dict(zip(dlib_chip_reference["names"], dlib_chip_reference["chips"], strict=True))
    for name, ref in dlib_photo_reference.items():
        landmarks = np.array(ref["landmarks5"], float)
        chip = align.align_face(dlib_photos[name], landmarks, align.DLIB_TEMPLATE, points=None)
        np.testing.assert_array_equal(chip, chips[name], err_msg=name)


def test_pyramid_is_used_for_large_faces():
    """A face footprint over 300 px is halved first (anti-aliasing), as in dlib.

    On a 1-pixel checkerboard the [1 4 6 4 1] filter cancels exactly (1 - 4 + 6 - 4 + 1 = 0),
    so a chip cut through the pyramid is flat gray, while plain bilinear sampling aliases."""
    yy, xx = np.mgrid[0:900, 0:900]
    board = np.repeat(((xx + yy) % 2 * 255).astype(np.uint8)[..., None], 3, axis=2)
    big = align.chip_details(align.MTCNN_TEMPLATE * 3.0 + 100.3)  # footprint 450 px
    assert big.scale == pytest.approx(3.0)
    assert align.extract_chip(board, big).std() < 2
    medium = align.chip_details(align.MTCNN_TEMPLATE * 1.9 + 100.3)  # 285 px: no pyramid
    assert align.extract_chip(board, medium).std() > 20


def test_mtcnn_files_have_known_checksums():
    import importlib.resources

    folder = importlib.resources.files("mtcnn.assets.weights")  # where mtcnn itself looks
    assert sorted(MTCNN_WEIGHTS) == ["onet", "pnet", "rnet"]
    for name, file in MTCNN_WEIGHTS.items():
        assert file.locate() == folder / f"{name}.lz4"
        assert w.file_digest(folder / f"{name}.lz4") == file.sha256


def test_joblib_reader_reads_arrays_like_joblib_wrote_them(tmp_path):
    arrays = [np.arange(12, dtype=np.float32).reshape(3, 4), np.asfortranarray(
        np.arange(6, dtype=np.int64).reshape(2, 3)), np.array(2.5)]
    for compress in (0, ("lz4", 3)):
        path = tmp_path / f"a{bool(compress)}.joblib"
        joblib.dump(arrays, path, compress=compress)
        out = w.read_joblib_arrays(path, sha256=None)
        for a, b in zip(arrays, out, strict=True):
            np.testing.assert_array_equal(a, b)
            assert a.dtype == b.dtype


def test_joblib_reader_refuses_code_and_object_arrays(tmp_path):
    path = tmp_path / "evil.joblib"
    joblib.dump([np.zeros(3), print], path)
    with pytest.raises(w.UnsafePickleError, match="print"):
        w.read_joblib_arrays(path, sha256=None)
    joblib.dump([np.array([{"a": 1}], dtype=object)], path)
    with pytest.raises(w.WeightsError):
        w.read_joblib_arrays(path, sha256=None)
    with pytest.raises(w.ChecksumError):
        w.read_joblib_arrays(path, sha256="0" * 64)


def test_mtcnn_points_on_dlib_chips_sit_near_the_template(dlib_chip_reference):
    """The template that stands in for dlib's points: MTCNN run on dlib's own chips."""
    found = []
    for name, chip in zip(dlib_chip_reference["names"], dlib_chip_reference["chips"],
                          strict=True):
        faces = detect_faces(chip)
        if name.startswith("synthetic"):
            assert faces == []  # noise, flat gray and a gradient are not faces
        else:
            found.append(faces[0].landmarks)
    mean = np.mean(found, axis=0)
    assert np.abs(mean - align.MTCNN_TEMPLATE).max() < 6.0


def test_detector_agrees_with_dlib_landmarks(dlib_photos, dlib_photo_reference):
    for name in ("skimage_astronaut", "matplotlib_grace_hopper__rot10"):
        faces = detect_faces(dlib_photos[name])
        assert len(faces) == 1
        dlib5 = np.array(dlib_photo_reference[name]["landmarks5"], float)
        eyes = faces[0].landmarks[:2]
        # MTCNN's eye centres lie between dlib's inner and outer eye corners.
        expected = np.array([dlib5[2:4].mean(0), dlib5[0:2].mean(0)])
        assert np.linalg.norm(eyes - expected, axis=1).max() < 6.0


def test_detector_input_checks():
    with pytest.raises(ValueError, match="uint8 RGB"):
        detect_faces(np.zeros((10, 10), np.uint8))
    assert detect_faces(np.full((120, 160, 3), 128, np.uint8)) == []
