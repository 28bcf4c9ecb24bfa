"""Blob storage in GridFS's format: uploaded code images, raw and standardised photos, admission photos.

The documents are GridFS's own (`blobs.files`: `_id` ObjectId, `length`, `chunkSize`, `uploadDate`,
`filename`, `metadata`; `blobs.chunks`: `files_id`, `n`, `data`), so PyMongo's `GridFSBucket`, `mongofiles`
or any GridFS reader reads what this store writes, and this store reads what they wrote (older blobs were
written by PyMongo's bucket in 255 KiB chunks). What differs is the commands, written here rather than left
to PyMongo's `GridIn`/`GridOut`:

- A put is two commands: the chunks (one `insert`), then the files document. A blob of up to `CHUNK_SIZE`
  (8 MiB, half the 16 MiB document limit) is one chunk; a larger one is several chunks in the same insert.
  PyMongo's bucket sent six per upload: its `GridIn` checks the indexes on every upload (a `find` on each
  collection, and on nx-27017, whose `find_one` on the chunks answered nothing, `listIndexes` and
  `createIndexes` every time). The indexes (`INDEXES`) are created once at start-up with every process's
  own (`shared/db.py`, `SHARED_INDEXES`).
- A get is two commands: the files document, then all its chunks in one batch (a `getMore` only past the
  server's 16 MiB reply limit on MongoDB). The bytes are checked against `length` and `chunkSize`: missing
  or short chunks raise `CorruptBlob`, never a silently truncated image.
- A delete is the files document, then the chunks (GridFS's order).

Chunks go in before their files document and come out after it, so a reader never finds a files document
whose chunks are not (yet, or any more) there. A put or a delete that dies half-way leaves chunks without
a files document: unreachable, never read, like PyMongo's bucket after the same crash (nothing sweeps
them); a put the server refuses deletes its chunks at once.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NoReturn

from bson import Binary, Int64, ObjectId
from bson.errors import InvalidId
from pymongo import IndexModel
from pymongo.errors import OperationFailure, WriteError

from shared.events import utcnow

if TYPE_CHECKING:
    from collections.abc import Mapping

    from shared.db import Database, Document

BUCKET = "blobs"
# One chunk per blob up to 8 MiB (photos and code images are smaller): well below the 16 MiB BSON limit.
CHUNK_SIZE = 8 * 1024 * 1024

# GridFS's own indexes, named as PyMongo's bucket names them (an existing deployment already has them).
INDEXES: dict[str, list[IndexModel]] = {
    f"{BUCKET}.files": [IndexModel([("filename", 1), ("uploadDate", 1)])],
    f"{BUCKET}.chunks": [IndexModel([("files_id", 1), ("n", 1)], unique=True)],
}


class BlobNotFound(LookupError):
    pass


class CorruptBlob(RuntimeError):
    """A files document whose chunks are missing or the wrong size: the blob cannot be read whole."""


@dataclass(frozen=True)
class BlobFile:
    """A blob's files document: what `BlobStore.read` needs to fetch its bytes."""

    id: ObjectId
    length: int
    chunk_size: int
    metadata: dict[str, Any]

    @classmethod
    def from_document(cls, doc: Document) -> BlobFile:
        metadata = doc.get("metadata")
        return cls(
            id=doc["_id"],
            length=int(doc["length"]),
            chunk_size=int(doc["chunkSize"]),
            metadata=dict(metadata) if isinstance(metadata, dict) else {},
        )

    @property
    def blob_id(self) -> str:
        return str(self.id)

    @property
    def chunk_count(self) -> int:
        return math.ceil(self.length / self.chunk_size) if self.length else 0


def object_id(blob_id: str) -> ObjectId:
    """The files document's `_id` for a blob id; BlobNotFound for anything that is not one."""
    try:
        return ObjectId(blob_id)
    except (InvalidId, TypeError) as exc:
        raise BlobNotFound(blob_id) from exc


class BlobStore:
    def __init__(self, database: Database, bucket: str = BUCKET) -> None:
        self._files = database.db[f"{bucket}.files"]
        self._chunks = database.db[f"{bucket}.chunks"]

    async def put(self, data: bytes, *, filename: str, content_type: str, **metadata: Any) -> str:
        """Store `data`; its blob id. Two commands: the chunks, then the files document."""
        file_id, size = ObjectId(), CHUNK_SIZE
        chunks = [
            {"files_id": file_id, "n": n, "data": Binary(data[offset : offset + size])}
            for n, offset in enumerate(range(0, len(data), size))
        ]
        if chunks:
            try:
                await self._chunks.insert_many(chunks)
            except OperationFailure:
                await self._drop_chunks(file_id)
                raise
        try:
            await self._files.insert_one(
                {
                    "_id": file_id,
                    "length": Int64(len(data)),
                    "chunkSize": size,
                    "uploadDate": utcnow(),
                    "filename": filename,
                    "metadata": {"content_type": content_type, **metadata},
                }
            )
        except WriteError:
            # Refused, so not written: its chunks go. (Not after a network or write-concern error: the
            # files document may have been written, and must keep its chunks.)
            if chunks:
                await self._drop_chunks(file_id)
            raise
        return str(file_id)

    async def _drop_chunks(self, file_id: ObjectId) -> None:
        """Best effort after a refused put: the refusal is the error to raise."""
        with contextlib.suppress(Exception):
            await self._chunks.delete_many({"files_id": file_id})

    async def get(self, blob_id: str) -> bytes:
        data, _ = await self.get_with_metadata(blob_id)
        return data

    async def get_with_metadata(self, blob_id: str) -> tuple[bytes, dict[str, Any]]:
        """The bytes and the metadata stored with them (read with the file document: no extra query)."""
        doc = await self._files.find_one({"_id": object_id(blob_id)})
        if doc is None:
            raise BlobNotFound(blob_id)
        file = BlobFile.from_document(doc)
        return await self.read(file), file.metadata

    async def find(self, query: Mapping[str, Any]) -> list[BlobFile]:
        """The files documents matching `query` (one command); `read` fetches a file's bytes."""
        return [BlobFile.from_document(doc) async for doc in self._files.find(query)]

    async def read(self, file: BlobFile) -> bytes:
        """The bytes of `file`: one command, its chunks in one batch."""
        count = file.chunk_count
        if not count:
            return b""
        cursor = (
            self._chunks.find({"files_id": file.id}, {"_id": 0, "n": 1, "data": 1})
            .sort("n", 1)
            .limit(count)
            .batch_size(count)
        )
        parts: list[bytes] = []
        async for chunk in cursor:
            n = len(parts)
            expected = file.chunk_size if n < count - 1 else file.length - file.chunk_size * n
            data = chunk.get("data")
            if chunk.get("n") != n or not isinstance(data, bytes) or len(data) != expected:
                await self._corrupt(
                    file, f"chunk {n}: expected {expected} bytes, found chunk {chunk.get('n')}"
                )
            parts.append(data)
        if len(parts) != count:
            await self._corrupt(file, f"{len(parts)} of {count} chunks")
        return b"".join(parts)

    async def _corrupt(self, file: BlobFile, what: str) -> NoReturn:
        """Raise for a blob whose chunks do not add up: BlobNotFound when it was deleted while being read
        (its files document is gone too), CorruptBlob otherwise."""
        if await self._files.find_one({"_id": file.id}, {"_id": 1}) is None:
            raise BlobNotFound(file.blob_id)
        raise CorruptBlob(f"blob {file.blob_id} ({file.length} bytes) cannot be read whole: {what}")

    async def delete(self, blob_id: str) -> None:
        """Delete the files document, then the chunks; BlobNotFound when there was no files document
        (its leftover chunks, if any, are deleted all the same)."""
        file_id = object_id(blob_id)
        try:
            deleted = (await self._files.delete_one({"_id": file_id})).deleted_count
        except OperationFailure as exc:
            # nx-27017 answers a delete of a missing document with an error instead of deleting nothing.
            if "not found" not in str(exc):
                raise
            deleted = 0
        try:
            await self._chunks.delete_many({"files_id": file_id})
        except OperationFailure as exc:
            if "not found" not in str(exc):
                raise
        if not deleted:
            raise BlobNotFound(blob_id)
