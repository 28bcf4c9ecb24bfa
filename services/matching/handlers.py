"""Event handler: `photo.confirmed.v1` → compare with the admission photo → `match.scored.v1`.

At-least-once: the outcome is stored in `matches` under the photo id before the result is published,
so a redelivered event (worker killed, broker lost) republishes the stored outcome under the same
event id instead of comparing twice (`shared/outcomes.py`); a re-confirmation of an already compared photo
(a new event) gets the stored outcome under an id of its own. Embeddings are never stored: only scores and counts.
"""

from __future__ import annotations

import asyncio
import math
from typing import Any

from prometheus_client import Counter, Histogram
from pymongo import IndexModel

from services.matching.compare import Comparison, FaceRules, PhotoReading, compare_photos, read_photo
from services.matching.config import MatchingSettings
from services.matching.descriptors import DescriptorStore, cipher_from_settings
from services.matching.engines import Eyes, FaceEngine
from services.matching.messages import reason_message, score_message
from services.matching.score import band
from shared.blobs import BlobNotFound, BlobStore
from shared.bus import Subscription
from shared.db import Database, Document
from shared.events import Envelope, MatchScored, PhotoConfirmed
from shared.logging import get_logger
from shared.outcomes import StoredOutcomes

log = get_logger(__name__)

INDEXES = {
    "matches": [
        # Counting a student's failed compliant photos.
        IndexModel([("student_id", 1), ("status", 1), ("passed", 1)]),
        IndexModel([("application_id", 1), ("decided_at", -1)]),
        # The registrar exception queue, newest first.
        IndexModel([("needs_registrar", 1), ("decided_at", -1)]),
    ]
}

OUTCOMES = Counter(
    "matching_outcomes_total", "Comparisons by outcome (passed, failed, or the reason)", ["engine", "outcome"]
)
STAGE_SECONDS = Histogram(
    "matching_stage_seconds",
    "Time per stage of one comparison (both photos)",
    ["engine", "stage"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)


class MatchingHandlers:
    def __init__(
        self, database: Database, blobs: BlobStore, settings: MatchingSettings, engine: FaceEngine
    ) -> None:
        self._matches = database.db["matches"]
        self._outcomes = StoredOutcomes(
            self._matches, producer="matching", input_event_field="confirmed_event_id"
        )
        self._blobs = blobs
        self._settings = settings
        self._engine = engine
        self._rules = FaceRules.from_settings(settings)
        self._descriptors = DescriptorStore(database, cipher_from_settings(settings))

    def subscription(self) -> Subscription:
        sub = Subscription("matching")
        # Idempotent by construction (one stored outcome per photo): no bus claim.
        sub.on(PhotoConfirmed, claim=False)(self.on_photo_confirmed)
        return sub

    async def on_photo_confirmed(self, payload: PhotoConfirmed, envelope: Envelope) -> list[Envelope]:
        comparisons: list[Comparison] = []

        async def decide() -> Document:
            log.info("comparison started", photo_id=payload.photo_id, engine=self._engine.name)
            comparison = await self._compare(payload)
            comparisons.append(comparison)
            return await self._document(payload, comparison)

        outcome = await self._outcomes.decide_once(payload.photo_id, envelope, decide)
        stored = outcome.document
        if outcome.decided_here:
            _observe(comparisons[0], stored)
            log.info(
                "comparison decided",
                photo_id=payload.photo_id,
                score=stored["score"],
                passed=stored["passed"],
                reason=stored["reason"],
                faces=stored["faces_found"],
                failed_compliant_photos=stored["failed_compliant_photos"],
                needs_registrar=stored["needs_registrar"],
                reuse=(stored.get("reuse") or {}).get("verdict"),
                ms=stored["ms"],
            )
        return [outcome.result(_result(stored), envelope)]

    async def _compare(self, confirmed: PhotoConfirmed) -> Comparison:
        photo, eyes = await self._standardized(confirmed.standardized_blob_id)
        admission = await self.admission_reading(confirmed.student_id, confirmed.admission_photo_blob_id)
        # CPU-bound: off the event loop, so broker heartbeats keep flowing.
        return await asyncio.to_thread(
            compare_photos,
            self._engine,
            photo,
            None,
            pass_mark=confirmed.pass_mark,
            rules=self._rules,
            photo_eyes=eyes,
            admission=admission,
            check_reuse=self._settings.matching_reuse_check,
        )

    async def admission_reading(self, student_id: str, blob_id: str) -> PhotoReading:
        """The admission photo's stored reading, or read now (once) and stored for the next comparison."""
        stored = await self._descriptors.get(student_id, blob_id, self._engine.model)
        # A reading stored before the reuse check has no face print: read the photo again (once).
        stale = stored is not None and stored.embedding is not None and stored.face_print is None
        if stored is not None and not (stale and self._settings.matching_reuse_check):
            return stored
        try:
            data = await self._blobs.get(blob_id)
        except BlobNotFound:
            return PhotoReading(problem="missing")

        def read() -> PhotoReading:
            with self._engine.lock:
                return read_photo(self._engine, data, self._rules)

        reading = await asyncio.to_thread(read)
        await self._descriptors.put(student_id, blob_id, self._engine.model, reading)
        return reading

    async def _standardized(self, blob_id: str) -> tuple[bytes | None, Eyes | None]:
        """The standardised photo and the eyes imaging stored with it (None for an older photo)."""
        try:
            data, metadata = await self._blobs.get_with_metadata(blob_id)
        except BlobNotFound:
            return None, None
        return data, _eyes(metadata.get("eyes_px"))

    async def _document(self, confirmed: PhotoConfirmed, result: Comparison) -> Document:
        reason = result.reason
        scored = reason is None
        failed_before = await self._matches.count_documents(
            {
                "student_id": confirmed.student_id,
                "status": "scored",
                "passed": False,
                "_id": {"$ne": confirmed.photo_id},
            }
        )
        failed = failed_before + (1 if scored and not result.passed else 0)
        # A bad admission photo is not the student's to fix; the admission photo submitted again is.
        needs_registrar = failed >= self._settings.matching_registrar_after_failures or (
            reason is not None
            and reason.startswith("admission_photo_")
            and reason != "admission_photo_reused"
        )
        if scored:
            assert result.score is not None
            message = score_message(
                result.score, result.pass_mark, needs_registrar=needs_registrar, failed_photos=failed
            )
        else:
            assert reason is not None
            message = reason_message(reason)
        return {
            "student_id": confirmed.student_id,
            "status": "scored" if scored else "failed",
            "score": result.score if scored else None,
            "raw_similarity": result.raw,
            "passed": result.passed,
            "pass_mark": result.pass_mark,
            "reason": reason,
            "message": message,
            "engine": result.engine,
            "model": result.model,
            "faces_found": {
                "photo": result.photo.faces_found,
                "admission_photo": result.admission_photo.faces_found,
            },
            "face_width_px": {
                "photo": result.photo.face_width_px,
                "admission_photo": result.admission_photo.face_width_px,
            },
            "timings_ms": result.timings_ms,
            "ms": round(result.ms, 2),
            "band": band(result.score, result.pass_mark, self._settings.matching_borderline_points)
            if scored and result.score is not None
            else None,
            "located": {"photo": result.photo.located, "admission_photo": result.admission_photo.located},
            "failed_compliant_photos": failed,
            "needs_registrar": needs_registrar,
            "registrar_limit": self._settings.matching_registrar_after_failures,
            # The admission-photo reuse check's evidence (hash distance, structure, gain, score; no pixels).
            "reuse": result.reuse.as_dict() if result.reuse is not None else None,
            "flags": ["admission_photo_similar"]
            if result.reuse is not None and result.reuse.verdict == "similar"
            else [],
        }


def _observe(result: Comparison, stored: Document) -> None:
    outcome = stored["reason"] or ("passed" if stored["passed"] else "failed")
    OUTCOMES.labels(result.engine, outcome).inc()
    for stage, ms in result.timings_ms.items():
        STAGE_SECONDS.labels(result.engine, stage).observe(ms / 1000.0)


def _result(stored: Document) -> MatchScored:
    return MatchScored(
        photo_id=stored["_id"],
        student_id=stored["student_id"],
        score=stored["score"] if stored["score"] is not None else 0.0,
        passed=stored["passed"],
        engine=stored["engine"],
        model=stored["model"],
        pass_mark=stored["pass_mark"],
        reason=stored["reason"],
        message=stored["message"],
        failed_compliant_photos=stored["failed_compliant_photos"],
        needs_registrar=stored["needs_registrar"],
        band=stored.get("band"),
        flags=stored.get("flags", []),
    )


def _eyes(value: Any) -> Eyes | None:
    """Two (x, y) pairs of finite numbers, image-left first, or None for anything else."""
    try:
        (lx, ly), (rx, ry) = ((float(x), float(y)) for x, y in value)
    except (TypeError, ValueError):
        return None
    if not all(math.isfinite(v) and 0 <= v <= 100_000 for v in (lx, ly, rx, ry)) or lx >= rx:
        return None
    return (lx, ly), (rx, ry)
