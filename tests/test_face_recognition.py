"""The full pipeline (photo -> descriptor) against dlib's, and the course's verify / who_is_it."""

import numpy as np
import pytest
from PIL import Image

from nbutils.faces.database import EmptyDatabaseError, FaceDatabase
from nbutils.faces.encoder import load_face_encoder
from nbutils.faces.enroll import FaceEncodingWarning, database_from_folder, enroll_photos
from nbutils.faces.recognition import (
    NoFaceFoundError,
    find_faces,
    img_to_encoding,
    pairwise_distances,
    pixel_distance,
    verify,
    who_is_it,
)


@pytest.fixture(scope="module")
def model():
    return load_face_encoder()


@pytest.fixture(scope="module")
def encodings(model, dlib_photos, dlib_photo_reference):
    return {name: img_to_encoding(dlib_photos[name], model) for name in dlib_photo_reference}


def test_full_pipeline_lands_near_dlibs(encodings, dlib_photo_reference):
    for name, ref in dlib_photo_reference.items():
        distance = np.linalg.norm(encodings[name] - np.array(ref["descriptor"]))
        assert distance < 0.15, f"{name}: {distance:.3f} from dlib's descriptor"


def test_same_different_decisions_equal_dlibs(encodings, dlib_photo_reference):
    names = list(dlib_photo_reference)
    ours = pairwise_distances(np.stack([encodings[n] for n in names])) < 0.6
    dlib = pairwise_distances(np.array([dlib_photo_reference[n]["descriptor"] for n in names]))
    np.testing.assert_array_equal(ours, dlib < 0.6)
    # and those decisions are right: same person exactly when the photo name's base matches
    person = [n.split("__")[0] for n in names]
    np.testing.assert_array_equal(ours, np.equal.outer(person, person))


def test_pairwise_distances_against_a_loop():
    x = np.random.default_rng(0).normal(size=(4, 7))
    expected = [[np.sqrt(((a - b) ** 2).sum()) for b in x] for a in x]
    np.testing.assert_allclose(pairwise_distances(x), expected, atol=1e-12)


@pytest.fixture(scope="module")
def database(encodings):
    return FaceDatabase.from_dict({"astronaut": encodings["skimage_astronaut"],
                                   "hopper": encodings["matplotlib_grace_hopper"]})


def test_verify_same_photo_distance_zero_and_accepted(model, dlib_photos, database, capsys):
    dist, door_open = verify(dlib_photos["skimage_astronaut"], "astronaut", database, model)
    assert dist == pytest.approx(0.0, abs=1e-5) and door_open is True
    assert capsys.readouterr().out.strip() == "It's astronaut, welcome in!"


def test_verify_transformed_copy_accepted_other_person_rejected(model, dlib_photos, database,
                                                               capsys):
    dist, door_open = verify(dlib_photos["matplotlib_grace_hopper__rot10"], "hopper", database,
                             model)
    assert 0 < dist < 0.6 and door_open
    dist, door_open = verify(dlib_photos["matplotlib_grace_hopper"], "astronaut", database, model)
    assert dist >= 0.6 and not door_open
    assert capsys.readouterr().out.splitlines()[-1] == "It's not astronaut, please go away"


def test_verify_accepts_a_plain_dict_as_the_course_does(model, dlib_photos, encodings):
    course_db = {"hopper": encodings["matplotlib_grace_hopper"]}
    _, door_open = verify(dlib_photos["matplotlib_grace_hopper__dark"], "hopper", course_db,
                          model)
    assert door_open


def test_who_is_it(model, dlib_photos, database, capsys):
    min_dist, identity = who_is_it(dlib_photos["skimage_astronaut__mirror"], database, model)
    assert identity == "astronaut" and min_dist < 0.6
    import skimage.data

    min_dist, identity = who_is_it(skimage.data.camera(), database, model)  # a stranger
    assert identity is None and min_dist >= 0.6
    assert capsys.readouterr().out.splitlines()[-1] == "Not in the database."


def test_unknown_identity_lists_known_names(model, dlib_photos, database):
    with pytest.raises(KeyError, match="astronaut.*hopper"):
        verify(dlib_photos["skimage_astronaut"], "nobody", database, model)


def test_enrolment_runs_real_photos_through_the_pipeline(tmp_path, model, dlib_photos,
                                                          encodings, capsys):
    """The photos of a folder (and photos enrolled later) give the descriptors the pipeline
    gives the same pixels; a photo without a face is skipped and named."""
    for person, photo in [("astronaut", "skimage_astronaut"),
                          ("hopper", "matplotlib_grace_hopper")]:
        (tmp_path / person).mkdir()
        Image.fromarray(dlib_photos[photo]).save(tmp_path / person / "1.png")  # lossless
    Image.fromarray(np.full((200, 300, 3), 180, np.uint8)).save(tmp_path / "hopper" / "wall.png")
    with pytest.warns(FaceEncodingWarning, match=r"(?s)1 of 3 photos.*wall\.png"):
        db = database_from_folder(tmp_path, model, progress=False)
    assert db.names == ["astronaut", "hopper"] and db.num_descriptors == 2
    np.testing.assert_allclose(db["astronaut"][0], encodings["skimage_astronaut"], atol=1e-5)
    np.testing.assert_allclose(db["hopper"][0], encodings["matplotlib_grace_hopper"], atol=1e-5)
    dark = dlib_photos["matplotlib_grace_hopper__dark"]
    assert enroll_photos(db, "hopper", [dark], model) == 1
    np.testing.assert_allclose(db["hopper"][1], img_to_encoding(dark, model), atol=1e-5)
    assert who_is_it(dlib_photos["matplotlib_grace_hopper__rot10"], db, model)[1] == "hopper"
    with pytest.raises(NoFaceFoundError, match="wall.png"):
        enroll_photos(db, "hopper", [dark, tmp_path / "hopper" / "wall.png"], model)
    assert db.num_descriptors == 3  # nothing added
    capsys.readouterr()


def test_empty_database_refused(model, dlib_photos):
    with pytest.raises(EmptyDatabaseError, match="empty"):
        who_is_it(dlib_photos["skimage_astronaut"], FaceDatabase(), model)


def test_no_face_names_the_file(tmp_path, model):
    path = tmp_path / "wall.png"
    Image.fromarray(np.full((200, 300, 3), 180, np.uint8)).save(path)
    with pytest.raises(NoFaceFoundError, match="wall.png"):
        img_to_encoding(path, model)


def test_several_faces_largest_first(dlib_photos, model, encodings):
    big = dlib_photos["matplotlib_grace_hopper"]  # 600 x 512
    small = dlib_photos["skimage_astronaut__half"]  # 256 x 256, a smaller face
    canvas = np.zeros((600, 512 + 256, 3), np.uint8)
    canvas[:, :512], canvas[:256, 512:] = big, small
    faces = find_faces(canvas)
    assert len(faces) == 2
    assert faces[0].detection.area > faces[1].detection.area
    assert faces[0].detection.box[2] <= 512 < faces[1].detection.box[0]  # Hopper, then Collins
    hopper = img_to_encoding(canvas, model)
    assert np.linalg.norm(hopper - encodings["matplotlib_grace_hopper"]) < 0.3


def test_bgr_arrays_are_converted_explicitly(dlib_photos, model, encodings):
    bgr = dlib_photos["skimage_astronaut"][..., ::-1]
    as_bgr = img_to_encoding(bgr, model, channels="BGR")
    np.testing.assert_allclose(as_bgr, encodings["skimage_astronaut"], atol=1e-5)
    as_rgb = img_to_encoding(bgr, model)  # read wrongly: the colours are swapped
    assert np.linalg.norm(as_rgb - encodings["skimage_astronaut"]) > 0.01
    with pytest.raises(ValueError, match="channels"):
        img_to_encoding(bgr, model, channels="RBG")


def test_exif_grayscale_and_rgba_photos(tmp_path, dlib_photos, model, encodings):
    photo = Image.fromarray(dlib_photos["matplotlib_grace_hopper"])
    rotated = tmp_path / "exif.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    photo.rotate(90, expand=True).save(rotated, exif=exif, quality=95)
    gray, rgba = tmp_path / "gray.png", tmp_path / "rgba.png"
    photo.convert("L").save(gray)
    photo.convert("RGBA").save(rgba)
    for path in (rotated, gray, rgba):
        distance = np.linalg.norm(img_to_encoding(path, model) -
                                  encodings["matplotlib_grace_hopper"])
        assert distance < 0.6, path.name


def test_naive_pixel_distance(dlib_photos):
    hopper = dlib_photos["matplotlib_grace_hopper"]
    assert pixel_distance(hopper, hopper) == 0.0
    a, b = np.zeros((8, 8, 3), np.uint8), np.full((8, 8, 3), 255, np.uint8)
    assert pixel_distance(a, b, size=8) == pytest.approx(np.sqrt(3))  # sqrt(64*3)/8
    # a mirror image moves raw pixels further than a change of person does
    astronaut = dlib_photos["skimage_astronaut"]
    mirrored = pixel_distance(astronaut, dlib_photos["skimage_astronaut__mirror"])
    assert mirrored > pixel_distance(astronaut, hopper)
