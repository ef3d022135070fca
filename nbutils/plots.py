"""Plots a learner would rather look at than read: image grids and cost curves."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure


def show_images(images: Sequence[Any], titles: Sequence[str] | None = None,
                ncols: int | None = None, size: float = 2.5) -> Figure:
    """A grid of images: each (H, W, 3) or (1, H, W, 3), float in [0, 1] or uint8.

    Args:
        images: the images, shown left to right, top to bottom.
        titles: one title per image, optional.
        ncols: images per row (default: all in one row, at most 5).
        size: inches per image.
    """
    n = len(images)
    ncols = ncols or min(n, 5)
    nrows = math.ceil(n / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, size * nrows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for i, image in enumerate(images):
        image = np.asarray(image)
        image = image[0] if image.ndim == 4 else image
        if image.dtype != np.uint8:
            image = np.clip(image, 0.0, 1.0)
        ax = axes.flat[i]
        ax.imshow(image)
        if titles is not None:
            ax.set_title(titles[i])
    fig.tight_layout()
    return fig


def show_snapshots(snapshots: Mapping[int, Any], max_images: int = 10, ncols: int = 5) -> Figure:
    """G as it changes: a grid of ``{step: image}`` snapshots, titled by step."""
    steps = sorted(snapshots)
    if len(steps) > max_images:
        picks = np.linspace(0, len(steps) - 1, max_images).round().astype(int)
        steps = [steps[i] for i in picks]
    return show_images([snapshots[s] for s in steps], [f"step {s}" for s in steps],
                       ncols=min(ncols, len(steps)))


def plot_costs(history: Mapping[str, Sequence[float]],
               keys: Sequence[str] = ("content", "style", "total")) -> Figure:
    """Cost curves per step, one panel per cost, log scale (costs fall by decades)."""
    fig, axes = plt.subplots(1, len(keys), figsize=(4.2 * len(keys), 3.2), squeeze=False)
    for ax, key in zip(axes.flat, keys, strict=True):
        values = np.asarray(history[key], dtype=float)
        ax.plot(history["step"], values)
        ax.set_title(f"J_{key}" if key != "total" else "J = alpha J_content + beta J_style")
        ax.set_xlabel("step")
        if np.all(values[np.isfinite(values)] > 0):
            ax.set_yscale("log")
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig
