"""MongoDB through PyMongo's async client; each service declares its indexes, created at start-up."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from pymongo import AsyncMongoClient, IndexModel
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import ConnectionFailure

from shared import dbstats
from shared.blobs import INDEXES as BLOB_INDEXES
from shared.config import Settings

Document = dict[str, Any]
IndexSpec = Mapping[str, Sequence[IndexModel]]

# Indexes of the collections that shared code itself owns.
SHARED_INDEXES: IndexSpec = {
    # Idempotent consumption: one row per (consumer, event id).
    "processed_events": [IndexModel([("processed_at", 1)])],
    # GridFS's (shared/blobs.py): created here once per process, not per upload as PyMongo's bucket did.
    **BLOB_INDEXES,
}


def database_unreachable(exc: BaseException) -> bool:
    """True when `exc` (or what caused it) says the database could not be reached: a restart, a
    failover, a network cut. Such a failure says nothing about the message being handled."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, ConnectionFailure):
            return True
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return False


class Database:
    """One client per process; `db` is the application database."""

    def __init__(self, settings: Settings) -> None:
        self.client: AsyncMongoClient[Document] = AsyncMongoClient(
            settings.mongo_url,
            tz_aware=True,
            serverSelectionTimeoutMS=settings.mongo_timeout_ms,
            connectTimeoutMS=settings.mongo_timeout_ms,
            appname=settings.service_name,
            # Reads and writes per collection on /metrics (`make load` prints them per journey).
            event_listeners=[dbstats.LISTENER],
        )
        self.db: AsyncDatabase[Document] = self.client[settings.mongo_db]

    async def ensure_indexes(self, *specs: IndexSpec) -> None:
        for spec in (SHARED_INDEXES, *specs):
            for collection, indexes in spec.items():
                if indexes:
                    await self.db[collection].create_indexes(list(indexes))

    async def ping(self) -> bool:
        try:
            await self.client.admin.command("ping")
        except Exception:
            return False
        return True

    async def close(self) -> None:
        await self.client.close()


def stored_time(value: Any) -> datetime | None:
    """A stored time as an aware UTC datetime, or None when it is not one. nx-27017 hands a time written by a
    top-level `$set` back as naive ISO text (docs/architecture.md): that is still the time."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return None
    if not isinstance(value, datetime):
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)
