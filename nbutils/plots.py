"""Plots a learner would rather look at than read: image grids, face detections, cost and
error curves."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from nbutils._internal.figures import subplots


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
    fig, axes = subplots(nrows, ncols, figsize=(size * ncols, size * nrows), squeeze=False)
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


#: Colour of each of MTCNN's five landmarks (`nbutils.faces.detect.LANDMARK_NAMES` order:
#: image-left eye, image-right eye, nose tip, image-left and image-right mouth corners).
LANDMARK_COLOURS = ("tab:blue", "tab:blue", "tab:orange", "tab:red", "tab:red")


def show_detections(images: Sequence[Any], detections: Sequence[Sequence[Any]],
                    titles: Sequence[str] | None = None, ncols: int | None = None,
                    size: float = 4.0) -> Figure:
    """Photos with what a face detector found on each: a numbered box per face, labelled
    with its confidence, and its five landmarks as dots (eyes blue, nose orange, mouth
    corners red).

    Args:
        images: the photos, as `show_images` takes them.
        detections: one list per photo of `nbutils.faces.detect.DetectedFace` (or
            `nbutils.faces.recognition.Face`, whose ``detection`` is used); [] for none.
        titles, ncols, size: as in `show_images`.
    """
    if len(detections) != len(images):
        raise ValueError(f"one list of detections per image: {len(images)} images, "
                         f"{len(detections)} lists")
    fig = show_images(images, titles, ncols, size)
    for ax, faces in zip(fig.axes, detections, strict=False):
        for i, face in enumerate(faces):
            face = getattr(face, "detection", face)
            left, top, right, bottom = face.box
            ax.add_patch(plt.Rectangle((left, top), right - left, bottom - top, fill=False,
                                       edgecolor="lime", linewidth=2))
            ax.annotate(f"{i}: {face.confidence:.2f}", (left, top), xytext=(0, 3),
                        textcoords="offset points", color="black", fontsize=9,
                        bbox={"boxstyle": "square,pad=0.15", "color": "lime"})
            x, y = np.asarray(face.landmarks, dtype=float).T
            ax.scatter(x, y, s=16, c=LANDMARK_COLOURS, edgecolors="white", linewidths=0.6,
                       zorder=3)
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
    fig, axes = subplots(1, len(keys), figsize=(4.2 * len(keys), 3.2), squeeze=False)
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


def plot_distance_matrix(distances: np.ndarray, labels: Sequence[str],
                         threshold: float | None = None) -> Figure:
    """A matrix of pairwise distances as a heat map; with a threshold, the pairs below it
    (judged "same person") are marked with a dot."""
    n = len(labels)
    fig, ax = subplots(figsize=(0.45 * n + 2.5, 0.45 * n + 1.5))
    im = ax.imshow(distances, cmap="viridis_r")
    ax.set_xticks(range(n), labels, rotation=90)
    ax.set_yticks(range(n), labels)
    if threshold is not None:
        rows, cols = np.nonzero(np.asarray(distances) < threshold)
        ax.scatter(cols, rows, s=12, c="white", edgecolors="black", linewidths=0.5,
                   label=f"distance < {threshold}")
        ax.legend(loc="upper left", bbox_to_anchor=(1.25, 1.0), fontsize=8)
    fig.colorbar(im, ax=ax, label="Euclidean distance")
    fig.tight_layout()
    return fig


def _gridded(fig: Figure, *axes: Any) -> Figure:
    """A light grid and a small legend on each of ``axes``, then a tight layout."""
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_false_accepts(false_accept_rates: Sequence[float], max_people: int = 100_000) -> Figure:
    """Why 1:K recognition is harder than 1:1 verification.

    With K people enrolled and a per-comparison false-accept rate p, a stranger's query is
    compared K times: about K p false accepts per query, and a chance 1 - (1 - p)^K that at
    least one enrolled person matches by mistake.
    """
    K = np.unique(np.logspace(0, np.log10(max_people), 200).astype(int))
    fig, (ax1, ax2) = subplots(1, 2, figsize=(10, 3.6))
    for p in false_accept_rates:
        ax1.plot(K, K * p, label=f"p = {p:g}")
        ax2.plot(K, 1 - (1 - p) ** K, label=f"p = {p:g}")
    ax1.set(xscale="log", yscale="log", xlabel="K, people in the database",
            ylabel="expected false accepts per query", title="K p")
    ax2.set(xscale="log", xlabel="K, people in the database",
            ylabel="P(at least one false accept)", title="1 - (1 - p)^K")
    return _gridded(fig, ax1, ax2)


def plot_training_curves(histories: Mapping[str, Mapping[str, Sequence[float]]]) -> Figure:
    """Triplet training side by side: the loss and the fraction of triplets still active
    (loss > 0), per training run, against the step."""
    fig, (ax1, ax2) = subplots(1, 2, figsize=(10, 3.4))
    for name, history in histories.items():
        ax1.plot(history["step"], history["loss"], label=name)
        ax2.plot(history["step"], history["active_fraction"], label=name)
    ax1.set(xlabel="step", ylabel="triplet loss", title="loss")
    ax2.set(xlabel="step", ylabel="fraction of triplets with loss > 0",
            title="active triplets", ylim=(0, 1.02))
    return _gridded(fig, ax1, ax2)


def plot_embedding_2d(points: np.ndarray, labels: Sequence[int],
                      names: Mapping[int, str] | None = None, title: str = "") -> Figure:
    """A 2-D scatter of embedded points (e.g. their PCA projection), one colour per class;
    each class's name is written at its centre."""
    points, labels = np.asarray(points), np.asarray(labels)
    fig, ax = subplots(figsize=(5.2, 4.6))
    for i, c in enumerate(np.unique(labels)):
        where = labels == c
        ax.scatter(*points[where].T, s=12, color=plt.cm.tab10(i % 10), alpha=0.7)
        if names is not None:
            ax.annotate(names[c], points[where].mean(axis=0), fontsize=13, weight="bold",
                        ha="center", va="center")
    ax.set(title=title, xlabel="PC 1", ylabel="PC 2")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def plot_cost_vs_time(histories: Mapping[str, Mapping[str, Sequence[float]]]) -> Figure:
    """Total cost of several style-transfer runs against wall time and against passes
    (VGG forward+backward evaluations), log scale: which optimiser gets there first."""
    fig, (ax1, ax2) = subplots(1, 2, figsize=(10, 3.4))
    for name, history in histories.items():
        ax1.plot(history["time"], history["total"], label=name)
        ax2.plot(history["step"], history["total"], label=name)
    ax1.set(xlabel="seconds", ylabel="total cost J", yscale="log", title="cost vs time")
    ax2.set(xlabel="VGG passes", ylabel="total cost J", yscale="log", title="cost vs passes")
    return _gridded(fig, ax1, ax2)


def plot_threshold(genuine: Sequence[float], impostor: Sequence[float],
                   threshold: float) -> Figure:
    """The rule "same person when distance < threshold" on labelled pairs: the two
    distributions of distances with the threshold line, and the ROC curve of the rule with
    the point this threshold picks, (FAR, TAR).

    Args:
        genuine: distances of pairs of one person (a false reject: at or beyond threshold).
        impostor: distances of pairs of two people (a false accept: below threshold).
        threshold: the distance threshold.
    """
    from nbutils.siamese.verification import auc, distance_roc

    genuine = np.asarray(genuine, dtype=float).ravel()
    impostor = np.asarray(impostor, dtype=float).ravel()
    far = float(np.mean(impostor < threshold))
    tar = float(np.mean(genuine < threshold))
    fig, (ax1, ax2) = subplots(1, 2, figsize=(10, 3.8),
                               gridspec_kw={"width_ratios": [1.6, 1]})
    top = max(genuine.max(), impostor.max(), threshold) * 1.05
    bins = np.linspace(0.0, top, 41)
    ax1.hist(genuine, bins, color="tab:green", alpha=0.6,
             label=f"same person ({len(genuine)} pairs)")
    ax1.hist(impostor, bins, color="tab:purple", alpha=0.6,
             label=f"different people ({len(impostor)} pairs)")
    ax1.axvline(threshold, color="black", linestyle="--", label=f"threshold {threshold:.2f}")
    ax1.set(xlabel="distance between the two descriptors", ylabel="pairs",
            title="accepted: left of the line")
    ax1.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax1.legend(fontsize=8)
    distances = np.r_[genuine, impostor]
    same = np.r_[np.ones(len(genuine), bool), np.zeros(len(impostor), bool)]
    fpr, tpr, _ = distance_roc(distances, same)
    ax2.plot(fpr, tpr, label=f"distance rule (AUC = {auc(fpr, tpr):.3f})")
    ax2.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=1, label="chance")
    ax2.scatter([far], [tar], s=60, color="black", zorder=3,
                label=f"threshold {threshold:.2f}: FAR {far:.2f}, TAR {tar:.2f}")
    ax2.set(xlim=(-0.03, 1.03), ylim=(-0.03, 1.03), aspect="equal",
            xlabel="false-accept rate (FAR)", ylabel="true-accept rate (TAR)", title="ROC")
    ax2.legend(loc="lower right", fontsize=8)
    for ax in (ax1, ax2):
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig
