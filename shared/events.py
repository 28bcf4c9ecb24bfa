"""The event envelope and the typed, versioned payload of every event on the bus.

Routing key = event type with its version (`photo.submitted.v1`). A breaking change to a payload is a
new type (`.v2`) published beside the old one until every consumer has moved.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

# Namespace for ids derived from other ids, so a redelivered input yields the same result event id.
_EVENT_NAMESPACE = uuid.UUID("6f1c2a7e-3b7d-4d0c-9a51-2f3e8c1d9b40")
MAX_EVENT_BYTES = 256 * 1024


def new_id() -> str:
    return str(uuid.uuid4())


def derived_id(*parts: str) -> str:
    """A stable id computed from other ids: the same inputs always give the same event id."""
    return str(uuid.uuid5(_EVENT_NAMESPACE, "\x1f".join(parts)))


def utcnow() -> datetime:
    return datetime.now(UTC)


class EventData(BaseModel):
    """Base of every payload: strict about unknown fields so a producer's typo is caught at the edge."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    event_type: ClassVar[str]


class Envelope(BaseModel):
    """What travels on the bus; `id` is also the AMQP message_id, `application_id` the correlation_id."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(min_length=1, max_length=64)
    type: str = Field(min_length=3, max_length=100, pattern=r"^[a-z_]+(\.[a-z_]+)*\.v\d+$")
    occurred_at: datetime
    application_id: str | None = Field(default=None, max_length=64)
    data: dict[str, Any]
    # W3C trace context and the request id that caused this event, carried end to end.
    trace: dict[str, str] = Field(default_factory=dict)

    def payload(self) -> EventData:
        """The typed payload; raises `UnknownEventType` or pydantic's ValidationError."""
        model = EVENT_TYPES.get(self.type)
        if model is None:
            raise UnknownEventType(self.type)
        return model.model_validate(self.data)

    def to_bytes(self) -> bytes:
        return self.model_dump_json().encode()

    @classmethod
    def from_bytes(cls, body: bytes) -> Envelope:
        return cls.model_validate_json(body)


class UnknownEventType(ValueError):
    pass


def make_event(
    data: EventData,
    *,
    application_id: str | None,
    event_id: str | None = None,
    trace: dict[str, str] | None = None,
    occurred_at: datetime | None = None,
) -> Envelope:
    return Envelope(
        id=event_id or new_id(),
        type=data.event_type,
        occurred_at=occurred_at or utcnow(),
        application_id=application_id,
        data=data.model_dump(mode="json"),
        trace=trace or {},
    )


# --- codec -------------------------------------------------------------------------------------------

Str64 = Field(min_length=1, max_length=64)


class StudentClaim(BaseModel):
    """What the student typed on the register page; it must match the code exactly."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str = Field(min_length=1, max_length=50)
    student_number: str = Field(min_length=1, max_length=32)
    id_last4: str = Field(min_length=1, max_length=8)


class CodeScanned(EventData):
    event_type: ClassVar[str] = "code.scanned.v1"
    scan_id: str = Str64
    claim: StudentClaim
    source: Literal["text", "image"]
    # Exactly one of these: the scanner's text, or the GridFS id of the uploaded code image.
    qr_text: str | None = Field(default=None, max_length=4096)
    image_blob_id: str | None = Field(default=None, max_length=64)
    # The school the student is collecting for, when known; a different school on the code is 学籍异动.
    expected_school_code: str | None = Field(default=None, max_length=20)


class ChsiStudent(BaseModel):
    """The decrypted CHSI record, as the confirm page shows it (name and ID already masked)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    chsi_id: str
    masked_name: str
    student_number: str
    id_last4: str
    school_code: str
    school_name: str
    education_category: str
    level: str
    department: str
    class_name: str


class CodeDecoded(EventData):
    event_type: ClassVar[str] = "code.decoded.v1"
    scan_id: str = Str64
    student: ChsiStudent
    stage: str = Field(max_length=64)


class CodeRejected(EventData):
    event_type: ClassVar[str] = "code.rejected.v1"
    scan_id: str = Str64
    reason: Literal[
        "no_code_found",
        "multiple_codes",
        "not_chsi_code",
        "decryption_failed",
        "fields_mismatch",
        "school_mismatch",
        "student_number_invalid",
        "not_an_image",
        "empty_file",
        "truncated_image",
        "image_too_large",
        "text_too_long",
        "image_missing",
    ]
    message: str = Field(max_length=500)
    mismatched_fields: list[str] = Field(default_factory=list)


# --- payment -----------------------------------------------------------------------------------------


class OrderPaid(EventData):
    event_type: ClassVar[str] = "order.paid.v1"
    order_id: str = Str64
    student_id: str = Str64
    amount_fen: int = Field(ge=0)
    transaction_id: str = Field(max_length=64)
    payer_openid: str = Field(max_length=128)
    paid_at: datetime


# --- imaging -----------------------------------------------------------------------------------------


class PhotoSubmitted(EventData):
    event_type: ClassVar[str] = "photo.submitted.v1"
    photo_id: str = Str64
    student_id: str = Str64
    raw_blob_id: str = Str64
    source: Literal["camera", "album"]
    # Which of the day's standardisations this is (1-3); counted against the quota at submit time.
    standardisation_number: int = Field(ge=1, le=10)


class QualityMeasure(BaseModel):
    """One quality measure of the CHSI photo standard (services/imaging/quality.py, docs/imaging.md)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    # The measure, e.g. `eyes_open`; stable.
    code: str = Field(max_length=64)
    # Its raw value in the measure's unit (None where the photo gave nothing to measure).
    raw: float | None
    score: float = Field(ge=0, le=100)
    passed: bool
    # When failed: the stable reason code, e.g. `eyes_closed`, and the Chinese text for the student.
    reason: str | None = Field(default=None, max_length=64)
    message: str | None = Field(default=None, max_length=200)
    # The configured threshold, readable by an operator (">= 0.14", "50-110 px").
    threshold: str | None = Field(default=None, max_length=64)
    # Failed, but not a refusal: where the standard leaves room (a smile, hair near the ears) or the
    # measure cannot be sure (residue, recapture), the photo goes on to the manual review flagged.
    advisory: bool = False


class PhotoGeometry(BaseModel):
    """Where the head landed on the standardised 480×640 photo, and how it was encoded."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    width_px: int
    height_px: int
    head_top_px: float
    eye_line_px: float
    face_width_px: float
    roll_corrected_deg: float
    scale: float
    jpeg_quality: int = Field(ge=1, le=100)
    bytes: int = Field(ge=0)
    dpi: int
    # The iris centres on the photo, image-left first (matching aligns from them); absent before 16.1.
    eyes_px: list[tuple[float, float]] | None = Field(default=None, min_length=2, max_length=2)


class PhotoStandardized(EventData):
    event_type: ClassVar[str] = "photo.standardized.v1"
    photo_id: str = Str64
    standardized_blob_id: str = Str64
    measures: list[QualityMeasure]
    geometry: PhotoGeometry | None = None


class PhotoRejected(EventData):
    event_type: ClassVar[str] = "photo.rejected.v1"
    photo_id: str = Str64
    measures: list[QualityMeasure]
    # Stable reason codes, most fundamental first (docs/imaging.md lists them all).
    reasons: list[str]
    # The Chinese text for each reason, same order: shown to the student verbatim.
    messages: list[str] = Field(default_factory=list)
    geometry: PhotoGeometry | None = None
    # The 480x640 rendering imaging made anyway when the photo could be placed (face found, geometry
    # reached) but a measure failed: what an operator's override accepts. None: nothing to accept.
    placed_blob_id: str | None = Field(default=None, max_length=64)


class PhotoConfirmed(EventData):
    event_type: ClassVar[str] = "photo.confirmed.v1"
    photo_id: str = Str64
    student_id: str = Str64
    standardized_blob_id: str = Str64
    admission_photo_blob_id: str = Str64
    # The school's face-comparison pass mark on the 0-100 scale (seed: 80).
    pass_mark: float = Field(default=80.0, ge=0, le=100)


# --- matching and review -----------------------------------------------------------------------------


# What a scored photo carries for the reviewer without being refused (services/matching/reuse.py).
MatchFlag = Literal["admission_photo_similar"]

# Why no score could be computed: `<which photo>_<problem>`. Stable codes; texts in services/matching.
MatchReason = Literal[
    "photo_missing",
    "photo_unreadable",
    "photo_too_large",
    "photo_no_face",
    "photo_multiple_faces",
    "photo_face_too_small",
    "admission_photo_missing",
    "admission_photo_unreadable",
    "admission_photo_too_large",
    "admission_photo_no_face",
    "admission_photo_multiple_faces",
    "admission_photo_face_too_small",
    # The student submitted the admission photo again (services/matching/reuse.py): refused, not scored.
    "admission_photo_reused",
]


class MatchScored(EventData):
    event_type: ClassVar[str] = "match.scored.v1"
    photo_id: str = Str64
    student_id: str = Str64
    # 0-100; 0 when `reason` says no comparison could be made.
    score: float = Field(ge=0, le=100)
    passed: bool
    engine: str = Field(max_length=32)
    # The exact weights that scored (pack/file@sha256 prefix), for audits.
    model: str | None = Field(default=None, max_length=128)
    # The pass mark this photo was judged against (the school's, from photo.confirmed.v1).
    pass_mark: float = Field(default=80.0, ge=0, le=100)
    reason: MatchReason | None = None
    # For the student, in Chinese: the result, or what to do next.
    message: str | None = Field(default=None, max_length=500)
    # How many of this student's compliant photos have scored below the pass mark, this one included.
    failed_compliant_photos: int = Field(default=0, ge=0)
    # The case goes to the registrar exception queue: too many failed photos, or a bad admission photo.
    needs_registrar: bool = False
    # Where the score sits against the pass mark (docs/matching.md, "Score bands"): "borderline" within
    # the calibrated width either side of it; None when no score was computed (or before 16.5).
    band: Literal["clear_pass", "borderline", "clear_fail"] | None = None
    # For the reviewer (15.5): `admission_photo_similar`: the face is near-identical to the admission
    # photo's but the pixels differ (the same photo re-edited, or shots seconds apart): not refused.
    flags: list[MatchFlag] = Field(default_factory=list, max_length=4)


class ReviewDecided(EventData):
    event_type: ClassVar[str] = "review.decided.v1"
    review_id: str = Str64
    photo_id: str = Str64
    student_id: str = Str64
    decision: Literal["approved", "rejected"]
    reason: str | None = Field(default=None, max_length=500)
    operator_id: str = Str64


EVENT_TYPES: dict[str, type[EventData]] = {
    model.event_type: model
    for model in (
        CodeScanned,
        CodeDecoded,
        CodeRejected,
        OrderPaid,
        PhotoSubmitted,
        PhotoStandardized,
        PhotoRejected,
        PhotoConfirmed,
        MatchScored,
        ReviewDecided,
    )
}

__all__ = ["EVENT_TYPES", "Envelope", "EventData", "UnknownEventType", "ValidationError", "make_event"]
