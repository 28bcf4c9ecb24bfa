"""Retention's decisions on the application (PIPL): mark it purged, keeping its record minus the blob
ids; the I/O (deleting blobs, matches) is `services/gateway/retention.py`'s."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from services.gateway.applications import State
from services.gateway.domain.application import Application, Photo
from services.gateway.domain.change import NO_CHANGE, Change

# placed_blob_id: imaging's rendering of a refused photo, kept for an operator's override.
BLOB_FIELDS = ("raw_blob_id", "standardized_blob_id", "placed_blob_id")

# States in which the next move is the student's: an application left there long enough is abandoned.
# Never `approved` (waiting for its delivery) nor the states where the system or an operator owes an answer.
ABANDONED_STATES = (
    State.CODE_SUBMITTED,
    State.CODE_REJECTED,
    State.CODE_VERIFIED,
    State.CONFIRMED,
    State.PAID,
    State.MATCH_FAILED,
    State.REJECTED,
    State.WITHDRAWN,  # the student withdrew a submission and has not sent another
)


def stripped_photos(photos: dict[str, Any]) -> dict[str, Any]:
    """The photos as documents without their blob ids, each marked purged."""
    return {
        photo_id: {
            k: v
            for k, v in (photo.doc() if isinstance(photo, Photo) else photo).items()
            if k not in BLOB_FIELDS
        }
        | {"purged": True}
        for photo_id, photo in photos.items()
        if isinstance(photo, Photo | dict)
    }


def purged_after_delivery(retention: dict[str, Any] | None) -> bool:
    """An `abandoned` mark (photos purged while the student was away) does not count: if the student came
    back and the application was delivered after all, its new photos are purged after delivery too."""
    mark = retention or {}
    return bool(mark) and mark.get("reason") != "abandoned"


def _without_code_image(application: Application) -> dict[str, Any]:
    """The fields that drop the code image's blob id (nothing when there is no code)."""
    if application.code is None:
        return {}
    return {"code": {k: v for k, v in application.code.doc().items() if k != "image_blob_id"}}


def _abandoned(application: Application) -> bool:
    return application.delivery is None and application.state in ABANDONED_STATES


def purge(application: Application, record: dict[str, Any], *, reason: str) -> Change:
    """Mark the application purged (`record`); `reason` `abandoned` only while it still is."""
    if purged_after_delivery(application.retention):
        return NO_CHANGE
    if reason == "abandoned" and not _abandoned(application):
        return NO_CHANGE  # the student came back (or it was delivered) since it was read
    photos = stripped_photos(dict(application.photos))
    return application.change(retention=record, photos=photos, **_without_code_image(application))


def mark_abandoned(
    application: Application, *, read_version: int, changed_at: datetime, record: dict[str, Any]
) -> Change:
    """The first step of purging an abandoned application: only while it is exactly as it was read."""
    if application.retention or not _abandoned(application):
        return NO_CHANGE
    if application.updated_at != changed_at or application.version != read_version:
        return NO_CHANGE  # the student came back since it was read
    photos = stripped_photos(dict(application.photos))
    return application.change(retention=record, photos=photos, **_without_code_image(application))


def finish_abandoned(application: Application, counts: dict[str, int]) -> Change:
    """The last step: what was deleted, the mark's snapshot dropped."""
    mark = application.retention or {}
    if mark.get("status") != "purging":
        return NO_CHANGE
    finished = {k: v for k, v in mark.items() if k != "photos_before"}
    return application.change(retention={**finished, **counts, "status": "done"})
