"""Checks of the style command line's values, made before any image or network is loaded.

- `VGG19_LAYER_NAMES`: the layers a content or style cost may use, known without building
  the network.
- The number and path checks every command shares (`int_option`, `float_option`,
  `file_problem`, `folder_problem`) live in `nbutils.cli_options`.
"""

from __future__ import annotations

from nbutils.weights.vgg19 import VGG19_CONV_LAYERS

#: VGG19's convolution and pooling layers, as Keras names them (the input layer excluded).
VGG19_LAYER_NAMES: tuple[str, ...] = tuple(
    name
    for block in range(1, 6)
    for name in [n for n in VGG19_CONV_LAYERS if n.startswith(f"block{block}_")]
    + [f"block{block}_pool"]
)

#: --seed feeds tf.random's stateless ops, which take int64 seeds.
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
