"""The student funnel as a metric: how many applications are in each state, per school, right now.

Counted from the `applications` collection every `GATEWAY_FUNNEL_INTERVAL_S` by each gateway
replica (the same numbers, so dashboards take `max` over replicas, not `sum`).
"""

from __future__ import annotations

import asyncio

from prometheus_client import Gauge

from shared.db import Database
from shared.logging import get_logger

log = get_logger(__name__)

APPLICATIONS_BY_STATE = Gauge(
    "applications_by_state", "Applications currently in each state, per school", ["school", "state"]
)


async def count_by_school_and_state(database: Database) -> dict[tuple[str, str], int]:
    """Live applications (merged ones excluded) per (school, state); the gauge and the console dashboard."""
    counts: dict[tuple[str, str], int] = {}
    # A projected scan counted here, not a $group: nx-27017 mis-handles grouping on two keys and
    # inside $match-ed pipelines. Two small fields per application; raise the interval for very large
    # installations, or replace with a $group when only a real MongoDB is used.
    cursor = database.db["applications"].find(
        {"merged_into": {"$exists": False}}, {"school_code": 1, "state": 1, "_id": 0}
    )
    async for row in cursor:
        key = (str(row.get("school_code") or "unknown"), str(row.get("state") or "unknown"))
        counts[key] = counts.get(key, 0) + 1
    return counts


async def refresh_funnel(database: Database) -> dict[tuple[str, str], int]:
    counts = await count_by_school_and_state(database)
    # Replace the whole set, so a state that emptied drops to nothing instead of keeping its old count.
    APPLICATIONS_BY_STATE.clear()
    for (school, state), n in counts.items():
        APPLICATIONS_BY_STATE.labels(school, state).set(n)
    return counts


async def funnel_loop(database: Database, *, interval_s: float) -> None:
    while True:
        try:
            await refresh_funnel(database)
        except Exception as exc:  # a failed count must never take the gateway down
            log.warning("funnel refresh failed", error=repr(exc)[:300])
        await asyncio.sleep(interval_s)
