"""Shared fixtures: the reference photos dlib was run on, rebuilt from installed packages;
an empty cache folder; a folder no file can be created in."""

import json
import os
import subprocess
from pathlib import Path

import nbformat
import numpy as np
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook
from PIL import Image

from nbutils._internal.cache import CACHE_ENV, cache_dir

DATA = Path(__file__).parent / "data"


def reference_photos() -> dict[str, np.ndarray]:
    """The photos of tests/data/README.md, made exactly as they were for dlib."""
    import matplotlib.cbook
    import skimage.data

    with Image.open(matplotlib.cbook.get_sample_data("grace_hopper.jpg")) as im:
        hopper = np.asarray(im.convert("RGB"))
    photos = {}
    for name, array in {"skimage_astronaut": skimage.data.astronaut(),
                        "matplotlib_grace_hopper": hopper}.items():
        image = Image.fromarray(array)
        photos[name] = array
        photos[f"{name}__rot10"] = np.asarray(
            image.rotate(10, resample=Image.Resampling.BILINEAR, expand=True))
        photos[f"{name}__half"] = np.asarray(
            image.resize((image.width // 2, image.height // 2), Image.Resampling.BILINEAR))
        photos[f"{name}__dark"] = np.clip(array * 0.6, 0, 255).astype(np.uint8)
        photos[f"{name}__mirror"] = array[:, ::-1].copy()
    return photos


@pytest.fixture(scope="session")
def dlib_photos() -> dict[str, np.ndarray]:
    return reference_photos()


@pytest.fixture(scope="session")
def dlib_photo_reference() -> dict[str, dict]:
    """Per photo: dlib's detector box, its 5 landmarks and its full-pipeline descriptor."""
    return json.loads((DATA / "dlib_reference_photos.json").read_text())["photos"]


@pytest.fixture(scope="session")
def dlib_chip_reference() -> dict[str, np.ndarray]:
    with np.load(DATA / "dlib_reference_chips.npz") as z:
        return {k: z[k] for k in z.files}


@pytest.fixture
def empty_cache(tmp_path, monkeypatch) -> Path:
    """A fresh cache folder ($NBUTILS_CACHE_DIR) with no converted weights in it, in which
    the packages that `python -m nbutils.prepare` fetched are still found (a link)."""
    fetched = cache_dir() / "packages"
    cache = tmp_path / "cache"
    cache.mkdir()
    if fetched.is_dir():
        (cache / "packages").symlink_to(fetched, target_is_directory=True)
    monkeypatch.setenv(CACHE_ENV, str(cache))
    return cache


def fixture_notebook(path: Path, *sources: str) -> Path:
    """A notebook at ``path``: a title, then one code cell per source (kernel python3)."""
    nb = new_notebook(cells=[new_markdown_cell("# fixture")] + [new_code_cell(s) for s in sources],
                      metadata={"kernelspec": {"display_name": "Python 3", "language": "python",
                                               "name": "python3"}})
    for i, cell in enumerate(nb.cells):
        cell.id = f"cell-{i}"
    nbformat.write(nb, path)
    return path


STUDENT_EXERCISES = ["gram_matrix", "total_cost", "triplet_loss"]


def student_notebook(tmp_path, name, bodies=None, extra=(), after=()):
    """A small student notebook (exercises gram_matrix, total_cost, triplet_loss): cells
    ``extra`` before the exercises' import, ``after`` at the end; ``bodies`` replace stubs."""
    path = fixture_notebook(
        tmp_path / f"{name}_src.ipynb", *extra,
        "import numpy as np\nimport tensorflow as tf\n"
        "from nbutils.style import gram_matrix, total_cost\nfrom nbutils.faces import triplet_loss",
        "print(float(total_cost(1.0, 0.0)))", *after)
    from nbutils.lab import exercises  # the lab's exporter, only for the grader's tests

    nb, names = exercises.make_student(nbformat.read(path, as_version=4))
    assert names == STUDENT_EXERCISES
    for cell in nb.cells:
        exercise = cell.metadata.get("nbutils", {}).get("exercise")
        if bodies and exercise in bodies:
            cell.source = bodies[exercise]
    out = tmp_path / f"{name}.ipynb"
    nbformat.write(nb, out)
    return out


@pytest.fixture
def unwritable_folder(tmp_path, monkeypatch) -> Path:
    """A folder in which no file can be created, though ``os.access`` says it can, as
    permission bits say to root: immutable (``chattr +i``) for root, mode 0o555 for others.
    """
    folder = tmp_path / "locked"
    folder.mkdir()
    if os.geteuid() == 0:
        try:
            locked = subprocess.run(["chattr", "+i", str(folder)], capture_output=True)
        except OSError:
            locked = None
        if locked is None or locked.returncode:
            pytest.skip("chattr +i cannot make an immutable folder here")
    else:
        folder.chmod(0o555)
    monkeypatch.setattr(os, "access", lambda *args, **kwargs: True)
    yield folder
    if os.geteuid() == 0:
        subprocess.run(["chattr", "-i", str(folder)], check=True)
    else:
        folder.chmod(0o755)
