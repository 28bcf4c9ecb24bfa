"""The states of a `notifications` record: written by the notify worker, read by the gateway's console.

Both sides share this one definition (the gateway imports nothing of the notify service). What a
WeChat answer means for a record (its state, whether to try again) is notify's own decision:
`services/notify/outcomes.py`.
"""

from __future__ import annotations

from enum import StrEnum


class State(StrEnum):
    SENDING = "sending"  # written before the call: finding it later means the outcome is unknown
    SENT = "sent"
    RETRYING = "retrying"  # WeChat refused for now (quota, busy): another attempt comes via the retry queue
    FAILED = "failed"  # still refused after the last attempt: parked in notify.dead for operators
    UNKNOWN = "unknown"  # may or may not have arrived (crash or timeout after sending): never resent
    NOT_DELIVERABLE = "not_deliverable"  # no subscription left (43101) or no WeChat account bound
    REJECTED = "rejected"  # WeChat refused the content or the template (47003, 40037, ...): a bug to fix
    SKIPPED = "skipped"  # the school has no template for this kind of message


# States after which the event is finished for good; RETRYING and FAILED were proven unsent.
FINAL = frozenset({State.SENT, State.UNKNOWN, State.NOT_DELIVERABLE, State.REJECTED, State.SKIPPED})

# Notifications that did not reach the student (sent and sending are not failures).
NOT_DELIVERED = frozenset(
    {State.RETRYING, State.FAILED, State.UNKNOWN, State.NOT_DELIVERABLE, State.REJECTED, State.SKIPPED}
)
