"""The notebooks' optional widgets: controls for a live kernel (JupyterLab or Notebook).

Each builder returns an ipywidgets widget that has already run once at its default values,
so a notebook executed headless stores a result; every run prints one line that says what
the controls were set to and what came out. ipywidgets is imported only when a builder is
called: the rest of nbutils never needs it.

    style_uploads(images)          upload buttons for your content and style images
    style_knobs(images, vgg)       sliders for alpha, beta, the style-layer weights and TV
    strength_slider(images)        the feed-forward network's strength, live
    threshold_slider(gen, imp)     the face distance threshold: errors and the ROC point
    face_upload(database, model)   an upload button for your photo, against a database
"""

from __future__ import annotations

import io
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import keras
import numpy as np
from matplotlib.figure import Figure

from nbutils._internal.figures import off_pyplot
from nbutils.extras.fast_style import stylize_fast
from nbutils.extras.feedforward import stylize_feedforward
from nbutils.faces.database import DISTANCE_THRESHOLD
from nbutils.faces.encoder import encode_chips
from nbutils.faces.recognition import Database, as_database, find_faces, load_rgb_uint8
from nbutils.faces.threshold import threshold_errors
from nbutils.images import ImageError, load_image
from nbutils.plots import plot_threshold, show_detections, show_images
from nbutils.style.costs import STYLE_LAYERS

ROLES = ("content", "style")


def draw(plot: Callable[..., Figure], *args: Any, **kwargs: Any) -> None:
    """Display ``plot(*args, **kwargs)`` as a PNG, its figure made outside pyplot
    (`nbutils._internal.figures.off_pyplot`): widget callbacks run on a kernel thread of
    their own, where pyplot's figures are shown and closed under the main thread's feet, and
    a figure drawn by two threads at once came out blank (`tools/browser_check.py`)."""
    from IPython.display import Image, display

    with off_pyplot():
        fig = plot(*args, **kwargs)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", bbox_inches="tight")
    display(Image(buffer.getvalue()))


def threshold_slider(genuine: Sequence[float], impostor: Sequence[float],
                     value: float = DISTANCE_THRESHOLD) -> Any:
    """A slider over the distance threshold: `threshold_errors` printed and
    `plot_threshold` drawn at each value (nbutils.faces.threshold)."""
    import ipywidgets as widgets

    def run(threshold: float) -> None:
        print(threshold_errors(genuine, impostor, threshold))
        draw(plot_threshold, genuine, impostor, threshold)

    return widgets.interactive(run, threshold=widgets.FloatSlider(
        value, min=0.2, max=1.0, step=0.01, readout_format=".2f", continuous_update=False,
        description="threshold"))


def _last_upload(upload: Any) -> tuple[str, bytes] | None:
    """(name, bytes) of the newest file of a ``FileUpload`` value, or None."""
    if not upload.value:
        return None
    file = upload.value[-1]
    return file["name"], file["content"]


def style_uploads(images: dict[str, np.ndarray], size: int = 256) -> Any:
    """Two upload buttons; each file replaces ``images["content"]`` or ``images["style"]``
    (``size`` x ``size``), then the pair is stylised by the feed-forward networks."""
    import ipywidgets as widgets

    uploads = {role: widgets.FileUpload(accept="image/*", description=f"your {role}")
               for role in ROLES}
    output = widgets.Output()

    def update(change: Any = None) -> None:
        with output:
            output.clear_output(wait=True)
            for role, upload in uploads.items():
                file = _last_upload(upload)
                if file is None:
                    print(f"{role}: the sample image (nothing uploaded yet)")
                    continue
                try:
                    images[role] = load_image(file[1], size, name=file[0])
                    print(f"{role}: {file[0]}, {len(file[1]):,} bytes")
                except ImageError as err:
                    print(f"{role}: {err}")
            stylised = stylize_feedforward(images["content"], images["style"])
            draw(show_images, [images["content"], images["style"], stylised],
                 ["content", "style", "feed-forward"], size=3)

    for upload in uploads.values():
        upload.observe(update, names="value")
    update()
    return widgets.VBox([widgets.HBox(list(uploads.values())), output])


def style_knobs(images: dict[str, np.ndarray], vgg: keras.Model | None = None,
                size: int = 128, steps: int = 20) -> Any:
    """Sliders for the objective of `stylize_fast` (L-BFGS, ``steps`` passes at ``size``
    px: seconds a run): alpha, beta (log scales), TV weight, one lambda per style layer."""
    import ipywidgets as widgets

    def log_slider(value: float, low: int, high: int, name: str) -> Any:
        return widgets.FloatLogSlider(value, base=10, min=low, max=high, step=0.25,
                                      description=name, continuous_update=False)

    def run(alpha: float, beta: float, tv_weight: float, **layer_weights: float) -> None:
        image, history = stylize_fast(images["content"], images["style"], size, steps=steps,
                                      alpha=alpha, beta=beta, tv_weight=tv_weight,
                                      style_layers=list(layer_weights.items()), vgg=vgg,
                                      progress=False)
        print(f"alpha {alpha:.3g}, beta {beta:.3g}, TV {tv_weight:.3g}: "
              f"J_content {history['content'][-1]:.4g}, J_style {history['style'][-1]:.4g}, "
              f"J {history['best_total']:.4g}")
        draw(show_images, [load_image(images["content"], size), image], ["content", "result"],
             size=3)

    layers = {name: widgets.FloatSlider(weight, min=0.0, max=1.0, step=0.05, description=name,
                                        continuous_update=False)
              for name, weight in STYLE_LAYERS}
    tv = widgets.FloatSlider(0.0, min=0.0, max=20_000, step=1000, description="TV weight",
                             continuous_update=False)
    return widgets.interactive(run, alpha=log_slider(10, -1, 4, "alpha"),
                               beta=log_slider(40, -1, 4, "beta"), tv_weight=tv, **layers)


def strength_slider(images: dict[str, np.ndarray]) -> Any:
    """The feed-forward networks' ``strength`` from 0 (C's own style) to 1 (S's)."""
    import ipywidgets as widgets

    def run(strength: float) -> None:
        start = time.perf_counter()
        image = stylize_feedforward(images["content"], images["style"], strength)
        change = np.abs(image - load_image(images["content"], image.shape[:2])).mean()
        print(f"strength {strength:.2f}: mean |G - C| = {change:.3f} "
              f"({time.perf_counter() - start:.2f} s)")
        draw(show_images, [image], [f"strength {strength:.2f}"], size=4)

    return widgets.interactive(run, strength=widgets.FloatSlider(
        1.0, min=0.0, max=1.0, step=0.05, description="strength"))


def show_identities(photo: tuple[str, Any], database: Database, model=None,
                    threshold: float = DISTANCE_THRESHOLD) -> None:
    """Find the faces of ``photo`` (name, the file's bytes or path), draw them, and print who each
    is closest to in ``database`` (a `FaceDatabase` or dict name -> descriptors)."""
    name, source = photo
    try:
        image = load_rgb_uint8(load_image(source, name=name))
    except ImageError as err:
        print(f"{name}: {err}")
        return
    faces = find_faces(image)
    if not faces:
        print(f"{name}: no face found")
    database = as_database(database)
    descriptors = encode_chips(np.stack([face.chip for face in faces]), model) if faces else []
    for i, descriptor in enumerate(descriptors):
        distance, person = database.search(descriptor)[0]
        verdict = person if distance < threshold else f"nobody (not below {threshold})"
        print(f"{name}, face {i}: closest to {person} at distance {distance:.2f} -> {verdict}")
    draw(show_detections, [image], [faces], [name], size=5.0)


def face_upload(database: Database, model=None, default: str | Path | None = None,
                threshold: float = DISTANCE_THRESHOLD) -> Any:
    """An upload button: each photo's faces, drawn, with who they are closest to
    (`show_identities`); ``default`` is shown until a photo is uploaded."""
    import ipywidgets as widgets

    upload = widgets.FileUpload(accept="image/*", description="your photo")
    output = widgets.Output()

    def update(change: Any = None) -> None:
        with output:
            output.clear_output(wait=True)
            file = _last_upload(upload)
            if file is None and default is None:
                print("Upload a JPEG or PNG with the button above.")
                return
            if file is None:
                file = (Path(default).name, default)
                print(f"No photo uploaded: here is {file[0]}. Upload a JPEG or PNG of your "
                      "own with the button above.")
            show_identities(file, database, model, threshold)

    upload.observe(update, names="value")
    update()
    return widgets.VBox([upload, output])
