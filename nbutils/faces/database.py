"""A one-shot face database: names -> face descriptors, with fast nearest-identity search.

Two questions can be asked of a face:

- **Verification (1:1)**: "is this the person they claim to be?" Compare the photo's
  descriptor with the claimed person's descriptors only, and accept when the distance is
  below a threshold (0.6 for dlib's 128-d descriptors). One comparison, one yes/no.
- **Recognition (1:K)**: "who is this?" Compare with everyone enrolled and answer with the
  nearest identity, or "not in the database" when even the nearest is beyond the
  threshold. K comparisons, which is why the search here is one matrix-vector product
  over every stored descriptor rather than a Python loop over people.

This is one-shot learning: nobody is trained on; a person is added by storing descriptors
of their photos. Storing *several* descriptors per person (different photos: lighting,
pose, glasses, age) helps both questions. A person's distance to a query is the minimum
over their descriptors, so a query only has to look like *one* of the enrolled photos,
and a single odd photo cannot drag the whole identity away, as averaging would.

Descriptors are (d,) float32 vectors, d = 128 by default, compared with the Euclidean
distance (they are not L2-normalised).

This module stores, searches and saves descriptors; it knows nothing of photos. Turning
photos into descriptors and enrolling them is `nbutils.faces.enroll`'s job.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from nbutils._internal.atomic import atomic_write
from nbutils._internal.npz import NpzError, NpzTooLarge, read_npz

FORMAT_VERSION = 1
DEFAULT_DIM = 128
_SAVED_KEYS = ("format_version", "dim", "names", "descriptors", "labels")
_MIN_CAPACITY = 16
_NAMES_SHOWN = 20

#: ``load`` refuses files, and arrays in all, larger than this before inflating anything
#: (1 GiB: about 2 million 128-d float32 descriptors).
MAX_LOAD_BYTES = 1 << 30
_SAVED_KINDS = "iufU"  # what save writes: int64 scalars, int32 labels, float32, str names


class EmptyDatabaseError(ValueError):
    """The face database has nobody in it, so there is nothing to search or build."""


def check_name(name: Any) -> str:
    """``name`` if it can name a person (a non-blank str without NUL), else ValueError."""
    if not isinstance(name, str):
        raise ValueError(f"a person's name must be a str, got {type(name).__name__}")
    if not name.strip():
        raise ValueError("a person's name must not be empty or blank")
    if "\x00" in name:
        raise ValueError(f"a person's name must not contain NUL characters: {name!r}")
    return name


def _as_descriptor_rows(descriptors: Any, dim: int | None) -> np.ndarray:
    """(k, d) float32 C-contiguous rows from a (d,) or (k, d) array-like; validated."""
    try:
        arr = np.asarray(descriptors)
    except (TypeError, ValueError) as err:  # ragged lists and the like
        raise ValueError(f"descriptors must be a (d,) or (k, d) numeric array: {err}") from err
    if arr.dtype.kind not in "fiu":
        raise ValueError(f"descriptors must be numeric, got dtype {arr.dtype}")
    if arr.ndim == 1:
        arr = arr[np.newaxis, :]
    if arr.ndim != 2:
        raise ValueError(f"descriptors must have shape (d,) or (k, d), got {arr.shape}")
    if arr.shape[0] == 0:
        raise ValueError("no descriptors given (shape has k = 0 rows)")
    if dim is not None and arr.shape[1] != dim:
        raise ValueError(f"descriptors must have dimension {dim}, got shape {arr.shape}")
    if arr.shape[1] == 0:
        raise ValueError("descriptors must have dimension d >= 1")
    with np.errstate(over="ignore"):  # too large for float32 -> inf, rejected just below
        rows = np.ascontiguousarray(arr, dtype=np.float32)
    if not np.isfinite(rows).all():
        raise ValueError("descriptors contain NaN or infinite values (after float32 cast)")
    return rows


def _squared_norms(rows: np.ndarray) -> np.ndarray:
    """||x||^2 of each row of a (k, d) array, accumulated in float64: (k,) float64."""
    rows64 = rows.astype(np.float64)
    return np.einsum("ij,ij->i", rows64, rows64)


class FaceDatabase:
    """Names -> one or more face descriptors each, with vectorised nearest-identity search.

    Storage (read-only views; the database owns the memory):

    - ``descriptors``: (N, d) float32, C-contiguous, one row per enrolled photo.
    - ``labels``: (N,) int32, row i belongs to ``names[labels[i]]``.
    - ``names``: list of str, in enrolment order.

    Rows live in a buffer whose capacity doubles, so adding N descriptors one at a time
    costs O(N) copying in all. Squared norms of the rows are cached (float64) for search.

    Args:
        dim: the descriptor dimension d, 128 by default (dlib's and the course's encodings).
            None: fixed by the first ``add``.
    """

    def __init__(self, dim: int | None = DEFAULT_DIM) -> None:
        if dim is not None and (isinstance(dim, bool) or not isinstance(dim, int) or dim < 1):
            raise ValueError(f"dim must be a positive int or None, got {dim!r}")
        self._dim = dim
        self._names: list[str] = []
        self._index: dict[str, int] = {}
        self._n = 0
        width = dim or 1
        self._desc = np.empty((0, width), dtype=np.float32)
        self._labels = np.empty(0, dtype=np.int32)
        self._sqnorms = np.empty(0, dtype=np.float64)
        self._groups: tuple[np.ndarray, np.ndarray] | None = None

    # ----------------------------------------------------------------- storage

    @property
    def dim(self) -> int | None:
        """The descriptor dimension d (None until the first ``add`` if not given)."""
        return self._dim

    @property
    def names(self) -> list[str]:
        """The enrolled people, in enrolment order (a copy)."""
        return list(self._names)

    @property
    def descriptors(self) -> np.ndarray:
        """(N, d) float32 read-only view of every stored descriptor."""
        return self._readonly(self._desc[: self._n])

    @property
    def labels(self) -> np.ndarray:
        """(N,) int32 read-only view: row i of ``descriptors`` is ``names[labels[i]]``."""
        return self._readonly(self._labels[: self._n])

    @property
    def num_descriptors(self) -> int:
        """N, the number of stored descriptors (all people together)."""
        return self._n

    @staticmethod
    def _readonly(view: np.ndarray) -> np.ndarray:
        view = view.view()
        view.flags.writeable = False
        return view

    def _reserve(self, extra: int) -> None:
        """Make room for ``extra`` more rows, doubling the capacity when it runs out."""
        need = self._n + extra
        capacity = self._desc.shape[0]
        if need <= capacity:
            return
        new_capacity = max(need, 2 * capacity, _MIN_CAPACITY)
        desc = np.empty((new_capacity, self._dim), dtype=np.float32)
        labels = np.empty(new_capacity, dtype=np.int32)
        sqnorms = np.empty(new_capacity, dtype=np.float64)
        desc[: self._n] = self._desc[: self._n]
        labels[: self._n] = self._labels[: self._n]
        sqnorms[: self._n] = self._sqnorms[: self._n]
        self._desc, self._labels, self._sqnorms = desc, labels, sqnorms

    def add(self, name: str, descriptors: Any) -> None:
        """Store descriptors for a person (new, or already enrolled: they are appended).

        Args:
            name: the person, a non-empty str.
            descriptors: (d,) or (k, d) array-like of finite numbers (e.g. a list of (d,)
                arrays); stored as float32.

        Raises:
            ValueError: bad name, wrong shape or dimension, no rows, NaN or infinity.
        """
        name = check_name(name)
        rows = _as_descriptor_rows(descriptors, self._dim)
        if self._dim is None:
            self._dim = rows.shape[1]
        label = self._index.get(name)
        if label is None:
            label = len(self._names)
            self._names.append(name)
            self._index[name] = label
        k = rows.shape[0]
        self._reserve(k)
        self._desc[self._n : self._n + k] = rows
        self._labels[self._n : self._n + k] = label
        self._sqnorms[self._n : self._n + k] = _squared_norms(rows)
        self._n += k
        self._groups = None

    def remove(self, name: str) -> None:
        """Forget a person and all their descriptors. KeyError if unknown."""
        label = self._label_of(name)
        keep = self._labels[: self._n] != label
        labels = self._labels[: self._n][keep]
        labels[labels > label] -= 1
        # New arrays: views handed out earlier stay valid snapshots.
        self._desc = np.ascontiguousarray(self._desc[: self._n][keep])
        self._sqnorms = self._sqnorms[: self._n][keep]
        self._labels = labels
        self._n = labels.shape[0]
        del self._names[label]
        self._index = {n: i for i, n in enumerate(self._names)}
        self._groups = None

    def _label_of(self, name: str) -> int:
        try:
            return self._index[name]
        except (KeyError, TypeError):
            raise KeyError(self._unknown_name_message(name)) from None

    def _unknown_name_message(self, name: Any) -> str:
        if not self._names:
            return f"{name!r} is not in the face database, which is empty"
        shown = ", ".join(repr(n) for n in self._names[:_NAMES_SHOWN])
        more = len(self._names) - _NAMES_SHOWN
        if more > 0:
            shown += f", ... ({more} more)"
        return f"{name!r} is not in the face database; known names: {shown}"

    def _grouping(self) -> tuple[np.ndarray, np.ndarray]:
        """Rows sorted by person, computed once per change.

        Returns:
            order: (N,) int64, row indices sorted by label (stable).
            bounds: (P + 1,) int64, person p's rows are ``order[bounds[p]:bounds[p + 1]]``.
        """
        if self._groups is None:
            labels = self._labels[: self._n]
            order = np.argsort(labels, kind="stable")
            counts = np.bincount(labels, minlength=len(self._names))
            bounds = np.concatenate([[0], np.cumsum(counts)])
            self._groups = (order, bounds)
        return self._groups

    def _rows_of(self, label: int) -> np.ndarray:
        """A person's row indices, in the order added: O(k) once grouped, else one O(N) scan."""
        if self._groups is None:
            return np.flatnonzero(self._labels[: self._n] == label)
        order, bounds = self._groups
        return order[bounds[label] : bounds[label + 1]]

    # ------------------------------------------------------------ mapping-like

    def __len__(self) -> int:
        """The number of people."""
        return len(self._names)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name in self._index

    def __getitem__(self, name: str) -> np.ndarray:
        """(k, d) float32 copy of a person's descriptors, in the order they were added."""
        return self._desc[self._rows_of(self._label_of(name))]

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._names))

    def items(self) -> Iterator[tuple[str, np.ndarray]]:
        """(name, (k, d) descriptors) pairs, in enrolment order."""
        for name in list(self._names):
            yield name, self[name]

    def __repr__(self) -> str:
        shown = ", ".join(repr(n) for n in self._names[:3])
        if len(self._names) > 3:
            shown += ", ..."
        return (f"FaceDatabase({len(self)} people, {self._n} descriptors, dim={self._dim}"
                f"{': ' + shown if shown else ''})")

    @classmethod
    def from_dict(cls, mapping: Mapping[str, Any]) -> FaceDatabase:
        """A database from the course's dict: name -> (d,) or (k, d) encoding.

        The dimension is taken from the first entry; a (1, d) encoding, as the course's
        ``img_to_encoding`` returns, counts as one descriptor.
        """
        db = cls(dim=None)
        for name, encodings in mapping.items():
            db.add(name, encodings)
        return db

    # ------------------------------------------------------------------ search

    def require_not_empty(self) -> None:
        """Raise `EmptyDatabaseError` when nobody is enrolled."""
        if self._n == 0:
            raise EmptyDatabaseError(
                "the face database is empty: enroll at least one person with "
                "db.add(name, descriptors), nbutils.faces.enroll_photos(db, name, photos, "
                "model) or nbutils.faces.database_from_folder(root, model) first"
            )

    def _check_query(self, query: Any) -> np.ndarray:
        """A (d,) float32 query from a (d,) or (1, d) array-like; validated."""
        self.require_not_empty()
        q = np.asarray(query)
        if q.ndim == 2 and q.shape[0] == 1:
            q = q[0]
        if q.dtype.kind not in "fiu" or q.shape != (self._dim,):
            raise ValueError(f"query must be a numeric ({self._dim},) descriptor, "
                             f"got shape {q.shape} and dtype {q.dtype}")
        q = q.astype(np.float32)
        if not np.isfinite(q).all():
            raise ValueError("query contains NaN or infinite values")
        return q

    def _squared_distances(self, q: np.ndarray) -> np.ndarray:
        """||q - D_i||^2 = ||q||^2 - 2 D_i.q + ||D_i||^2 for every row: (N,) float64.

        D q is one float32 BLAS matrix-vector product; the rest is float64. Clipped at 0,
        since rounding can make a tiny true distance come out slightly negative.
        """
        q_sqnorm = float(np.dot(q.astype(np.float64), q))
        dots = self._desc[: self._n] @ q
        d2 = q_sqnorm - 2.0 * dots + self._sqnorms[: self._n]
        return np.maximum(d2, 0.0)

    def distances(self, query: Any) -> np.ndarray:
        """Euclidean distance of a query to every stored descriptor.

            dist_i = sqrt(max(||q||^2 - 2 D_i.q + ||D_i||^2, 0))

        Args:
            query: (d,) (or (1, d)) descriptor.

        Returns:
            (N,) float32, aligned with ``descriptors`` / ``labels``. Absolute error about
            sqrt(1e-7) * ||q|| near 0 (the cancellation in the formula), far below the
            0.6 threshold's scale.

        Raises:
            EmptyDatabaseError: nobody enrolled. ValueError: bad query.
        """
        q = self._check_query(query)
        return np.sqrt(self._squared_distances(q)).astype(np.float32)

    def _exact_min_distance(self, q: np.ndarray, label: int) -> float:
        """min over one person's rows of ||q - D_i||, directly in float64 (no cancellation)."""
        rows = self._desc[self._rows_of(label)].astype(np.float64)
        return float(np.sqrt(np.min(np.sum((rows - q) ** 2, axis=1))))

    def search(self, query: Any, k: int = 1) -> tuple[float, str] | list[tuple[float, str]]:
        """The enrolled identities nearest to a query (1:K recognition).

        A person's distance is the minimum over their descriptors. Candidates come from
        the vectorised ``distances`` formula; the distances returned are then recomputed
        directly in float64 for those candidates (a query equal to an enrolled descriptor
        gives exactly 0.0).

        Args:
            query: (d,) (or (1, d)) descriptor.
            k: how many distinct identities to return.

        Returns:
            k == 1: ``(min_dist, name)`` of the nearest identity.
            k > 1: a list of the ``min(k, len(self))`` nearest identities as
            ``(dist, name)`` pairs, nearest first.

        Raises:
            EmptyDatabaseError: nobody enrolled. ValueError: bad query or k.
        """
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise ValueError(f"k must be a positive int, got {k!r}")
        q = self._check_query(query)
        d2 = self._squared_distances(q)
        if k == 1:
            label = int(self._labels[int(np.argmin(d2))])
            return self._exact_min_distance(q, label), self._names[label]
        order, bounds = self._grouping()
        per_person = np.minimum.reduceat(d2[order], bounds[:-1])  # every person has >= 1 row
        k = min(int(k), per_person.shape[0])
        nearest = np.argpartition(per_person, k - 1)[:k]
        found = [(self._exact_min_distance(q, int(p)), int(p)) for p in nearest]
        found.sort()
        return [(dist, self._names[label]) for dist, label in found]

    # ------------------------------------------------------------- persistence

    def save(self, path: str | os.PathLike) -> Path:
        """Write the database to one ``.npz`` file (no pickle), atomically.

        Written with `nbutils._internal.atomic.atomic_write`: a crash leaves either the old file or
        the new one, never half of one, and an existing file keeps its permissions.
        Parent folders are created. The path is used as given (no ``.npz`` is appended).

        Returns:
            The path written.

        Raises:
            nbutils._internal.atomic.AtomicWriteError: the file could not be written (an ``OSError``
                naming ``path``); the previous file, if any, is unchanged.
        """
        path = Path(path)
        arrays = {
            "format_version": np.array(FORMAT_VERSION, dtype=np.int64),
            "dim": np.array(-1 if self._dim is None else self._dim, dtype=np.int64),
            "names": np.array(self._names, dtype=np.str_).reshape(len(self._names)),
            "descriptors": self._desc[: self._n],
            "labels": self._labels[: self._n],
        }
        with atomic_write(path) as f:
            np.savez(f, **arrays)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike, max_bytes: int | None = None) -> FaceDatabase:
        """Read a database written by ``save``; never unpickles anything.

        Read with `nbutils._internal.npz.read_npz`: nothing is inflated before every size is checked
        (the file, each member's and each ``.npy`` header's, which must agree), so a small
        file that would inflate to gigabytes (a "zip bomb") is refused at once.

        Args:
            path: the ``.npz`` file.
            max_bytes: the most bytes the file, and its arrays in all, may take; None:
                ``MAX_LOAD_BYTES`` (1 GiB) as it is when called.

        Raises:
            FileNotFoundError: no such file.
            ValueError: not an ``.npz`` archive, a corrupt or truncated one, arrays larger
                than ``max_bytes``, pickled content, missing keys, or arrays of the wrong
                dtype, shape or range (the message names the file).
        """
        path = Path(path)
        limit = MAX_LOAD_BYTES if max_bytes is None else max_bytes
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise ValueError(f"max_bytes must be a positive int or None, got {max_bytes!r}")
        if not path.is_file():
            raise FileNotFoundError(f"no face database file at {path}")
        try:
            arrays = read_npz(path, limit, kinds=_SAVED_KINDS)
        except NpzTooLarge as err:
            raise ValueError(f"{path} is too large to load as a face database: {err.what}, "
                             f"more than max_bytes = {limit:,}. If you trust the file and have "
                             "the memory, pass a larger max_bytes to FaceDatabase.load") from err
        except NpzError as err:
            raise ValueError(f"{path}: {err}; the file is damaged or not a face database: "
                             "restore it from a backup or save the database again"
                             if err.member else
                             f"{path} is not a readable face database: {err}") from err
        missing = [key for key in _SAVED_KEYS if key not in arrays]
        if missing:
            raise ValueError(f"{path} is not a face database: missing {', '.join(missing)} "
                             f"(has {', '.join(arrays)})")
        return cls._from_arrays(arrays, path)

    @classmethod
    def _from_arrays(cls, arrays: dict[str, np.ndarray], path: Path) -> FaceDatabase:
        """A database from the saved arrays, after checking every invariant."""

        def bad(what: str) -> ValueError:
            return ValueError(f"{path} is not a valid face database: {what}")

        version, dim = arrays["format_version"], arrays["dim"]
        names, desc, labels = arrays["names"], arrays["descriptors"], arrays["labels"]
        for key, scalar in (("format_version", version), ("dim", dim)):
            if scalar.shape != () or scalar.dtype.kind not in "iu":
                raise bad(f"{key} must be an integer scalar, got {scalar.dtype} {scalar.shape}")
        if int(version) > FORMAT_VERSION:
            raise bad(f"format version {int(version)} is newer than this code's "
                      f"{FORMAT_VERSION}; update nbutils to read it")
        if int(version) < 1:
            raise bad(f"unknown format version {int(version)}")
        if names.ndim != 1 or names.dtype.kind != "U":
            raise bad(f"names must be a 1-D unicode array, got {names.dtype} {names.shape}")
        if desc.ndim != 2 or desc.dtype != np.float32:
            raise bad(f"descriptors must be a 2-D float32 array, got {desc.dtype} {desc.shape}")
        if labels.ndim != 1 or labels.dtype.kind not in "iu" or labels.shape[0] != desc.shape[0]:
            raise bad(f"labels must be 1-D integers, one per descriptor; got {labels.dtype} "
                      f"{labels.shape} for {desc.shape[0]} descriptors")
        name_list = [str(n) for n in names]
        if int(dim) == -1 and desc.shape[0] > 0:
            raise bad("dimension unset (-1) but the file holds descriptors")
        if int(dim) != -1 and (int(dim) < 1 or desc.shape[1] != int(dim)):
            raise bad(f"descriptors have dimension {desc.shape[1]}, the file says {int(dim)}")
        if len(set(name_list)) != len(name_list) or not all(n.strip() for n in name_list):
            raise bad("names must be unique and non-empty")
        if labels.size and (labels.min() < 0 or labels.max() >= len(name_list)):
            raise bad(f"labels must lie in [0, {len(name_list)}), got "
                      f"[{labels.min()}, {labels.max()}]")
        if np.bincount(labels.astype(np.int64), minlength=len(name_list)).min(initial=1) == 0:
            raise bad("some names have no descriptor")
        if not np.isfinite(desc).all():
            raise bad("descriptors contain NaN or infinite values")
        db = cls(dim=None if int(dim) == -1 else int(dim))
        db._names = name_list
        db._index = {n: i for i, n in enumerate(name_list)}
        db._desc = np.ascontiguousarray(desc, dtype=np.float32)
        db._labels = np.ascontiguousarray(labels, dtype=np.int32)
        db._sqnorms = _squared_norms(db._desc)
        db._n = desc.shape[0]
        return db

