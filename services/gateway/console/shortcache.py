"""A few seconds of memory for what the console reads on every request (its session, its operator).

Bounded (the oldest entry goes first), and dropped by this process's own writes: a value read before
a drop is never stored after it (`epoch`), so a request that was reading while an operator logged out
or was disabled cannot put the old value back. Other replicas' writes are seen within `ttl_s`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class ShortCache(Generic[K, V]):
    def __init__(
        self, ttl_s: float, max_entries: int = 10_000, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self._clock = clock
        self._entries: dict[K, tuple[V, float]] = {}  # key -> (value, kept until); oldest first
        self._epoch = 0

    @property
    def epoch(self) -> int:
        """Take it before reading what `put` will store: a drop in between makes the put a no-op."""
        return self._epoch

    def get(self, key: K) -> V | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry[1] <= self._clock():
            del self._entries[key]
            return None
        return entry[0]

    def put(self, key: K, value: V, epoch: int) -> None:
        if self.ttl_s <= 0 or epoch != self._epoch:
            return
        self._entries.pop(key, None)
        while len(self._entries) >= self.max_entries:
            del self._entries[next(iter(self._entries))]
        self._entries[key] = (value, self._clock() + self.ttl_s)

    def drop(self, key: K) -> None:
        self._epoch += 1
        self._entries.pop(key, None)

    def __len__(self) -> int:
        return len(self._entries)
