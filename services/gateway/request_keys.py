"""Idempotency keys of the student API: key -> (request fingerprint, first answer), kept in their own
collection (`request_keys`), apart from the application's current order, scan or submission.

The same key with the same request gets the first answer again and creates nothing; the same key with
another request is refused (`idempotency_key_reused`): the first stands. A key is claimed with one
insert (unique `_id`), so of two concurrent requests with one key exactly one does the work and the
other waits for its answer. A request that fails releases its key, so an honest retry does the work.
Keys are scoped to the caller (a WeChat account) and expire after a day.

Written for `POST /orders`; the same store serves codes, photos and submissions (`begin` / `finish` /
`release` around the work, the fingerprint from `fingerprint(request, body)`).
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from pymongo import IndexModel
from pymongo.errors import DuplicateKeyError

from services.gateway.domain.errors import DomainError
from shared.db import Database
from shared.events import new_id, utcnow

INDEXES = {"request_keys": [IndexModel([("expires_at", 1)], expireAfterSeconds=0)]}
TTL = timedelta(hours=24)
# A claim whose request died (process killed) is taken over after this; a live request answers sooner.
LEASE = timedelta(seconds=60)


def fingerprint(method: str, path: str, body: bytes = b"") -> str:
    """What makes two requests "the same": method, path and body bytes."""
    digest = hashlib.sha256()
    for part in (method.upper().encode(), path.encode(), body):
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return digest.hexdigest()


@dataclass(frozen=True)
class Answer:
    status: int
    body: dict[str, Any]


@dataclass(frozen=True)
class Claim:
    """This request holds the key: it must `finish` (store its answer) or `release` it."""

    record_id: str
    token: str


def decide(record: Mapping[str, Any], print_: str, *, now_s: float) -> Answer | str:
    """An existing key record against this request: its answer, "wait" (in progress), "take_over"
    (its request died), or a refusal when the request differs."""
    if record.get("fingerprint") != print_:
        raise DomainError("idempotency_key_reused")
    if record.get("state") == "done":
        return Answer(int(record["status"]), dict(record.get("body") or {}))
    if now_s - float(record.get("claimed_s") or 0) > LEASE.total_seconds():
        return "take_over"
    return "wait"


class RequestKeys:
    def __init__(self, database: Database, *, wait_s: float = 20.0) -> None:
        self.collection = database.db["request_keys"]
        self._wait_s = wait_s

    @staticmethod
    def _id(scope: str, key: str) -> str:
        return hashlib.sha256(f"{scope}\n{key}".encode()).hexdigest()

    async def begin(self, scope: str, key: str, print_: str) -> Claim | Answer:
        """Claim the key for this request, or the first answer; DomainError("idempotency_key_reused")
        for another request under the key, DomainError("busy") when its first request is still running."""
        record_id = self._id(scope, key)
        deadline = time.monotonic() + self._wait_s
        while True:
            token = new_id()
            now = utcnow()
            try:
                await self.collection.insert_one(
                    {
                        "_id": record_id,
                        "fingerprint": print_,
                        "state": "claimed",
                        "token": token,
                        "claimed_s": time.time(),
                        "created_at": now,
                        "expires_at": now + TTL,
                    }
                )
                return Claim(record_id, token)
            except DuplicateKeyError:
                pass
            record = await self.collection.find_one({"_id": record_id})
            if record is None:
                continue  # released meanwhile: claim it
            verdict = decide(record, print_, now_s=time.time())
            if isinstance(verdict, Answer):
                return verdict
            if verdict == "take_over":
                taken = await self.collection.update_one(
                    {"_id": record_id, "token": record.get("token")},
                    {"$set": {"token": token, "claimed_s": time.time()}},
                )
                if taken.modified_count == 1:
                    return Claim(record_id, token)
            if time.monotonic() > deadline:
                raise DomainError("busy")
            await asyncio.sleep(0.05)

    async def finish(self, claim: Claim, answer: Answer) -> None:
        await self.collection.update_one(
            {"_id": claim.record_id, "token": claim.token},
            {"$set": {"state": "done", "status": answer.status, "body": answer.body}},
        )

    async def release(self, claim: Claim) -> None:
        await self.collection.delete_one({"_id": claim.record_id, "token": claim.token})
