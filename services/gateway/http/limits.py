"""Per-key token buckets in the process: enough to stop a script hammering login or uploads.

Each gateway replica limits on its own; behind a load balancer the effective limit is the replica
count times this one, which still caps abuse. A shared limiter (Redis) can replace it without
touching the routes.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field


@dataclass
class RateLimiter:
    rate_per_minute: float
    burst: int
    _buckets: dict[str, tuple[float, float]] = field(default_factory=dict)

    def allow(self, key: str, now: float | None = None) -> float:
        """0 if allowed, else the seconds to wait before the next attempt."""
        now = time.monotonic() if now is None else now
        tokens, last = self._buckets.get(key, (float(self.burst), now))
        tokens = min(self.burst, tokens + (now - last) * self.rate_per_minute / 60.0)
        if tokens >= 1:
            self._buckets[key] = (tokens - 1, now)
            if len(self._buckets) > 100_000:  # bounded memory under a flood of distinct keys
                self._buckets.clear()
            return 0.0
        self._buckets[key] = (tokens, now)
        return (1 - tokens) * 60.0 / self.rate_per_minute
