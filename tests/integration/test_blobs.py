"""The blob store on the real nx-27017: GridFS's documents written and read with two commands each.

A put is the chunks' insert then the files document's; a get is the files document then every chunk in
one batch. PyMongo's GridFS bucket reads what the store writes, and the store reads what the bucket wrote
(the blobs stored before).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any

import pytest
from bson import ObjectId
from gridfs import AsyncGridFSBucket
from pymongo import AsyncMongoClient, monitoring
from pymongo.errors import WriteError

import shared.blobs
from shared.blobs import BlobNotFound, BlobStore, CorruptBlob
from shared.config import Settings
from shared.db import SHARED_INDEXES, Database

# The driver's own housekeeping, not the store's work.
HOUSEKEEPING = {"hello", "isMaster", "ismaster", "ping", "endSessions", "buildInfo", "saslStart"}


class Recorder(monitoring.CommandListener):
    def __init__(self) -> None:
        self.commands: list[tuple[str, str]] = []

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if event.command_name in HOUSEKEEPING:
            return
        name = event.command_name
        target = event.command.get("collection") if name == "getMore" else event.command.get(name)
        self.commands.append((name, str(target)))

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass

    def take(self) -> list[tuple[str, str]]:
        taken, self.commands = self.commands, []
        return taken


@pytest.fixture
async def blobs(mongo_url: str, mongo_db: str) -> AsyncIterator[Any]:
    """A store on a client of its own that records every command it sends, after the start-up indexes."""
    database = Database(Settings(mongo_url=mongo_url, mongo_db=mongo_db))
    await database.ensure_indexes()
    recorder = Recorder()
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
        mongo_url, tz_aware=True, event_listeners=[recorder]
    )
    db = client[mongo_db]
    store = BlobStore(SimpleNamespace(db=db))
    recorder.take()
    yield SimpleNamespace(store=store, recorder=recorder, db=db, bucket=AsyncGridFSBucket(db, "blobs"))
    await client.close()
    await database.client.drop_database(mongo_db)
    await database.close()


async def test_a_put_is_two_commands_and_a_get_two(blobs) -> None:
    data = os.urandom(300_000)  # a photo: more than PyMongo's 255 KiB chunk, one chunk here
    blob_id = await blobs.store.put(data, filename="p.jpg", content_type="image/jpeg", photo_id="ph-1")
    assert blobs.recorder.take() == [("insert", "blobs.chunks"), ("insert", "blobs.files")]

    got, metadata = await blobs.store.get_with_metadata(blob_id)
    assert got == data and metadata == {"content_type": "image/jpeg", "photo_id": "ph-1"}
    assert blobs.recorder.take() == [("find", "blobs.files"), ("find", "blobs.chunks")]

    files = await blobs.db["blobs.files"].find_one({"_id": ObjectId(blob_id)})
    assert set(files) >= {"_id", "length", "chunkSize", "uploadDate", "filename", "metadata"}
    assert files["length"] == len(data) and files["chunkSize"] == shared.blobs.CHUNK_SIZE
    assert files["filename"] == "p.jpg" and files["uploadDate"]
    assert len(await blobs.db["blobs.chunks"].find({"files_id": ObjectId(blob_id)}).to_list()) == 1


async def test_the_gridfs_bucket_reads_what_the_store_writes(blobs, monkeypatch) -> None:
    data = os.urandom(600_000)
    one = await blobs.store.put(data, filename="one.jpg", content_type="image/jpeg", kind="raw_photo")
    monkeypatch.setattr(shared.blobs, "CHUNK_SIZE", 100_000)  # several chunks, the last one short
    several = await blobs.store.put(data, filename="six.jpg", content_type="image/jpeg")
    empty = await blobs.store.put(b"", filename="empty", content_type="image/jpeg")
    for blob_id in (one, several):
        stream = await blobs.bucket.open_download_stream(ObjectId(blob_id))
        assert await stream.read() == data
    assert (await blobs.bucket.open_download_stream(ObjectId(one))).metadata == {
        "content_type": "image/jpeg",
        "kind": "raw_photo",
    }
    assert await (await blobs.bucket.open_download_stream(ObjectId(empty))).read() == b""
    assert sorted([f.filename async for f in blobs.bucket.find({})]) == ["empty", "one.jpg", "six.jpg"]


async def test_the_store_reads_what_the_gridfs_bucket_wrote(blobs) -> None:
    # Blobs stored before: PyMongo's bucket, 255 KiB chunks; twelve of them come in one batch.
    data = os.urandom(3_000_000)
    old = await blobs.bucket.upload_from_stream(
        "raw-x", data, metadata={"content_type": "image/png", "application_id": "a-1"}
    )
    blobs.recorder.take()
    got, metadata = await blobs.store.get_with_metadata(str(old))
    assert got == data and metadata == {"content_type": "image/png", "application_id": "a-1"}
    assert blobs.recorder.take() == [("find", "blobs.files"), ("find", "blobs.chunks")]
    await blobs.store.delete(str(old))
    with pytest.raises(BlobNotFound):
        await blobs.store.get(str(old))


async def test_a_blob_larger_than_a_chunk_round_trips_with_one_insert(blobs) -> None:
    data = os.urandom(shared.blobs.CHUNK_SIZE + 12345)
    blob_id = await blobs.store.put(data, filename="big", content_type="application/octet-stream")
    assert blobs.recorder.take() == [("insert", "blobs.chunks"), ("insert", "blobs.files")]
    sizes = [
        len(c["data"])
        async for c in blobs.db["blobs.chunks"].find({"files_id": ObjectId(blob_id)}).sort("n", 1)
    ]
    assert sizes == [shared.blobs.CHUNK_SIZE, 12345]
    blobs.recorder.take()
    assert await blobs.store.get(blob_id) == data
    assert blobs.recorder.take() == [("find", "blobs.files"), ("find", "blobs.chunks")]
    assert await (await blobs.bucket.open_download_stream(ObjectId(blob_id))).read() == data


async def test_many_small_chunks_come_in_one_batch(blobs, monkeypatch) -> None:
    monkeypatch.setattr(shared.blobs, "CHUNK_SIZE", 1000)
    data = os.urandom(150_500)  # 151 chunks: more than a server's default first batch of 101
    blob_id = await blobs.store.put(data, filename="many", content_type="image/jpeg")
    assert blobs.recorder.take() == [("insert", "blobs.chunks"), ("insert", "blobs.files")]
    assert await blobs.store.get(blob_id) == data
    assert blobs.recorder.take() == [("find", "blobs.files"), ("find", "blobs.chunks")]


async def test_missing_or_short_chunks_are_an_error_not_a_truncated_blob(blobs) -> None:
    async def stored(length: int, chunks: dict[int, int]) -> str:
        """A files document of `length` bytes in 1000-byte chunks, with chunk n holding chunks[n] bytes."""
        file_id = ObjectId()
        if chunks:
            await blobs.db["blobs.chunks"].insert_many(
                [{"files_id": file_id, "n": n, "data": b"x" * size} for n, size in chunks.items()]
            )
        await blobs.db["blobs.files"].insert_one(
            {"_id": file_id, "length": length, "chunkSize": 1000, "filename": "c", "metadata": {}}
        )
        return str(file_id)

    assert await blobs.store.get(await stored(2500, {0: 1000, 1: 1000, 2: 500})) == b"x" * 2500
    gap = await stored(2500, {0: 1000, 2: 500})
    tail = await stored(2500, {0: 1000, 1: 1000})
    short = await stored(2500, {0: 1000, 1: 1000, 2: 10})
    inner = await stored(2500, {0: 1000, 1: 999, 2: 500})
    none = await stored(500, {})
    for blob_id in (gap, tail, short, inner, none):
        with pytest.raises(CorruptBlob, match=blob_id):
            await blobs.store.get(blob_id)


async def test_a_blob_deleted_while_being_read_is_not_found_not_corrupt(blobs) -> None:
    blob_id = await blobs.store.put(b"\xff\xd8jpeg", filename="x", content_type="image/jpeg")
    [file] = await blobs.store.find({"_id": ObjectId(blob_id)})
    await blobs.store.delete(blob_id)  # between the files document and the chunks
    with pytest.raises(BlobNotFound):
        await blobs.store.read(file)


async def test_delete_removes_both_documents_and_a_missing_blob_is_not_found(blobs, monkeypatch) -> None:
    monkeypatch.setattr(shared.blobs, "CHUNK_SIZE", 1000)
    blob_id = await blobs.store.put(os.urandom(2500), filename="d", content_type="image/jpeg")
    blobs.recorder.take()
    await blobs.store.delete(blob_id)
    assert blobs.recorder.take() == [("delete", "blobs.files"), ("delete", "blobs.chunks")]
    assert await blobs.db["blobs.files"].find_one({"_id": ObjectId(blob_id)}) is None
    assert await blobs.db["blobs.chunks"].find_one({"files_id": ObjectId(blob_id)}) is None
    for missing in (blob_id, str(ObjectId()), "not-an-id", ""):
        with pytest.raises(BlobNotFound):
            await blobs.store.delete(missing)
        with pytest.raises(BlobNotFound):
            await blobs.store.get(missing)


async def test_the_gridfs_indexes_are_created_at_start_up_also_over_the_buckets(mongo_url) -> None:
    assert dict(SHARED_INDEXES["blobs.chunks"][0].document) == {
        "key": {"files_id": 1, "n": 1},
        "name": "files_id_1_n_1",
        "unique": True,
    }
    assert dict(SHARED_INDEXES["blobs.files"][0].document["key"]) == {"filename": 1, "uploadDate": 1}
    # The bucket created them first (an existing deployment): the start-up's are the same, no conflict.
    database = Database(Settings(mongo_url=mongo_url, mongo_db=f"t_{ObjectId()}"))
    try:
        await AsyncGridFSBucket(database.db, "blobs").upload_from_stream("old", b"old")
        await database.ensure_indexes()
        await database.ensure_indexes()
        chunks = {i["name"]: i async for i in await database.db["blobs.chunks"].list_indexes()}
        files = {i["name"]: i async for i in await database.db["blobs.files"].list_indexes()}
    finally:
        await database.client.drop_database(database.db.name)
        await database.close()
    if os.environ.get("TEST_MONGO_URL"):  # nx-27017 keeps GridFS in tables of its own, indexed its way
        assert chunks["files_id_1_n_1"].get("unique") is True
        assert "filename_1_uploadDate_1" in files


async def test_a_refused_put_leaves_no_chunks(blobs, monkeypatch) -> None:
    async def refuse(document: Any) -> None:
        raise WriteError("refused", 121)

    monkeypatch.setattr(shared.blobs, "CHUNK_SIZE", 1000)
    monkeypatch.setattr(blobs.store, "_files", SimpleNamespace(insert_one=refuse))
    with pytest.raises(WriteError):
        await blobs.store.put(os.urandom(2500), filename="r", content_type="image/jpeg")
    assert await blobs.db["blobs.chunks"].find({}).to_list() == []
