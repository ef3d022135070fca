"""Neural style transfer with the course's names: the costs (`nbutils.style.costs`), the
train step and `stylize` (`nbutils.style.optimize`), total variation
(`nbutils.style.regularizers`). Beyond the course: `nbutils.extras`.

Each name below imports its module on first use.
"""

from nbutils._internal.lazy import lazy_names

__getattr__, __dir__, __all__ = lazy_names(__name__, {
    "costs": ("CONTENT_LAYER", "STYLE_LAYERS", "compute_content_cost",
              "compute_layer_style_cost", "compute_style_cost", "gram_matrix", "total_cost",
              "unroll_channels"),
    "optimize": ("clip_0_1", "get_layer_outputs", "initial_generated_image",
                 "make_train_step", "stylize", "to_batch", "train"),
    "regularizers": ("total_variation_cost",),
})
