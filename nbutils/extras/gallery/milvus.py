"""The Milvus strategy: the descriptors as rows of a Milvus collection, via pymilvus. Needs
``pip install 'nbutils[milvus]'`` (pymilvus and milvus-lite).

The URI picks the deployment: a local path ending in ``.db`` is Milvus Lite, embedded in
this process (one machine, tests); ``http://host:19530`` (``https://``, ``tcp://``,
``unix:``) a Milvus server (``token="user:password"`` or an API key if it has auth). One
row per descriptor: an auto id, the ``name``, ``name_key`` (the name's SHA-256 in hex:
filters compare it, so no name is spliced into a filter expression) and the float32
``vector``, indexed for L2 search (``index_type``, AUTOINDEX by default; "FLAT" exact),
with Strong consistency: a search sees every write before it. Writes go to Milvus at
once; ``save`` flushes them and, after a deletion, purges the deleted rows: a server
compacts, Milvus Lite (whose ``compact`` does nothing) gets the collection rewritten.
"""

from __future__ import annotations

import hashlib
import importlib.util
import itertools
import logging
import os
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from nbutils.extras.gallery.errors import BackendNotInstalledError, GalleryConnectionError
from nbutils.faces.database import EMBEDDING_DIM, MAX_NAME_BYTES

_FIELDS = ("id", "name", "name_key", "vector")
_REWRITE_SUFFIX = "__rewrite"
_QUERY_WINDOW = 16_384  # Milvus's largest result of one query or search (its "topk" cap)
_INSERT_BATCH = 1_000
_NAMES_PER_FILTER = 64
_COLLECTION_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,254}")


def import_pymilvus() -> Any:
    """The pymilvus module, or BackendNotInstalledError saying what to install."""
    try:
        import pymilvus
    except ImportError as err:
        raise BackendNotInstalledError(
            "the 'milvus' gallery backend needs pymilvus, which is not installed: "
            "pip install 'nbutils[milvus]' (pymilvus, and milvus-lite for local .db files)"
        ) from err
    return pymilvus


class _LiteIteratorNoise(logging.Filter):
    """Milvus Lite has no MVCC timestamps; pymilvus warns about it on every iterator."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "failed to get mvccTs" not in record.getMessage()


def name_key(name: str) -> str:
    """The hex SHA-256 of a name's UTF-8: what filters compare (64 chars, [0-9a-f])."""
    return hashlib.sha256(name.encode("utf-8")).hexdigest()


class MilvusIndex:
    """A `nbutils.faces.database.SearchIndex` kept in a Milvus collection; see the module.

    Args:
        uri: a local ``.db`` path (Milvus Lite; its folder is created) or a server URI.
        dim: the descriptor dimension of a new collection (an existing one's is its own).
        collection: the collection's name (letters, digits, underscores).
        token: the server's credentials, "user:password" or an API key ("" for none).
        index_type: the vector index for a new collection: "AUTOINDEX" (Milvus picks;
            HNSW in Milvus Lite), "FLAT" (exact), "HNSW", "IVF_FLAT"...
        search_params: the index's search parameters, e.g. {"ef": 128} for HNSW.
        timeout: seconds each call to Milvus may take, connecting included.

    Raises:
        BackendNotInstalledError: pymilvus (or, for a ``.db`` URI, milvus-lite) missing.
        GalleryConnectionError: no Milvus answers at ``uri`` within ``timeout``.
        ValueError: a bad option, or an existing collection that is not a face gallery.
    """

    def __init__(self, uri: str | os.PathLike, dim: int = EMBEDDING_DIM, *,
                 collection: str = "faces", token: str = "", index_type: str = "AUTOINDEX",
                 search_params: dict[str, Any] | None = None, timeout: float = 5.0) -> None:
        uri = os.fspath(uri)
        if not isinstance(collection, str) or not _COLLECTION_NAME.fullmatch(collection):
            raise ValueError(f"collection must be a Milvus collection name (a letter or _, "
                             f"then letters, digits or _), got {collection!r}")
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0:
            raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}")
        pymilvus = import_pymilvus()
        self.dim: int | None = dim
        self.location: Path | str | None = uri
        self._lite = uri.endswith(".db")  # pymilvus's own rule for Milvus Lite
        if self._lite:
            if importlib.util.find_spec("milvus_lite") is None:
                raise BackendNotInstalledError(
                    f"{uri} is a Milvus Lite file, which needs milvus-lite: pip install "
                    "'nbutils[milvus]' (or pip install milvus-lite)")
            Path(uri).parent.mkdir(parents=True, exist_ok=True)
            logging.getLogger("pymilvus.client.iterator.query_iterator").addFilter(
                _LiteIteratorNoise())
        self._collection = collection
        self._index_type = index_type
        self._search_params = dict(search_params or {})
        self._deleted = False  # a deletion not yet purged from storage by save()
        self._DataType = pymilvus.DataType
        try:
            self._client = pymilvus.MilvusClient(uri=uri, token=token, timeout=timeout)
        except pymilvus.MilvusException as err:
            reason = getattr(err, "message", err)
            if self._lite:  # milvus-lite logs the cause and tells pymilvus only "failed"
                raise GalleryConnectionError(
                    f"cannot open the Milvus Lite gallery {uri}: {reason}. One process at a "
                    "time may open a .db folder: close the other one (another notebook "
                    "kernel?), or share the gallery through a Milvus server") from err
            raise GalleryConnectionError(
                f"cannot reach Milvus at {uri} (waited at most {timeout} s): {reason}. "
                "Start the server, or check the URI; a local Milvus Lite gallery is a path "
                "ending in .db") from err
        self._open_collection()

    # --------------------------------------------------------------- collection

    def _open_collection(self) -> None:
        client, name = self._client, self._collection
        rewrite = name + _REWRITE_SUFFIX
        if client.has_collection(rewrite):  # a save() was interrupted while rewriting
            if client.has_collection(name):  # before the old one was dropped: it is whole
                client.drop_collection(rewrite)
            else:
                client.rename_collection(rewrite, name)
        if client.has_collection(name):
            self._check_schema()
        else:
            self._create(name)
        client.load_collection(name)

    def _create(self, collection: str) -> None:
        client = self._client
        schema = client.create_schema(auto_id=True)
        schema.add_field("id", self._DataType.INT64, is_primary=True)
        schema.add_field("name", self._DataType.VARCHAR, max_length=MAX_NAME_BYTES)
        schema.add_field("name_key", self._DataType.VARCHAR, max_length=64)
        schema.add_field("vector", self._DataType.FLOAT_VECTOR, dim=self.dim)
        index = client.prepare_index_params()
        index.add_index("vector", index_type=self._index_type, metric_type="L2")
        client.create_collection(collection, schema=schema, index_params=index,
                                 consistency_level="Strong")

    def _check_schema(self) -> None:
        described = self._client.describe_collection(self._collection)
        fields = {f["name"]: f for f in described["fields"]}
        where = f"collection {self._collection!r} at {self.location}"
        if set(fields) != set(_FIELDS):
            raise ValueError(f"{where} is not a face gallery: its fields are "
                             f"{sorted(fields)}, a gallery's are {list(_FIELDS)}; choose "
                             "another collection name")
        self.dim = int(fields["vector"]["params"]["dim"])  # the store checks it

    def close(self) -> None:
        """Close the connection (Milvus Lite's in-process server lives until exit)."""
        self._client.close()

    # ------------------------------------------------------------------ storage

    def _rows(self, filter: str, fields: list[str]) -> Iterator[dict[str, Any]]:
        """Every row matching ``filter``: one query, or an iterator past Milvus's window."""
        rows = self._client.query(self._collection, filter=filter, output_fields=fields,
                                  limit=_QUERY_WINDOW)
        if len(rows) < _QUERY_WINDOW:
            yield from rows
            return
        iterator = self._client.query_iterator(self._collection, batch_size=_INSERT_BATCH,
                                               filter=filter, output_fields=fields)
        try:
            while batch := iterator.next():
                yield from batch
        finally:
            iterator.close()

    def names(self) -> list[str]:
        """Everyone enrolled, sorted (reads every row's name: O(N))."""
        return sorted({row["name"] for row in self._rows("", ["name"])})

    def count(self) -> int:
        result = self._client.query(self._collection, filter="", output_fields=["count(*)"])
        return int(result[0]["count(*)"])

    def insert(self, people: Mapping[str, np.ndarray]) -> None:
        # float32 -> Python float is exact, and Milvus stores it back as float32.
        records = ({"name": name, "name_key": name_key(name), "vector": row.tolist()}
                   for name, rows in people.items() for row in rows)
        while batch := list(itertools.islice(records, _INSERT_BATCH)):
            self._client.insert(self._collection, batch)

    def enrolled(self, names: list[str]) -> list[str]:
        found: set[str] = set()
        for start in range(0, len(names), _NAMES_PER_FILTER):
            keys = ", ".join(f'"{name_key(n)}"' for n in names[start:start + _NAMES_PER_FILTER])
            found.update(row["name"] for row in self._rows(f"name_key in [{keys}]", ["name"]))
        return [name for name in names if name in found]

    def delete(self, name: str) -> int:
        key = name_key(name)
        count = sum(1 for _ in self._rows(f'name_key == "{key}"', ["id"]))
        self._client.delete(self._collection, filter=f'name_key == "{key}"')
        self._deleted = True
        return count

    def rows(self, names: list[str]) -> list[np.ndarray]:
        found: dict[str, list[Any]] = {name: [] for name in names}
        for start in range(0, len(names), _NAMES_PER_FILTER):
            keys = ", ".join(f'"{name_key(n)}"' for n in names[start:start + _NAMES_PER_FILTER])
            for row in self._rows(f"name_key in [{keys}]", ["name", "vector"]):
                found[row["name"]].append(row["vector"])
        return [np.asarray(found[name], dtype=np.float32).reshape(-1, self.dim or 0)
                for name in names]

    # ------------------------------------------------------------------- search

    def candidates(self, query: np.ndarray, k: int) -> list[str]:
        limit = min(_QUERY_WINDOW, max(4 * k, 32))
        while True:
            hits = self._client.search(
                self._collection, data=[query.tolist()], limit=limit, output_fields=["name"],
                search_params={"metric_type": "L2", "params": self._search_params})[0]
            names = list(dict.fromkeys(hit["entity"]["name"] for hit in hits))
            if len(names) >= k or len(hits) < limit or limit == _QUERY_WINDOW:
                return names
            limit = min(_QUERY_WINDOW, 4 * limit)  # one person's many photos filled the top

    # -------------------------------------------------------------- persistence

    def save(self, path: str | os.PathLike | None = None) -> Path | str:
        """Flush to Milvus's storage; after a deletion, purge the deleted rows from it."""
        if path is not None and os.fspath(path) != self.location:
            raise ValueError(f"a Milvus gallery is saved where it lives ({self.location}): "
                             "call save() without a path")
        self._client.flush(self._collection)
        if self._deleted:
            if self._lite:
                self._rewrite()
            else:
                self._client.compact(self._collection)
            self._deleted = False
        return self.location

    def _rewrite(self) -> None:
        """Copy the live rows to a new collection and drop the old one with its files.

        A crash before the drop leaves the old collection whole (the copy is dropped on the
        next open); after it, the copy is complete and the next open renames it.
        """
        client, name = self._client, self._collection
        rewrite = name + _REWRITE_SUFFIX
        if client.has_collection(rewrite):
            client.drop_collection(rewrite)
        self._create(rewrite)
        batch: list[dict[str, Any]] = []
        for row in self._rows("", ["name", "name_key", "vector"]):
            batch.append({"name": row["name"], "name_key": row["name_key"],
                          "vector": row["vector"]})
            if len(batch) == _INSERT_BATCH:
                client.insert(rewrite, batch)
                batch = []
        if batch:
            client.insert(rewrite, batch)
        client.flush(rewrite)
        client.drop_collection(name)
        client.rename_collection(rewrite, name)
        client.load_collection(name)
