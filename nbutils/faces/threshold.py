"""Choosing a distance threshold: the false accepts and false rejects that "same person
when distance < threshold" makes on labelled pairs, and where it puts the ROC point.

`nbutils.plots.plot_threshold` draws them; `nbutils.extras.widgets.threshold_slider` moves
the threshold live.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


def _count(n: int, what: str) -> str:
    return f"{n} {what}" if n == 1 else f"{n} {what}s"


@dataclass(frozen=True)
class ThresholdErrors:
    """The mistakes of "same person when distance < threshold" on labelled pairs."""

    threshold: float
    false_accepts: int  # pairs of two people at a distance below the threshold
    false_rejects: int  # pairs of one person at the threshold or beyond
    impostor_pairs: int
    genuine_pairs: int

    @property
    def far(self) -> float:
        """False-accept rate: false accepts / pairs of two people."""
        return self.false_accepts / self.impostor_pairs

    @property
    def tar(self) -> float:
        """True-accept rate: 1 - false rejects / pairs of one person."""
        return 1.0 - self.false_rejects / self.genuine_pairs

    def __str__(self) -> str:
        return (f"threshold {self.threshold:.2f}: "
                f"{_count(self.false_accepts, 'false accept')} of {self.impostor_pairs} "
                f"pairs of different people, "
                f"{_count(self.false_rejects, 'false reject')} of {self.genuine_pairs} "
                f"pairs of one person, FAR {self.far:.2f}, TAR {self.tar:.2f}")


def threshold_errors(genuine: Sequence[float], impostor: Sequence[float],
                     threshold: float) -> ThresholdErrors:
    """Count the false accepts (``impostor`` distances < threshold) and false rejects
    (``genuine`` distances >= threshold).

    Raises:
        ValueError: ``genuine`` or ``impostor`` is empty.
    """
    genuine = np.asarray(genuine, dtype=float).ravel()
    impostor = np.asarray(impostor, dtype=float).ravel()
    if not len(genuine) or not len(impostor):
        raise ValueError("need at least one pair of one person and one of two people")
    return ThresholdErrors(float(threshold), int(np.sum(impostor < threshold)),
                           int(np.sum(genuine >= threshold)), len(impostor), len(genuine))
