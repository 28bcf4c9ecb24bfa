"""Retention (PIPL; handbook DOMAIN.md "Privacy"): a delivered application's photos and derived data are
deleted a configured time after delivery.

An application is due when `delivery.exported_at` (written whole by the delivery batches) is older than
`RETENTION_DAYS_AFTER_DELIVERY` (90 by default: neither the handbook nor the seed names a period). For each
due application, in batches:
- every blob of it is deleted from GridFS: raw uploads, standardised photos, the code image (the blob ids on
  the application, on the imaging `photos` documents, and any GridFS file whose metadata names the
  application or one of its photos, so an orphan left by a crashed worker goes too);
- the `matches` documents (scores and face counts derived from the photos; embeddings are never stored,
  docs/matching.md) are deleted; the imaging `photos` documents lose their blob ids and face geometry;
- the application keeps its record of what happened (states, decision, the match score, the order) minus
  the blob ids, and gets `retention: {purged_at, delivered_at, period_days, blobs_deleted, ...}`, written
  whole in one version-guarded update.
Blobs are deleted before the mark, so a crash in between only repeats the deletions on the next run
(a blob already gone counts as deleted); a marked application is skipped: the job is idempotent.
The roster's admission photos are the school's data and are not touched (docs/operations.md).

The clock is a parameter (`now`), so tests move time instead of waiting.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from services.gateway.store import Applications, Change
from shared.blobs import BlobNotFound, BlobStore
from shared.db import Database, Document
from shared.events import utcnow
from shared.logging import get_logger

log = get_logger(__name__)

Clock = Callable[[], datetime]
# placed_blob_id: imaging's rendering of a refused photo, kept for an operator's override.
BLOB_FIELDS = ("raw_blob_id", "standardized_blob_id", "placed_blob_id")


def as_utc(value: Any) -> datetime | None:
    """A stored time as an aware UTC datetime (nx-27017 may hand back ISO text; see docs/architecture.md)."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return None
    if not isinstance(value, datetime):
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


async def application_blob_ids(database: Database, application: Document) -> set[str]:
    """Every GridFS blob holding this application's images (never the roster's admission photo)."""
    db = database.db
    ids: set[str] = set()
    photos = application.get("photos") or {}
    for photo in photos.values():
        ids.update(str(photo[f]) for f in BLOB_FIELDS if isinstance(photo, dict) and photo.get(f))
    image = (application.get("code") or {}).get("image_blob_id")
    if image:
        ids.add(str(image))
    photo_ids = set(photos)
    async for doc in db["photos"].find({"application_id": application["_id"]}, dict.fromkeys(BLOB_FIELDS, 1)):
        photo_ids.add(str(doc["_id"]))
        ids.update(str(doc[f]) for f in BLOB_FIELDS if doc.get(f))
    async for doc in db["blobs.files"].find({"metadata.application_id": application["_id"]}, {"_id": 1}):
        ids.add(str(doc["_id"]))
    if photo_ids:
        async for doc in db["blobs.files"].find(
            {"metadata.photo_id": {"$in": sorted(photo_ids)}}, {"_id": 1}
        ):
            ids.add(str(doc["_id"]))
    student = await db["students"].find_one(
        {"_id": application.get("student_id")}, {"admission_photo_blob_id": 1}
    )
    if student and student.get("admission_photo_blob_id"):
        ids.discard(str(student["admission_photo_blob_id"]))
    return ids


async def delete_blobs(blobs: BlobStore, blob_ids: set[str]) -> int:
    """Delete each blob; one already gone counts as deleted (a repeated run after a crash)."""
    for blob_id in sorted(blob_ids):
        with contextlib.suppress(BlobNotFound):
            await blobs.delete(blob_id)
    return len(blob_ids)


def stripped_photos(photos: dict[str, Any]) -> dict[str, Any]:
    return {
        photo_id: {k: v for k, v in photo.items() if k not in BLOB_FIELDS} | {"purged": True}
        for photo_id, photo in photos.items()
        if isinstance(photo, dict)
    }


@dataclass
class RetentionReport:
    period_days: float
    checked: int = 0
    delivered: int = 0
    due: int = 0
    purged: int = 0
    already_purged: int = 0
    blobs_deleted: int = 0
    matches_deleted: int = 0

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


async def purge_application(
    database: Database,
    blobs: BlobStore,
    application: Document,
    *,
    now: datetime,
    period: timedelta,
    delivered_at: datetime,
) -> dict[str, Any] | None:
    """Purge one delivered application; returns its `retention` record (None when it was already purged)."""
    application_id = application["_id"]
    db = database.db
    blob_ids = await application_blob_ids(database, application)
    deleted = await delete_blobs(blobs, blob_ids)
    matches = await db["matches"].delete_many({"application_id": application_id})
    # Each document replaced whole: nx-27017 stores a datetime set through $set next to $unset as text.
    photo_docs = [d async for d in db["photos"].find({"application_id": application_id})]
    for photo_doc in photo_docs:
        kept = {k: v for k, v in photo_doc.items() if k not in (*BLOB_FIELDS, "geometry")}
        await db["photos"].replace_one({"_id": photo_doc["_id"]}, {**kept, "purged_at": now})
    record = {
        "purged_at": now,
        "delivered_at": delivered_at,
        "period_days": period / timedelta(days=1),
        "blobs_deleted": deleted,
        "matches_deleted": matches.deleted_count,
        "reason": "retention_period",
    }

    def decide(current: Document) -> Change:
        if current.get("retention"):
            return Change()
        fields: dict[str, Any] = {"retention": record, "photos": stripped_photos(current.get("photos") or {})}
        if current.get("code"):
            fields["code"] = {k: v for k, v in current["code"].items() if k != "image_blob_id"}
        return Change(set=fields)

    written = await Applications(database, lambda: None).mutate(application_id, decide)
    return record if written.get("retention") is record else None


async def purge_delivered(
    database: Database,
    blobs: BlobStore,
    *,
    period: timedelta,
    now: Clock = utcnow,
    batch_size: int = 100,
) -> RetentionReport:
    """Purge every application delivered more than `period` before `now()`; safe to run again at any time."""
    report = RetentionReport(period_days=period / timedelta(days=1))
    collection = database.db["applications"]
    last: str | None = None
    while True:
        # Time ranges inside sub-documents are unreliable on nx-27017: the date is compared here, in code.
        query: dict[str, Any] = {"delivery": {"$exists": True}}
        if last is not None:
            query["_id"] = {"$gt": last}
        batch = [doc async for doc in collection.find(query, {"outbox": 0}).sort("_id", 1).limit(batch_size)]
        if not batch:
            break
        last = str(batch[-1]["_id"])
        for application in batch:
            report.checked += 1
            delivered_at = as_utc((application.get("delivery") or {}).get("exported_at"))
            if delivered_at is None:
                continue
            report.delivered += 1
            if application.get("retention"):
                report.already_purged += 1
                continue
            current = now()
            if delivered_at + period > current:
                continue
            report.due += 1
            record = await purge_application(
                database, blobs, application, now=current, period=period, delivered_at=delivered_at
            )
            if record is None:
                report.already_purged += 1
                continue
            report.purged += 1
            report.blobs_deleted += int(record["blobs_deleted"])
            report.matches_deleted += int(record["matches_deleted"])
    log.info("retention run", **report.as_dict())
    return report


async def retention_loop(
    database: Database,
    blobs: BlobStore,
    *,
    period: timedelta,
    interval_s: float,
    batch_size: int = 100,
    now: Clock = utcnow,
) -> None:
    """The gateway's background retention task: one run every `interval_s` (errors logged, never fatal)."""
    while True:
        try:
            await purge_delivered(database, blobs, period=period, now=now, batch_size=batch_size)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("retention run failed")
        await asyncio.sleep(interval_s)
