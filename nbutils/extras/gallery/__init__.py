"""Face galleries: one interface, three search backends, chosen when opening.

    from nbutils.extras.gallery import open_gallery

    with open_gallery("people.npz") as gallery:            # "exact": brute force, default
        gallery.add("ann", ann_descriptors)                # (d,) or (k, d), one per photo
        gallery.verify(query, "ann")                       # -> Verification(distance, accepted)
        gallery.identify(query)                            # -> Identification(distance, name|None)
        gallery.search(query, k=5)                         # -> [Neighbour(distance, name), ...]
        gallery.delete("ann")
        gallery.save()

    open_gallery("people_ann.npz", backend="ann")          # faiss IVF: 10^6 and beyond
    open_gallery("people.db", backend="milvus")            # Milvus Lite, in this process
    open_gallery("http://db-host:19530", backend="milvus")  # a Milvus server

Every backend answers the same on the same data (distances are recomputed exactly for the
candidates its index finds); see `nbutils.extras.gallery.base`. The ann and milvus backends
need the extras ``nbutils[ann]`` (faiss-cpu) and ``nbutils[milvus]`` (pymilvus,
milvus-lite); a missing one raises `BackendNotInstalledError` naming it.
"""

from __future__ import annotations

import os
from typing import Any

from nbutils.extras.gallery.base import (
    DEFAULT_THRESHOLD,
    MAX_NAME_BYTES,
    BackendNotInstalledError,
    DuplicateNameError,
    Gallery,
    GalleryConnectionError,
    Identification,
    Neighbour,
    UnknownPersonError,
    Verification,
)
from nbutils.faces.database import DEFAULT_DIM

#: The backends ``open_gallery`` knows, default first.
BACKENDS = ("exact", "ann", "milvus")

__all__ = [
    "BACKENDS",
    "DEFAULT_THRESHOLD",
    "MAX_NAME_BYTES",
    "BackendNotInstalledError",
    "DuplicateNameError",
    "Gallery",
    "GalleryConnectionError",
    "Identification",
    "Neighbour",
    "UnknownPersonError",
    "Verification",
    "open_gallery",
]


def open_gallery(location: str | os.PathLike, backend: str = "exact", *,
                 dim: int = DEFAULT_DIM, **options: Any) -> Gallery:
    """Open (or start) the gallery at ``location`` with one backend.

    Args:
        location: exact and ann: an ``.npz`` file (read if it exists, written by
            ``save``); milvus: a local ``.db`` path (Milvus Lite) or a server URI.
        backend: "exact" (default), "ann" or "milvus".
        dim: the descriptor dimension d (128 for the course's encoder).
        options: the backend's own, see `ExactGallery`, `AnnGallery`, `MilvusGallery`.

    Raises:
        ValueError: an unknown backend. BackendNotInstalledError: its package is missing.
    """
    if isinstance(dim, bool) or not isinstance(dim, int) or dim < 1:
        raise ValueError(f"dim must be a positive int, got {dim!r}")
    if backend == "exact":
        from nbutils.extras.gallery.exact import ExactGallery
        return ExactGallery(location, dim, **options)
    if backend == "ann":
        from nbutils.extras.gallery.ann import AnnGallery
        return AnnGallery(location, dim, **options)
    if backend == "milvus":
        from nbutils.extras.gallery.milvus import MilvusGallery
        return MilvusGallery(location, dim, **options)
    raise ValueError(f"unknown gallery backend {backend!r}; choose one of "
                     f"{', '.join(map(repr, BACKENDS))}")
