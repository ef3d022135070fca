"""Neural style transfer, with the course's names: costs, the train step, and `stylize`;
`stylize_feedforward`: one forward pass of two trained networks instead of an optimisation."""

from nbutils.style.color import luminance_transfer, match_color
from nbutils.style.costs import (
    CONTENT_LAYER,
    STYLE_LAYERS,
    compute_content_cost,
    compute_layer_style_cost,
    compute_style_cost,
    gram_matrix,
    total_cost,
    unroll_channels,
)
from nbutils.style.fast import stylize_fast
from nbutils.style.feedforward import stylize_feedforward
from nbutils.style.optimize import (
    clip_0_1,
    get_layer_outputs,
    initial_generated_image,
    make_train_step,
    stylize,
    to_batch,
    train,
)
from nbutils.style.regularizers import total_variation_cost

__all__ = [
    "CONTENT_LAYER",
    "STYLE_LAYERS",
    "clip_0_1",
    "compute_content_cost",
    "compute_layer_style_cost",
    "compute_style_cost",
    "get_layer_outputs",
    "gram_matrix",
    "luminance_transfer",
    "match_color",
    "stylize_fast",
    "stylize_feedforward",
    "total_variation_cost",
    "initial_generated_image",
    "make_train_step",
    "stylize",
    "to_batch",
    "total_cost",
    "train",
    "unroll_channels",
]
