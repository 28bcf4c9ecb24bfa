"""Transactional outbox: an event is stored in the same document as the state change that caused it.

A MongoDB single-document write is atomic on every deployment (standalone, replica set, and the
embedded nx-27017 used locally, whose multi-document transactions are not isolated from each other),
so the state change and its pending events cannot be separated by a crash. Pending events live in
the map `outbox.<event id>` with a counter `outbox_pending`; the relay publishes each with a broker
confirm, then removes it with a conditional update. A crash between the two republishes the same
event id, which consumers deduplicate.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from prometheus_client import Counter, Gauge

from shared.bus import Bus
from shared.db import Database, Document
from shared.events import Envelope, utcnow
from shared.logging import get_logger

log = get_logger(__name__)

OUTBOX_FIELD = "outbox"
PENDING_FIELD = "outbox_pending"

RELAYED = Counter("outbox_relayed_total", "Outbox events published and cleared", ["collection"])
RELAY_ERRORS = Counter(
    "outbox_relay_errors_total", "Failed attempts to publish an outbox event", ["collection"]
)
BACKLOG = Gauge(
    "outbox_backlog", "Documents left with unpublished events after the last relay pass", ["collection"]
)
OLDEST = Gauge("outbox_oldest_age_seconds", "Age of the oldest unpublished event", ["collection"])


def _entry(envelope: Envelope) -> Document:
    # occurred_at as ISO-8601 text: it sorts correctly, and a datetime written through a dotted `$set`
    # path comes back as text from nx-27017 anyway, so one type is stored everywhere.
    return {
        "body": envelope.model_dump_json(),
        "type": envelope.type,
        "occurred_at": envelope.occurred_at.isoformat(),
    }


def stage(update: Mapping[str, Any], *envelopes: Envelope) -> dict[str, Any]:
    """Return `update` with the events added, to be applied in the same `update_one` as the state change."""
    merged: dict[str, Any] = {op: dict(fields) for op, fields in update.items()}
    if envelopes:
        merged.setdefault("$set", {}).update({f"{OUTBOX_FIELD}.{e.id}": _entry(e) for e in envelopes})
        inc = merged.setdefault("$inc", {})
        inc[PENDING_FIELD] = inc.get(PENDING_FIELD, 0) + len(envelopes)
    return merged


def with_outbox(document: Document, *envelopes: Envelope) -> Document:
    """Return a new document to insert, carrying its pending events."""
    return {
        **document,
        OUTBOX_FIELD: {e.id: _entry(e) for e in envelopes},
        PENDING_FIELD: len(envelopes),
    }


class OutboxRelay:
    """Publishes pending events of the given collections; `wake()` after a write makes it run at once."""

    def __init__(
        self,
        database: Database,
        bus: Bus,
        collections: Iterable[str],
        *,
        poll_interval_s: float = 1.0,
        batch_size: int = 100,
    ) -> None:
        self._db = database.db
        self._bus = bus
        self._collections = tuple(collections)
        self._poll = poll_interval_s
        self._batch = batch_size
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    @property
    def collections(self) -> tuple[str, ...]:
        return self._collections

    def wake(self) -> None:
        self._wake.set()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="outbox-relay")

    async def stop(self) -> None:
        """Finish the pass in progress, so nothing half-relayed is abandoned mid-publish."""
        self._stopping = True
        self._wake.set()
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        failures = 0
        while not self._stopping:
            self._wake.clear()
            try:
                published = await self.relay_once()
                failures = 0
                if published >= self._batch:
                    continue  # more may be waiting: go round again at once
            except Exception as exc:
                failures += 1
                log.warning("outbox relay pass failed", error=repr(exc)[:300], failures=failures)
            # Back off while the broker or the database is down; otherwise poll as configured.
            delay = min(self._poll * (2 ** min(failures, 5)), 30.0) if failures else self._poll
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), delay)

    async def relay_once(self) -> int:
        """One pass over every collection; returns how many events were published."""
        published = 0
        for name in self._collections:
            published += await self._relay_collection(name)
        return published

    async def _relay_collection(self, name: str) -> int:
        collection = self._db[name]
        published = 0
        seen = 0
        docs = collection.find({PENDING_FIELD: {"$gt": 0}}, {OUTBOX_FIELD: 1}).limit(self._batch)
        try:
            async for doc in docs:
                seen += 1
                entries: dict[str, Document] = doc.get(OUTBOX_FIELD) or {}
                if not entries:
                    # Counter out of step with the map (never expected): repair it rather than loop on it.
                    await collection.update_one({"_id": doc["_id"]}, {"$set": {PENDING_FIELD: 0}})
                    continue
                # In the order they happened, so consumers see one aggregate's history in order.
                for event_id, entry in sorted(entries.items(), key=lambda kv: kv[1]["occurred_at"]):
                    try:
                        await self._bus.publish(Envelope.model_validate_json(entry["body"]))
                    except Exception:
                        RELAY_ERRORS.labels(name).inc()
                        occurred = datetime.fromisoformat(entry["occurred_at"])
                        OLDEST.labels(name).set((utcnow() - occurred).total_seconds())
                        raise
                    await collection.update_one(
                        {"_id": doc["_id"], f"{OUTBOX_FIELD}.{event_id}": {"$exists": True}},
                        {"$unset": {f"{OUTBOX_FIELD}.{event_id}": ""}, "$inc": {PENDING_FIELD: -1}},
                    )
                    RELAYED.labels(name).inc()
                    published += 1
                seen -= 1
        finally:
            # Documents found in this pass whose events are still unpublished (a full batch means more).
            BACKLOG.labels(name).set(seen)
            if seen == 0:
                OLDEST.labels(name).set(0)
        return published


async def backlog(database: Database, collections: Iterable[str]) -> dict[str, int]:
    """Documents with unpublished events, per collection (for dashboards and the load audit)."""
    return {
        name: await database.db[name].count_documents({PENDING_FIELD: {"$gt": 0}}) for name in collections
    }


@dataclass(frozen=True)
class Pending:
    events: int  # unpublished events
    aggregates: int  # documents holding at least one
    oldest_age_s: float | None  # age of the oldest unpublished event; None when there is none


async def pending(database: Database, collections: Iterable[str]) -> Pending:
    """The unpublished events of `collections` and the age of the oldest (the console dashboard).

    A scan of the pending documents' outbox maps: the age lives in each entry, where no index reaches;
    the backlog is empty or small while the relay keeps up.
    """
    events = aggregates = 0
    oldest: datetime | None = None
    for name in collections:
        docs = database.db[name].find({PENDING_FIELD: {"$gt": 0}}, {OUTBOX_FIELD: 1, PENDING_FIELD: 1})
        async for doc in docs:
            entries = doc.get(OUTBOX_FIELD)
            entries = entries if isinstance(entries, dict) else {}
            aggregates += 1
            events += len(entries) or int(doc.get(PENDING_FIELD) or 0)
            for entry in entries.values():
                try:
                    occurred = datetime.fromisoformat(str(entry["occurred_at"]))
                except (KeyError, TypeError, ValueError):
                    continue
                if occurred.tzinfo is None:
                    occurred = occurred.replace(tzinfo=UTC)
                if oldest is None or occurred < oldest:
                    oldest = occurred
    age = max((utcnow() - oldest).total_seconds(), 0.0) if oldest is not None else None
    return Pending(events, aggregates, age)
