"""Orders and WeChat Pay at the edge (seed step 6): placing orders, payment and refund notifications,
refunds, reconciliation. Every rule is a pure decision in `services/gateway/domain/orders.py`; this
module reads the application, asks WeChat, and writes the decision with one versioned write
(`Applications.mutate`), so "paid" and `order.paid.v1` stay one atomic write.

The order ledger lives on the application (`orders`, every `out_trade_no` ever issued; `order`, the
current one). WeChat is asked to close an open order before another is issued; a payment of any
order but the current open one is recorded and refunded automatically. What cannot be applied
(a wrong amount, an unknown order, a notification for another merchant) is kept in
`payment_anomalies` for an operator (services/gateway/console/payments.py).
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pymongo import IndexModel

from services.gateway.domain.errors import DomainError
from services.gateway.domain.orders import (
    Close,
    CloseReason,
    Issue,
    Merchant,
    Order,
    OrderBook,
    OrderPlan,
    PaymentOutcome,
    Reconcile,
    Refund,
    RefundResult,
    RefundStatus,
    Reuse,
    Transaction,
    Wait,
    apply_refund_result,
    decide_payment,
    decide_refund,
    merchant_mismatch,
    order_closed,
    order_failed,
    order_placed,
    plan_order,
    reconcile_order,
    refund_accepted,
    refund_refused,
    retry_refund,
)
from services.gateway.store import Applications, Change
from shared.db import Database, Document
from shared.events import Envelope, utcnow
from shared.logging import get_logger
from shared.wechat.errors import WeChatPayError
from shared.wechat.pay import WeChatPayClient

log = get_logger(__name__)

INDEXES = {
    # $elemMatch on the ledger finds an order by number (equality through the dotted path into an array
    # misses on nx-27017 once the path is indexed: docs/architecture.md).
    "applications": [IndexModel([("orders.out_trade_no", 1)]), IndexModel([("payments_unsettled", 1)])],
    "payment_anomalies": [
        IndexModel([("at", -1)]),
        IndexModel([("school_code", 1), ("at", -1)]),
        IndexModel([("out_trade_no", 1)]),
    ],
}
# How long a request waits for another one placing the same application's order.
WAIT_FOR_PLACING_S = 15.0


def new_out_trade_no(now: datetime) -> str:
    """WeChat Pay allows 6-32 characters of [A-Za-z0-9_-*|]; ours sort by date and never repeat."""
    return f"GP{now:%Y%m%d%H%M%S}{secrets.token_hex(8)}"


class _Unchanged(Exception):
    """A decision that writes nothing (raised out of `mutate`, so no version is spent)."""


def _ledger_change(book: OrderBook, state: str | None, events: Sequence[Envelope] = ()) -> Change:
    """The write of a ledger decision: the book's fields, and the application's new state when it changes."""
    fields = book.fields()
    if state is not None:
        fields["state"] = state
    return Change(set=fields, events=events)


async def find_application_of(database: Database, out_trade_no: str) -> Document | None:
    """The application whose ledger holds the order (any order ever issued, not only the current one)."""
    collection = database.db["applications"]
    # The whole document (but its outbox): the caller's write takes it as its first `current`.
    projection = {"outbox": 0}
    found: Document | None = await collection.find_one(
        {"orders": {"$elemMatch": {"out_trade_no": out_trade_no}}}, projection
    )
    if found is None:  # a document from before the ledger
        found = await collection.find_one({"order.out_trade_no": out_trade_no}, projection)
    return found


@dataclass
class Anomalies:
    """`payment_anomalies`: one record per thing that went wrong, however often WeChat repeats it."""

    database: Database

    async def record(
        self,
        kind: str,
        out_trade_no: str | None,
        *,
        key: str,
        application_id: str | None = None,
        school_code: str | None = None,
        **details: Any,
    ) -> None:
        log.error("payment anomaly", kind=kind, out_trade_no=out_trade_no, application_id=application_id)
        await self.database.db["payment_anomalies"].update_one(
            {"_id": f"{kind}:{key}"[:200]},
            {
                "$setOnInsert": {
                    "kind": kind,
                    "out_trade_no": out_trade_no,
                    "application_id": application_id,
                    "school_code": school_code,
                    "details": details,
                    "at": utcnow(),
                    "resolved": False,
                }
            },
            upsert=True,
        )

    async def of_transaction(self, kind: str, transaction: Transaction, *, via: str, **extra: Any) -> None:
        """An anomaly about a payment: one record per transaction, with its amount and where it came from."""
        await self.record(
            kind,
            transaction.out_trade_no,
            key=f"{transaction.out_trade_no}:{transaction.transaction_id}",
            source=via,
            total_fen=transaction.total_fen,
            transaction_id=transaction.transaction_id,
            **extra,
        )


class Payments:
    def __init__(self, database: Database, applications: Applications, pay: WeChatPayClient) -> None:
        self.database = database
        self.applications = applications
        self.pay = pay
        self.anomalies = Anomalies(database)

    @property
    def merchant(self) -> Merchant:
        appid, mchid = self.pay.merchant
        return Merchant(appid=appid, mchid=mchid)

    async def _write(
        self,
        application_id: str,
        decide: Callable[[Document, OrderBook], Change],
        *,
        current: Document | None = None,
    ) -> Document | None:
        """One versioned write of a ledger decision; None when the decision changed nothing. `current`: the
        document as just read or written, to decide on first (store.Applications.mutate)."""
        try:
            return await self.applications.mutate(
                application_id, lambda doc: decide(doc, OrderBook.from_document(doc)), current=current
            )
        except _Unchanged:
            return None

    # --- placing an order --------------------------------------------------------------------------

    async def place_order(
        self,
        application_id: str,
        *,
        openid: str,
        amount_fen: int,
        description: str,
        expiry: timedelta,
        wait_s: float = WAIT_FOR_PLACING_S,
        current: Document | None = None,
    ) -> tuple[Order, bool]:
        """The application's one open order: reused, or issued after closing the previous one at WeChat.
        Returns (order, newly issued). DomainError: illegal_transition, order_failed, busy. `current`: the
        application as the caller read it (saves a read when it is still the latest)."""
        closed: set[str] = set()
        deadline = time.monotonic() + wait_s
        while True:
            plan, written = await self._plan(
                application_id, openid, amount_fen, expiry, frozenset(closed), current
            )
            current = None
            if isinstance(plan, Reuse):
                return plan.order, False
            if isinstance(plan, Wait):
                if time.monotonic() > deadline:
                    raise DomainError("busy")
                await asyncio.sleep(0.1)
            elif isinstance(plan, Close):
                await self._close_at_wechat(plan.order.out_trade_no)
                closed.add(plan.order.out_trade_no)
            else:
                placed = await self._issue(application_id, plan.order, openid, description, written)
                if placed is not None:
                    return placed, True

    async def _plan(
        self,
        application_id: str,
        openid: str,
        amount_fen: int,
        expiry: timedelta,
        closed: frozenset[str],
        current: Document | None = None,
    ) -> tuple[OrderPlan, Document | None]:
        """Plan against the current document; an Issue is written at once (conditional on its version).
        Returns the plan and the document as written (None when nothing was)."""
        now = utcnow()
        out_trade_no = new_out_trade_no(now)
        plans: list[OrderPlan] = []

        def decide(doc: Document, book: OrderBook) -> Change:
            plan = plan_order(
                book,
                state=doc["state"],
                amount_fen=amount_fen,
                out_trade_no=out_trade_no,
                created_by=openid,
                now=now,
                expiry=expiry,
                closed_at_wechat=closed,
            )
            plans.append(plan)
            if isinstance(plan, Issue):
                return Change(set=plan.book.fields())
            raise _Unchanged

        written = await self._write(application_id, decide, current=current)
        return plans[-1], written

    async def _issue(
        self,
        application_id: str,
        order: Order,
        openid: str,
        description: str,
        planned: Document | None = None,
    ) -> Order | None:
        """Ask WeChat for the order just written (`planned`: the document as that write left it); None when
        it was replaced meanwhile (plan again)."""
        try:
            prepay_id = await self.pay.create_jsapi_order(
                order.out_trade_no, description, order.amount_fen, openid, time_expire=order.expires_at
            )
        except WeChatPayError as exc:
            log.warning("jsapi order failed", code=exc.code, status=exc.status)
            await self._write(
                application_id,
                lambda doc, book: Change(set=order_failed(book, order.out_trade_no).fields()),
                current=planned,
            )
            raise DomainError("order_failed") from exc
        try:
            written = await self._write(
                application_id,
                lambda doc, book: Change(set=order_placed(book, order.out_trade_no, prepay_id).fields()),
                current=planned,
            )
        except DomainError:
            return None  # replaced while WeChat answered (and so closed there): take the new one
        assert written is not None
        log.info("order created", out_trade_no=order.out_trade_no, amount_fen=order.amount_fen)
        return OrderBook.from_document(written).find(order.out_trade_no)

    async def _close_at_wechat(self, out_trade_no: str) -> None:
        """Close an order at WeChat before replacing it; one that turns out paid is applied instead."""
        try:
            await self.pay.close_order(out_trade_no)
        except WeChatPayError as exc:
            if exc.code == "ORDERPAID":
                # Paid meanwhile: apply it (the next plan then says already paid, or refunds it).
                try:
                    transaction = await self.pay.query_order(out_trade_no)
                except WeChatPayError as query_exc:
                    # Paid, but WeChat can't tell us the transaction now: no new order; reconciliation
                    # applies the payment on its next pass.
                    log.warning(
                        "paid order could not be queried", code=query_exc.code, status=query_exc.status
                    )
                    raise DomainError("order_failed") from query_exc
                await self.apply_transaction(transaction, via="reconciliation")
                return
            if exc.code not in ("ORDER_NOT_EXIST", "ORDER_CLOSED"):
                log.warning("closing an order failed", code=exc.code, status=exc.status)
                raise DomainError("order_failed") from exc
        log.info("order closed at WeChat", out_trade_no=out_trade_no)

    # --- payments ----------------------------------------------------------------------------------

    async def apply_transaction(self, resource: dict[str, Any], *, via: str) -> str:
        """A verified transaction (notification resource or query answer); returns what happened."""
        try:
            transaction = Transaction.parse(resource)
        except DomainError:
            log.warning("payment resource without an order number", via=via)
            return "malformed"
        if via == "notification":
            mismatch = merchant_mismatch(self.merchant, appid=transaction.appid, mchid=transaction.mchid)
            if mismatch is not None:
                await self.anomalies.record(
                    mismatch,
                    transaction.out_trade_no,
                    key=f"{transaction.out_trade_no}:{transaction.transaction_id}",
                    appid=transaction.appid,
                    mchid=transaction.mchid,
                )
                return mismatch
        found = await find_application_of(self.database, transaction.out_trade_no)
        if found is None:
            if transaction.paid:
                await self.anomalies.of_transaction("unknown_order", transaction, via=via)
            return "unknown_order"
        decisions: list[Any] = []

        def decide(doc: Document, book: OrderBook) -> Change:
            decision = decide_payment(
                book,
                transaction,
                state=doc["state"],
                application_id=doc["_id"],
                student_id=doc.get("student_id") or "",
                via=via,
                now=utcnow(),
            )
            decisions.append(decision)
            if decision.outcome not in (PaymentOutcome.PAID, PaymentOutcome.STALE):
                raise _Unchanged
            return _ledger_change(decision.book, decision.state, decision.events)

        await self._write(found["_id"], decide, current=found)
        decision = decisions[-1]
        common = {"application_id": found["_id"], "school_code": found.get("school_code")}
        if decision.outcome is PaymentOutcome.AMOUNT_MISMATCH:
            await self.anomalies.of_transaction(
                "amount_mismatch",
                transaction,
                via=via,
                expected_fen=decision.order.amount_fen if decision.order else None,
                **common,
            )
        if decision.outcome is PaymentOutcome.STALE and decision.refund is not None:
            assert decision.order is not None
            await self.anomalies.of_transaction(
                "stale_order_paid",
                transaction,
                via=via,
                out_refund_no=decision.refund.out_refund_no,
                **common,
            )
            await self.send_refund(found["_id"], decision.order, decision.refund)
        log.info("payment applied", outcome=str(decision.outcome), via=via, application_id=found["_id"])
        return str(decision.outcome)

    # --- refunds -----------------------------------------------------------------------------------

    async def send_refund(self, application_id: str, order: Order, refund: Refund) -> bool:
        """Ask WeChat for a recorded refund (again: WeChat refunds one number once). False when WeChat
        could not be reached (the refund stays requested and reconciliation asks again)."""
        try:
            answer = await self.pay.refund(
                order.out_trade_no,
                refund.out_refund_no,
                refund.amount_fen,
                order.amount_fen,
                reason=refund.reason,
            )
        except WeChatPayError as exc:
            # A 2xx answer that cannot be verified or read means WeChat took the refund: its outcome is
            # unknown, like a lost answer, so it stays requested (closing it would let a retry refund twice).
            if exc.retryable or 200 <= exc.status < 300:
                log.warning(
                    "refund request failed; will retry", code=exc.code, out_refund_no=refund.out_refund_no
                )
                return False
            log.error("refund refused by WeChat Pay", code=exc.code, out_refund_no=refund.out_refund_no)
            await self._write(
                application_id,
                lambda doc, book: Change(
                    set=refund_refused(book, order.out_trade_no, refund.out_refund_no, utcnow()).fields()
                ),
            )
            raise DomainError("refund_failed", wechat_code=exc.code) from exc

        def decide(doc: Document, book: OrderBook) -> Change:
            outcome = refund_accepted(
                book, order.out_trade_no, refund.out_refund_no, answer, state=doc["state"]
            )
            if outcome.outcome == "duplicate":
                raise _Unchanged
            return _ledger_change(outcome.book, outcome.state)

        await self._write(application_id, decide)
        log.info("refund requested", out_refund_no=refund.out_refund_no, amount_fen=refund.amount_fen)
        return True

    async def refund(
        self,
        application_id: str,
        *,
        reason: str,
        operator_id: str,
        amount_fen: int | None = None,
        out_trade_no: str | None = None,
    ) -> tuple[Document, str, Refund]:
        """An operator's refund of a paid order (all that is left unless `amount_fen`); returns the
        application, the order's number and the refund as recorded after WeChat answered."""
        decisions: list[Any] = []

        def decide(doc: Document, book: OrderBook) -> Change:
            decision = decide_refund(
                book,
                out_trade_no=out_trade_no,
                amount_fen=amount_fen,
                reason=reason,
                operator_id=operator_id,
                now=utcnow(),
            )
            decisions.append(decision)
            return Change(set=decision.book.fields())

        await self._write(application_id, decide)
        decision = decisions[-1]
        await self.send_refund(application_id, decision.order, decision.refund)
        document, refund = await self._settled(
            application_id, decision.order.out_trade_no, decision.refund.out_refund_no
        )
        return document, decision.order.out_trade_no, refund

    async def retry_refund(
        self, application_id: str, out_trade_no: str, *, operator_id: str
    ) -> tuple[Document, Refund, bool]:
        """The console's refund of a paid stale order: asks again for the refund still waiting, or makes
        one when every earlier one failed; returns (application, refund, repeated)."""
        decisions: list[Any] = []

        def decide(doc: Document, book: OrderBook) -> Change:
            decision = retry_refund(book, out_trade_no, operator_id=operator_id, now=utcnow())
            decisions.append(decision)
            if decision.book == book:
                raise _Unchanged
            return Change(set=decision.book.fields())

        await self._write(application_id, decide)
        decision = decisions[-1]
        if decision.refund.status is RefundStatus.REQUESTED:
            await self.send_refund(application_id, decision.order, decision.refund)
        document, refund = await self._settled(application_id, out_trade_no, decision.refund.out_refund_no)
        return document, refund, decision.repeated

    async def _settled(
        self, application_id: str, out_trade_no: str, out_refund_no: str
    ) -> tuple[Document, Refund]:
        document = await self.applications.get(application_id)
        assert document is not None
        order = OrderBook.from_document(document).find(out_trade_no)
        refund = order.refund(out_refund_no) if order else None
        assert refund is not None
        return document, refund

    async def apply_refund_notification(self, resource: dict[str, Any]) -> str:
        try:
            result = RefundResult.parse(resource)
        except DomainError:
            return "malformed"
        if result.mchid and result.mchid != self.merchant.mchid:
            await self.anomalies.record(
                "mchid_mismatch",
                result.out_trade_no,
                key=f"{result.out_refund_no}:{result.status}",
                mchid=result.mchid,
            )
            return "mchid_mismatch"
        return await self._apply_refund_result(result)

    async def _apply_refund_result(self, result: RefundResult) -> str:
        found = await find_application_of(self.database, result.out_trade_no)
        if found is None:
            await self.anomalies.record(
                "unknown_refund", result.out_trade_no, key=f"{result.out_refund_no}:{result.status}"
            )
            return "unknown_order"
        outcomes: list[str] = []

        def decide(doc: Document, book: OrderBook) -> Change:
            outcome = apply_refund_result(book, result, state=doc["state"], now=utcnow())
            outcomes.append(outcome.outcome)
            if outcome.book == book and outcome.state is None:
                raise _Unchanged
            return _ledger_change(outcome.book, outcome.state)

        await self._write(found["_id"], decide, current=found)
        if result.status in (RefundStatus.ABNORMAL, RefundStatus.CLOSED):
            await self.anomalies.record(
                f"refund_{result.status}",
                result.out_trade_no,
                key=result.out_refund_no,
                application_id=found["_id"],
                school_code=found.get("school_code"),
                out_refund_no=result.out_refund_no,
            )
        return outcomes[-1]

    # --- reconciliation ----------------------------------------------------------------------------

    async def reconcile_once(self, *, older_than: timedelta) -> dict[str, int]:
        """Ask WeChat about every recorded order and refund still unsettled (any order of the ledger, not
        only the current one) that is older than `older_than`; apply what it says."""
        counts: dict[str, int] = {}
        now = utcnow()
        cutoff = now - older_than
        collection = self.database.db["applications"]
        seen: set[str] = set()
        queries = (
            {"payments_unsettled": {"$gt": 0}},
            # Documents from before the ledger: a pending order and no `orders`.
            {"orders": {"$exists": False}, "order.status": {"$in": ["pending", "creating", "failed"]}},
        )
        for query in queries:
            ids = [doc["_id"] async for doc in collection.find(query, {"_id": 1})]
            for application_id in ids:
                if application_id in seen:
                    continue
                seen.add(application_id)
                for outcome in await self._reconcile_application(application_id, cutoff, now):
                    counts[outcome] = counts.get(outcome, 0) + 1
        if counts:
            log.info("reconciliation pass", **counts)
        return counts

    async def _reconcile_application(self, application_id: str, cutoff: datetime, now: datetime) -> list[str]:
        document = await self.applications.get(application_id)
        if document is None:
            return []
        book = OrderBook.from_document(document)
        outcomes: list[str] = []
        for order in book.orders:
            # Checked here, not in the filter: nx-27017 compares datetimes in sub-documents unreliably.
            if order.open and order.created_at < cutoff:
                outcomes.append(await self._reconcile_order(application_id, book, order, now))
            for refund in order.refunds:
                if refund.requested_at >= cutoff:
                    continue
                if refund.status is RefundStatus.REQUESTED:
                    sent = False
                    try:
                        sent = await self.send_refund(application_id, order, refund)
                    except DomainError:
                        outcomes.append("refund_refused")
                        continue
                    outcomes.append("refund_requested" if sent else "refund_retry_failed")
                elif refund.status is RefundStatus.PROCESSING:
                    try:
                        answer = await self.pay.query_refund(refund.out_refund_no)
                    except WeChatPayError:
                        outcomes.append("query_failed")
                        continue
                    result = RefundResult.parse(
                        {**answer, "out_trade_no": order.out_trade_no, "out_refund_no": refund.out_refund_no}
                    )
                    if result.status is RefundStatus.PROCESSING:
                        outcomes.append("refund_processing")
                    else:
                        outcomes.append(await self._apply_refund_result(result))
        return outcomes

    async def _reconcile_order(
        self, application_id: str, book: OrderBook, order: Order, now: datetime
    ) -> str:
        try:
            answer: dict[str, Any] | None = await self.pay.query_order(order.out_trade_no)
        except WeChatPayError as exc:
            if exc.code != "ORDER_NOT_EXIST":
                return "query_failed"
            answer = None
        transaction = Transaction.parse(answer) if answer is not None else None
        action = reconcile_order(book, order, transaction, now=now)
        if action is Reconcile.APPLY_PAYMENT:
            assert answer is not None
            return await self.apply_transaction(answer, via="reconciliation")
        if action is Reconcile.WAIT:
            return "still_pending"
        if action is Reconcile.CLOSE:
            try:
                await self._close_at_wechat(order.out_trade_no)
            except DomainError:
                return "close_failed"
        reason = CloseReason.EXPIRED if book.is_current(order) else CloseReason.SUPERSEDED
        await self._write(
            application_id,
            lambda doc, b: Change(set=order_closed(b, order.out_trade_no, now, reason).fields()),
        )
        return "closed"


# --- the module's entry points (the app's background task, tests) ----------------------------------


async def reconcile_once(
    database: Database, applications: Applications, pay: WeChatPayClient, *, older_than: timedelta
) -> dict[str, int]:
    return await Payments(database, applications, pay).reconcile_once(older_than=older_than)


async def reconciliation_loop(
    database: Database, applications: Applications, pay: WeChatPayClient, *, interval_s: float, after_s: float
) -> None:
    payments = Payments(database, applications, pay)
    while True:
        await asyncio.sleep(interval_s)
        try:
            await payments.reconcile_once(older_than=timedelta(seconds=after_s))
        except Exception as exc:  # the next pass tries again; never let the task die
            log.warning("reconciliation pass failed", error=repr(exc)[:300])
