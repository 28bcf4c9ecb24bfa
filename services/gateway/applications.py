"""The application aggregate's states and the rules for moving between them (pure, no I/O).

The gateway is the only writer of application state. This issue covers the collection-code steps
(seed steps 4-5); later steps (payment, photos, review) extend the same table.
"""

from __future__ import annotations

from enum import StrEnum


class State(StrEnum):
    CODE_SUBMITTED = "code_submitted"  # a scan is waiting for the codec
    CODE_REJECTED = "code_rejected"  # the latest scan was refused and no earlier scan verified
    CODE_VERIFIED = "code_verified"  # the code matched what the student typed; next: confirm


class ScanStatus(StrEnum):
    PENDING = "pending"
    DECODED = "decoded"
    REJECTED = "rejected"


# States in which the student may (re-)read a code: "重新读取" is allowed until they confirm.
RESCAN_ALLOWED = frozenset({State.CODE_SUBMITTED, State.CODE_REJECTED, State.CODE_VERIFIED})


def state_after_scan_result(decoded: bool, *, had_verified_code: bool) -> State:
    """A refused re-scan does not undo an earlier verified one: the verified record still stands."""
    if decoded or had_verified_code:
        return State.CODE_VERIFIED
    return State.CODE_REJECTED
