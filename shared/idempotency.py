"""Idempotent consumption keyed on event id: claim, handle, complete.

A consumer claims `(consumer, event id)` before handling. A claim is a lease: if the worker dies, the
lease runs out and a redelivery takes over. A second copy of an event that arrives while the first is
being handled is `busy` (it waits in the retry queue, never dropped); one that arrives after is `done`.
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from enum import StrEnum

from pymongo.errors import DuplicateKeyError

from shared.db import Database
from shared.events import utcnow


class Claim(StrEnum):
    ACQUIRED = "acquired"
    BUSY = "busy"
    DONE = "done"


class ProcessedEvents:
    def __init__(self, database: Database, *, lease_s: float = 60.0) -> None:
        self._collection = database.db["processed_events"]
        self._lease = timedelta(seconds=lease_s)
        self._tokens: dict[str, str] = {}

    @staticmethod
    def _key(consumer: str, event_id: str) -> str:
        return f"{consumer}:{event_id}"

    async def claim(self, consumer: str, event_id: str) -> Claim:
        key = self._key(consumer, event_id)
        token = uuid.uuid4().hex
        now = utcnow()
        lease = {"state": "processing", "token": token, "lease_until": now + self._lease, "claimed_at": now}
        for _ in range(2):
            try:
                await self._collection.insert_one({"_id": key, "consumer": consumer, **lease})
            except DuplicateKeyError:
                pass
            else:
                self._tokens[key] = token
                return Claim.ACQUIRED
            existing = await self._collection.find_one({"_id": key})
            if existing is None:
                continue  # released between our insert and our read: try once more
            if existing.get("state") == "done":
                return Claim.DONE
            if existing["lease_until"] > now:
                return Claim.BUSY
            # The previous holder's lease ran out (it died): take over, unless another consumer just did.
            taken = await self._collection.update_one(
                {"_id": key, "state": "processing", "token": existing["token"]}, {"$set": lease}
            )
            if taken.modified_count == 1:
                self._tokens[key] = token
                return Claim.ACQUIRED
            return Claim.BUSY
        return Claim.BUSY

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
