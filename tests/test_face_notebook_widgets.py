"""What the face notebook draws and its widgets call: detections on a photo, the errors of
a distance threshold, and a photo uploaded to compare with a database."""

import io
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import jupytext  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from PIL import Image  # noqa: E402

from nbutils.extras.widgets import face_upload, show_identities, threshold_slider  # noqa: E402
from nbutils.faces.detect import DetectedFace  # noqa: E402
from nbutils.faces.threshold import threshold_errors  # noqa: E402
from nbutils.plots import LANDMARK_COLOURS, plot_threshold, show_detections  # noqa: E402

NOTEBOOK = Path(__file__).resolve().parent.parent / "notebooks" / "face_recognition.py"
GENUINE = np.array([0.2, 0.3, 0.45, 0.5])
IMPOSTOR = np.array([0.55, 0.7, 0.8, 0.9, 1.0])


def face(box, confidence=0.99):
    left, top, right, bottom = box
    points = np.array([[left + 3, top + 4], [right - 3, top + 4], [(left + right) / 2, top + 7],
                       [left + 3, bottom - 3], [right - 3, bottom - 3]], float)
    return DetectedFace(tuple(map(float, box)), confidence, points)


def test_show_detections_draws_a_labelled_box_and_five_points_per_face():
    faces = [face((2, 3, 14, 18), 0.99), face((20, 5, 28, 15), 0.91)]
    fig = show_detections([np.zeros((30, 40, 3)), np.zeros((8, 8, 3))], [faces, []],
                          ["two faces", "none"])
    ax, empty = fig.axes[:2]
    assert [p.get_xy() for p in ax.patches] == [(2.0, 3.0), (20.0, 5.0)]
    assert [(p.get_width(), p.get_height()) for p in ax.patches] == [(12.0, 15.0), (8.0, 10.0)]
    assert [t.get_text() for t in ax.texts] == ["0: 0.99", "1: 0.91"]
    for points, f in zip(ax.collections, faces, strict=True):
        np.testing.assert_array_equal(points.get_offsets(), f.landmarks)
        assert len(points.get_facecolors()) == len(LANDMARK_COLOURS)
    assert not empty.patches and not empty.collections
    assert ax.get_xlim() == (-0.5, 39.5)  # the overlays do not move the image's limits


def test_show_detections_takes_faces_with_their_chip_and_refuses_a_missing_list():
    class Found:  # like nbutils.faces.recognition.Face
        detection = face((1, 1, 6, 6))

    fig = show_detections([np.zeros((8, 8, 3))], [[Found()]])
    assert len(fig.axes[0].patches) == 1
    with pytest.raises(ValueError, match="one list of detections per image"):
        show_detections([np.zeros((8, 8, 3))] * 2, [[]])


@pytest.mark.parametrize("threshold, accepts, rejects", [
    (0.1, 0, 4), (0.45, 0, 2), (0.52, 0, 0), (0.75, 2, 0), (2.0, 5, 0)])
def test_threshold_errors_counts_both_mistakes(threshold, accepts, rejects):
    errors = threshold_errors(GENUINE, IMPOSTOR, threshold)
    assert (errors.false_accepts, errors.false_rejects) == (accepts, rejects)
    assert errors.far == accepts / 5 and errors.tar == 1 - rejects / 4


def test_threshold_errors_prints_a_line_that_follows_the_threshold():
    assert str(threshold_errors(GENUINE, IMPOSTOR, 0.75)) == (
        "threshold 0.75: 2 false accepts of 5 pairs of different people, 0 false rejects of "
        "4 pairs of one person, FAR 0.40, TAR 1.00")
    assert "1 false accept of" in str(threshold_errors(GENUINE, IMPOSTOR, 0.6))
    with pytest.raises(ValueError):
        threshold_errors([], IMPOSTOR, 0.5)


def test_plot_threshold_marks_the_line_and_the_roc_point():
    fig = plot_threshold(GENUINE, IMPOSTOR, 0.75)
    hist, roc = fig.axes
    assert list(hist.lines[0].get_xdata()) == [0.75, 0.75]
    np.testing.assert_allclose(roc.collections[0].get_offsets(), [[0.4, 1.0]])
    curve = roc.lines[0]
    assert (0.4, 1.0) in set(zip(curve.get_xdata(), curve.get_ydata(), strict=True))


def test_the_threshold_slider_prints_the_counts_and_follows_the_slider(capsys):
    widget = threshold_slider(GENUINE, IMPOSTOR, 0.45)
    assert "threshold 0.45: 0 false accepts" in capsys.readouterr().out
    widget.children[0].value = 0.75
    out = capsys.readouterr().out
    assert "threshold 0.75: 2 false accepts of 5 pairs" in out, out


def test_the_upload_widget_without_an_upload_says_to_upload(capsys):
    widget = face_upload({"someone": np.zeros(128)})  # outside a kernel it prints to stdout
    upload, _ = widget.children
    assert upload.value == ()
    assert "Upload a JPEG or PNG" in capsys.readouterr().out


def upload_of(image: Image.Image | bytes, name: str) -> tuple[str, bytes]:
    """(name, bytes) as the upload widget hands a file to show_identities."""
    if isinstance(image, Image.Image):
        buffer = io.BytesIO()
        image.save(buffer, "PNG")
        image = buffer.getvalue()
    return name, image


def test_show_identities_reports_unreadable_and_faceless_uploads(capsys):
    database = {"someone": np.zeros(128)}
    show_identities(upload_of(b"not an image", "notes.txt"), database)
    assert "notes.txt: 'notes.txt' is not an image file" in capsys.readouterr().out
    show_identities(upload_of(Image.new("RGB", (64, 48), "grey"), "wall.png"), database)
    assert "wall.png: no face found" in capsys.readouterr().out


def test_show_identities_names_the_nearest_enrolled_person(dlib_photos, capsys):
    from nbutils.faces.encoder import load_face_encoder
    from nbutils.faces.recognition import img_to_encoding

    model = load_face_encoder()
    photo = dlib_photos["skimage_astronaut"]
    database = {"eileen": img_to_encoding(photo, model), "nobody": np.full(128, 5.0)}
    show_identities(upload_of(Image.fromarray(photo), "me.png"), database, model)
    out = capsys.readouterr().out
    assert "me.png, face 0: closest to eileen at distance 0.00 -> eileen" in out
    assert "No photo uploaded" not in out


def test_the_notebook_widget_cells_are_tagged():
    cells = [c for c in jupytext.read(NOTEBOOK).cells
             if "widget" in c.metadata.get("tags", [])]
    assert len(cells) == 2
    assert {"threshold_slider", "face_upload"} == {
        name for c in cells for name in ("threshold_slider", "face_upload") if name in c.source}
