"""Event handler: `photo.submitted.v1` → quality check and standardisation → `photo.standardized.v1` /
`photo.rejected.v1`.

At-least-once: the outcome is stored in `photos` under the photo id before the result is returned for
publishing, so a redelivered submission (worker killed, broker lost) republishes the stored outcome
under the same event id instead of judging the photo twice (`shared/outcomes.py`). A standardised JPEG
left in GridFS by an attempt that died before storing its outcome is deleted once an outcome is stored
(found with the raw upload's files document, in the same query).
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from pymongo import IndexModel

from services.imaging.config import ImagingSettings
from services.imaging.messages import rejection_message
from services.imaging.pipeline import Limits, Report, check_photo
from services.imaging.preprocess import ModelPool
from services.imaging.quality import Measure
from shared.blobs import BlobFile, BlobNotFound, BlobStore, object_id
from shared.bus import Subscription
from shared.db import Database, Document
from shared.events import (
    Envelope,
    PhotoGeometry,
    PhotoRejected,
    PhotoStandardized,
    PhotoSubmitted,
    QualityMeasure,
)
from shared.logging import get_logger
from shared.outcomes import StoredOutcomes

log = get_logger(__name__)

INDEXES = {
    "photos": [
        IndexModel([("application_id", 1), ("decided_at", -1)]),
        IndexModel([("student_id", 1), ("decided_at", -1)]),
        IndexModel([("submitted_event_id", 1)], unique=True),
    ],
    # Standardised photos are found by photo id to clean up after an attempt that died mid-way.
    "blobs.files": [IndexModel([("metadata.photo_id", 1)])],
}

STANDARDIZED_KIND = "standardized_photo"


def measure_event(measure: Measure) -> QualityMeasure:
    """A measure as it travels in events and is stored, with the student's text when it failed."""
    return QualityMeasure(
        code=measure.code,
        raw=measure.raw,
        score=measure.score,
        passed=measure.passed,
        reason=measure.reason,
        message=rejection_message(measure.reason) if measure.reason else None,
        threshold=measure.threshold,
        advisory=measure.advisory,
    )


class ImagingHandlers:
    def __init__(
        self, database: Database, blobs: BlobStore, settings: ImagingSettings, pool: ModelPool
    ) -> None:
        self._outcomes = StoredOutcomes(
            database.db["photos"], producer="imaging", input_event_field="submitted_event_id"
        )
        self._blobs = blobs
        self._settings = settings
        self._pool = pool
        self._limits = Limits(
            max_bytes=settings.imaging_max_image_bytes,
            max_pixels=settings.imaging_max_pixels,
            min_side=settings.imaging_min_side_px,
        )
        # One photo per model set at a time; more would queue on the pool inside threads.
        self._slots = asyncio.Semaphore(pool.size)

    def subscription(self) -> Subscription:
        sub = Subscription("imaging")
        # Idempotent by construction (one stored outcome per photo): no bus claim.
        sub.on(PhotoSubmitted, claim=False)(self.on_photo_submitted)
        return sub

    async def on_photo_submitted(self, payload: PhotoSubmitted, envelope: Envelope) -> list[Envelope]:
        earlier: list[BlobFile] = []

        async def decide() -> Document:
            log.info("photo check started", photo_id=payload.photo_id, source=payload.source)
            report, blob_id = await self._decide(payload, earlier)
            return _document(payload, report, blob_id)

        outcome = await self._outcomes.decide_once(
            payload.photo_id, envelope, decide, discard=self._discard_rendering
        )
        stored = outcome.document
        if outcome.decided_here:
            await self._remove_orphans(payload.photo_id, stored, earlier)
            log.info(
                "photo check decided",
                photo_id=payload.photo_id,
                status=stored["status"],
                reasons=stored["reasons"],
                ms=stored["ms"],
            )
        return [outcome.result(_result(stored), envelope)]

    async def _discard_rendering(self, lost: Document) -> None:
        """A concurrent delivery stored its outcome first: drop the JPEG this one wrote."""
        blob_id = lost.get("standardized_blob_id") or lost.get("placed_blob_id")
        if blob_id is not None:
            with contextlib.suppress(BlobNotFound):
                await self._blobs.delete(blob_id)

    async def _decide(self, submitted: PhotoSubmitted, earlier: list[BlobFile]) -> tuple[Report, str | None]:
        """The report and the rendering's blob id; `earlier` receives the standardised JPEGs of this photo
        stored before (by an attempt that died), found with the raw upload in one query."""
        wanted: list[dict[str, Any]] = [{"metadata.photo_id": submitted.photo_id}]
        raw_id = None
        with contextlib.suppress(BlobNotFound):  # not a blob id: the image is missing
            raw_id = object_id(submitted.raw_blob_id)
            wanted.append({"_id": raw_id})
        files = await self._blobs.find({"$or": wanted})
        earlier.extend(f for f in files if f.id != raw_id and f.metadata.get("kind") == STANDARDIZED_KIND)
        raw = next((f for f in files if f.id == raw_id), None)
        try:
            if raw is None:
                raise BlobNotFound(submitted.raw_blob_id)
            data = await self._blobs.read(raw)
        except BlobNotFound:
            return Report(ok=False, error="image_missing"), None
        async with self._slots:
            # CPU-bound (~0.1-0.3 s): off the event loop, so heartbeats and other messages keep flowing.
            report = await asyncio.to_thread(self._check, data, submitted.source)
        blob_id = None
        # Kept for a refused photo too when it could be placed: an operator may override the refusal,
        # and then this rendering (not the raw upload) is the standardised photo.
        if report.jpeg is not None:
            blob_id = await self._blobs.put(
                report.jpeg,
                filename=f"{submitted.photo_id}.jpg",
                content_type="image/jpeg",
                photo_id=submitted.photo_id,
                student_id=submitted.student_id,
                kind=STANDARDIZED_KIND,
                # With the photo, so matching aligns its face chip without detecting the face again.
                eyes_px=(report.geometry or {}).get("eyes_px"),
            )
        return report, blob_id

    def _check(self, data: bytes, source: Any) -> Report:
        with self._pool.borrow() as models:
            return check_photo(
                data, models, standard=self._settings.standard, source=source, limits=self._limits
            )

    async def _remove_orphans(self, photo_id: str, stored: Document, earlier: list[BlobFile]) -> None:
        """Delete the standardised JPEGs of this photo that its stored outcome does not use: left by an
        attempt that died before storing, or by a concurrent one still running (it will lose its insert
        and delete its own too). Found before deciding, with the raw upload (one query fewer than a
        search of their own), deleted after the store: before, it could delete a concurrent attempt's JPEG
        that wins. A JPEG put by a concurrent attempt after that search which then dies before its insert
        is left to the retention job (it finds blobs by `metadata.photo_id`, docs/operations.md)."""
        kept = {stored.get("standardized_blob_id"), stored.get("placed_blob_id")}
        for orphan in earlier:
            if orphan.blob_id not in kept:
                with contextlib.suppress(BlobNotFound):
                    await self._blobs.delete(orphan.blob_id)
                log.info("orphaned standardised photo removed", photo_id=photo_id)


def _document(submitted: PhotoSubmitted, report: Report, blob_id: str | None) -> Document:
    reasons = report.reasons
    doc: dict[str, Any] = {
        "student_id": submitted.student_id,
        "source": submitted.source,
        "standardisation_number": submitted.standardisation_number,
        "raw_blob_id": submitted.raw_blob_id,
        "status": "standardized" if report.ok and blob_id is not None else "rejected",
        "standardized_blob_id": blob_id if report.ok else None,
        "placed_blob_id": None if report.ok else blob_id,
        "reasons": reasons,
        "messages": [rejection_message(r) for r in reasons],
        # Advisory failures (not refusals): the manual review sees them in the measures.
        "flags": report.flags,
        "measures": [measure_event(m).model_dump() for m in report.measures],
        "geometry": report.geometry,
        "ms": round(report.ms, 1),
    }
    return doc


def _result(stored: Document) -> PhotoStandardized | PhotoRejected:
    measures = [QualityMeasure.model_validate(m) for m in stored["measures"]]
    geometry = PhotoGeometry.model_validate(stored["geometry"]) if stored.get("geometry") else None
    if stored["status"] == "standardized":
        return PhotoStandardized(
            photo_id=stored["_id"],
            standardized_blob_id=stored["standardized_blob_id"],
            measures=measures,
            geometry=geometry,
        )
    return PhotoRejected(
        photo_id=stored["_id"],
        measures=measures,
        reasons=stored["reasons"],
        messages=stored["messages"],
        geometry=geometry,
        placed_blob_id=stored.get("placed_blob_id"),
    )
