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

Applications never delivered and abandoned where the student had to act are purged too, after
`RETENTION_DAYS_IF_UNDELIVERED` days without a change (`purge_abandoned`: mark first, then delete).

The clock is a parameter (`now`), so tests move time instead of waiting.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from bson import ObjectId
from bson.errors import InvalidId

from services.gateway.domain import retention as retention_rules
from services.gateway.domain.application import Application
from services.gateway.domain.change import Change
from services.gateway.domain.retention import ABANDONED_STATES, BLOB_FIELDS
from services.gateway.store import Applications
from shared.blobs import BlobNotFound, BlobStore
from shared.db import Database, Document, stored_time
from shared.events import utcnow
from shared.logging import get_logger

log = get_logger(__name__)

Clock = Callable[[], datetime]


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


def purged_after_delivery(application: Document) -> bool:
    return retention_rules.purged_after_delivery(application.get("retention"))


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

    def count_purged(self, blobs_deleted: int, matches_deleted: int) -> None:
        self.purged += 1
        self.blobs_deleted += blobs_deleted
        self.matches_deleted += matches_deleted


async def _pages(database: Database, query: dict[str, Any], batch_size: int) -> AsyncIterator[Document]:
    """The applications matching `query`, read `batch_size` at a time in `_id` order (keyset paging, so
    documents the caller rewrites meanwhile are neither skipped nor read twice)."""
    collection = database.db["applications"]
    last: str | None = None
    while True:
        page = dict(query, _id={"$gt": last}) if last is not None else query
        batch = [doc async for doc in collection.find(page, {"outbox": 0}).sort("_id", 1).limit(batch_size)]
        if not batch:
            return
        last = str(batch[-1]["_id"])
        for application in batch:
            yield application


async def purge_application(
    database: Database,
    blobs: BlobStore,
    application: Document,
    *,
    now: datetime,
    period: timedelta,
    delivered_at: datetime | None,
    reason: str = "retention_period",
    last_change_at: datetime | None = None,
) -> dict[str, Any] | None:
    """Purge one application's images and derived data; returns its `retention` record (None when it was
    already purged). `reason`: `retention_period` (delivered) or `abandoned` (never delivered)."""
    application_id = application["_id"]
    db = database.db
    blob_ids = await application_blob_ids(database, application)
    deleted = await delete_blobs(blobs, blob_ids)
    matches = await db["matches"].delete_many({"application_id": application_id})
    if application.get("student_id"):
        # The admission photo's stored descriptor (biometric, services/matching/descriptors.py) goes with
        # the comparisons; matching reads the photo again if the student ever comes back.
        await db["admission_descriptors"].delete_many({"_id": application["student_id"]})
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
        "reason": reason,
    }
    if last_change_at is not None:
        record["last_change_at"] = last_change_at

    written = await Applications(database, lambda: None).apply(
        application_id, lambda app: retention_rules.purge(app, record, reason=reason)
    )
    return record if written.retention == record else None


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
    # Time ranges inside sub-documents are unreliable on nx-27017: the date is compared here, in code.
    async for application in _pages(database, {"delivery": {"$exists": True}}, batch_size):
        report.checked += 1
        delivered_at = stored_time((application.get("delivery") or {}).get("exported_at"))
        if delivered_at is None:
            continue
        report.delivered += 1
        if purged_after_delivery(application):
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
        report.count_purged(int(record["blobs_deleted"]), int(record["matches_deleted"]))
    log.info("retention run", **report.as_dict())
    return report


def created_before(blob_id: str, moment: datetime) -> bool:
    """Whether a GridFS blob was stored in a second before `moment` (its ObjectId says when it was made)."""
    try:
        made = ObjectId(blob_id).generation_time
    except (InvalidId, TypeError):
        return False  # not one of ours: never deleted on a guess
    return made < moment.replace(microsecond=0)


async def _finish_abandoned(database: Database, blobs: BlobStore, application: Document) -> dict[str, int]:
    """Delete what an abandoned application held before it was marked; idempotent (a crash repeats it).

    Only blobs made before the mark go: if the student comes back after it, their new uploads stay."""
    record = application["retention"]
    marked_at = stored_time(record.get("purged_at")) or utcnow()
    db = database.db
    snapshot = {**application, "photos": record.get("photos_before") or {}}
    blob_ids = {b for b in await application_blob_ids(database, snapshot) if created_before(b, marked_at)}
    deleted = await delete_blobs(blobs, blob_ids)
    old_photos = sorted(record.get("photos_before") or {})
    matches = await db["matches"].delete_many({"_id": {"$in": old_photos}}) if old_photos else None
    for photo_doc in [d async for d in db["photos"].find({"application_id": application["_id"]})]:
        if photo_doc["_id"] in old_photos and "purged_at" not in photo_doc:
            kept = {k: v for k, v in photo_doc.items() if k not in (*BLOB_FIELDS, "geometry")}
            await db["photos"].replace_one({"_id": photo_doc["_id"]}, {**kept, "purged_at": marked_at})
    counts = {"blobs_deleted": deleted, "matches_deleted": matches.deleted_count if matches else 0}

    await Applications(database, lambda: None).apply(
        application["_id"], lambda app: retention_rules.finish_abandoned(app, counts)
    )
    return counts


async def purge_abandoned(
    database: Database,
    blobs: BlobStore,
    *,
    period: timedelta,
    now: Clock = utcnow,
    batch_size: int = 100,
) -> RetentionReport:
    """Purge the images of applications never delivered and left untouched for `period` in a state where
    the student had to act (ABANDONED_STATES); the application record stays. Safe to run again.

    Mark first, then delete: the mark is a version-guarded update that holds only while the application is
    exactly as read (same `updated_at`, still abandoned), so a student who comes back at that moment wins;
    what the mark took (`photos_before`) is deleted after it, and a run that died in between is finished by
    the next one (`retention.status: purging`)."""
    report = RetentionReport(period_days=period / timedelta(days=1))
    collection = database.db["applications"]
    applications = Applications(database, lambda: None)
    async for unfinished in collection.find({"retention.status": "purging"}, {"outbox": 0}):
        counts = await _finish_abandoned(database, blobs, unfinished)
        report.count_purged(counts["blobs_deleted"], counts["matches_deleted"])
    abandoned: dict[str, Any] = {
        "state": {"$in": [s.value for s in ABANDONED_STATES]},
        "delivery": {"$exists": False},
        "retention": {"$exists": False},
        "merged_into": {"$exists": False},
    }
    async for application in _pages(database, abandoned, batch_size):
        report.checked += 1
        # updated_at is compared here: nx-27017 may hold it as text (docs/architecture.md).
        changed_at = stored_time(application.get("updated_at"))
        current = now()
        if changed_at is None or changed_at + period > current:
            continue
        report.due += 1
        record = {
            "status": "purging",
            "reason": "abandoned",
            "purged_at": current,
            "last_change_at": changed_at,
            "period_days": period / timedelta(days=1),
            "photos_before": application.get("photos") or {},
        }

        def mark(
            app: Application,
            version: int = int(application.get("version", 0)),
            changed: datetime = changed_at,
            record: dict[str, Any] = record,
        ) -> Change:
            return retention_rules.mark_abandoned(
                app, read_version=version, changed_at=changed, record=record
            )

        written = await applications.apply(application["_id"], mark)
        if stored_time((written.retention or {}).get("purged_at")) != current:
            continue  # someone else marked it, or the student came back
        counts = await _finish_abandoned(database, blobs, written.doc())
        report.count_purged(counts["blobs_deleted"], counts["matches_deleted"])
    log.info("retention run (abandoned)", **report.as_dict())
    return report


async def retention_loop(
    database: Database,
    blobs: BlobStore,
    *,
    period: timedelta,
    interval_s: float,
    batch_size: int = 100,
    now: Clock = utcnow,
    undelivered_period: timedelta | None = None,
) -> None:
    """The gateway's background retention task: one run every `interval_s` (errors logged, never fatal)."""
    while True:
        try:
            await purge_delivered(database, blobs, period=period, now=now, batch_size=batch_size)
            if undelivered_period is not None:
                await purge_abandoned(
                    database, blobs, period=undelivered_period, now=now, batch_size=batch_size
                )
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("retention run failed")
        await asyncio.sleep(interval_s)
