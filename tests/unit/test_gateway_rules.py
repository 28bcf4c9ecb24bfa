"""The gateway's pure rules: the state machine and the standardisation quota."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from services.gateway.applications import (
    NEXT_STEPS,
    TRANSITIONS,
    Action,
    IllegalTransition,
    State,
    transition,
)
from services.gateway.domain.rules import DEFAULT_RULES as R
from services.gateway.domain.rules import SchoolRules
from services.gateway.quota import Quota, QuotaExhausted, remaining, take_slot

T0 = datetime(2026, 6, 1, 9, 0, tzinfo=UTC)


def test_the_happy_path_is_a_chain_of_legal_transitions():
    path = [
        (State.CODE_SUBMITTED, Action.CODE_DECODED, State.CODE_VERIFIED),
        (State.CODE_VERIFIED, Action.CONFIRM, State.CONFIRMED),
        (State.CONFIRMED, Action.PAY, State.PAID),
        (State.PAID, Action.UPLOAD_PHOTO, State.PAID),
        (State.PAID, Action.SUBMIT, State.SUBMITTED),
        (State.SUBMITTED, Action.MATCH_PASSED, State.IN_REVIEW),
        (State.IN_REVIEW, Action.REVIEW_APPROVED, State.APPROVED),
    ]
    for state, action, expected in path:
        assert transition(state, action) is expected


@pytest.mark.parametrize(
    ("state", "action"),
    [
        (State.CODE_SUBMITTED, Action.PAY),  # no paying before the code is verified and confirmed
        (State.CODE_VERIFIED, Action.PAY),
        (State.CONFIRMED, Action.UPLOAD_PHOTO),  # no photo before payment
        (State.PAID, Action.SCAN),  # the code cannot be re-read after paying
        (State.SUBMITTED, Action.SUBMIT),  # one submission at a time
        (State.APPROVED, Action.UPLOAD_PHOTO),
        (State.APPROVED, Action.REVIEW_REJECTED),
        ("no_such_state", Action.SCAN),
    ],
)
def test_illegal_transitions_are_refused(state, action):
    with pytest.raises(IllegalTransition):
        transition(state, action)


def test_every_state_is_reachable_and_has_a_next_step():
    reached = {State.CODE_SUBMITTED} | set(TRANSITIONS.values())
    assert reached == set(State)
    assert set(NEXT_STEPS) == set(State)


def test_a_failed_match_or_a_rejection_allows_another_photo():
    assert transition(State.MATCH_FAILED, Action.SUBMIT) is State.SUBMITTED
    assert transition(State.REJECTED, Action.UPLOAD_PHOTO) is State.REJECTED
    assert transition(State.SUBMITTED, Action.MATCH_TO_REGISTRAR) is State.REGISTRAR_REVIEW


def test_three_standardisations_then_24_hours_cooling_off():
    quota = Quota()
    numbers = []
    for minutes in (0, 10, 20):
        quota, number = take_slot(quota, T0 + timedelta(minutes=minutes), R)
        numbers.append(number)
    assert numbers == [1, 2, 3]
    assert remaining(quota, T0 + timedelta(minutes=21), R) == 0
    with pytest.raises(QuotaExhausted) as refused:
        take_slot(quota, T0 + timedelta(hours=5), R)
    assert refused.value.reopens_at == T0 + timedelta(minutes=20, hours=24)
    with pytest.raises(QuotaExhausted):
        take_slot(quota, T0 + timedelta(minutes=20, hours=24) - timedelta(seconds=1), R)
    quota, number = take_slot(quota, T0 + timedelta(minutes=20, hours=24), R)
    assert number == 1  # a new day's window


def test_an_unfilled_window_simply_ends():
    quota, _ = take_slot(Quota(), T0, R)
    quota, _ = take_slot(quota, T0 + timedelta(hours=1), R)
    assert remaining(quota, T0 + timedelta(hours=2), R) == 1
    quota, number = take_slot(quota, T0 + timedelta(hours=25), R)
    assert number == 1 and remaining(quota, T0 + timedelta(hours=25), R) == 2


def test_quota_round_trips_through_its_document():
    quota, _ = take_slot(Quota(), T0, R)
    assert Quota.from_doc(quota.to_doc()) == quota
    assert Quota.from_doc(None) == Quota()


def test_fixed_window_lets_five_standardisations_within_24_hours():
    """The defect: +0:00 and +23:58 in one window, then +24:00, +24:01, +24:02 in the next: five in 24h."""
    quota = Quota()
    taken = []
    for at in (
        timedelta(0),
        timedelta(hours=23, minutes=58),
        *(timedelta(hours=24, minutes=m) for m in (0, 1, 2)),
    ):
        try:
            quota, _ = take_slot(quota, T0 + at, R)
            taken.append(at)
        except QuotaExhausted:
            pass
    for start in taken:  # no 24-hour span holds more than the school's N
        assert sum(start <= t < start + timedelta(hours=24) for t in taken) <= R.standardisations_per_day
    # 0:00 has left the window by 24:01, so 24:00 and 24:01 fit; 24:02 would be the fourth in 24 hours.
    assert taken == [
        timedelta(0),
        timedelta(hours=23, minutes=58),
        timedelta(hours=24),
        timedelta(hours=24, minutes=1),
    ]
    assert remaining(quota, T0 + timedelta(hours=24, minutes=2), R) == 0


def test_left_today_ignores_the_schools_standardisations_per_day():
    """The defect: "left today" was counted against 3 whatever the school configured."""
    five = SchoolRules(standardisations_per_day=5)
    quota, _ = take_slot(Quota(), T0, five)
    assert remaining(quota, T0, five) == 4
    assert remaining(Quota(), T0, SchoolRules(standardisations_per_day=1)) == 1
    quota, _ = take_slot(Quota(), T0, SchoolRules(standardisations_per_day=1))
    assert remaining(quota, T0, SchoolRules(standardisations_per_day=1)) == 0


def test_a_lowered_limit_counts_the_window_and_an_old_fixed_window_counts_from_its_start():
    four = SchoolRules(standardisations_per_day=4)
    quota = Quota()
    for minutes in (0, 10):
        quota, _ = take_slot(quota, T0 + timedelta(minutes=minutes), four)
    lowered = SchoolRules(standardisations_per_day=2)
    with pytest.raises(QuotaExhausted) as refused:
        take_slot(quota, T0 + timedelta(hours=1), lowered)
    assert refused.value.reopens_at == T0 + timedelta(hours=24)
    legacy = Quota.from_doc({"window_start": T0, "used": 2, "reopens_at": None})
    assert legacy.taken == (T0, T0) and remaining(legacy, T0 + timedelta(hours=1), R) == 1
    assert Quota.from_doc({"taken": ["2026-06-01T09:00:00"], "reopens_at": None}).taken == (T0,)
