"""Seed steps 7-9: a photo uploaded (one standardisation, counted against the quota), imaging's verdict
on it, and an operator letting a refused photo through."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from services.gateway.applications import Action, transition
from services.gateway.domain.application import Application, Failure, Photo
from services.gateway.domain.change import NO_CHANGE, Change
from services.gateway.domain.errors import DomainError
from services.gateway.domain.rules import SchoolRules
from services.gateway.domain.statuses import PhotoSource, PhotoStatus
from services.gateway.quota import take_slot
from shared.events import PhotoRejected, PhotoStandardized, PhotoSubmitted, make_event

#: The status page's sentence when imaging gave none.
DEFAULT_REJECTION = "照片不符合要求，请按拍照说明重拍"


@dataclass(frozen=True)
class UploadPhoto:
    photo_id: str
    source: PhotoSource
    raw_blob_id: str
    trace: dict[str, str] = field(default_factory=dict)


def check_upload(application: Application, rules: SchoolRules, now: datetime) -> None:
    """Fail fast, before the image is stored: photos may be taken in this state and a slot is free."""
    transition(application.state, Action.UPLOAD_PHOTO)
    take_slot(application.quota, now, rules)


def upload_photo(application: Application, cmd: UploadPhoto, rules: SchoolRules, now: datetime) -> Change:
    """One standardisation: a slot of the quota, the photo `processing`, and `photo.submitted` for imaging."""
    if cmd.photo_id in application.photos:
        return NO_CHANGE
    transition(application.state, Action.UPLOAD_PHOTO)
    quota, number = take_slot(application.quota, now, rules)
    photo = Photo(
        status=PhotoStatus.PROCESSING,
        source=cmd.source.value,
        raw_blob_id=cmd.raw_blob_id,
        uploaded_at=now,
        standardisation_number=number,
    )
    event = make_event(
        PhotoSubmitted(
            photo_id=cmd.photo_id,
            student_id=application.student_id or "",
            raw_blob_id=cmd.raw_blob_id,
            source=cmd.source.value,
            standardisation_number=number,
        ),
        application_id=application.id,
        trace=cmd.trace,
        occurred_at=now,
    )
    return application.change(events=[event], photos={**application.photos, cmd.photo_id: photo}, quota=quota)


def apply_photo_result(
    application: Application, result: PhotoStandardized | PhotoRejected, now: datetime
) -> Change:
    """Imaging's verdict on a photo still processing; a repeat (or a photo unknown here) changes nothing."""
    photo = application.photos.get(result.photo_id)
    if photo is None or photo.status is not PhotoStatus.PROCESSING:
        return NO_CHANGE
    measures = [m.model_dump() for m in result.measures]
    if isinstance(result, PhotoStandardized):
        decided = photo.model_copy(
            update={
                "status": PhotoStatus.STANDARDIZED,
                "standardized_blob_id": result.standardized_blob_id,
                "decided_at": now,
                "measures": measures,
            }
        )
        return application.change(photos={**application.photos, result.photo_id: decided})
    # `messages` are the imaging service's Chinese sentences for `reasons`, in the same order.
    messages = list(result.messages or [])
    decided = photo.model_copy(
        update={
            "status": PhotoStatus.REJECTED,
            "reasons": list(result.reasons),
            "messages": messages,
            "placed_blob_id": result.placed_blob_id,
            "decided_at": now,
            "measures": measures,
        }
    )
    failure = Failure(code="photo_rejected", message="；".join(messages) or DEFAULT_REJECTION, at=now)
    return application.change(photos={**application.photos, result.photo_id: decided}, last_failure=failure)


def override_quality(
    application: Application, photo_id: str, *, operator_id: str, reason: str, now: datetime
) -> Change:
    """An operator accepts a photo the quality check refused; the student can then submit it."""
    photo = application.photos.get(photo_id)
    if photo is None:
        raise DomainError("not_found")
    if photo.status is not PhotoStatus.REJECTED:
        raise DomainError("photo_not_rejected")
    transition(application.state, Action.UPLOAD_PHOTO)  # photos may still change in this state
    # What is accepted is imaging's own 480x640 rendering of the refused photo (placed_blob_id), never
    # the raw upload: a photo that could not even be placed (no face, cut off) cannot be overridden.
    if not photo.placed_blob_id:
        raise DomainError("photo_not_placeable")
    accepted = photo.model_copy(
        update={
            "status": PhotoStatus.STANDARDIZED,
            "standardized_blob_id": photo.placed_blob_id,
            "override": {
                "operator_id": operator_id,
                "reason": reason,
                "reasons_overridden": list(photo.reasons),
                "at": now,
            },
        }
    )
    photos = {**application.photos, photo_id: accepted}
    if application.last_failure is not None and application.last_failure.code == "photo_rejected":
        return application.change(photos=photos, last_failure=None)
    return application.change(photos=photos)
