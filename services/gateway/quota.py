"""The standardisation quota (seed step 11): "每日限3次照片标准化，当日超过制作次数限制，冷静期为24小时".

No more than `standardisations_per_day` (N, from the school's rules) in any rolling 24 hours: the times
of the last N standardisations are kept, and one more is allowed only while fewer than N of them lie in
the last 24 hours. Taking the N-th closes the quota for the 24-hour cooling-off after it. (A fixed window
opened by the first standardisation let a student take 5 within about 24 h: +23:58 in the first window,
then +24:00, +24:01, +24:02 in the next.) Pure: the caller stores the returned state under a version guard.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from services.gateway.domain.errors import DomainError
from services.gateway.domain.rules import SchoolRules


def _moment(value: Any) -> datetime | None:
    """A stored time as an aware datetime (nx-27017 may hand back naive ISO text for a UTC time)."""
    if value is None or value == "":
        return None
    at = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return at if at.tzinfo else at.replace(tzinfo=UTC)


@dataclass(frozen=True)
class Quota:
    taken: tuple[datetime, ...] = ()  # the latest standardisations, oldest first (N at most)
    reopens_at: datetime | None = None  # the end of the cooling-off, when one is running

    @classmethod
    def from_doc(cls, doc: dict[str, Any] | None) -> Quota:
        if not doc:
            return cls()
        taken = tuple(t for t in (_moment(v) for v in doc.get("taken") or ()) if t is not None)
        if not taken and doc.get("window_start") is not None:
            # Stored by the fixed-window quota: its slots count as taken when its window opened (the
            # earliest they can have been), which never allows more than the rolling rule does.
            start = _moment(doc["window_start"])
            taken = (start,) * int(doc.get("used", 0)) if start else ()
        return cls(tuple(sorted(taken)), _moment(doc.get("reopens_at")))

    def to_doc(self) -> dict[str, Any]:
        return {"taken": list(self.taken), "reopens_at": self.reopens_at}

    def recent(self, now: datetime, rules: SchoolRules) -> tuple[datetime, ...]:
        """The standardisations inside the rolling window ending at `now`."""
        return tuple(t for t in self.taken if t > now - rules.quota_window)


class QuotaExhausted(DomainError):
    def __init__(self, reopens_at: datetime) -> None:
        super().__init__("quota_exhausted", reopens_at=reopens_at.isoformat())
        self.reopens_at = reopens_at


def closed_until(quota: Quota, now: datetime, rules: SchoolRules) -> datetime | None:
    """When the quota opens again, or None while a standardisation is allowed at `now`."""
    if quota.reopens_at is not None and now < quota.reopens_at:
        return quota.reopens_at
    recent = quota.recent(now, rules)
    if len(recent) >= rules.standardisations_per_day:
        # Only after the school lowered its limit: the window itself says when a slot frees up.
        return recent[len(recent) - rules.standardisations_per_day] + rules.quota_window
    return None


def take_slot(quota: Quota, now: datetime, rules: SchoolRules) -> tuple[Quota, int]:
    """The quota after one more standardisation at `now`, and that standardisation's number (1..N)."""
    reopens = closed_until(quota, now, rules)
    if reopens is not None:
        raise QuotaExhausted(reopens)
    taken = (*quota.recent(now, rules), now)
    reopens_at = now + rules.cooling_off if len(taken) >= rules.standardisations_per_day else None
    return Quota(taken, reopens_at), len(taken)


def remaining(quota: Quota, now: datetime, rules: SchoolRules) -> int:
    """How many standardisations are left now ("left today"), under the school's N."""
    if closed_until(quota, now, rules) is not None:
        return 0
    return max(0, rules.standardisations_per_day - len(quota.recent(now, rules)))
