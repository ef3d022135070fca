"""The art notebook's widgets (`nbutils.extras.widgets`): each runs once at its defaults,
prints what it was set to and what came out, and runs again when a control moves."""

import io
import re
from datetime import datetime, timezone

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from PIL import Image  # noqa: E402

from nbutils.extras.widgets import strength_slider, style_knobs, style_uploads  # noqa: E402
from nbutils.images import load_image  # noqa: E402
from nbutils.samples import sample_image_path  # noqa: E402
from nbutils.style.costs import STYLE_LAYERS  # noqa: E402


@pytest.fixture(scope="module")
def images():
    return {"content": load_image(sample_image_path("content"), 32),
            "style": load_image(sample_image_path("style_swirls"), 32)}


def controls(widget) -> dict:
    return {child.description: child for child in widget.children if hasattr(child, "value")}


def test_the_knobs_run_at_the_course_values_and_again_when_beta_moves(images, capsys):
    widget = style_knobs(dict(images), size=32, steps=2)
    first = capsys.readouterr().out
    assert "alpha 10, beta 40, TV 0: J_content " in first
    sliders = controls(widget)
    assert [sliders[name].value for name, _ in STYLE_LAYERS] == [w for _, w in STYLE_LAYERS]
    sliders["beta"].value = 0.1
    second = capsys.readouterr().out
    assert "alpha 10, beta 0.1, TV 0: " in second
    j_style = [float(re.search(r"J_style (\S+),", out).group(1)) for out in (first, second)]
    assert j_style[1] > j_style[0]  # with style nearly free, G keeps less of S's statistics


def test_the_strength_slider_moves_the_image_towards_c(images, capsys):
    widget = strength_slider(dict(images))
    controls(widget)["strength"].value = 0.0
    outs = re.findall(r"strength (\S+): mean \|G - C\| = (\S+)", capsys.readouterr().out)
    assert [s for s, _ in outs] == ["1.00", "0.00"]
    assert float(outs[1][1]) < float(outs[0][1])


def upload_value(data: bytes, name: str) -> tuple[dict, ...]:
    return ({"name": name, "type": "image/png", "size": len(data), "content": memoryview(data),
             "last_modified": datetime.now(timezone.utc)},)


def test_an_upload_replaces_the_content_and_a_bad_file_is_named(images, capsys):
    mine = dict(images)
    widget = style_uploads(mine, size=32)
    assert "content: the sample image" in capsys.readouterr().out
    content_upload, style_upload = widget.children[0].children
    buffer = io.BytesIO()
    Image.new("RGB", (40, 20), (255, 0, 0)).save(buffer, "PNG")
    content_upload.value = upload_value(buffer.getvalue(), "red.png")
    assert "content: red.png" in capsys.readouterr().out
    np.testing.assert_allclose(mine["content"], np.broadcast_to([1.0, 0, 0], (32, 32, 3)))
    style_upload.value = upload_value(b"not an image", "notes.txt")
    out = capsys.readouterr().out
    assert "style: 'notes.txt' is not an image file" in out
    np.testing.assert_array_equal(mine["style"], images["style"])  # the last good one stays
