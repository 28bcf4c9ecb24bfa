"""Every status an application's parts can have, as enums (the application's own `State` and its
transition table are in `services/gateway/applications.py`; order and refund statuses in `orders.py`)."""

from __future__ import annotations

from enum import StrEnum

from services.gateway.applications import ScanStatus, State

__all__ = [
    "DeliveryStatus",
    "NotificationStatus",
    "PhotoSource",
    "PhotoStatus",
    "ReviewDecision",
    "ScanSource",
    "ScanStatus",
    "State",
    "SubmissionStatus",
]


class ScanSource(StrEnum):
    TEXT = "text"  # the scanner's text (wx.scanCode)
    IMAGE = "image"  # a saved picture of the code


class PhotoSource(StrEnum):
    CAMERA = "camera"
    ALBUM = "album"


class PhotoStatus(StrEnum):
    PROCESSING = "processing"  # uploaded; imaging is checking and standardising it (seed 8-9)
    STANDARDIZED = "standardized"  # compliant and standardised (or let through by an operator)
    REJECTED = "rejected"  # refused by the quality check: reasons say what to fix


class SubmissionStatus(StrEnum):
    """Where the submitted photo stands; derived from the application's state (see `submission_status`)."""

    COMPARING = "comparing"  # face comparison running (seed 11)
    MATCH_FAILED = "match_failed"
    REGISTRAR_REVIEW = "registrar_review"
    IN_REVIEW = "in_review"
    APPROVED = "approved"
    REJECTED = "rejected"


class ReviewDecision(StrEnum):
    APPROVED = "approved"  # 审核通过
    REJECTED = "rejected"  # 审核未通过


class NotificationStatus(StrEnum):
    """A subscribe message's state in `notifications` (the notify service writes them; docs/notify.md)."""

    SENDING = "sending"
    SENT = "sent"
    RETRYING = "retrying"
    FAILED = "failed"
    UNKNOWN = "unknown"
    NOT_DELIVERABLE = "not_deliverable"
    REJECTED = "rejected"
    SKIPPED = "skipped"


class DeliveryStatus(StrEnum):
    """After approval: exported to CHSI in a batch, then printed, then mailed (console/batches.py)."""

    WAITING = "waiting"  # approved, in no batch yet
    EXPORTED = "exported"
    PRINTED = "printed"
    MAILED = "mailed"
