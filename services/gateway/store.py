"""Persistence of the gateway's aggregates: applications (with their outbox), users, bindings, sessions.

Every change to an application is a read, a pure decision, and one conditional write guarded by
the document's `version`: concurrent requests (twenty parallel uploads, a payment notification
racing the reconciliation task) cannot both win. Top-level fields are replaced whole, never written
through dotted paths (see docs/architecture.md, nx-27017).
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

from pymongo import IndexModel, ReturnDocument
from pymongo.errors import DuplicateKeyError

from services.gateway.domain.application import Application
from services.gateway.domain.change import Change
from services.gateway.domain.errors import DomainError
from shared.db import Database, Document
from shared.events import Envelope, utcnow
from shared.outbox import PENDING_FIELD, Staged, pending_of, stage, with_outbox

INDEXES = {
    "applications": [
        IndexModel([("code.scan_id", 1)]),
        IndexModel([("student_id", 1)]),
        IndexModel([("owner_openid", 1)]),
        # One application an account acts for (domain/binding.py); strings only, so unbound (null) and
        # merged applications, and those written before the field, are outside it.
        IndexModel(
            [("active_owner", 1)],
            name="active_owner_unique",
            unique=True,
            partialFilterExpression={"active_owner": {"$type": "string"}},
        ),
        IndexModel([("order.out_trade_no", 1)]),
        IndexModel([("state", 1), ("updated_at", 1)]),
        IndexModel([(PENDING_FIELD, 1)]),
    ],
    "users": [IndexModel([("student_id", 1)])],
    "sessions": [IndexModel([("expires_at", 1)], expireAfterSeconds=0), IndexModel([("openid", 1)])],
    "schools": [],
    "students": [IndexModel([("school_code", 1), ("class_name", 1)])],
    "payment_notifications": [IndexModel([("received_at", 1)])],
}


def stamp() -> datetime:
    """Now, to the millisecond: what the database keeps of a time, so the document as written (handed to
    the long polls, waiters.py) and the document as read back name the same `updated_at`."""
    now = utcnow()
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


class ConcurrentUpdate(Exception):
    """The application kept changing under us; the caller may retry the request."""


__all__ = ["Applications", "Change", "ConcurrentUpdate", "Sessions", "Users"]

Decide = Callable[[Document], Change | Awaitable[Change]]
#: A domain decision: the typed aggregate in, a Change (or a DomainError) out.
Decision = Callable[[Application], Change]


class Applications:
    def __init__(
        self,
        database: Database,
        wake_relay: Callable[[], None],
        *,
        changed: Callable[..., None] | None = None,
        hint_relay: Callable[[Staged], None] | None = None,
    ) -> None:
        self.collection = database.db["applications"]
        self._wake = wake_relay
        # Hands the relay the events just written, so it publishes them without reading them back
        # (shared/outbox.py); without it, `wake_relay` is called and the relay's sweep finds them.
        self._hint = hint_relay
        # Called with the document before and after each write: wakes long polls (waiters.py).
        self._changed = changed or (lambda *documents: None)

    async def get(self, application_id: str) -> Document | None:
        return await self.collection.find_one({"_id": application_id}, {"outbox": 0})

    async def owned_by(self, openid: str) -> Document | None:
        """The application a WeChat account acts for (one at most: see Users.bind and unbinding)."""
        return await self.collection.find_one(
            {"owner_openid": openid, "merged_into": {"$exists": False}}, {"outbox": 0}
        )

    async def release_left_behind_owner(self, openid: str) -> int:
        """Clear `active_owner` where it no longer names who acts for the application: unbound or merged
        by a gateway from before the field (a rolling deploy), which left it set and so held the account's
        one slot in the unique index. A live one (owned by `openid`, not merged) is never matched: every
        write since the field sets `owner_openid` and `active_owner` together. Returns how many."""
        released = 0
        # Judged here, not by `$ne` in an update's filter: nx-27017's updates do not match a null field by
        # `$ne` (its find does; docs/architecture.md).
        fields = {"owner_openid": 1, "merged_into": 1, "version": 1}
        async for doc in self.collection.find({"active_owner": openid}, fields):
            if doc.get("owner_openid") == openid and "merged_into" not in doc:
                continue  # the application the account acts for
            # Guarded by the version: a take-over meanwhile (which sets both fields) is not undone.
            written = await self.collection.update_one(
                {"_id": doc["_id"], "active_owner": openid, "version": doc.get("version")},
                {"$set": {"active_owner": None}},
            )
            released += written.modified_count
        return released

    async def create(self, document: Document, *events: Envelope) -> None:
        now = stamp()
        created = {"version": 1, "created_at": now, "updated_at": now, **document}
        inserted = with_outbox(created, *events)
        await self.collection.insert_one(inserted)
        if events:
            self._staged(inserted["_id"], events, 0)
        self._changed(created)

    def _staged(self, document_id: Any, events: Sequence[Envelope], pending_before: int | None) -> None:
        if self._hint is None:
            self._wake()
        else:
            self._hint(Staged(self.collection.name, document_id, tuple(events), pending_before))

    async def mutate(
        self, application_id: str, decide: Decide, *, attempts: int = 8, current: Document | None = None
    ) -> Document:
        """Apply `decide(current)` atomically; returns the document as written. Retries on a lost race.

        `current`: the application as the caller has just read it (without its outbox), used for the first
        attempt instead of reading it again. The write is guarded by its `version` whatever its age, so a
        copy that went stale costs one refused write and a read, never a lost update.
        """
        given = current if current is not None and current.get("_id") == application_id else None
        for _ in range(attempts):
            current, given = given or await self.get(application_id), None
            if current is None:
                raise LookupError(application_id)
            result = decide(current)
            change = await result if isinstance(result, Awaitable) else result
            if not change:
                return current  # nothing to write (a repeat, or a result for something superseded)
            fields = {**change.set, "updated_at": stamp()}
            update: dict[str, Any] = {"$set": fields, "$inc": {"version": 1}}
            if change.unset:
                update["$unset"] = {name: "" for name in change.unset}
            written = await self.collection.update_one(
                {"_id": application_id, "version": current["version"]}, stage(update, *change.events)
            )
            if written.modified_count == 1:
                pending = pending_of(current)
                if change.events:
                    self._staged(application_id, change.events, pending)
                after = {**current, **fields, "version": current["version"] + 1}
                for name in change.unset:
                    after.pop(name, None)
                if change.events and pending is not None:
                    after[PENDING_FIELD] = pending + len(change.events)  # as written (a later `current`)
                self._changed(current, after)
                return after
        raise ConcurrentUpdate(application_id)

    async def apply(
        self,
        application_id: str,
        decision: Decision,
        *,
        attempts: int = 8,
        current: Document | None = None,
    ) -> Application:
        """`mutate` with a domain decision: read (or take `current`), parse the aggregate, decide, one
        guarded write."""
        written = await self.mutate(
            application_id,
            lambda doc: decision(Application.from_doc(doc)),
            attempts=attempts,
            current=current,
        )
        return Application.from_doc(written)


class Sessions:
    """The gateway's own session tokens: random, stored hashed, expiring (TTL index)."""

    def __init__(self, database: Database, ttl: timedelta, *, cache_s: float = 30.0) -> None:
        self.collection = database.db["sessions"]
        self._ttl = ttl
        # token hash -> (openid, expires_at, cached until): the status endpoint is polled every second
        # by every student; a session never changes, so a short cache saves a read per request.
        self._cache: dict[str, tuple[str, datetime, float]] = {}
        self._cache_s = cache_s

    @staticmethod
    def _hash(token: str) -> str:
        return hashlib.sha256(token.encode()).hexdigest()

    async def create(self, openid: str) -> tuple[str, datetime]:
        token = secrets.token_urlsafe(32)
        now = utcnow()
        expires = now + self._ttl
        await self.collection.insert_one(
            {"_id": self._hash(token), "openid": openid, "created_at": now, "expires_at": expires}
        )
        return token, expires

    async def resolve(self, token: str) -> str | None:
        """The openid of a live session, or None."""
        if not token or len(token) > 128:
            return None
        key = self._hash(token)
        now = utcnow()
        cached = self._cache.get(key)
        if cached is not None and cached[2] > time.monotonic():
            return cached[0] if cached[1] > now else None
        doc = await self.collection.find_one({"_id": key})
        if doc is None:
            return None
        if len(self._cache) > 50_000:
            self._cache.clear()
        self._cache[key] = (str(doc["openid"]), doc["expires_at"], time.monotonic() + self._cache_s)
        return str(doc["openid"]) if doc["expires_at"] > now else None

    async def revoke_all(self, openid: str) -> None:
        await self.collection.delete_many({"openid": openid})
        self._cache = {k: v for k, v in self._cache.items() if v[0] != openid}


class Users:
    """WeChat accounts (`users`, keyed by openid) and which student each acts for (`bindings`)."""

    def __init__(self, database: Database) -> None:
        self.users = database.db["users"]
        self.bindings = database.db["bindings"]

    async def get(self, openid: str) -> Document | None:
        return await self.users.find_one({"_id": openid})

    async def touch(self, openid: str) -> Document:
        """Record a login (creating the account on its first); the account as written, in one command."""
        now = utcnow()
        user: Document | None = await self.users.find_one_and_update(
            {"_id": openid},
            {"$setOnInsert": {"created_at": now}, "$set": {"last_login_at": now}},
            upsert=True,
            return_document=ReturnDocument.AFTER,
        )
        assert user is not None
        return user

    async def set_fields(self, openid: str, **fields: Any) -> None:
        await self.users.update_one({"_id": openid}, {"$set": fields})

    async def bind(self, openid: str | None, student_id: str, **fields: Any) -> str | None:
        """Bind the account to the student; returns None, or why not (a stable reason code). A missing
        account is refused: a binding to nobody would lock the student out of every account. `fields`
        are set on the account in the same write as the binding (the decoded student's summary)."""
        if not openid:
            raise DomainError("no_owner")
        user = await self.get(openid)
        if user and user.get("student_id") not in (None, student_id):
            return "account_bound_to_other_student"
        try:
            await self.bindings.insert_one({"_id": student_id, "openid": openid, "bound_at": utcnow()})
        except DuplicateKeyError:
            existing = await self.bindings.find_one({"_id": student_id})
            if existing is not None and existing["openid"] != openid:
                return "student_bound_elsewhere"
        await self.users.update_one({"_id": openid}, {"$set": {**fields, "student_id": student_id}})
        return None

    async def unbind(self, openid: str) -> str | None:
        """Release the account's student (我的 → 解除绑定); returns the student id it had."""
        user = await self.get(openid)
        student_id = user.get("student_id") if user else None
        if student_id:
            await self.bindings.delete_one({"_id": student_id, "openid": openid})
        await self.users.update_one({"_id": openid}, {"$unset": {"student_id": "", "application_id": ""}})
        return student_id

    async def release_student(self, student_id: str) -> bool:
        """Free the student whatever their binding points to (another account, or nobody: the repair of a
        binding left behind by an earlier defect); True when there was a binding to release."""
        released = await self.bindings.delete_one({"_id": student_id})
        await self.users.update_many(
            {"student_id": student_id},
            {"$unset": {"student_id": "", "application_id": ""}, "$set": {"student": None}},
        )
        return released.deleted_count == 1
