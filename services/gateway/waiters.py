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

The document itself travels too (`latest`): the store hands over the application as it wrote it, and a
long poll's reads remember what they read, so a waiting student woken by a change is answered from memory
instead of the database. A request always reads the database first (the account's application may have
changed through another replica: an action, an unbinding, an erasure); the copy serves it only after that,
only while younger than `recheck_s` (counted from when this process wrote or read it: the same bound on
another replica's change that a waiting request already has) and never when older than the client's `since`.
A read does not keep its copy when the owner's application changed, or was forgotten, while it was read.
The copy is the document as the database would hand it back (a BSON round trip: millisecond times, the
client's time zone handling), so an answer from memory and one from the database are the same.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import bson
from bson.codec_options import CodecOptions

# Change counts kept at most for this many owners; beyond it they are forgotten all at once, which
# only makes the requests waiting then read once more (a count that moved reads as a change).
MAX_TRACKED = 100_000
# Documents remembered at most (the oldest go first; one is of no use after `recheck_s` anyway): a few KB
# each, so tens of MB at most.
MAX_REMEMBERED = 10_000


def _instant(value: object) -> datetime | None:
    """An ISO time (or a datetime) as an aware time, naive read as UTC; None when unparseable."""
    try:
        moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def same_instant(since: str, value: object) -> bool:
    """Whether the client's `since` names the same moment as `value` (an ISO time, with or without a zone:
    the database may hand back naive UTC); False for anything unparseable (the answer is then at once)."""
    # Compared as aware times (naive is UTC): converting to UTC first overflows for a zone that moves the
    # date past year 1 or 9999 (a hostile `since`), which was a 500.
    a, b = _instant(since), _instant(value)
    return a is not None and b is not None and a == b


def _owner(document: Mapping[str, Any] | None) -> str | None:
    owner = document.get("owner_openid") if document else None
    return str(owner) if owner else None


class Waiters:
    def __init__(self, *, recheck_s: float = 5.0, codec_options: CodecOptions[Any] | None = None) -> None:
        self.recheck_s = recheck_s
        self._changes: dict[str, int] = {}
        self._events: dict[str, asyncio.Event] = {}
        self._waiting: dict[str, int] = {}
        # owner -> (their application as the database would return it, monotonic time it was known true)
        self._latest: dict[str, tuple[dict[str, Any], float]] = {}
        self._codec = codec_options or CodecOptions(tz_aware=True)

    def remember(self, owner: str, document: Mapping[str, Any], token: int | None = None) -> None:
        """The owner's application as just read or written (an older version never replaces a newer).
        `token`: for a read, `seen(owner)` taken before it; a change or a `forget` since then means the
        read may be older than what this process knows, and it is not kept."""
        if token is not None and self.seen(owner) != token:
            return
        held = self._latest.get(owner)
        if (
            held is not None
            and held[0].get("_id") == document.get("_id")
            and int(held[0].get("version") or 0) > int(document.get("version") or 0)
        ):
            return
        now = time.monotonic()
        copy = bson.decode(bson.encode(dict(document)), codec_options=self._codec)
        self._latest.pop(owner, None)
        self._latest[owner] = (copy, now)
        # Insertion order is age order (an owner remembered again moves to the end): drop from the front
        # what is past use, and the oldest beyond the bound.
        while self._latest:
            oldest = next(iter(self._latest))
            if len(self._latest) <= MAX_REMEMBERED and now - self._latest[oldest][1] < self.recheck_s:
                break
            del self._latest[oldest]

    def forget(self, owner: str) -> None:
        """Drop the owner's copy (unbound, merged, erased); a read already under way will not bring it back."""
        self._latest.pop(owner, None)
        self._changes[owner] = self._changes.get(owner, 0) + 1

    def latest(self, owner: str, since: str = "") -> dict[str, Any] | None:
        """The owner's application from memory, when known true within `recheck_s` and not older than the
        `since` the client has; None means: read the database."""
        held = self._latest.get(owner)
        if held is None or time.monotonic() - held[1] >= self.recheck_s:
            return None  # not known, or not known true recently enough
        document = held[0]
        client_has = _instant(since) if since else None
        if client_has is not None:
            ours = _instant(document.get("updated_at"))
            if ours is None or ours < client_has:
                return None  # the client saw something newer (another replica's write): ask the database
        return document

    def seen(self, owner: str) -> int:
        """How many changes to this owner's application this process has written (a token for `wait`)."""
        return self._changes.get(owner, 0)

    def changed(self, *documents: Mapping[str, Any] | None) -> None:
        """An application was written (the documents before and after, or the one created): remember it
        for its owner and wake whoever waits on them (both owners, when ownership moved)."""
        owners = {owner for owner in map(_owner, documents) if owner}
        written = documents[-1] if documents else None
        new_owner = _owner(written) if written is not None and not written.get("merged_into") else None
        for owner in owners - {new_owner}:
            self._latest.pop(owner, None)  # ownership moved away, or merged into another (counted below)
        if written is not None and new_owner:
            self.remember(new_owner, written)
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
