"""The face store: names -> face descriptors, searched by one strategy (exact by default).

Verification (1:1): ``verify(query, name)`` accepts when the distance to that person is
below the threshold. Recognition (1:K): ``identify(query)`` names the nearest person, or
None ("not in the database") at or beyond it; ``search(query, k)`` lists the k nearest.
A person's distance is the minimum over their descriptors (one per photo):
min_i ||q - x_i||_2, on (d,) float32 descriptors, d = 128 by default.

`FaceDatabase` checks every input and answers; its `SearchIndex` keeps the rows and
proposes candidates: `ExactIndex` (`nbutils.faces.exact_index`, one BLAS product over
every row) by default, faiss and Milvus in `nbutils.extras.gallery`. The candidates'
distances are recomputed here, in float64, so every strategy gives the same distances on
the same data. Photos -> descriptors: `nbutils.faces.enroll`.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, NamedTuple, Protocol

import numpy as np

from nbutils.faces.exact_index import SPARE_CANDIDATES, ExactIndex

#: dlib's encoder's rule: same person when ||f(a) - f(b)|| < 0.6 (its model file records
#: it, and `nbutils.faces.encoder` checks that it does). Every default threshold is this.
DISTANCE_THRESHOLD = 0.6
#: The descriptor dimension d of dlib's encoder (`nbutils.faces.encoder`'s output).
EMBEDDING_DIM = 128
#: The longest name, in UTF-8 bytes, that every strategy stores (Milvus's VARCHAR bound).
MAX_NAME_BYTES = 512
_NAMES_SHOWN = 20


class EmptyDatabaseError(ValueError):
    """The face database has nobody in it, so there is nothing to search."""


class DuplicateNameError(ValueError):
    """``add`` was given a name already enrolled (without ``append=True``)."""


class UnknownPersonError(KeyError):
    """A name that is not in the database; the message lists (some of) the known names."""

    def __str__(self) -> str:  # KeyError would print the message with quotes around it
        return str(self.args[0])


class Verification(NamedTuple):
    """1:1 answer, unpacked like the course's ``verify``: ``dist, door_open = ...``."""

    distance: float
    accepted: bool


class Identification(NamedTuple):
    """1:K answer: the nearest ``distance``, and that person's ``name`` or None."""

    distance: float
    name: str | None


class Neighbour(NamedTuple):
    """One of ``search``'s nearest people and the distance to their nearest descriptor."""

    distance: float
    name: str


def check_name(name: Any) -> str:
    """``name`` if every strategy can store it: a non-blank str, no NUL, valid Unicode of at
    most `MAX_NAME_BYTES` in UTF-8; else ValueError."""
    if not isinstance(name, str):
        raise ValueError(f"a person's name must be a str, got {type(name).__name__}")
    if not name.strip():
        raise ValueError("a person's name must not be empty or blank")
    if "\x00" in name:
        raise ValueError(f"a person's name must not contain NUL characters: {name!r}")
    try:
        size = len(name.encode("utf-8"))
    except UnicodeEncodeError as err:  # a lone surrogate, from a badly decoded file name
        raise ValueError(f"a person's name must be valid Unicode text: {name!r} ({err.reason})"
                         ) from None
    if size > MAX_NAME_BYTES:
        raise ValueError(f"a person's name may take at most {MAX_NAME_BYTES} bytes in UTF-8, "
                         f"got {size}: {name[:40]!r}...")
    return name


def as_rows(descriptors: Any, dim: int | None, what: str = "descriptors") -> np.ndarray:
    """(k, dim) float32 C-contiguous rows from a (dim,) or (k, dim) floating-point array.

    Integers are refused (an image's uint8 pixels are not a descriptor), as are shapes other
    than (dim,) or (k, dim) with k >= 1 (dim None: any d >= 1), NaN and infinity (also
    after the float32 cast: values beyond its range).
    """
    try:
        arr = np.asarray(descriptors)
    except (TypeError, ValueError) as err:  # ragged lists and the like
        raise ValueError(f"{what} must be a (d,) or (k, d) float array: {err}") from err
    if arr.dtype.kind != "f":
        raise ValueError(f"{what} must be floating point (float32 or float64, as "
                         f"img_to_encoding returns), got dtype {arr.dtype}")
    rows = arr[np.newaxis, :] if arr.ndim == 1 else arr
    if rows.ndim != 2 or 0 in rows.shape or rows.shape[1] != (dim or rows.shape[1]):
        d = dim or "d"
        raise ValueError(f"{what} must have shape ({d},) or (k, {d}) with k >= 1, "
                         f"got {arr.shape}")
    with np.errstate(over="ignore"):  # too large for float32 -> inf, refused just below
        rows = np.ascontiguousarray(rows, dtype=np.float32)
    if not np.isfinite(rows).all():
        raise ValueError(f"{what} contain NaN or infinite values (after the float32 cast)")
    return rows


def min_distances(groups: list[np.ndarray], query: np.ndarray) -> np.ndarray:
    """(len(groups),) float64: for each (k_i, d) group (k_i >= 1), min over its rows of
    ||row - query||, computed directly in float64 (no cancellation), in one pass."""
    rows = np.concatenate(groups) if len(groups) > 1 else groups[0]
    diff = rows.astype(np.float64) - query.astype(np.float64)
    starts = np.cumsum([0] + [g.shape[0] for g in groups[:-1]])
    return np.sqrt(np.minimum.reduceat(np.einsum("ij,ij->i", diff, diff), starts))


def check_threshold(threshold: Any) -> float:
    """``threshold`` as a float if it is a positive finite number, else ValueError."""
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float, np.floating)) \
            or not math.isfinite(threshold) or threshold <= 0:
        raise ValueError(f"threshold must be a positive finite number (a distance, e.g. "
                         f"{DISTANCE_THRESHOLD}), got {threshold!r}")
    return float(threshold)


class SearchIndex(Protocol):
    """Where a `FaceDatabase` keeps its rows and how it finds candidates: its strategy.

    The store hands it checked names and (k, dim) float32 finite rows only. ``location``:
    the file, folder or URI it lives in (None: in memory until saved).
    """

    dim: int | None
    location: Path | str | None

    def names(self) -> list[str]: ...  # everyone enrolled
    def count(self) -> int: ...  # N, the rows of everyone together
    def enrolled(self, names: list[str]) -> list[str]: ...  # those of ``names`` enrolled
    def insert(self, people: Mapping[str, np.ndarray]) -> None: ...  # appended per name
    def delete(self, name: str) -> int: ...  # an enrolled person's rows go; their number
    def rows(self, names: list[str]) -> list[np.ndarray]: ...  # (k, dim) of each enrolled
    def candidates(self, query: np.ndarray, k: int) -> list[str]: ...  # nearest first
    def save(self, path: str | os.PathLike | None) -> Path | str: ...  # persist; location
    def close(self) -> None: ...


class FaceDatabase:
    """Names -> one or more face descriptors each, searched by ``index``; see the module.

    Args:
        dim: the descriptor dimension d, 128 by default (dlib's and the course's encodings);
            None: fixed by the first ``add`` (exact index only).
        index: the search strategy, `ExactIndex(dim)` by default; ``open_gallery``
            (`nbutils.extras.gallery`) builds the faiss and Milvus ones.
    """

    def __init__(self, dim: int | None = EMBEDDING_DIM, *, index: SearchIndex | None = None):
        self.index: SearchIndex = ExactIndex(dim) if index is None else index
        if self.index.dim is None:
            self.index.dim = dim
        elif dim is not None and self.index.dim != dim:
            self.index.close()
            raise ValueError(f"{self.index.location} holds {self.index.dim}-d descriptors, "
                             f"not dim={dim}: open it with dim={self.index.dim}")

    @classmethod
    def load(cls, path: str | os.PathLike, max_bytes: int | None = None) -> FaceDatabase:
        """Read a database written by ``save``; never unpickles anything.

        Read with `nbutils._internal.npz.read_npz`: nothing is inflated before every size is
        checked, so a small file that would inflate to gigabytes is refused at once.

        Args:
            max_bytes: the most bytes the file, and its arrays in all, may take; None:
                `nbutils.faces.exact_index.MAX_LOAD_BYTES` (1 GiB) as it is when called.

        Raises:
            FileNotFoundError: no such file. ValueError: not an ``.npz``, corrupt, too large,
                pickled, or arrays of the wrong keys, dtype, shape or range (naming the file).
        """
        index = ExactIndex.load(path, max_bytes)
        return cls(index.dim, index=index)

    @classmethod
    def from_dict(cls, mapping: Mapping[str, Any]) -> FaceDatabase:
        """A database from the course's dict name -> (d,) or (k, d) encoding (a (1, d)
        encoding, as ``img_to_encoding`` returns in the course, is one descriptor)."""
        db = cls(dim=None)
        db.add_many(mapping)
        return db

    # ------------------------------------------------------------------ storage

    @property
    def dim(self) -> int | None:
        """The descriptor dimension d (None until the first ``add`` if not given)."""
        return self.index.dim

    @property
    def location(self) -> Path | str | None:
        """The file or URI the database lives in (None: in memory, never saved)."""
        return self.index.location

    @property
    def names(self) -> list[str]:
        """Everyone enrolled, in enrolment order (Milvus: sorted)."""
        return self.index.names()

    @property
    def num_descriptors(self) -> int:
        """N, the number of stored descriptors (all people together)."""
        return self.index.count()

    def __len__(self) -> int:
        """The number of people."""
        return len(self.names)

    def __contains__(self, name: object) -> bool:
        try:
            return bool(self.index.enrolled([check_name(name)]))
        except ValueError:
            return False

    def __iter__(self) -> Iterator[str]:
        return iter(self.names)

    def __getitem__(self, name: str) -> np.ndarray:
        """(k, d) float32 copy of a person's descriptors (exact: in the order added)."""
        return self.index.rows([self.require(name)])[0]

    def items(self) -> Iterator[tuple[str, np.ndarray]]:
        """(name, (k, d) descriptors) pairs, in the order of ``names`` (read in one call)."""
        names = self.names
        yield from zip(names, self.index.rows(names), strict=True)

    def __repr__(self) -> str:
        names = self.names
        shown = ", ".join(map(repr, names[:3])) + (", ..." if len(names) > 3 else "")
        where = f", {type(self.index).__name__} at {self.location}" if self.location else ""
        return (f"FaceDatabase({len(names)} people, {self.num_descriptors} descriptors, "
                f"dim={self.dim}{where}{': ' + shown if shown else ''})")

    def __enter__(self) -> FaceDatabase:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Release the index's resources (a connection); a no-op for the exact one."""
        self.index.close()

    def require(self, name: object) -> str:
        """``name`` if enrolled, else UnknownPersonError (a KeyError) listing the known names."""
        if name in self:
            return name  # type: ignore[return-value]  (only a str can be in the database)
        known = self.names
        if not known:
            raise UnknownPersonError(f"{name!r} is not in the face database, which is empty")
        shown = ", ".join(repr(n) for n in known[:_NAMES_SHOWN])
        if len(known) > _NAMES_SHOWN:
            shown += f", ... ({len(known) - _NAMES_SHOWN} more)"
        raise UnknownPersonError(f"{name!r} is not in the face database; known names: {shown}")

    def add(self, name: str, descriptors: Any, *, append: bool = False) -> int:
        """Enrol a person with one or several descriptors (one per photo).

        Args:
            name: a non-blank str of at most `MAX_NAME_BYTES` in UTF-8.
            descriptors: (d,) or (k, d) floating-point array-like; stored as float32.
            append: True: ``name`` may be enrolled already, and gets these photos too.

        Returns:
            k, the number of descriptors stored.

        Raises:
            ValueError: bad name or descriptors (dtype, shape, NaN). DuplicateNameError:
                ``name`` is enrolled and ``append`` is False.
        """
        check_name(name)
        rows = as_rows(descriptors, self.dim)
        if not append and name in self:
            raise DuplicateNameError(
                f"{name!r} is already in the face database: add(..., append=True) to add "
                f"photos of them, delete({name!r}) first to replace them, or enrol the new "
                "person under another name")
        self.index.insert({name: rows})
        return rows.shape[0]

    def add_many(self, people: Mapping[str, Any]) -> int:
        """Enrol several new people, all or none: name -> (d,) or (k, d) descriptors, each
        checked as ``add`` checks it before any is stored. Returns the descriptors stored."""
        staged, dim = {}, self.dim
        for name, descriptors in people.items():
            staged[check_name(name)] = as_rows(descriptors, dim, f"descriptors of {name!r}")
            dim = staged[name].shape[1]
        enrolled = self.index.enrolled(list(staged))
        if enrolled:
            shown = ", ".join(map(repr, enrolled[:_NAMES_SHOWN]))
            raise DuplicateNameError(
                f"already in the face database: {shown}; nobody was added. delete them first "
                "to replace their descriptors, or enrol the new people under other names")
        self.index.insert(staged)
        return sum(rows.shape[0] for rows in staged.values())

    def delete(self, name: str) -> int:
        """Forget a person and all their descriptors (``save`` erases them from the files).
        Returns how many; UnknownPersonError (a KeyError) if not enrolled."""
        return self.index.delete(self.require(name))

    def save(self, path: str | os.PathLike | None = None) -> Path | str:
        """Persist every change (atomically for a file), to ``path`` or where the database
        lives; returns that location. Raises `nbutils._internal.atomic.AtomicWriteError`
        (an OSError naming the path) if it cannot be written, the old file unchanged."""
        return self.index.save(path)

    # ------------------------------------------------------------------- search

    def require_not_empty(self) -> None:
        """Raise `EmptyDatabaseError` when nobody is enrolled."""
        if self.num_descriptors == 0:
            raise EmptyDatabaseError(
                "the face database is empty: enroll at least one person with "
                "db.add(name, descriptors), nbutils.faces.enroll_photos(db, name, photos, "
                "model) or nbutils.faces.database_from_folder(root, model) first")

    def _query(self, query: Any) -> np.ndarray:
        self.require_not_empty()
        rows = as_rows(query, self.dim, what="query")
        if rows.shape[0] != 1:
            raise ValueError(f"query must be one ({self.dim},) descriptor, got {rows.shape[0]}")
        return rows[0]

    def search(self, query: Any, k: int = 1) -> list[Neighbour]:
        """The k people nearest to a (d,) (or (1, d)) query, nearest first (fewer if fewer
        are enrolled; an approximate index may rarely miss one); exactly 0.0 for a query
        equal to an enrolled descriptor.

        Raises:
            EmptyDatabaseError: nobody enrolled. ValueError: bad query or k.
        """
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise ValueError(f"k must be a positive int, got {k!r}")
        q = self._query(query)
        candidates = self.index.candidates(q, int(k))[: int(k) + SPARE_CANDIDATES]
        distances = min_distances(self.index.rows(candidates), q).tolist()
        return sorted(map(Neighbour, distances, candidates))[: int(k)]

    def identify(self, query: Any, threshold: float = DISTANCE_THRESHOLD) -> Identification:
        """1:K: the nearest person, or None ("not in the database") when even they are at
        or beyond ``threshold``. Raises as ``search``, and ValueError for a bad threshold."""
        threshold = check_threshold(threshold)
        distance, name = self.search(query)[0]
        return Identification(distance, name if distance < threshold else None)

    def verify(self, query: Any, name: str,
               threshold: float = DISTANCE_THRESHOLD) -> Verification:
        """1:1: is the query ``name``? The distance to their nearest descriptor, and whether
        it is below ``threshold``. Raises as ``identify``, and UnknownPersonError."""
        threshold = check_threshold(threshold)
        q = self._query(query)
        distance = float(min_distances(self.index.rows([self.require(name)]), q)[0])
        return Verification(distance, distance < threshold)
