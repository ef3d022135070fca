"""Run by check_wheel.sh inside a fresh environment holding the installed wheel, from a
folder outside the checkout: the package's main verbs work, and write only where they may.

Usage: python smoke.py SNAPSHOT_BEFORE   (a JSON listing of the installed package's files)
"""

import json
import sys
from pathlib import Path

import numpy as np

import nbutils
from nbutils.faces.encoder import load_face_encoder
from nbutils.faces.recognition import img_to_encoding
from nbutils.images import load_image, save_image
from nbutils.samples import DEFAULT_FOLDER
from nbutils.settings import output_path
from nbutils.style.optimize import stylize
from nbutils.vgg19 import load_vgg19

package = Path(nbutils.__file__).parent
checkout = Path(__file__).resolve().parents[2]
assert checkout not in package.parents, f"nbutils imported from the checkout: {package}"
assert not Path.cwd().is_relative_to(checkout), f"run from inside the checkout: {Path.cwd()}"

vgg = load_vgg19()
features = vgg(np.zeros((1, 32, 32, 3), np.float32))
assert features.shape == (1, 1, 1, 512), features.shape

encoder = load_face_encoder()
photo = DEFAULT_FOLDER / "people" / "grace_hopper" / "grace_hopper.jpg"
descriptor = img_to_encoding(photo, encoder)
assert descriptor.shape == (128,) and np.isfinite(descriptor).all()
# dlib's own descriptor of this portrait is within 0.15 of ours (tests/test_face_recognition.py);
# here it is enough that the same photo, mirrored, is the same person.
mirror = img_to_encoding(load_image(photo)[:, ::-1], encoder)
assert float(np.linalg.norm(descriptor - mirror)) < 0.6

image, history = stylize(DEFAULT_FOLDER / "content_grace_hopper.jpg",
                         DEFAULT_FOLDER / "style_swirls.png", size=32, steps=3, every=None,
                         vgg=vgg, progress=False)
assert image.shape == (32, 32, 3) and len(history["total"]) == 3
saved = save_image(image, output_path("smoke.png"))
assert saved.parent == Path.cwd() / "outputs", saved

before = json.loads(Path(sys.argv[1]).read_text())
after = {str(p.relative_to(package)): p.stat().st_mtime_ns
         for p in sorted(package.rglob("*")) if p.is_file()}
assert after == before, f"files written inside the installed package: {set(after) ^ set(before)}"
print(f"smoke: nbutils {package} works from {Path.cwd()}; nothing written inside it")
