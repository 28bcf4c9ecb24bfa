"""Who consumes which event: the routing table of ARCHITECTURE.md, declared by every process at start.

Every process declares the whole topology (idempotently) so that a publisher never has its message
returned as unroutable just because the consuming service has not started yet.
"""

from __future__ import annotations

CONSUMERS: dict[str, tuple[str, ...]] = {
    "codec": ("code.scanned.v1",),
    "imaging": ("photo.submitted.v1",),
    "matching": ("photo.confirmed.v1",),
    "notify": ("order.paid.v1", "match.scored.v1", "review.decided.v1"),
    "gateway": (
        "code.decoded.v1",
        "code.rejected.v1",
        "order.paid.v1",
        "photo.standardized.v1",
        "photo.rejected.v1",
        "match.scored.v1",
    ),
}


def retry_queue(consumer: str) -> str:
    return f"{consumer}.retry"


def dead_queue(consumer: str) -> str:
    return f"{consumer}.dead"
