"""The exact backend: `FaceDatabase`'s brute-force BLAS search, saved to one ``.npz`` file.

Every query compares with every stored descriptor (one float32 matrix-vector product), so
answers are exact; 100,000 descriptors take about a millisecond a query on one core, and
time grows linearly with N. The default backend; the others exist for galleries that
outgrow it.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from nbutils.extras.gallery.base import Gallery
from nbutils.faces.database import DEFAULT_DIM, FaceDatabase


class ExactGallery(Gallery):
    """A gallery kept in memory as a `FaceDatabase`, written to ``path`` by ``save``.

    Args:
        path: the ``.npz`` file; read if it exists (checked as `FaceDatabase.load` checks
            it), else created by the first ``save``.
        dim: the descriptor dimension; a file of another dimension is refused.
        max_bytes: the largest file ``FaceDatabase.load`` accepts (None: its 1 GiB).
    """

    backend = "exact"

    def __init__(self, path: str | os.PathLike, dim: int = DEFAULT_DIM,
                 max_bytes: int | None = None) -> None:
        path = Path(path)
        super().__init__(dim, str(path))
        self._path = path
        if path.exists() and not path.is_file():
            raise ValueError(f"the exact gallery is one .npz file, but {path} is a folder: "
                             "give a file path such as people.npz")
        if path.exists():
            db = FaceDatabase.load(path, max_bytes=max_bytes)
            if db.dim is not None and db.dim != dim:
                raise ValueError(f"{path} holds {db.dim}-d descriptors, not dim={dim}: "
                                 f"open it with dim={db.dim}")
            if db.dim is None:  # saved empty with an unset dimension
                db = FaceDatabase(dim)
        else:
            db = FaceDatabase(dim)
        self._db = db

    @property
    def database(self) -> FaceDatabase:
        """The underlying `FaceDatabase` (to pass to ``who_is_it``, ``verify``...)."""
        return self._db

    @property
    def names(self) -> list[str]:
        return sorted(self._db.names)

    @property
    def num_descriptors(self) -> int:
        return self._db.num_descriptors

    def __contains__(self, name: object) -> bool:
        return name in self._db

    def _insert(self, name: str, rows: np.ndarray) -> None:
        self._db.add(name, rows)

    def _remove(self, name: str) -> int:
        count = self._db[name].shape[0]
        self._db.remove(name)
        return count

    def _rows_of(self, names: list[str]) -> dict[str, np.ndarray]:
        return {name: self._db[name] for name in names}

    def _candidates(self, query: np.ndarray, k: int) -> list[str]:
        found = self._db.search(query, k=k)
        return [found[1]] if k == 1 else [name for _, name in found]

    def save(self) -> str:
        """Write the whole database to the ``.npz`` atomically (`FaceDatabase.save`)."""
        self._db.save(self._path)
        return self.location
