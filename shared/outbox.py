"""Transactional outbox: an event is stored in the same document as the state change that caused it.

A MongoDB single-document write is atomic on every deployment (standalone, replica set, and the
embedded nx-27017 used locally, whose multi-document transactions are not isolated from each other),
so the state change and its pending events cannot be separated by a crash. Pending events live in
the map `outbox.<event id>` with a counter `outbox_pending`; the relay publishes each with a broker
confirm, then removes it with a conditional update. A crash between the two republishes the same
event id, which consumers deduplicate.

Two ways in, one way out (docs/architecture.md, "The outbox"):
- **Hints.** A writer in the relay's process hands it the events it has just committed (`Staged`,
  `OutboxRelay.hint`). The relay publishes them from memory, in the order they were handed over, and
  removes each from its document: no read. A hint never replaces the durable record: the event leaves
  the document only after the broker confirmed it, and a hint lost with the process is found by the sweep.
- **The sweep.** Once at start and every `sweep_interval_s`, one query finds the documents that still
  hold events (staged by another process or a CLI, left by a crash, or whose hint was dropped) and
  relays them sorted by `occurred_at`.

Order within one aggregate: a hint is published from memory only when the writer saw no other pending
event in the document (`pending_before == 0`); otherwise the relay reads that one document and relays
all its events in order. When a publish fails, every pending hint is dropped and hints are refused
until the next sweep starts, so a later event never overtakes an earlier one that failed. Duplicates:
the ids the relay confirmed lately are remembered, so a hint for an event the sweep already published
(or the reverse) publishes nothing again; only a crash between confirm and removal republishes.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
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

# Longest wait between two sweeps while publishing keeps failing.
MAX_RETRY_S = 30.0


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


def pending_of(document: Mapping[str, Any]) -> int | None:
    """The document's `outbox_pending` as read, or None when it does not say (read without the field)."""
    value = document.get(PENDING_FIELD)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


@dataclass(frozen=True)
class Staged:
    """Events a writer has just committed to a document's outbox, handed to the relay of its process.

    `pending_before`: the document's `outbox_pending` in the version the write was guarded on (0 for an
    insert; `pending_of(current)` for a versioned update; None when unknown). Every write that stages
    events changes the version, so events pending at the write are a subset of those counted here."""

    collection: str
    document_id: Any
    events: tuple[Envelope, ...]
    pending_before: int | None


def _in_order(entries: Mapping[str, Document]) -> list[tuple[str, Document]]:
    return sorted(entries.items(), key=lambda kv: kv[1]["occurred_at"])


class OutboxRelay:
    """Publishes pending events of the given collections: the ones writers hand over with `hint()` at
    once, from memory; the rest by a sweep, once at start and every `sweep_interval_s`."""

    def __init__(
        self,
        database: Database,
        bus: Bus,
        collections: Iterable[str],
        *,
        sweep_interval_s: float = 5.0,
        batch_size: int = 100,
        max_hints: int = 10_000,
        remembered_ids: int = 10_000,
    ) -> None:
        self._db = database.db
        self._bus = bus
        self._collections = tuple(collections)
        self._sweep_s = sweep_interval_s
        # First retry after a failure: soon, even when sweeps are far apart; then doubling.
        self._retry_s = min(sweep_interval_s, 1.0)
        self._batch = batch_size
        self._hints: deque[Staged] = deque()
        self._max_hints = max_hints
        # False from a failed publish until the next sweep starts: the database is the only source then.
        self._accepting = True
        # Ids this relay had confirmed by the broker lately (insertion-ordered, bounded): never again.
        self._confirmed: dict[str, None] = {}
        self._remembered = remembered_ids
        self._backlog = dict.fromkeys(self._collections, 0)
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    @property
    def collections(self) -> tuple[str, ...]:
        return self._collections

    def hint(self, staged: Staged) -> None:
        """A writer committed `staged.events`: publish them now, without reading them back.

        Dropped (the sweep relays the events) while publishing is failing, when too many wait, or for
        a collection this relay does not serve."""
        if not staged.events or staged.collection not in self._collections:
            return
        if self._accepting and len(self._hints) < self._max_hints:
            self._hints.append(staged)
        self._wake.set()

    def wake(self) -> None:
        """Run the loop now: it relays the hints it holds; a sweep runs only when its time has come."""
        self._wake.set()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="outbox-relay")

    async def stop(self) -> None:
        """Finish the pass in progress and relay the hints already handed over, then return."""
        self._stopping = True
        self._wake.set()
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        failures = 0
        next_sweep = loop.time()  # once at start
        while True:
            self._wake.clear()
            try:
                if not self._stopping and loop.time() >= next_sweep:
                    self._accepting = True  # hints written from now on are seen by this sweep or follow it
                    published = await self.relay_once()
                    # A full batch means more may be waiting: sweep again at once.
                    next_sweep = loop.time() + (0.0 if published >= self._batch else self._sweep_s)
                elif self._hints:
                    await self._relay_hints()
                elif self._stopping:
                    return
                failures = 0
            except Exception as exc:
                failures += 1
                self._drop_hints()
                log.warning("outbox relay pass failed", error=repr(exc)[:300], failures=failures)
                # Back off while the broker or the database is down.
                next_sweep = loop.time() + min(self._retry_s * 2 ** min(failures - 1, 5), MAX_RETRY_S)
                if self._stopping:
                    return
            if self._hints or self._stopping:
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), max(next_sweep - loop.time(), 0.0))

    def _drop_hints(self) -> None:
        """After a failed publish: the sweep, in `occurred_at` order, takes over from the database."""
        dropped: dict[str, set[str]] = {}
        for staged in self._hints:
            dropped.setdefault(staged.collection, set()).add(str(staged.document_id))
        self._hints.clear()
        self._accepting = False
        for name, ids in dropped.items():
            # Those documents still hold their events; the next sweep counts them exactly.
            self._backlog[name] = max(self._backlog[name], len(ids))
            BACKLOG.labels(name).set(self._backlog[name])

    async def _relay_hints(self) -> int:
        """The hints queued when the pass began, first in first out; returns how many events were published."""
        published = 0
        for _ in range(len(self._hints)):
            staged = self._hints[0]
            collection = self._db[staged.collection]
            if staged.pending_before != 0:
                # The writer saw other pending events in the document: possibly older ones this relay
                # was never handed (another process, a dropped hint). Read it and relay all, in order.
                doc = await collection.find_one({"_id": staged.document_id}, {OUTBOX_FIELD: 1})
                if doc is not None:
                    published += await self._relay_document(staged.collection, doc)
            else:
                # A hint leaves the queue only when done: a failure drops it with the rest (_drop_hints).
                for envelope in sorted(staged.events, key=lambda e: e.occurred_at.isoformat()):
                    if envelope.id in self._confirmed:
                        continue  # the sweep published and removed it already
                    occurred = envelope.occurred_at.isoformat()
                    await self._publish(staged.collection, envelope, occurred)
                    await self._clear(staged.collection, staged.document_id, envelope.id)
                    published += 1
            self._hints.popleft()
        return published

    async def relay_once(self) -> int:
        """One sweep over every collection; returns how many events were published."""
        published = 0
        for name in self._collections:
            published += await self._sweep_collection(name)
        return published

    async def _sweep_collection(self, name: str) -> int:
        collection = self._db[name]
        published = 0
        seen = 0
        docs = collection.find({PENDING_FIELD: {"$gt": 0}}, {OUTBOX_FIELD: 1}).limit(self._batch)
        try:
            async for doc in docs:
                seen += 1
                if not doc.get(OUTBOX_FIELD):
                    # Counter out of step with the map (never expected): repair it rather than loop on it.
                    await collection.update_one({"_id": doc["_id"]}, {"$set": {PENDING_FIELD: 0}})
                else:
                    published += await self._relay_document(name, doc)
                seen -= 1
        finally:
            # Documents found in this pass whose events are still unpublished (a full batch means more).
            self._backlog[name] = seen
            BACKLOG.labels(name).set(seen)
            if seen == 0:
                OLDEST.labels(name).set(0)
        return published

    async def _relay_document(self, name: str, doc: Document) -> int:
        """Every event in `doc`'s outbox, in the order they happened (one aggregate's history in order)."""
        published = 0
        entries: dict[str, Document] = doc.get(OUTBOX_FIELD) or {}
        for event_id, entry in _in_order(entries):
            if event_id not in self._confirmed:
                await self._publish(name, Envelope.model_validate_json(entry["body"]), entry["occurred_at"])
                published += 1
            # else: confirmed already, its removal failed or has not happened: only remove it.
            await self._clear(name, doc["_id"], event_id)
        return published

    async def _publish(self, name: str, envelope: Envelope, occurred_at: str) -> None:
        try:
            await self._bus.publish(envelope)
        except Exception:
            RELAY_ERRORS.labels(name).inc()
            occurred = datetime.fromisoformat(occurred_at)
            OLDEST.labels(name).set((utcnow() - occurred).total_seconds())
            raise
        self._confirmed[envelope.id] = None
        if len(self._confirmed) > self._remembered:
            del self._confirmed[next(iter(self._confirmed))]

    async def _clear(self, name: str, document_id: Any, event_id: str) -> None:
        """Remove a confirmed event from its document: the same guarded update whichever path published it."""
        await self._db[name].update_one(
            {"_id": document_id, f"{OUTBOX_FIELD}.{event_id}": {"$exists": True}},
            {"$unset": {f"{OUTBOX_FIELD}.{event_id}": ""}, "$inc": {PENDING_FIELD: -1}},
        )
        RELAYED.labels(name).inc()


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
