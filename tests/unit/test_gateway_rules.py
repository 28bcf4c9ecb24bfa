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
        quota, number = take_slot(quota, T0 + timedelta(minutes=minutes))
        numbers.append(number)
    assert numbers == [1, 2, 3]
    assert remaining(quota, T0 + timedelta(minutes=21)) == 0
    with pytest.raises(QuotaExhausted) as refused:
        take_slot(quota, T0 + timedelta(hours=5))
    assert refused.value.reopens_at == T0 + timedelta(minutes=20, hours=24)
    with pytest.raises(QuotaExhausted):
        take_slot(quota, T0 + timedelta(minutes=20, hours=24) - timedelta(seconds=1))
    quota, number = take_slot(quota, T0 + timedelta(minutes=20, hours=24))
    assert number == 1  # a new day's window


def test_an_unfilled_window_simply_ends():
    quota, _ = take_slot(Quota(), T0)
    quota, _ = take_slot(quota, T0 + timedelta(hours=1))
    assert remaining(quota, T0 + timedelta(hours=2)) == 1
    quota, number = take_slot(quota, T0 + timedelta(hours=25))
    assert number == 1 and remaining(quota, T0 + timedelta(hours=25)) == 2


def test_quota_round_trips_through_its_document():
    quota, _ = take_slot(Quota(), T0)
    assert Quota.from_doc(quota.to_doc()) == quota
    assert Quota.from_doc(None) == Quota()
