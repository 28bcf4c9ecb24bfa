"""The console's auth cache: kept `ttl_s`, bounded, and never refilled by a read that a drop overtook."""

from __future__ import annotations

from services.gateway.console.shortcache import ShortCache


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_kept_for_ttl_then_read_again() -> None:
    clock = Clock()
    cache: ShortCache[str, int] = ShortCache(5.0, clock=clock)
    cache.put("a", 1, cache.epoch)
    clock.now += 4.9
    assert cache.get("a") == 1
    clock.now += 0.2
    assert cache.get("a") is None and len(cache) == 0


def test_zero_ttl_keeps_nothing() -> None:
    cache: ShortCache[str, int] = ShortCache(0)
    cache.put("a", 1, cache.epoch)
    assert cache.get("a") is None and len(cache) == 0


def test_bounded_the_oldest_goes_first() -> None:
    cache: ShortCache[int, int] = ShortCache(60, max_entries=3)
    for key in range(3):
        cache.put(key, key, cache.epoch)
    cache.put(0, 0, cache.epoch)  # refreshed: now the newest
    cache.put(3, 3, cache.epoch)
    assert len(cache) == 3 and cache.get(1) is None
    assert [cache.get(k) for k in (0, 2, 3)] == [0, 2, 3]


def test_a_read_overtaken_by_a_drop_is_not_stored() -> None:
    cache: ShortCache[str, str] = ShortCache(60)
    cache.put("session", "alive", cache.epoch)
    epoch = cache.epoch  # a request starts reading the session...
    cache.drop("session")  # ...the operator logs out meanwhile...
    cache.put("session", "alive", epoch)  # ...and the read's answer comes back: not kept
    assert cache.get("session") is None
    cache.put("session", "new", cache.epoch)
    assert cache.get("session") == "new"
