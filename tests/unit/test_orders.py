"""Orders and money as pure decisions (services/gateway/domain/orders.py): no database, no WeChat."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import permutations
from typing import Any

import pytest

from services.gateway.applications import State
from services.gateway.domain.errors import DomainError
from services.gateway.domain.orders import (
    CREATING_PATIENCE,
    Close,
    CloseReason,
    Issue,
    Merchant,
    Order,
    OrderBook,
    OrderStatus,
    PaymentOutcome,
    Reconcile,
    RefundKind,
    RefundResult,
    RefundStatus,
    Reuse,
    Transaction,
    Wait,
    apply_refund_result,
    decide_payment,
    decide_refund,
    merchant_mismatch,
    order_amount,
    order_closed,
    order_failed,
    order_placed,
    plan_order,
    reconcile_order,
    refund_accepted,
    refund_notices,
    refund_refused,
    retry_refund,
)

NOW = datetime(2025, 6, 8, 8, 0, tzinfo=UTC)
EXPIRY = timedelta(minutes=30)
MERCHANT = Merchant(appid="wx-app", mchid="1900000001")


def plan(book: OrderBook, *, state: str = State.CONFIRMED, no: str = "GP2", now: datetime = NOW, **kw: Any):
    return plan_order(
        book,
        state=state,
        amount_fen=kw.pop("amount_fen", 3500),
        out_trade_no=no,
        created_by="o-student",
        now=now,
        expiry=EXPIRY,
        **kw,
    )


def pending(no: str = "GP1", *, at: datetime = NOW, amount: int = 3500) -> OrderBook:
    issued = plan(OrderBook(), no=no, now=at, amount_fen=amount)
    assert isinstance(issued, Issue)
    return order_placed(issued.book, no, f"prepay-{no}")


def paid_tx(no: str, total: int = 3500, **extra: Any) -> Transaction:
    return Transaction.parse(
        {
            "out_trade_no": no,
            "trade_state": "SUCCESS",
            "amount": {"total": total},
            "transaction_id": f"42{no}",
            "payer": {"openid": "o-payer"},
            "success_time": "2025-06-08T16:05:00+08:00",
            "appid": "wx-app",
            "mchid": "1900000001",
            **extra,
        }
    )


def pay(book: OrderBook, no: str, *, state: str = State.CONFIRMED, total: int = 3500):
    return decide_payment(
        book,
        paid_tx(no, total),
        state=state,
        application_id="app-1",
        student_id="10487:1",
        via="notification",
        now=NOW,
    )


# --- one open order --------------------------------------------------------------------------------


def test_a_first_order_is_issued_creating_and_recorded_in_the_ledger():
    issued = plan(OrderBook())
    assert isinstance(issued, Issue)
    assert issued.order.status is OrderStatus.CREATING and issued.order.expires_at == NOW + EXPIRY
    assert [o.out_trade_no for o in issued.book.orders] == ["GP2"]
    fields = issued.book.fields()
    assert fields["order"]["out_trade_no"] == "GP2" and fields["payments_unsettled"] == 1


def test_a_pending_order_is_reused_whatever_the_idempotency_key():
    book = pending()
    again = plan(book, now=NOW + timedelta(minutes=10))
    assert isinstance(again, Reuse) and again.order.out_trade_no == "GP1"


def test_a_second_request_waits_for_an_order_being_placed():
    issued = plan(OrderBook())
    assert isinstance(issued, Issue)
    assert isinstance(plan(issued.book, no="GP3"), Wait)
    # One that lost its request is closed at WeChat and replaced.
    late = NOW + CREATING_PATIENCE
    assert isinstance(plan(issued.book, no="GP3", now=late), Close)


def test_an_order_closed_at_wechat_while_its_request_recorded_the_prepay_is_replaced_not_reused():
    # Request 1 placed GP2 and hung; request 2 found it `creating` too long and closed it at WeChat; then
    # request 1's answer arrived and recorded GP2's prepay id. Request 2 must not hand that prepay out.
    issued = plan(OrderBook())
    assert isinstance(issued, Issue)
    late = NOW + CREATING_PATIENCE
    assert isinstance(plan(issued.book, no="GP3", now=late), Close)
    placed = order_placed(issued.book, "GP2", "prepay-2")
    again = plan(placed, no="GP3", now=late, closed_at_wechat=frozenset({"GP2"}))
    assert isinstance(again, Issue) and again.order.out_trade_no == "GP3"
    old = again.book.find("GP2")
    assert old is not None and old.status is OrderStatus.CLOSED
    assert isinstance(plan(placed, no="GP3", now=late), Reuse)  # without the close it is still reused


@pytest.mark.parametrize(
    ("why", "book", "kw"),
    [
        ("expiring", pending(), {"now": NOW + EXPIRY - timedelta(minutes=1)}),
        ("amount changed", pending(), {"amount_fen": 5500}),
        ("failed at WeChat", order_failed(plan(OrderBook()).book, "GP2"), {"no": "GP9"}),  # type: ignore[union-attr]
    ],
)
def test_replacing_an_order_closes_it_at_wechat_first_and_keeps_it_in_the_ledger(why, book, kw):
    first = plan(book, **{"no": "GP5", **kw})
    assert isinstance(first, Close), why
    closing = first.order.out_trade_no
    issued = plan(book, closed_at_wechat=frozenset({closing}), **{"no": "GP5", **kw})
    assert isinstance(issued, Issue), why
    old = issued.book.find(closing)
    assert old is not None and old.status is OrderStatus.CLOSED and old.close_reason is CloseReason.SUPERSEDED
    assert issued.book.current is not None and issued.book.current.out_trade_no == kw.get("no", "GP5")
    assert len(issued.book.orders) == 2 and sum(o.open for o in issued.book.orders) == 1


@pytest.mark.parametrize(
    ("state", "reason"),
    [
        (State.CODE_VERIFIED, None),
        (State.PAID, "already_paid"),
        (State.APPROVED, "already_paid"),
        (State.REFUNDED, "refunded"),
    ],
)
def test_an_order_is_refused_outside_confirmed(state, reason):
    with pytest.raises(DomainError) as refused:
        plan(OrderBook(), state=state)
    assert refused.value.code == "illegal_transition"
    assert refused.value.details.get("reason") == reason


def test_no_fee_no_order():
    with pytest.raises(DomainError) as refused:
        plan(OrderBook(), amount_fen=0)
    assert refused.value.details == {"reason": "no_fee"}


def test_a_placed_order_replaced_meanwhile_is_refused():
    book = pending()
    with pytest.raises(DomainError) as refused:
        order_placed(book, "GP1", "prepay-again")
    assert refused.value.code == "order_superseded"


def test_the_school_fee_and_the_onsite_extra():
    assert order_amount(3500, 2000, False) == 3500 and order_amount(3500, 2000, True) == 5500


# --- payments -------------------------------------------------------------------------------------


def test_paying_the_current_order_pays_the_application_with_its_event():
    decision = pay(pending(), "GP1")
    assert decision.outcome is PaymentOutcome.PAID and decision.state is State.PAID
    [event] = decision.events
    assert event.type == "order.paid.v1" and event.application_id == "app-1"
    order = decision.book.find("GP1")
    assert order is not None and order.status is OrderStatus.PAID and order.payment is not None
    assert order.payment.paid_at == datetime(2025, 6, 8, 8, 5, tzinfo=UTC)
    assert decision.book.fields()["payments_unsettled"] == 0


def test_a_repeated_payment_changes_nothing():
    first = pay(pending(), "GP1")
    again = pay(first.book, "GP1", state=State.PAID)
    assert again.outcome is PaymentOutcome.ALREADY_APPLIED and again.book == first.book and not again.events


def test_paying_a_superseded_order_is_recorded_and_refunded_never_kept():
    book = pending()
    issued = plan(book, amount_fen=5500, closed_at_wechat=frozenset({"GP1"}))
    assert isinstance(issued, Issue)
    book = order_placed(issued.book, "GP2", "prepay-2")
    current = pay(book, "GP2", total=5500)
    stale = pay(current.book, "GP1", state=State.PAID)
    assert stale.outcome is PaymentOutcome.STALE and stale.state is None and not stale.events
    assert stale.refund is not None and stale.refund.amount_fen == 3500
    assert stale.refund.out_refund_no == "GP1-R1" and stale.refund.kind is RefundKind.STALE_PAYMENT
    old = stale.book.find("GP1")
    assert old is not None and old.payment is not None and old.refundable_fen == 0
    assert stale.book.current is not None and stale.book.current.status is OrderStatus.PAID
    assert stale.book.fields()["payments_unsettled"] == 1  # the refund's result is still to come
    # The same notification again: nothing more is refunded.
    assert pay(stale.book, "GP1", state=State.PAID).outcome is PaymentOutcome.ALREADY_APPLIED


def test_a_payment_of_the_current_order_when_the_application_cannot_take_it_is_refunded():
    decision = pay(pending(), "GP1", state=State.REFUNDED)
    assert decision.outcome is PaymentOutcome.STALE and decision.refund is not None


def test_wrong_amount_unknown_order_and_unpaid_states_change_nothing():
    book = pending()
    assert pay(book, "GP1", total=1).outcome is PaymentOutcome.AMOUNT_MISMATCH
    assert pay(book, "GPNOPE").outcome is PaymentOutcome.UNKNOWN_ORDER
    notpay = Transaction.parse({"out_trade_no": "GP1", "trade_state": "NOTPAY"})
    decision = decide_payment(
        book, notpay, state=State.CONFIRMED, application_id="a", student_id="s", via="x", now=NOW
    )
    assert decision.outcome is PaymentOutcome.NOT_SUCCESS and decision.book == book


@pytest.mark.parametrize(
    "resource",
    [{}, {"out_trade_no": 7}, {"out_trade_no": ""}, {"out_trade_no": "x" * 65}],
)
def test_a_transaction_without_an_order_number_is_malformed(resource):
    with pytest.raises(DomainError) as refused:
        Transaction.parse(resource)
    assert refused.value.code == "malformed_transaction"


def test_hostile_amounts_never_match():
    for total in ("3500", 3500.0, True, None, [3500]):
        tx = Transaction.parse({"out_trade_no": "GP1", "trade_state": "SUCCESS", "amount": {"total": total}})
        assert tx.total_fen is None  # only an int is an amount
        decision = decide_payment(
            pending(), tx, state=State.CONFIRMED, application_id="a", student_id="s", via="x", now=NOW
        )
        assert decision.outcome is PaymentOutcome.AMOUNT_MISMATCH, total


def test_appid_and_mchid_are_ours():
    assert merchant_mismatch(MERCHANT, appid="wx-app", mchid="1900000001") is None
    assert merchant_mismatch(MERCHANT, appid="wx-other", mchid="1900000001") == "appid_mismatch"
    assert merchant_mismatch(MERCHANT, appid="wx-app", mchid="1900000002") == "mchid_mismatch"
    assert merchant_mismatch(MERCHANT, appid="", mchid="1900000001") == "appid_mismatch"
    assert merchant_mismatch(MERCHANT, appid=None, mchid="1900000001") is None  # refunds carry no appid


# --- refunds --------------------------------------------------------------------------------------


def paid_book() -> OrderBook:
    return pay(pending(), "GP1").book


def refund_result(no: str, status: str, amount: int | None = None, order: str = "GP1") -> RefundResult:
    resource: dict[str, Any] = {"out_trade_no": order, "out_refund_no": no, "refund_status": status}
    if amount is not None:
        resource["amount"] = {"refund": amount}
    return RefundResult.parse(resource)


def test_a_partial_refund_leaves_the_order_partially_refunded_and_the_application_paid():
    decision = decide_refund(
        paid_book(), out_trade_no=None, amount_fen=1000, reason="退部分", operator_id="op", now=NOW
    )
    assert decision.refund.out_refund_no == "GP1-R1" and decision.refund.status is RefundStatus.REQUESTED
    accepted = refund_accepted(
        decision.book, "GP1", "GP1-R1", {"status": "PROCESSING", "refund_id": "50x"}, state=State.PAID
    )
    assert accepted.state is None
    done = apply_refund_result(accepted.book, refund_result("GP1-R1", "SUCCESS"), state=State.PAID, now=NOW)
    order = done.book.find("GP1")
    assert order is not None and order.status is OrderStatus.PARTIALLY_REFUNDED and order.refunded_fen == 1000
    assert done.state is None and order.refundable_fen == 2500


def test_a_refund_of_everything_withdraws_the_application_once_wechat_takes_it():
    decision = decide_refund(
        paid_book(), out_trade_no=None, amount_fen=None, reason="学生申请", operator_id="op", now=NOW
    )
    assert decision.refund.amount_fen == 3500
    accepted = refund_accepted(decision.book, "GP1", "GP1-R1", {"status": "PROCESSING"}, state=State.APPROVED)
    assert accepted.state is State.REFUNDED
    done = apply_refund_result(
        accepted.book, refund_result("GP1-R1", "SUCCESS"), state=State.REFUNDED, now=NOW
    )
    order = done.book.find("GP1")
    assert (
        order is not None
        and order.status is OrderStatus.REFUNDED
        and done.book.fields()["payments_unsettled"] == 0
    )


def test_a_refund_refused_for_good_is_closed_and_does_not_withdraw():
    decision = decide_refund(
        paid_book(), out_trade_no=None, amount_fen=None, reason="学生申请", operator_id="op", now=NOW
    )
    book = refund_refused(decision.book, "GP1", "GP1-R1", NOW)
    order = book.find("GP1")
    assert (
        order is not None and order.refunds[0].status is RefundStatus.CLOSED and order.refundable_fen == 3500
    )


@pytest.mark.parametrize(
    ("amount", "code"),
    [(3501, "refund_amount_invalid"), (0, "refund_amount_invalid"), (-5, "refund_amount_invalid")],
)
def test_refund_amounts_outside_what_is_left_are_refused(amount, code):
    with pytest.raises(DomainError) as refused:
        decide_refund(
            paid_book(), out_trade_no=None, amount_fen=amount, reason="r", operator_id="op", now=NOW
        )
    assert refused.value.code == code


def test_nothing_to_refund_and_no_paid_order():
    with pytest.raises(DomainError) as unpaid:
        decide_refund(pending(), out_trade_no=None, amount_fen=None, reason="r", operator_id="op", now=NOW)
    assert unpaid.value.code == "no_paid_order"
    whole = decide_refund(
        paid_book(), out_trade_no=None, amount_fen=None, reason="r", operator_id="op", now=NOW
    )
    with pytest.raises(DomainError) as twice:
        decide_refund(whole.book, out_trade_no=None, amount_fen=None, reason="r", operator_id="op", now=NOW)
    assert twice.value.code == "nothing_to_refund"


def test_refund_results_out_of_order_repeated_or_unknown():
    decision = decide_refund(
        paid_book(), out_trade_no=None, amount_fen=None, reason="r", operator_id="op", now=NOW
    )
    book = decision.book
    done = apply_refund_result(book, refund_result("GP1-R1", "SUCCESS"), state=State.PAID, now=NOW)
    # A late PROCESSING (or the same SUCCESS again) changes nothing.
    for late in ("PROCESSING", "SUCCESS", "ABNORMAL"):
        again = apply_refund_result(done.book, refund_result("GP1-R1", late), state=State.REFUNDED, now=NOW)
        assert again.outcome == "duplicate" and again.book == done.book
    assert (
        refund_accepted(done.book, "GP1", "GP1-R1", {"status": "PROCESSING"}, state=State.REFUNDED).book
        == done.book
    )
    # A refund made outside the gateway (merchant platform) is recorded, so the sums stay true.
    external = apply_refund_result(
        paid_book(), refund_result("MP-1", "SUCCESS", 500), state=State.PAID, now=NOW
    )
    order = external.book.find("GP1")
    assert order is not None and order.refunds[0].kind is RefundKind.EXTERNAL
    assert order.status is OrderStatus.PARTIALLY_REFUNDED
    assert (
        apply_refund_result(paid_book(), refund_result("MP-2", "SUCCESS"), state=State.PAID, now=NOW).outcome
        == "malformed"
    )
    assert (
        apply_refund_result(
            paid_book(), refund_result("R", "SUCCESS", 1, order="GPX"), state=State.PAID, now=NOW
        ).outcome
        == "unknown_order"
    )
    with pytest.raises(DomainError):
        refund_result("GP1-R1", "MAYBE")


def test_retrying_a_stale_refund_asks_again_under_the_same_number_and_never_twice():
    stale = pay(pay(pending(), "GP1").book, "GP1", state=State.PAID)  # already applied: no refund
    assert stale.outcome is PaymentOutcome.ALREADY_APPLIED
    superseded = plan(pending(), amount_fen=5500, closed_at_wechat=frozenset({"GP1"}))
    assert isinstance(superseded, Issue)
    decision = pay(superseded.book, "GP1")
    assert decision.outcome is PaymentOutcome.STALE
    first = retry_refund(decision.book, "GP1", operator_id="op", now=NOW)
    assert first.refund.out_refund_no == "GP1-R1" and first.book == decision.book  # the same request again
    accepted = refund_accepted(
        first.book, "GP1", "GP1-R1", {"status": "PROCESSING"}, state=State.CONFIRMED
    ).book
    second = retry_refund(accepted, "GP1", operator_id="op", now=NOW)
    assert second.repeated and second.book == accepted
    closed = apply_refund_result(
        accepted, refund_result("GP1-R1", "CLOSED"), state=State.CONFIRMED, now=NOW
    ).book
    third = retry_refund(closed, "GP1", operator_id="op", now=NOW)
    assert third.refund.out_refund_no == "GP1-R2" and third.refund.amount_fen == 3500 and not third.repeated
    done = apply_refund_result(
        third.book, refund_result("GP1-R2", "SUCCESS"), state=State.CONFIRMED, now=NOW
    ).book
    assert retry_refund(done, "GP1", operator_id="op", now=NOW).repeated
    assert [n.status for n in refund_notices(done)] == [RefundStatus.CLOSED, RefundStatus.SUCCESS]


# --- reconciliation -------------------------------------------------------------------------------


def test_reconciliation_covers_every_open_order_of_the_ledger():
    book = pending()
    order = book.find("GP1")
    assert order is not None
    notpay = Transaction.parse({"out_trade_no": "GP1", "trade_state": "NOTPAY"})
    assert reconcile_order(book, order, notpay, now=NOW) is Reconcile.WAIT
    assert reconcile_order(book, order, notpay, now=NOW + EXPIRY) is Reconcile.CLOSE
    assert reconcile_order(book, order, paid_tx("GP1"), now=NOW) is Reconcile.APPLY_PAYMENT
    closed = Transaction.parse({"out_trade_no": "GP1", "trade_state": "CLOSED"})
    assert reconcile_order(book, order, closed, now=NOW) is Reconcile.MARK_CLOSED
    assert reconcile_order(book, order, None, now=NOW) is Reconcile.WAIT
    assert reconcile_order(book, order, None, now=NOW + EXPIRY) is Reconcile.MARK_CLOSED
    # An older open order (a ledger from before this rule) is closed even while unexpired.
    older = Order("o0", "GP0", 3500, OrderStatus.PENDING, NOW, NOW + EXPIRY)
    two = OrderBook((older, *book.orders))
    assert reconcile_order(two, older, notpay, now=NOW) is Reconcile.CLOSE
    marked = order_closed(two, "GP0", NOW, CloseReason.SUPERSEDED)
    assert marked.find("GP0").status is OrderStatus.CLOSED  # type: ignore[union-attr]
    assert order_closed(marked, "GP0", NOW, CloseReason.EXPIRED) == marked


def test_the_ledger_round_trips_through_the_document_and_reads_old_documents():
    book = pay(pending(), "GP1").book
    book = decide_refund(book, out_trade_no=None, amount_fen=100, reason="r", operator_id="op", now=NOW).book
    assert OrderBook.from_document(book.fields()) == book
    old = {
        "order": {
            "order_id": "o1",
            "out_trade_no": "GPOLD",
            "amount_fen": 3500,
            "status": "paid",
            "created_at": "2025-06-08T08:00:00",
            "expires_at": NOW,
            "transaction_id": "42x",
            "paid_at": NOW,
            "payer_openid": "o-p",
            "refund": {"out_refund_no": "RFOLD", "amount_fen": 1000, "status": "success"},
        }
    }
    legacy = OrderBook.from_document(old)
    [order] = legacy.orders
    assert order.created_at == NOW and order.status is OrderStatus.PARTIALLY_REFUNDED  # not "refunded"
    assert order.refunds[0].kind is RefundKind.OPERATOR and order.refunded_fen == 1000


def test_every_ordering_of_two_requests_and_a_repeat_leaves_one_open_order():
    """Keys aside (request_keys), any sequence of order requests leaves exactly one open order, and
    every earlier one closed before the next was issued."""
    for sequence in set(permutations(["expiring", "same", "amount"])):
        book = pending()
        closed: set[str] = set()
        now = NOW
        for n, step in enumerate(sequence):
            now = now + (EXPIRY if step == "expiring" else timedelta(minutes=1))
            amount = 5500 if step == "amount" else (book.current.amount_fen if book.current else 3500)
            for _ in range(3):
                decision = plan(
                    book, no=f"GPN{n}", now=now, amount_fen=amount, closed_at_wechat=frozenset(closed)
                )
                if isinstance(decision, Close):
                    closed.add(decision.order.out_trade_no)
                    continue
                if isinstance(decision, Issue):
                    book = order_placed(decision.book, f"GPN{n}", "p")
                break
            assert sum(o.open for o in book.orders) == 1, sequence
            assert all(o.out_trade_no in closed for o in book.orders if o.status is OrderStatus.CLOSED)


def test_retrying_a_failed_partial_refund_refunds_that_part_again_not_the_whole_payment():
    """An operator's partial refund that WeChat closed (anomaly `refund_closed`, action "refund") is asked
    again for its own amount and reason: the retry must not refund the whole payment and so withdraw a
    paid application the operator only meant to refund in part."""
    partial = decide_refund(
        paid_book(), out_trade_no=None, amount_fen=1000, reason="退部分", operator_id="op", now=NOW
    )
    closed = apply_refund_result(
        partial.book, refund_result("GP1-R1", "CLOSED"), state=State.PAID, now=NOW
    ).book
    again = retry_refund(closed, "GP1", operator_id="op2", now=NOW)
    assert again.refund.out_refund_no == "GP1-R2" and not again.repeated
    assert again.refund.amount_fen == 1000
    assert again.refund.kind is RefundKind.OPERATOR and again.refund.reason == "退部分"
    accepted = refund_accepted(again.book, "GP1", "GP1-R2", {"status": "PROCESSING"}, state=State.PAID)
    assert accepted.state is None  # the application stays paid
    order = accepted.book.find("GP1")
    assert order is not None and order.refundable_fen == 2500
