"""Event handler: `code.scanned.v1` → decode, decrypt, verify → `code.decoded.v1` / `code.rejected.v1`.

At-least-once: the outcome is stored in `codes` under the scan id before the result is published, so a
redelivered scan (worker killed, broker lost) republishes the stored outcome under the same event id
instead of deciding twice (`shared/outcomes.py`).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

from pymongo import IndexModel

from services.codec.cipher import CodeCipher, DecryptionFailed, NotChsiCode
from services.codec.config import CodecSettings
from services.codec.decode import DecodeError, decode_image
from services.codec.messages import rejection_message
from services.codec.payload import decode_record
from services.codec.verify import confirm_view, verify
from shared.blobs import BlobNotFound, BlobStore
from shared.bus import Subscription
from shared.db import Database, Document
from shared.events import (
    ChsiStudent,
    CodeDecoded,
    CodeRejected,
    CodeScanned,
    Envelope,
)
from shared.logging import get_logger
from shared.outcomes import StoredOutcomes

log = get_logger(__name__)

INDEXES = {
    "codes": [
        IndexModel([("application_id", 1), ("decided_at", -1)]),
        IndexModel([("scan_event_id", 1)], unique=True),
    ]
}


@dataclass(frozen=True)
class Outcome:
    """The decision on one scan, before it is stored."""

    status: str  # "decoded" | "rejected"
    stage: str
    ms: float
    reason: str | None = None
    mismatched_fields: tuple[str, ...] = ()
    student: ChsiStudent | None = None


class CodecHandlers:
    def __init__(
        self, database: Database, blobs: BlobStore, settings: CodecSettings, cipher: CodeCipher
    ) -> None:
        self._outcomes = StoredOutcomes(
            database.db["codes"], producer="codec", input_event_field="scan_event_id"
        )
        self._blobs = blobs
        self._settings = settings
        self._cipher = cipher

    def subscription(self) -> Subscription:
        sub = Subscription("codec")
        # Idempotent by construction (one stored outcome per scan): no bus claim.
        sub.on(CodeScanned, claim=False)(self.on_code_scanned)
        return sub

    async def on_code_scanned(self, payload: CodeScanned, envelope: Envelope) -> list[Envelope]:
        async def decide() -> Document:
            log.info("code scan started", scan_id=payload.scan_id, source=payload.source)
            outcome = await self._decide(payload)
            log.info(
                "code scan decided",
                scan_id=payload.scan_id,
                status=outcome.status,
                reason=outcome.reason,
                stage=outcome.stage,
                ms=round(outcome.ms, 1),
            )
            return _document(payload, outcome)

        outcome = await self._outcomes.decide_once(payload.scan_id, envelope, decide)
        return [outcome.result(_result(outcome.document), envelope)]

    async def _decide(self, scan: CodeScanned) -> Outcome:
        started = time.perf_counter()
        stage = "text"
        text = scan.qr_text
        if scan.source == "image":
            try:
                data = await self._blobs.get(scan.image_blob_id or "")
            except BlobNotFound:
                return _rejected("image_missing", "load", started)
            if len(data) > self._settings.codec_max_image_bytes:
                return _rejected("image_too_large", "load", started)
            try:
                # Decoding is CPU-bound: off the event loop, so broker heartbeats keep flowing.
                result = await asyncio.to_thread(
                    decode_image, data, max_pixels=self._settings.codec_max_pixels
                )
            except DecodeError as exc:
                return _rejected(exc.code, "decode", started)
            text, stage = result.texts[0], result.stage
        if not text:
            return _rejected("no_code_found", stage, started)
        if len(text) > self._settings.codec_max_text_chars:
            return _rejected("text_too_long", stage, started)
        try:
            record = decode_record(text, self._cipher)
        except NotChsiCode:
            return _rejected("not_chsi_code", stage, started)
        except DecryptionFailed:
            return _rejected("decryption_failed", stage, started)
        verdict = verify(record, scan.claim, scan.expected_school_code)
        if verdict.reason is not None:
            return _rejected(verdict.reason, stage, started, tuple(verdict.mismatched_fields))
        return Outcome("decoded", stage, (time.perf_counter() - started) * 1000, student=confirm_view(record))


def _rejected(reason: str, stage: str, started: float, mismatched: tuple[str, ...] = ()) -> Outcome:
    return Outcome("rejected", stage, (time.perf_counter() - started) * 1000, reason, mismatched)


def _document(scan: CodeScanned, outcome: Outcome) -> Document:
    doc: dict[str, Any] = {
        "source": scan.source,
        "status": outcome.status,
        "stage": outcome.stage,
        "ms": round(outcome.ms, 2),
    }
    if outcome.status == "decoded":
        assert outcome.student is not None
        doc["student"] = outcome.student.model_dump()
    else:
        assert outcome.reason is not None
        doc["reason"] = outcome.reason
        doc["mismatched_fields"] = list(outcome.mismatched_fields)
        doc["message"] = rejection_message(outcome.reason, list(outcome.mismatched_fields))
    return doc


def _result(stored: Document) -> CodeDecoded | CodeRejected:
    if stored["status"] == "decoded":
        return CodeDecoded(
            scan_id=stored["_id"],
            student=ChsiStudent.model_validate(stored["student"]),
            stage=stored["stage"],
        )
    return CodeRejected(
        scan_id=stored["_id"],
        reason=stored["reason"],
        message=stored["message"],
        mismatched_fields=stored["mismatched_fields"],
    )
