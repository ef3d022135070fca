"""N-way one-shot evaluation: can one example per class identify a new image's class?

An episode draws N unseen classes, one *support* image of each, and one *query* image of
one of them (a different image from its support). The prediction is the class of the
support nearest to the query in embedding space. Accuracy is the share of episodes
predicted right; chance is 1/N.
"""

from __future__ import annotations

import numpy as np


def one_shot_accuracy(embeddings: np.ndarray, labels: np.ndarray, classes: np.ndarray,
                      n_way: int, episodes: int = 2000, seed: int = 0) -> float:
    """Mean ``n_way`` one-shot accuracy by nearest support (Euclidean) over ``episodes``
    seeded episodes drawn from ``classes`` (each with >= 2 examples) of (N, d) embeddings."""
    classes = np.asarray(classes)
    if n_way > len(classes):
        raise ValueError(f"{n_way}-way episodes need {n_way} classes, got {len(classes)}")
    members = [np.flatnonzero(labels == c) for c in classes]
    if min(len(m) for m in members) < 2:
        raise ValueError("every class needs at least 2 examples (a support and a query)")
    x = np.asarray(embeddings, np.float64).reshape(len(labels), -1)
    rng = np.random.default_rng(seed)
    correct = 0
    for _ in range(episodes):
        picked = rng.choice(len(classes), n_way, replace=False)  # picked[0] is the target
        pairs = [rng.choice(members[c], 2, replace=False) for c in picked]
        supports = np.array([pair[0] for pair in pairs])
        query = pairs[0][1]
        distances = np.linalg.norm(x[supports] - x[query], axis=1)
        correct += int(np.argmin(distances) == 0)
    return correct / episodes


def one_shot_table(embeddings: dict[str, np.ndarray], labels: np.ndarray, classes: np.ndarray,
                   ways: tuple[int, ...] = (5, 20), episodes: int = 2000, seed: int = 0
                   ) -> dict[str, dict[int, float]]:
    """``{method: {n_way: accuracy}}`` for several embeddings on the same episodes."""
    return {name: {n: one_shot_accuracy(e, labels, classes, n, episodes, seed) for n in ways}
            for name, e in embeddings.items()}


def pca_project(x: np.ndarray, k: int = 2) -> np.ndarray:
    """(n, d) points -> (n, k) coordinates on their first k principal components
    (centred; computed by SVD). Signs are fixed so each axis's largest loading is positive."""
    x = np.asarray(x, np.float64)
    centred = x - x.mean(axis=0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    axes = vt[:k] * np.sign(vt[:k, np.abs(vt[:k]).argmax(axis=1)].diagonal())[:, None]
    return centred @ axes.T
