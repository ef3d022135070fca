"""Face galleries that scale: a `FaceDatabase` opened with one search strategy.

    from nbutils.extras.gallery import open_gallery

    with open_gallery("people.npz") as gallery:            # "exact": brute force, default
        gallery.add("ann", ann_descriptors)                # (d,) or (k, d), one per photo
        gallery.identify(query)                            # -> Identification(distance, name|None)
        gallery.save()
    open_gallery("people_ann.npz", backend="ann")          # faiss IVF: 10^6 and beyond
    open_gallery("people.db", backend="milvus")            # Milvus Lite, in this process
    open_gallery("http://db-host:19530", backend="milvus")  # a Milvus server

ann needs ``nbutils[ann]`` (faiss-cpu), milvus ``nbutils[milvus]`` (pymilvus,
milvus-lite); a missing one raises `BackendNotInstalledError` naming it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from nbutils.extras.gallery.errors import BackendNotInstalledError, GalleryConnectionError
from nbutils.faces.database import EMBEDDING_DIM, FaceDatabase, SearchIndex
from nbutils.faces.exact_index import ExactIndex

#: The backends ``open_gallery`` knows, default first.
BACKENDS = ("exact", "ann", "milvus")

__all__ = ["BACKENDS", "BackendNotInstalledError", "GalleryConnectionError", "open_gallery"]


def open_gallery(location: str | os.PathLike, backend: str = "exact", *,
                 dim: int = EMBEDDING_DIM, **options: Any) -> FaceDatabase:
    """The `FaceDatabase` at ``location``, searched by one backend (new if nothing is there).

    Args:
        location: exact and ann: an ``.npz`` file (read if it exists, written by
            ``save``); milvus: a local ``.db`` path (Milvus Lite) or a server URI.
        backend: "exact" (default), "ann" or "milvus".
        dim: the descriptor dimension d (128 for the course's encoder); a gallery of
            another one is refused.
        options: the index's own: exact ``max_bytes``; see `AnnIndex`, `MilvusIndex`.

    Raises:
        ValueError: an unknown backend, a folder given as a file, another dimension.
        BackendNotInstalledError: its package is missing.
    """
    if isinstance(dim, bool) or not isinstance(dim, int) or dim < 1:
        raise ValueError(f"dim must be a positive int, got {dim!r}")
    if backend not in BACKENDS:
        raise ValueError(f"unknown gallery backend {backend!r}; choose one of "
                         f"{', '.join(map(repr, BACKENDS))}")
    if backend != "milvus" and Path(location).is_dir():
        raise ValueError(f"the {backend} gallery is one .npz file, but {location} is a "
                         "folder: give a file path such as people.npz")
    index: SearchIndex
    if backend == "exact":
        exists = Path(location).exists()
        index = ExactIndex.load(location, **options) if exists else ExactIndex(dim, Path(location))
    elif backend == "ann":
        from nbutils.extras.gallery.ann import AnnIndex
        index = AnnIndex(location, dim, **options)
    else:
        from nbutils.extras.gallery.milvus import MilvusIndex
        index = MilvusIndex(location, dim, **options)
    return FaceDatabase(dim, index=index)
