"""Delivery batches (`delivery_batches`): which approved applications went into which per-school batch.

The truth is on the applications: an application belongs to a batch when its `delivery` sub-document
(written whole, never through dotted paths: see docs/architecture.md, nx-27017) names the batch. A batch
is made in three steps, so that two operators at once never put one application in two batches, none is
missed, and a crash at any point leaves a state the next call finishes:

1. the batch document is inserted `open`;
2. each ready application (`approved`, no `delivery`) is claimed with `Applications.mutate`: the decision
   refuses one that already has a `delivery`, and the write is guarded by the document's version, so of
   two claims racing on one application exactly one wins (the loser re-reads and skips it);
3. the batch is closed with the list and count read back from the applications that name it.

A batch left `open` longer than `STALE_AFTER` (its creator crashed) is closed from what it claimed, or
deleted when it claimed nothing, by `recover()`, which every delivery route of the school runs first.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from pymongo import IndexModel

from services.gateway.applications import State
from services.gateway.domain import delivery
from services.gateway.domain.delivery import NotClaimable, Stage
from services.gateway.store import Applications, ConcurrentUpdate
from shared.db import Database, Document
from shared.events import new_id, utcnow
from shared.logging import get_logger

log = get_logger(__name__)

INDEXES = {
    "delivery_batches": [IndexModel([("school_code", 1), ("created_at", -1)]), IndexModel([("state", 1)])],
    "applications": [IndexModel([("delivery.batch_id", 1)]), IndexModel([("school_code", 1), ("state", 1)])],
}
# A create request claims at most this many (photos ≤ 40 KB: a package stays under ~40 MB).
MAX_BATCH = 1000
# An open batch older than this lost its creator (a create takes seconds).
STALE_AFTER = timedelta(minutes=10)
# services/gateway/applications.py State.REFUNDED: the whole payment went back (domain/orders.py).
REFUNDED = "refunded"


def when(value: datetime | str) -> datetime:
    """A stored time as an aware datetime (nx-27017 may hand back a naive ISO string for a UTC time)."""
    at = value if isinstance(value, datetime) else datetime.fromisoformat(value)
    return at if at.tzinfo else at.replace(tzinfo=UTC)


def ready_filter(school_code: str) -> dict[str, Any]:
    """Applications waiting for a batch."""
    return {
        "school_code": school_code,
        "state": State.APPROVED.value,
        "delivery": {"$exists": False},
        "merged_into": {"$exists": False},
    }


@dataclass
class Refusal:
    """An approved application left out of a batch, and why (its photo or its file name is wrong)."""

    application_id: str
    reason: str


@dataclass
class Created:
    batch: Document | None  # None: nothing was claimed (someone else took them, or none ready)
    refused: list[Refusal] = field(default_factory=list)


# Checks a candidate before it is claimed; returns why it may not go in, or None.
Check = Callable[[Document], Awaitable[str | None]]


class Batches:
    def __init__(self, database: Database, applications: Applications) -> None:
        self.collection = database.db["delivery_batches"]
        self.applications = applications

    # --- the three steps ---------------------------------------------------------------------------

    async def open(self, school_code: str, created_by: str, *, now: datetime | None = None) -> str:
        batch_id = new_id()
        await self.collection.insert_one(
            {
                "_id": batch_id,
                "school_code": school_code,
                "state": "open",
                "created_at": now or utcnow(),
                "created_by": created_by,
                "application_ids": [],
                "count": 0,
                "refused": [],
                # Sub-documents rewritten whole under `version`: nx-27017 returns a datetime set at the
                # top level or through a dotted path as a string, one inside a whole sub-document intact.
                "marks": {"printed_at": None, "mailed_at": None},
                "downloads": {},
                "version": 1,
            }
        )
        return batch_id

    async def candidates(
        self, school_code: str, limit: int | None = None, *, exclude: Sequence[str] = ()
    ) -> list[Document]:
        query = ready_filter(school_code)
        if exclude:
            query["_id"] = {"$nin": sorted(exclude)}
        cursor = self.applications.collection.find(query, {"outbox": 0})
        return [doc async for doc in cursor.sort("updated_at", 1).limit(limit or MAX_BATCH)]

    async def claim(self, batch_id: str, application_id: str) -> bool:
        """Put the application in the batch unless it is in one already; True when this call did."""
        exported_at = utcnow()
        try:
            await self.applications.apply(
                application_id, lambda app: delivery.claim_for_batch(app, batch_id, exported_at)
            )
        except (NotClaimable, LookupError, ConcurrentUpdate):
            return False
        return True

    async def members(self, batch_id: str) -> list[Document]:
        """The applications of the batch (the truth), in student order; a refunded one has left it (its
        `refunded` state shows why; `withdrawn` lists it), so no export, print sheet or label has it."""
        cursor = self.applications.collection.find({"delivery.batch_id": batch_id}, {"outbox": 0})
        found = [doc async for doc in cursor if doc.get("state") != REFUNDED]
        return sorted(found, key=lambda d: (str(d.get("student_id")), d["_id"]))

    async def withdrawn(self, batch_id: str) -> list[str]:
        """Applications claimed by the batch and refunded since: out of its files."""
        cursor = self.applications.collection.find(
            {"delivery.batch_id": batch_id, "state": REFUNDED}, {"_id": 1}
        )
        return sorted([doc["_id"] async for doc in cursor])

    async def close(self, batch_id: str, refused: Sequence[Refusal] = ()) -> Document | None:
        """Record what the batch holds (read back from the applications); delete it when it holds nothing."""
        ids = [d["_id"] for d in await self.members(batch_id)]
        if not ids:
            await self.collection.delete_one({"_id": batch_id, "state": "open"})
            return None
        update: dict[str, Any] = {"state": "closed", "application_ids": ids, "count": len(ids)}
        if refused:
            update["refused"] = [{"application_id": r.application_id, "reason": r.reason} for r in refused]
        await self.collection.update_one({"_id": batch_id}, {"$set": update, "$inc": {"version": 1}})
        return await self.get(batch_id)

    async def create(self, school_code: str, created_by: str, check: Check | None = None) -> Created:
        """Steps 1-3. Candidates failing `check` are not claimed and are reported instead."""
        batch_id = await self.open(school_code, created_by)
        refused: list[Refusal] = []
        seen: set[str] = set()
        claimed = 0
        # Refused candidates stay ready (and oldest): read on past them, or MAX_BATCH refused ones at the
        # head of the queue would keep every valid application behind them out of every batch.
        while claimed < MAX_BATCH:
            page = await self.candidates(school_code, MAX_BATCH - claimed, exclude=sorted(seen))
            if not page:
                break
            for candidate in page:
                seen.add(candidate["_id"])
                reason = await check(candidate) if check is not None else None
                if reason:
                    refused.append(Refusal(candidate["_id"], str(reason)))
                    continue
                claimed += await self.claim(batch_id, candidate["_id"])
        batch = await self.close(batch_id, refused)
        log.info("delivery batch created", school_code=school_code, count=batch["count"] if batch else 0)
        return Created(batch, refused)

    # --- reading, recovery, marks ------------------------------------------------------------------

    async def get(self, batch_id: str) -> Document | None:
        return await self.collection.find_one({"_id": batch_id})

    async def of_school(self, school_code: str, limit: int = 200) -> list[Document]:
        cursor = self.collection.find({"school_code": school_code}).sort("created_at", -1).limit(limit)
        return [doc async for doc in cursor]

    async def ready(self, school_code: str) -> int:
        return int(await self.applications.collection.count_documents(ready_filter(school_code)))

    async def recover(self, school_code: str, *, stale_after: timedelta = STALE_AFTER) -> int:
        """Finish the school's batches whose creator died half-way; returns how many were finished."""
        finished = 0
        cutoff = utcnow() - stale_after
        async for batch in self.collection.find({"school_code": school_code, "state": "open"}):
            if when(batch["created_at"]) <= cutoff:  # compared here: nx-27017 date ranges are unreliable
                closed = await self.close(batch["_id"])
                log.warning("delivery batch recovered", batch_id=batch["_id"], kept=closed is not None)
                finished += 1
        return finished

    async def mark(self, batch_id: str, stage: Stage) -> tuple[Document, bool]:
        """Set printed_at / mailed_at once (a repeat keeps the first time); returns (batch, first time).

        The batch is marked first, then each application's `delivery` (rewritten whole); a repeated
        mark finishes the applications a crash left behind.
        """
        key = f"{stage}_at"
        first = False
        for _ in range(8):
            batch = await self.get(batch_id)
            if batch is None or batch["state"] != "closed":
                raise LookupError(batch_id)
            marks = dict(batch.get("marks") or {})
            if marks.get(key) is not None:
                break
            written = await self.collection.update_one(
                {"_id": batch_id, "version": batch["version"]},
                {"$set": {"marks": {**marks, key: utcnow()}}, "$inc": {"version": 1}},
            )
            if written.modified_count == 1:
                first = True
                break
        else:
            raise ConcurrentUpdate(batch_id)
        batch = await self.get(batch_id)
        assert batch is not None
        at = when(batch["marks"][key])
        for application in await self.members(batch_id):
            if (application.get("delivery") or {}).get(key) is None:
                await self._stamp(application["_id"], batch_id, stage, at)
        return batch, first

    async def _stamp(self, application_id: str, batch_id: str, stage: Stage, at: datetime) -> None:
        with contextlib.suppress(NotClaimable):
            await self.applications.apply(
                application_id, lambda app: delivery.stamp(app, batch_id, stage, at)
            )

    async def record_download(self, batch_id: str, kind: str, operator_id: str) -> None:
        """Count a download; `downloads` is rewritten whole under the batch's version (nx-27017)."""
        for _ in range(8):
            batch = await self.get(batch_id)
            if batch is None:
                return
            downloads = dict(batch.get("downloads") or {})
            previous = downloads.get(kind) or {}
            downloads[kind] = {
                "count": int(previous.get("count", 0)) + 1,
                "first_at": previous.get("first_at") or utcnow(),
                "last_at": utcnow(),
                "last_by": operator_id,
            }
            written = await self.collection.update_one(
                {"_id": batch_id, "version": batch["version"]},
                {"$set": {"downloads": downloads}, "$inc": {"version": 1}},
            )
            if written.modified_count == 1:
                return
        log.warning("download not counted: the batch kept changing", batch_id=batch_id, kind=kind)
