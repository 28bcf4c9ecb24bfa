"""The dashboard's pure parts: the shared cache (one computation for many askers, a period that stretches
with slow scans, no cache at 0) and how a notification's failure is named."""

from __future__ import annotations

import asyncio

import pytest

from services.gateway.console.dashboard import FAILED_STATES, Cached, failure_code


async def test_concurrent_askers_share_one_computation_until_it_expires():
    calls = 0

    async def compute() -> int:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.05)
        return calls

    cache = Cached(0.3, compute)
    assert await asyncio.gather(*(cache.get() for _ in range(50))) == [1] * 50
    assert await cache.get() == 1 and calls == 1
    await asyncio.sleep(0.35)
    assert await cache.get() == 2 and calls == 2


async def test_a_slow_computation_stretches_the_period():
    calls = 0

    async def slow() -> int:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.2)
        return calls

    cache = Cached(0.05, slow)  # took 0.2 s: kept for 0.4 s, not 0.05 s
    assert await cache.get() == 1
    await asyncio.sleep(0.2)
    assert await cache.get() == 1
    await asyncio.sleep(0.25)
    assert await cache.get() == 2


async def test_zero_means_no_cache_and_a_failure_is_not_cached():
    calls = 0

    async def compute() -> int:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise RuntimeError("database away")
        return calls

    fresh = Cached(0, compute)
    assert await fresh.get() == 1
    with pytest.raises(RuntimeError):
        await fresh.get()
    assert await fresh.get() == 3

    calls = 1  # the next computation fails: the next ask computes again instead of keeping the error
    cached = Cached(60, compute)
    with pytest.raises(RuntimeError):
        await cached.get()
    assert await cached.get() == 3 and await cached.get() == 3


@pytest.mark.parametrize(
    ("doc", "code"),
    [
        ({"state": "not_deliverable", "errcode": 43101, "reason": "user_refused"}, "43101"),
        ({"state": "unknown", "errcode": -1, "reason": "no_answer"}, "-1"),
        ({"state": "not_deliverable", "reason": "no_account_bound"}, "no_account_bound"),
        ({"state": "skipped", "errcode": 0, "reason": "no_template"}, "no_template"),
        ({"state": "unknown", "errcode": True, "reason": "interrupted_after_send"}, "interrupted_after_send"),
        ({"state": "rejected", "errcode": "47003"}, "rejected"),  # not a number WeChat sent: not a code
        ({"state": "failed", "reason": "x" * 500}, "x" * 64),
        ({}, "unknown"),
    ],
)
def test_failure_code(doc: dict[str, object], code: str) -> None:
    assert failure_code(doc) == code


def test_sent_and_sending_are_not_failures():
    assert "sent" not in FAILED_STATES and "sending" not in FAILED_STATES
    assert {"retrying", "failed", "unknown", "not_deliverable", "rejected", "skipped"} == set(FAILED_STATES)
