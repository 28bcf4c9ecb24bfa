"""The standardisation quota (seed step 11): 3 per student per day, then a 24-hour cooling-off.

A window opens with the first standardisation; up to `per_day` fit in it. Taking the last slot
closes the quota until 24 hours after that slot ("当日超过制作次数限制，冷静期为24小时"); a window
that ran out without being filled simply ends, and the next standardisation opens a new one.
Pure: the caller stores the returned state with an optimistic-concurrency guard.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

WINDOW = timedelta(hours=24)
COOLING_OFF = timedelta(hours=24)


@dataclass(frozen=True)
class Quota:
    window_start: datetime | None = None
    used: int = 0
    reopens_at: datetime | None = None

    @classmethod
    def from_doc(cls, doc: dict[str, Any] | None) -> Quota:
        if not doc:
            return cls()
        return cls(doc.get("window_start"), int(doc.get("used", 0)), doc.get("reopens_at"))

    def to_doc(self) -> dict[str, Any]:
        return {"window_start": self.window_start, "used": self.used, "reopens_at": self.reopens_at}


class QuotaExhausted(Exception):
    def __init__(self, reopens_at: datetime) -> None:
        super().__init__(f"quota reopens at {reopens_at.isoformat()}")
        self.reopens_at = reopens_at


def take_slot(quota: Quota, now: datetime, *, per_day: int = 3) -> tuple[Quota, int]:
    """The quota after one more standardisation at `now`, and that standardisation's number (1..per_day)."""
    if quota.reopens_at is not None and now < quota.reopens_at:
        raise QuotaExhausted(quota.reopens_at)
    if quota.reopens_at is not None or quota.window_start is None or now >= quota.window_start + WINDOW:
        quota = Quota(window_start=now, used=0, reopens_at=None)
    used = quota.used + 1
    reopens_at = now + COOLING_OFF if used >= per_day else None
    return Quota(quota.window_start, used, reopens_at), used


def remaining(quota: Quota, now: datetime, *, per_day: int = 3) -> int:
    if quota.reopens_at is not None and now < quota.reopens_at:
        return 0
    if quota.reopens_at is not None or quota.window_start is None or now >= quota.window_start + WINDOW:
        return per_day
    return per_day - quota.used
