"""Widget figures are made outside pyplot (`nbutils._internal.figures`), so a second thread
that shows and closes pyplot's figures, as a kernel's comm thread does under JupyterLab's
subshells (ipykernel issue 1564), cannot draw one of them at the same time. (That race
itself, a blank figure, showed only in a real kernel: `make browser-check` is its test.)"""

import io
import threading

import matplotlib

matplotlib.use("Agg")

import IPython.display  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from matplotlib import pyplot as plt  # noqa: E402
from matplotlib.backend_bases import FigureCanvasBase  # noqa: E402
from PIL import Image  # noqa: E402

from nbutils._internal.figures import off_pyplot  # noqa: E402
from nbutils.extras.widgets import threshold_slider  # noqa: E402
from nbutils.plots import show_images  # noqa: E402

GENUINE, IMPOSTOR = [0.2, 0.3, 0.5, 0.7], [0.4, 0.6, 0.8, 0.9, 1.0]


@pytest.fixture
def shown(monkeypatch) -> list[bytes]:
    """The PNGs the widgets display."""
    images: list[bytes] = []
    monkeypatch.setattr(IPython.display, "display", lambda image: images.append(image.data))
    return images


def painted(png: bytes) -> bool:
    with Image.open(io.BytesIO(png)) as image:
        low, high = image.convert("L").getextrema()
    return high - low >= 8


def test_what_a_widget_draws_is_never_in_pyplots_list(monkeypatch, shown):
    plt.close("all")
    printed = []
    print_figure = FigureCanvasBase.print_figure

    def watched(canvas, *args, **kwargs):
        held = [plt.figure(n) for n in plt.get_fignums()]
        printed.append(any(canvas.figure is fig for fig in held))
        return print_figure(canvas, *args, **kwargs)

    monkeypatch.setattr(FigureCanvasBase, "print_figure", watched)
    widget = threshold_slider(GENUINE, IMPOSTOR, 0.45)
    widget.children[0].value = 0.75
    assert printed == [False, False] and len(shown) == 2
    assert all(painted(png) for png in shown)
    assert plt.get_fignums() == []


def test_the_notebooks_own_figures_stay_with_pyplot_and_each_thread_decides_for_itself():
    plt.close("all")
    image = np.zeros((4, 4, 3))
    fig = show_images([image])
    assert plt.get_fignums() == [fig.number]  # a cell's figure: shown by the inline backend
    plt.close("all")
    made = []
    with off_pyplot():
        made.append(show_images([image]))
        other = threading.Thread(target=lambda: made.append(show_images([image])))
        other.start()
        other.join()
    assert len(made) == 2 and plt.get_fignums() == [made[1].number]  # the other thread's
    plt.close("all")
