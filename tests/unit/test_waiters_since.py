"""The status long poll's `since` (a client's text): anything that is not the same instant answers at once,
never an error (a zone that moves a date past year 1 or 9999 raised OverflowError: a 500)."""

from __future__ import annotations

import pytest

from services.gateway.waiters import same_instant

STORED = "2026-12-02T08:56:32.050000"


@pytest.mark.parametrize(
    "since",
    [
        "0001-01-01T00:00:00+14:00",
        "9999-12-31T23:59:59-14:00",
        "0001-01-01T00:00:00+23:59",
        "x" * 64,
        "2026-13-01T00:00:00",
    ],
)
def test_a_hostile_since_is_not_the_same_instant_and_never_raises(since):
    assert same_instant(since, STORED) is False


def test_an_extreme_stored_value_is_compared_without_raising():
    assert same_instant("2026-12-02T08:56:32.05Z", "0001-01-01T00:00:00+14:00") is False
    assert same_instant("0001-01-01T00:00:00+14:00", "0001-01-01T00:00:00+14:00") is True
