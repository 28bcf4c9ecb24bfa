"""Who consumes which event: the routing table of ARCHITECTURE.md, declared by every process at start.

Every process declares the whole topology (idempotently) so that a publisher never has its message
returned as unroutable just because the consuming service has not started yet. Consumers are listed by
event class, so a handler is subscribed to the same class its payload is parsed into.
"""

from __future__ import annotations

from shared.events import (
    CodeDecoded,
    CodeRejected,
    CodeScanned,
    EventData,
    MatchScored,
    OrderPaid,
    PhotoConfirmed,
    PhotoRejected,
    PhotoStandardized,
    PhotoSubmitted,
    ReviewDecided,
)

CONSUMERS: dict[str, tuple[type[EventData], ...]] = {
    "codec": (CodeScanned,),
    "imaging": (PhotoSubmitted,),
    "matching": (PhotoConfirmed,),
    "notify": (OrderPaid, MatchScored, ReviewDecided),
    "gateway": (CodeDecoded, CodeRejected, OrderPaid, PhotoStandardized, PhotoRejected, MatchScored),
}


def event_types(consumer: str) -> tuple[str, ...]:
    """The routing keys bound to `consumer`'s queue."""
    return tuple(event.event_type for event in CONSUMERS.get(consumer, ()))


def retry_queue(consumer: str) -> str:
    return f"{consumer}.retry"


def dead_queue(consumer: str) -> str:
    return f"{consumer}.dead"
