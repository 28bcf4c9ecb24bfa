"""Per-key token buckets in the process: enough to stop a script hammering login or uploads.

Each gateway replica limits on its own; behind a load balancer the effective limit is the replica
count times this one, which still caps abuse. A shared limiter (Redis) can replace it without
touching the routes.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

#: Buckets kept at most; past it, the full (idle) ones go first, so a flood of new keys cannot reset a lock.
MAX_KEYS = 100_000


@dataclass
class RateLimiter:
    rate_per_minute: float
    burst: int
    _buckets: dict[str, tuple[float, float]] = field(default_factory=dict)

    def _tokens(self, key: str, now: float) -> float:
        tokens, last = self._buckets.get(key, (float(self.burst), now))
        return min(self.burst, tokens + (now - last) * self.rate_per_minute / 60.0)

    def wait(self, key: str, now: float | None = None) -> float:
        """0 if a token is there, else the seconds until there is one; takes nothing."""
        tokens = self._tokens(key, time.monotonic() if now is None else now)
        return 0.0 if tokens >= 1 else (1 - tokens) * 60.0 / self.rate_per_minute

    def spent(self, key: str, now: float | None = None) -> bool:
        """Whether `key` has taken a token that has not grown back yet."""
        return self._tokens(key, time.monotonic() if now is None else now) < self.burst

    def take(self, key: str, now: float | None = None) -> None:
        """Take a token (the count may go below zero: each further take waits longer)."""
        now = time.monotonic() if now is None else now
        self._buckets[key] = (max(self._tokens(key, now) - 1, -float(self.burst)), now)
        if len(self._buckets) > MAX_KEYS:
            self._prune(now)

    def allow(self, key: str, now: float | None = None) -> float:
        """0 if allowed (a token is taken), else the seconds to wait before the next attempt."""
        now = time.monotonic() if now is None else now
        wait = self.wait(key, now)
        if wait == 0:
            self.take(key, now)
        return wait

    def _prune(self, now: float) -> None:
        for key in [k for k in self._buckets if self._tokens(k, now) >= self.burst]:
            del self._buckets[key]
        if len(self._buckets) > MAX_KEYS:  # a flood of keys still spending: bounded memory wins
            self._buckets.clear()
