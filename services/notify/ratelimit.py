"""A per-worker send pace: at most `rate` sends per second, evenly spaced, shared by every message in flight."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable


class SendPace:
    """Hands out send slots `1/rate` seconds apart; 0 means no limit.

    Slots rather than a token bucket with a burst: WeChat counts calls per minute per appid, and an even
    pace keeps several workers (each with its share of the rate) from bunching their calls.
    """

    def __init__(self, rate: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._interval = 1.0 / rate if rate > 0 else 0.0
        self._clock = clock
        self._next = 0.0

    async def wait(self) -> None:
        if self._interval == 0.0:
            return
        now = self._clock()
        slot = max(now, self._next)
        self._next = slot + self._interval
        if slot > now:
            await asyncio.sleep(slot - now)
