"""Blob storage in GridFS: uploaded code images, raw and standardised photos."""

from __future__ import annotations

from typing import Any

from bson import ObjectId
from bson.errors import InvalidId
from gridfs import AsyncGridFSBucket, NoFile
from pymongo.errors import OperationFailure

from shared.db import Database


class BlobNotFound(LookupError):
    pass


class BlobStore:
    def __init__(self, database: Database, bucket: str = "blobs") -> None:
        self._bucket = AsyncGridFSBucket(database.db, bucket_name=bucket)

    async def put(self, data: bytes, *, filename: str, content_type: str, **metadata: Any) -> str:
        file_id = await self._bucket.upload_from_stream(
            filename, data, metadata={"content_type": content_type, **metadata}
        )
        return str(file_id)

    async def get(self, blob_id: str) -> bytes:
        data, _ = await self.get_with_metadata(blob_id)
        return data

    async def get_with_metadata(self, blob_id: str) -> tuple[bytes, dict[str, Any]]:
        """The bytes and the metadata stored with them (read with the file document: no extra query)."""
        try:
            stream = await self._bucket.open_download_stream(ObjectId(blob_id))
        except (InvalidId, TypeError, NoFile) as exc:
            raise BlobNotFound(blob_id) from exc
        data: bytes = await stream.read()
        metadata = stream.metadata
        return data, dict(metadata) if isinstance(metadata, dict) else {}

    async def delete(self, blob_id: str) -> None:
        try:
            await self._bucket.delete(ObjectId(blob_id))
        except (InvalidId, NoFile) as exc:
            raise BlobNotFound(blob_id) from exc
        except OperationFailure as exc:
            # nx-27017 answers a delete of a missing file with an error instead of deleting nothing.
            if "not found" in str(exc):
                raise BlobNotFound(blob_id) from exc
            raise
