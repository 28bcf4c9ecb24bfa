"""The console's daily reconciliation (services/gateway/console/payments.py `summarise`), without a database."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from services.gateway.console.exports import csv_bytes
from services.gateway.console.payments import RECONCILIATION_COLUMNS, summarise
from services.gateway.domain.orders import (
    Issue,
    OrderBook,
    RefundResult,
    Transaction,
    apply_refund_result,
    decide_payment,
    decide_refund,
    order_placed,
    plan_order,
)

# 23:30 UTC on 7 June is 07:30 on 8 June in Beijing: the business day is China's.
PAID_AT = datetime(2025, 6, 7, 23, 30, tzinfo=UTC)


def ledger() -> dict:
    issued = plan_order(
        OrderBook(),
        state="confirmed",
        amount_fen=3500,
        out_trade_no="GP1",
        created_by="o",
        now=PAID_AT,
        expiry=timedelta(minutes=30),
    )
    assert isinstance(issued, Issue)
    book = order_placed(issued.book, "GP1", "p")
    tx = Transaction.parse(
        {"out_trade_no": "GP1", "trade_state": "SUCCESS", "amount": {"total": 3500}, "transaction_id": "t"}
    )
    book = decide_payment(
        book, tx, state="confirmed", application_id="a", student_id="s", via="n", now=PAID_AT
    ).book
    later = PAID_AT + timedelta(days=2)
    book = decide_refund(
        book, out_trade_no=None, amount_fen=None, reason="r", operator_id="op", now=later
    ).book
    done = RefundResult.parse({"out_trade_no": "GP1", "out_refund_no": "GP1-R1", "refund_status": "SUCCESS"})
    return apply_refund_result(book, done, state="paid", now=later).book.fields()


def test_days_are_chinas_and_the_net_of_a_refund_day_is_negative():
    summary = summarise([ledger()], date(2025, 6, 7), date(2025, 6, 10))
    by_day = {d.day: d for d in summary.days}
    assert by_day[date(2025, 6, 7)].paid == 0
    assert (by_day[date(2025, 6, 8)].orders, by_day[date(2025, 6, 8)].paid_fen) == (1, 3500)
    assert by_day[date(2025, 6, 10)].net_fen == -3500 and by_day[date(2025, 6, 10)].refunded == 1
    assert summary.total.net_fen == 0 and summary.total.paid == 1
    # Outside the period: not counted.
    assert summarise([ledger()], date(2025, 6, 1), date(2025, 6, 5)).total.orders == 0


def test_formula_looking_cells_are_neutralised_in_the_csv():
    text = csv_bytes(
        RECONCILIATION_COLUMNS,
        [("2025-06-10", 0, 0, "0.00", 1, "35.00", "-35.00"), ("=1+1", 0, 0, "@x", 0, "+1", "0")],
    ).decode("utf-8-sig")
    assert "'-35.00" in text and "'=1+1" in text and "'@x" in text and "'+1" in text
