"""The one interface every gallery backend implements, and what they share.

A *gallery* maps people's names to one or more (d,) float32 face descriptors each and
answers the two questions of face recognition, with Euclidean distances:

- ``verify(query, name)`` (1:1): the distance from the query to the nearest of that
  person's descriptors, and whether it is below the threshold.
- ``identify(query)`` (1:K): the nearest person and that distance, or ``None`` ("not in
  the database") when even the nearest is at or beyond the threshold. ``search(query, k)``
  gives the k nearest people, without a threshold.

A backend provides storage and *candidates*: the people its index says are nearest,
possibly approximately. Every distance returned is then recomputed here, directly in
float64 from the stored float32 descriptors, so all backends give identical distances on
identical data, and an approximate index can only miss a person, never misplace one.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any, ClassVar, NamedTuple

import numpy as np

from nbutils.faces.database import EmptyDatabaseError, check_name

#: dlib's threshold for its 128-d descriptors (= `nbutils.faces.encoder.DISTANCE_THRESHOLD`,
#: repeated so that the gallery does not import Keras).
DEFAULT_THRESHOLD = 0.6
#: The longest name, in UTF-8 bytes, that every backend stores (Milvus's VARCHAR is bounded).
MAX_NAME_BYTES = 512
_NAMES_SHOWN = 20
_SPARE_CANDIDATES = 4


class DuplicateNameError(ValueError):
    """``add`` was given a name that is already in the gallery."""


class UnknownPersonError(KeyError):
    """A name that is not in the gallery; the message lists (some of) the known names."""

    def __str__(self) -> str:  # KeyError would print the message with quotes around it
        return str(self.args[0])


class BackendNotInstalledError(ImportError):
    """The package a backend needs is missing; the message names the extra to install."""


class GalleryConnectionError(ConnectionError):
    """A gallery server could not be reached; the message names its URI."""


class Verification(NamedTuple):
    """1:1 answer: ``distance`` to the person's nearest descriptor; ``accepted`` if below
    the threshold. Unpacks like the course's ``verify``: ``dist, door_open = ...``."""

    distance: float
    accepted: bool


class Identification(NamedTuple):
    """1:K answer: ``distance`` to the nearest descriptor of anyone, and that person's
    ``name``, or None when the distance is at or beyond the threshold."""

    distance: float
    name: str | None


class Neighbour(NamedTuple):
    """One of ``search``'s nearest people and the distance to their nearest descriptor."""

    distance: float
    name: str


def check_person_name(name: Any) -> str:
    """``name`` if every backend can store it (non-blank str, no NUL, <= MAX_NAME_BYTES)."""
    check_name(name)
    try:
        size = len(name.encode("utf-8"))
    except UnicodeEncodeError as err:  # a lone surrogate, from a badly decoded file name
        raise ValueError(f"a person's name must be valid Unicode text: {name!r} ({err.reason})"
                         ) from None
    if size > MAX_NAME_BYTES:
        raise ValueError(f"a person's name may take at most {MAX_NAME_BYTES} bytes in UTF-8, "
                         f"got {size}: {name[:40]!r}...")
    return name


def as_descriptors(descriptors: Any, dim: int, what: str = "descriptors") -> np.ndarray:
    """(k, dim) float32 C-contiguous rows from a (dim,) or (k, dim) floating-point array.

    Raises:
        ValueError: not floating point (e.g. an image's uint8 pixels), a shape other than
            (dim,) or (k, dim) with k >= 1, or a NaN or infinity (also after the float32
            cast: values beyond float32's range).
    """
    try:
        arr = np.asarray(descriptors)
    except (TypeError, ValueError) as err:  # ragged lists and the like
        raise ValueError(f"{what} must be a ({dim},) or (k, {dim}) float array: {err}") from err
    if arr.dtype.kind != "f":
        raise ValueError(f"{what} must be floating point (float32 or float64, as "
                         f"img_to_encoding returns), got dtype {arr.dtype}")
    rows = arr[np.newaxis, :] if arr.ndim == 1 else arr
    if rows.ndim != 2 or rows.shape[1] != dim or rows.shape[0] == 0:
        raise ValueError(f"{what} must have shape ({dim},) or (k, {dim}) with k >= 1, "
                         f"got {arr.shape}")
    with np.errstate(over="ignore"):  # too large for float32 -> inf, refused just below
        rows = np.ascontiguousarray(rows, dtype=np.float32)
    if not np.isfinite(rows).all():
        raise ValueError(f"{what} contain NaN or infinite values (after the float32 cast)")
    return rows


def min_distance(rows: np.ndarray, query: np.ndarray) -> float:
    """min_i ||rows_i - query||, computed directly in float64 (no cancellation).

    Args:
        rows: (k, d) float32, k >= 1. query: (d,) float32.
    """
    return float(min_distances([rows], query)[0])


def min_distances(groups: list[np.ndarray], query: np.ndarray) -> np.ndarray:
    """For each (k_i, d) float32 group (k_i >= 1), min over its rows of ||row - query||,
    computed directly in float64 (no cancellation), all groups in one pass.

    Returns:
        (len(groups),) float64.
    """
    rows = np.concatenate(groups) if len(groups) > 1 else groups[0]
    diff = rows.astype(np.float64) - query.astype(np.float64)
    starts = np.cumsum([0] + [g.shape[0] for g in groups[:-1]])
    return np.sqrt(np.minimum.reduceat(np.einsum("ij,ij->i", diff, diff), starts))


def _check_threshold(threshold: Any) -> float:
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float, np.floating)) \
            or not math.isfinite(threshold) or threshold <= 0:
        raise ValueError(f"threshold must be a positive finite number (a distance, e.g. "
                         f"{DEFAULT_THRESHOLD}), got {threshold!r}")
    return float(threshold)


class Gallery(ABC):
    """Names -> face descriptors, searched by one backend; see the module docstring.

    Subclasses implement storage (``_insert``, ``_remove``, ``_rows_of``), the candidate
    search (``_candidates``), ``names``, ``num_descriptors``, ``__contains__``, ``save``
    and, if they hold a connection, ``close``. Everything else is shared, so every backend
    validates and answers the same way.
    """

    backend: ClassVar[str]

    def __init__(self, dim: int, location: str) -> None:
        self._dim = dim
        self.location = location  #: the file, folder or URI the gallery lives in

    # -------------------------------------------------------------- backend's part

    @property
    @abstractmethod
    def names(self) -> list[str]:
        """Everyone enrolled, sorted."""

    @property
    @abstractmethod
    def num_descriptors(self) -> int:
        """N, the number of stored descriptors (all people together)."""

    @abstractmethod
    def __contains__(self, name: object) -> bool: ...

    @abstractmethod
    def _insert(self, name: str, rows: np.ndarray) -> None:
        """Store (k, d) float32 rows for a person who is not enrolled yet."""

    def _insert_many(self, people: dict[str, np.ndarray]) -> None:
        """Store several new people's rows (a backend may batch them)."""
        for name, rows in people.items():
            self._insert(name, rows)

    def _enrolled(self, names: list[str]) -> list[str]:
        """Those of ``names`` already enrolled (a backend may ask in one round trip)."""
        return [name for name in names if name in self]

    @abstractmethod
    def _remove(self, name: str) -> int:
        """Forget an enrolled person's rows; their number."""

    @abstractmethod
    def _rows_of(self, names: list[str]) -> dict[str, np.ndarray]:
        """Each enrolled name -> its (k, d) float32 rows."""

    @abstractmethod
    def _candidates(self, query: np.ndarray, k: int) -> list[str]:
        """People nearest to a (d,) float32 query by the backend's index, nearest first:
        at least min(k, len(self)) of them unless an approximate index misses some."""

    @abstractmethod
    def save(self) -> str:
        """Persist every change to ``location`` (deleted descriptors are then gone from
        its files too); returns ``location``."""

    def close(self) -> None:
        """Release the backend's resources (a no-op unless it holds a connection)."""
        return None

    # -------------------------------------------------------------------- shared

    @property
    def dim(self) -> int:
        """The descriptor dimension d."""
        return self._dim

    def __len__(self) -> int:
        """The number of people."""
        return len(self.names)

    def __enter__(self) -> Gallery:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return (f"{type(self).__name__}({self.location!r}, {self.num_descriptors} descriptors, "
                f"dim={self._dim})")

    def _unknown(self, name: object) -> UnknownPersonError:
        known = self.names
        if not known:
            return UnknownPersonError(f"{name!r} is not in the gallery, which is empty")
        shown = ", ".join(repr(n) for n in known[:_NAMES_SHOWN])
        if len(known) > _NAMES_SHOWN:
            shown += f", ... ({len(known) - _NAMES_SHOWN} more)"
        return UnknownPersonError(f"{name!r} is not in the gallery; known names: {shown}")

    def _require(self, name: object) -> str:
        if not isinstance(name, str) or name not in self:
            raise self._unknown(name)
        return name

    def add(self, name: str, descriptors: Any) -> int:
        """Enrol a new person with one or several descriptors (one per photo).

        Args:
            name: not yet in the gallery; a non-blank str of at most MAX_NAME_BYTES.
            descriptors: (d,) or (k, d) floating-point array-like; stored as float32.

        Returns:
            k, the number of descriptors stored.

        Raises:
            ValueError: bad name or descriptors (shape, dtype, NaN). DuplicateNameError:
                the name is enrolled already (``delete`` it first to replace them).
        """
        check_person_name(name)
        rows = as_descriptors(descriptors, self._dim)
        if name in self:
            raise DuplicateNameError(
                f"{name!r} is already in the gallery: delete({name!r}) first to replace "
                f"their descriptors, or enrol the new person under another name")
        self._insert(name, rows)
        return rows.shape[0]

    def add_many(self, people: Mapping[str, Any]) -> int:
        """Enrol several new people at once, all or none: name -> (d,) or (k, d) descriptors.

        Everything is checked before anything is stored, as ``add`` checks it.

        Returns:
            The number of descriptors stored.
        """
        staged = {check_person_name(name): as_descriptors(rows, self._dim,
                                                          what=f"descriptors of {name!r}")
                  for name, rows in people.items()}
        enrolled = self._enrolled(list(staged))
        if enrolled:
            shown = ", ".join(map(repr, enrolled[:_NAMES_SHOWN]))
            raise DuplicateNameError(
                f"already in the gallery: {shown}; nobody was added. delete them first to "
                "replace their descriptors, or enrol the new people under other names")
        self._insert_many(staged)
        return sum(rows.shape[0] for rows in staged.values())

    def get(self, name: str) -> np.ndarray:
        """(k, d) float32 copy of a person's descriptors (in no particular order)."""
        return self._rows_of([self._require(name)])[name]

    def delete(self, name: str) -> int:
        """Forget a person and all their descriptors; ``save`` erases them from the files.

        Returns:
            The number of descriptors removed. Raises UnknownPersonError if not enrolled.
        """
        return self._remove(self._require(name))

    def _query(self, query: Any) -> np.ndarray:
        if self.num_descriptors == 0:
            raise EmptyDatabaseError(f"the gallery at {self.location} is empty: enrol someone "
                                     "with gallery.add(name, descriptors) first")
        rows = as_descriptors(query, self._dim, what="query")
        if rows.shape[0] != 1:
            raise ValueError(f"query must be one ({self._dim},) descriptor, got {rows.shape[0]}")
        return rows[0]

    def verify(self, query: Any, name: str,
               threshold: float = DEFAULT_THRESHOLD) -> Verification:
        """1:1: is the query descriptor ``name``? Distance to their nearest descriptor.

        Raises:
            EmptyDatabaseError, ValueError (bad query or threshold), UnknownPersonError.
        """
        limit = _check_threshold(threshold)
        q = self._query(query)
        rows = self._rows_of([self._require(name)])[name]
        distance = min_distance(rows, q)
        return Verification(distance, distance < limit)

    def search(self, query: Any, k: int = 1) -> list[Neighbour]:
        """The k people nearest to a query descriptor, nearest first (fewer if fewer are
        enrolled; an approximate backend may rarely miss one). A person's distance is the
        minimum over their descriptors.

        Raises:
            EmptyDatabaseError: nobody enrolled. ValueError: bad query or k.
        """
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise ValueError(f"k must be a positive int, got {k!r}")
        q = self._query(query)
        # The index ranks its candidates by its own float32 distances; a few spare ones
        # absorb rounding among near-ties before the float64 recomputation decides.
        candidates = self._candidates(q, int(k))[: int(k) + _SPARE_CANDIDATES]
        rows = self._rows_of(candidates)
        distances = min_distances([rows[n] for n in candidates], q).tolist()
        found = sorted(Neighbour(d, n) for d, n in zip(distances, candidates, strict=True))
        return found[: int(k)]

    def identify(self, query: Any, threshold: float = DEFAULT_THRESHOLD) -> Identification:
        """1:K: who is it? The nearest person, or None ("not in the database") when even
        they are at or beyond ``threshold``.

        Raises:
            EmptyDatabaseError: nobody enrolled. ValueError: bad query or threshold.
        """
        limit = _check_threshold(threshold)
        distance, name = self.search(query, k=1)[0]
        return Identification(distance, name if distance < limit else None)
