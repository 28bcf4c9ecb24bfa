"""Idempotent consumption keyed on event id: claim, handle (renewing the lease), complete.

A consumer claims `(consumer, event id)` before handling. A claim is a short lease that the bus renews
(a heartbeat) while the handler runs: a slow handler keeps its claim, and a worker that dies stops
renewing, so a redelivery takes over once the lease runs out (seconds, not the length of the slowest
handler). A second copy of an event that arrives while the first is being handled is `busy` (it waits
in the retry queue, never dropped); one that arrives after is `done`.

Handlers that are idempotent by construction (an outcome stored under a unique key, result event ids
derived from the input's: `shared/outcomes.py`) take no claim at all (`Subscription.on(..., claim=False)`).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from pymongo.errors import DuplicateKeyError

from shared.db import Database
from shared.events import utcnow


class Claim(StrEnum):
    ACQUIRED = "acquired"
    BUSY = "busy"
    DONE = "done"


@dataclass(frozen=True)
class Claimed:
    state: Claim
    # BUSY: seconds until the holder's lease runs out unless it renews it (when to look again).
    lease_left_s: float = 0.0


class ProcessedEvents:
    def __init__(self, database: Database, *, lease_s: float = 10.0) -> None:
        self._collection = database.db["processed_events"]
        self._lease = timedelta(seconds=lease_s)
        self._tokens: dict[str, str] = {}

    @property
    def lease_s(self) -> float:
        return self._lease.total_seconds()

    @staticmethod
    def _key(consumer: str, event_id: str) -> str:
        return f"{consumer}:{event_id}"

    async def claim(self, consumer: str, event_id: str) -> Claimed:
        key = self._key(consumer, event_id)
        token = uuid.uuid4().hex
        now = utcnow()
        # Epoch seconds, not a datetime: nx-27017 hands a datetime written by a top-level `$set` (the
        # heartbeat, a takeover) back as text, and a number compares the same on every server.
        lease_until = now.timestamp() + self.lease_s
        lease = {"state": "processing", "token": token, "lease_until": lease_until, "claimed_at": now}
        for _ in range(2):
            try:
                await self._collection.insert_one({"_id": key, "consumer": consumer, **lease})
            except DuplicateKeyError:
                pass
            else:
                self._tokens[key] = token
                return Claimed(Claim.ACQUIRED)
            existing = await self._collection.find_one({"_id": key})
            if existing is None:
                continue  # released between our insert and our read: try once more
            if existing.get("state") == "done":
                return Claimed(Claim.DONE)
            left = _epoch(existing.get("lease_until")) - now.timestamp()
            if left > 0:
                return Claimed(Claim.BUSY, left)
            # The previous holder's lease ran out (it died): take over, unless another consumer just did.
            taken = await self._collection.update_one(
                {"_id": key, "state": "processing", "token": existing["token"]}, {"$set": lease}
            )
            if taken.modified_count == 1:
                self._tokens[key] = token
                return Claimed(Claim.ACQUIRED)
            return Claimed(Claim.BUSY, self._lease.total_seconds())
        return Claimed(Claim.BUSY, self._lease.total_seconds())

    async def renew(self, consumer: str, event_id: str) -> bool:
        """Extend our lease (the heartbeat); False when the claim is no longer ours (taken over)."""
        key = self._key(consumer, event_id)
        token = self._tokens.get(key)
        if token is None:
            return False
        renewed = await self._collection.update_one(
            {"_id": key, "state": "processing", "token": token},
            {"$set": {"lease_until": utcnow().timestamp() + self.lease_s}},
        )
        return renewed.matched_count == 1

    async def complete(self, consumer: str, event_id: str) -> None:
        key = self._key(consumer, event_id)
        token = self._tokens.pop(key, None)
        await self._collection.update_one(
            {"_id": key, "token": token},
            {"$set": {"state": "done", "processed_at": utcnow()}, "$unset": {"lease_until": ""}},
        )

    async def release(self, consumer: str, event_id: str) -> None:
        """Give the claim up after a failure, so the retried copy can claim it at once."""
        key = self._key(consumer, event_id)
        token = self._tokens.pop(key, None)
        await self._collection.delete_one({"_id": key, "state": "processing", "token": token})

    async def is_done(self, consumer: str, event_id: str) -> bool:
        doc = await self._collection.find_one({"_id": self._key(consumer, event_id)}, {"state": 1})
        return doc is not None and doc.get("state") == "done"


def _epoch(value: object) -> float:
    """A stored lease end as epoch seconds (claims written before leases were numbers held datetimes)."""
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if isinstance(value, datetime):
        return value.replace(tzinfo=value.tzinfo or UTC).timestamp()
    return 0.0
