"""Long polls woken by the gateway's own writes, not by polling the database (issue 16.3).

The gateway applies every worker result and every student action to the application itself
(`Applications.mutate`/`create`), so it knows when an application changes: the store calls
`Waiters.changed(document)` after each write, and every request waiting on that application's owner
wakes at once and reads it again. A waiting student therefore costs one read when they start waiting,
one when something changes and one per `recheck_s` (the fallback: a change written by another gateway
replica, or by this one before a restart, is seen within that interval), instead of one per client poll
interval.

Keyed by the owner's openid, which a request knows before it reads anything (from its session), so a
change that lands while the request is reading is not missed: the request takes the owner's change
count first (`seen`), reads, and waits only while the count is unchanged.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

# Change counts kept at most for this many owners; beyond it they are forgotten all at once, which
# only makes the requests waiting then read once more (a count that moved reads as a change).
MAX_TRACKED = 100_000


def same_instant(since: str, value: object) -> bool:
    """Whether the client's `since` names the same moment as `value` (an ISO time, with or without a zone:
    the database may hand back naive UTC); False for anything unparseable (the answer is then at once)."""
    try:
        a = datetime.fromisoformat(since)
        b = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    except ValueError:
        return False
    # Compared as aware times (naive is UTC): converting to UTC first overflows for a zone that moves the
    # date past year 1 or 9999 (a hostile `since`), which was a 500.
    a = a if a.tzinfo else a.replace(tzinfo=UTC)
    b = b if b.tzinfo else b.replace(tzinfo=UTC)
    return a == b


class Waiters:
    def __init__(self, *, recheck_s: float = 5.0) -> None:
        self.recheck_s = recheck_s
        self._changes: dict[str, int] = {}
        self._events: dict[str, asyncio.Event] = {}
        self._waiting: dict[str, int] = {}

    def seen(self, owner: str) -> int:
        """How many changes to this owner's application this process has written (a token for `wait`)."""
        return self._changes.get(owner, 0)

    def changed(self, *documents: Mapping[str, Any] | None) -> None:
        """An application was written: wake whoever waits on its owner (both, when ownership moved)."""
        owners = {str(d["owner_openid"]) for d in documents if d and d.get("owner_openid")}
        if len(self._changes) + len(owners) > MAX_TRACKED:
            self._changes.clear()
        for owner in owners:
            self._changes[owner] = self._changes.get(owner, 0) + 1
            event = self._events.pop(owner, None)
            if event is not None:
                event.set()

    async def wait(self, owner: str, since: int, timeout: float) -> bool:
        """Until the owner's application changes after `since` (True), or `timeout` s pass (False)."""
        if self.seen(owner) != since:
            return True
        if timeout <= 0:
            return False
        event = self._events.setdefault(owner, asyncio.Event())
        self._waiting[owner] = self._waiting.get(owner, 0) + 1
        try:
            await asyncio.wait_for(event.wait(), timeout)
        except TimeoutError:
            return self.seen(owner) != since
        finally:
            left = self._waiting.pop(owner) - 1
            if left:
                self._waiting[owner] = left
            elif self._events.get(owner) is event:
                del self._events[owner]  # nobody waits on it any more
        return True

    @property
    def waiting(self) -> int:
        """Requests waiting now."""
        return sum(self._waiting.values())
