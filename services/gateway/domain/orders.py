"""Orders and money (seed step 6) as pure decisions: the order ledger of an application, one open order
at a time, payments (current, stale, wrong), refunds (whole, partial, automatic) and reconciliation.

Every `out_trade_no` ever issued for an application stays in its ledger (`OrderBook.orders`, oldest
first); the last one is the current order. WeChat Pay can take money for any of them, so every decision
looks an order up in the whole ledger: a payment of the current open order pays the application; a
payment of any other (superseded, closed, or arriving after the application was paid) is recorded and
refunded automatically, never kept. Nothing here does I/O: the caller asks WeChat and writes the result
(`services/gateway/payments.py`, `api/orders.py`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from services.gateway.applications import Action, IllegalTransition, State, transition
from services.gateway.domain.errors import DomainError
from shared.events import Envelope, OrderPaid, derived_id, make_event

# A pending order is handed out again only while it has this long left: paying takes a minute or two.
REUSE_MARGIN = timedelta(minutes=2)
# An order still `creating` after this lost its request: the request that wrote it asks WeChat within
# its client timeout (WECHAT_TIMEOUT_S, 10 s) and then records the answer (the database's own timeout,
# 5 s), so after 20 s nobody is still placing it (a database outage in between leaves it so). It is then
# closed at WeChat and replaced instead of waited for; the student retrying `busy` waits at most this.
# A request that does answer later finds its order replaced and takes the new one (payments._issue).
CREATING_PATIENCE = timedelta(seconds=20)


class OrderStatus(StrEnum):
    CREATING = "creating"  # stored before WeChat is asked, so WeChat never holds an order we do not
    PENDING = "pending"  # WeChat gave a prepay_id: payable until expires_at
    FAILED = "failed"  # WeChat refused or did not answer: it may still exist there, so it is closed first
    CLOSED = "closed"  # closed at WeChat (superseded or expired): a payment of it is refunded
    PAID = "paid"
    PARTIALLY_REFUNDED = "partially_refunded"  # some of the payment went back (a successful partial refund)
    REFUNDED = "refunded"  # all of the payment went back


BEFORE_PAYMENT = frozenset({State.CODE_SUBMITTED, State.CODE_REJECTED, State.CODE_VERIFIED, State.CONFIRMED})
OPEN = frozenset({OrderStatus.CREATING, OrderStatus.PENDING, OrderStatus.FAILED})
PAID_STATUSES = frozenset({OrderStatus.PAID, OrderStatus.PARTIALLY_REFUNDED, OrderStatus.REFUNDED})


class CloseReason(StrEnum):
    SUPERSEDED = "superseded"  # a new order replaced it (expiring, failed, or the amount changed)
    EXPIRED = "expired"  # reconciliation closed it after its time_expire


class RefundStatus(StrEnum):
    REQUESTED = "requested"  # recorded; WeChat has not accepted it yet (asked again until it does)
    PROCESSING = "processing"  # WeChat accepted it
    SUCCESS = "success"
    ABNORMAL = "abnormal"  # WeChat could not pay it back (e.g. the payer's card closed): an operator acts
    CLOSED = "closed"


FINAL_REFUND = frozenset({RefundStatus.SUCCESS, RefundStatus.ABNORMAL, RefundStatus.CLOSED})
# What counts against the refundable amount: everything not finally failed.
LIVE_REFUND = frozenset({RefundStatus.REQUESTED, RefundStatus.PROCESSING, RefundStatus.SUCCESS})


class RefundKind(StrEnum):
    STALE_PAYMENT = "stale_payment"  # automatic: a superseded or closed order was paid
    OPERATOR = "operator"  # asked by an operator in the console
    EXTERNAL = "external"  # made outside the gateway (merchant platform), learned from WeChat


class PaymentOutcome(StrEnum):
    PAID = "paid"  # the application is paid
    ALREADY_APPLIED = "already_paid"  # a repeat of a payment already recorded
    STALE = "stale_payment_refunding"  # a superseded/closed order was paid: recorded, refund requested
    AMOUNT_MISMATCH = "amount_mismatch"  # not what we asked for: an operator investigates
    NOT_SUCCESS = "not_success"
    UNKNOWN_ORDER = "unknown_order"


@dataclass(frozen=True)
class Merchant:
    """Who we are at WeChat Pay: a verified notification for another appid or mchid is not ours."""

    appid: str
    mchid: str


@dataclass(frozen=True)
class Transaction:
    """The fields of a WeChat Pay transaction (notification resource or query answer) we act on."""

    out_trade_no: str
    trade_state: str
    total_fen: int | None
    transaction_id: str
    payer_openid: str
    success_time: datetime | None
    appid: str
    mchid: str

    @classmethod
    def parse(cls, resource: Mapping[str, Any]) -> Transaction:
        """Refuses a resource without an order number (hostile or broken input); tolerates the rest."""
        out_trade_no = resource.get("out_trade_no")
        if not isinstance(out_trade_no, str) or not 1 <= len(out_trade_no) <= 64:
            raise DomainError("malformed_transaction", field="out_trade_no")
        amount = resource.get("amount")
        total = amount.get("total") if isinstance(amount, Mapping) else None
        payer = resource.get("payer")
        return cls(
            out_trade_no=out_trade_no,
            trade_state=_text(resource.get("trade_state")),
            total_fen=total if isinstance(total, int) and not isinstance(total, bool) else None,
            transaction_id=_text(resource.get("transaction_id")),
            payer_openid=_text(payer.get("openid") if isinstance(payer, Mapping) else None, 128),
            success_time=_time(resource.get("success_time")),
            appid=_text(resource.get("appid")),
            mchid=_text(resource.get("mchid")),
        )

    @property
    def paid(self) -> bool:
        # REFUND: it was paid, then (partly) refunded; a query after a refund answers so.
        return self.trade_state in ("SUCCESS", "REFUND")


@dataclass(frozen=True)
class RefundResult:
    """A REFUND.* notification's resource, or a refund query's answer."""

    out_trade_no: str
    out_refund_no: str
    status: RefundStatus
    amount_fen: int | None
    refund_id: str
    mchid: str

    @classmethod
    def parse(cls, resource: Mapping[str, Any]) -> RefundResult:
        numbers = resource.get("out_trade_no"), resource.get("out_refund_no")
        if not all(isinstance(n, str) and 1 <= len(n) <= 64 for n in numbers):
            raise DomainError("malformed_refund", field="out_refund_no")
        raw_status = _text(resource.get("refund_status") or resource.get("status")).lower()
        try:
            status = RefundStatus(raw_status)
        except ValueError:
            raise DomainError("malformed_refund", field="refund_status") from None
        amount = resource.get("amount")
        refund = amount.get("refund") if isinstance(amount, Mapping) else None
        return cls(
            out_trade_no=str(numbers[0]),
            out_refund_no=str(numbers[1]),
            status=status,
            amount_fen=refund if isinstance(refund, int) and not isinstance(refund, bool) else None,
            refund_id=_text(resource.get("refund_id")),
            mchid=_text(resource.get("mchid")),
        )


def merchant_mismatch(merchant: Merchant, *, appid: str | None, mchid: str) -> str | None:
    """Why a verified notification is not ours (`appid_mismatch`, `mchid_mismatch`), or None."""
    if mchid != merchant.mchid:
        return "mchid_mismatch"
    if appid is not None and appid != merchant.appid:
        return "appid_mismatch"
    return None


# --- the ledger ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Payment:
    transaction_id: str
    total_fen: int
    paid_at: datetime
    payer_openid: str
    via: str  # "notification" or "reconciliation"


@dataclass(frozen=True)
class Refund:
    out_refund_no: str
    amount_fen: int
    kind: RefundKind
    status: RefundStatus
    requested_at: datetime
    reason: str = ""
    operator_id: str | None = None
    refund_id: str | None = None
    completed_at: datetime | None = None


@dataclass(frozen=True)
class Order:
    order_id: str
    out_trade_no: str
    amount_fen: int
    status: OrderStatus
    created_at: datetime
    expires_at: datetime
    created_by: str | None = None
    prepay_id: str | None = None
    payment: Payment | None = None
    refunds: tuple[Refund, ...] = ()
    closed_at: datetime | None = None
    close_reason: CloseReason | None = None

    @property
    def open(self) -> bool:
        return self.status in OPEN

    @property
    def refunded_fen(self) -> int:
        return sum(r.amount_fen for r in self.refunds if r.status is RefundStatus.SUCCESS)

    @property
    def refundable_fen(self) -> int:
        """What may still be refunded: the payment less every refund not finally failed."""
        if self.payment is None:
            return 0
        return self.payment.total_fen - sum(r.amount_fen for r in self.refunds if r.status in LIVE_REFUND)

    @property
    def unsettled(self) -> bool:
        """WeChat still has to tell us something: an open order, or a refund without its result."""
        return self.open or any(r.status not in FINAL_REFUND for r in self.refunds)

    def refund(self, out_refund_no: str) -> Refund | None:
        return next((r for r in self.refunds if r.out_refund_no == out_refund_no), None)

    def next_refund_number(self) -> str:
        """Ours are `<out_trade_no>-R<n>`: WeChat allows 1-64 of `0-9A-Za-z_-|*@` (32 + 4 here)."""
        return f"{self.out_trade_no}-R{len(self.refunds) + 1}"


@dataclass(frozen=True)
class OrderBook:
    """Every order issued for one application, oldest first; the last is the current one."""

    orders: tuple[Order, ...] = ()

    @property
    def current(self) -> Order | None:
        return self.orders[-1] if self.orders else None

    def find(self, out_trade_no: str) -> Order | None:
        return next((o for o in self.orders if o.out_trade_no == out_trade_no), None)

    def is_current(self, order: Order) -> bool:
        return self.current is not None and self.current.out_trade_no == order.out_trade_no

    def put(self, order: Order) -> OrderBook:
        """The book with `order` replacing the entry of the same number (or appended as the new current)."""
        if self.find(order.out_trade_no) is None:
            return OrderBook((*self.orders, order))
        return OrderBook(tuple(order if o.out_trade_no == order.out_trade_no else o for o in self.orders))

    @property
    def unsettled(self) -> int:
        return sum(1 for o in self.orders if o.unsettled)

    @property
    def paid_order(self) -> Order | None:
        """The order that pays the application: the current one, when it is paid."""
        current = self.current
        return current if current is not None and current.status in PAID_STATUSES else None

    # --- the document ----------------------------------------------------------------------------

    @classmethod
    def from_document(cls, doc: Mapping[str, Any]) -> OrderBook:
        """Read from `orders` (the ledger); a document from before the ledger has only `order`."""
        ledger = doc.get("orders")
        if isinstance(ledger, list) and ledger:
            return cls(tuple(order_from_doc(o) for o in ledger))
        single = doc.get("order")
        return cls((order_from_doc(single),)) if isinstance(single, Mapping) and single else cls()

    def fields(self) -> dict[str, Any]:
        """What the application document stores: the ledger, the current order (read by the status
        page, notify and erasure), and the count reconciliation selects on."""
        current = self.current
        return {
            "orders": [order_to_doc(o) for o in self.orders],
            "order": order_to_doc(current) if current is not None else None,
            "payments_unsettled": self.unsettled,
            "refunds_total": sum(len(o.refunds) for o in self.orders),
        }


# --- issuing an order: at most one open order ------------------------------------------------------


@dataclass(frozen=True)
class Reuse:
    """Hand out the current pending order again."""

    order: Order


@dataclass(frozen=True)
class Wait:
    """Another request is placing the current order right now: wait for it, then reuse it."""

    order: Order


@dataclass(frozen=True)
class Close:
    """The current order must be closed at WeChat before another may be issued."""

    order: Order


@dataclass(frozen=True)
class Issue:
    """Write this book (the new order `creating`, the replaced one closed), then ask WeChat."""

    book: OrderBook
    order: Order


OrderPlan = Reuse | Wait | Close | Issue


def plan_order(
    book: OrderBook,
    *,
    state: str,
    amount_fen: int,
    out_trade_no: str,
    created_by: str,
    now: datetime,
    expiry: timedelta,
    closed_at_wechat: frozenset[str] = frozenset(),
) -> OrderPlan:
    """What `POST /orders` does: reuse, wait, close first, or issue. `closed_at_wechat` lists the orders
    this request has already closed at WeChat (a close is safe to repeat)."""
    try:
        transition(state, Action.ORDER)
    except IllegalTransition:
        reason = (
            "refunded"
            if state == State.REFUNDED
            else "already_paid"
            if state not in BEFORE_PAYMENT or book.paid_order is not None
            else None
        )
        raise DomainError("illegal_transition", **({"reason": reason} if reason else {})) from None
    if amount_fen < 1:
        raise DomainError("illegal_transition", reason="no_fee")
    current = book.current
    if current is not None and current.open:
        if (
            current.status is OrderStatus.PENDING
            and current.amount_fen == amount_fen
            and current.expires_at > now + REUSE_MARGIN
            # Not one this request has just closed at WeChat (its placing request recorded the prepay id
            # after the close was decided): that prepay can no longer be paid.
            and current.out_trade_no not in closed_at_wechat
        ):
            return Reuse(current)
        if current.status is OrderStatus.CREATING and now - current.created_at < CREATING_PATIENCE:
            return Wait(current)
        if current.out_trade_no not in closed_at_wechat:
            return Close(current)
        book = book.put(
            replace(current, status=OrderStatus.CLOSED, closed_at=now, close_reason=CloseReason.SUPERSEDED)
        )
    order = Order(
        order_id=derived_id("order", out_trade_no),
        out_trade_no=out_trade_no,
        amount_fen=amount_fen,
        status=OrderStatus.CREATING,
        created_at=now,
        expires_at=now + expiry,
        created_by=created_by,
    )
    return Issue(book.put(order), order)


def order_placed(book: OrderBook, out_trade_no: str, prepay_id: str) -> OrderBook:
    """WeChat accepted the order: it becomes payable. Refused when it was replaced meanwhile."""
    order = book.find(out_trade_no)
    if order is None or order.status is not OrderStatus.CREATING or not book.is_current(order):
        raise DomainError("order_superseded", out_trade_no=out_trade_no)
    return book.put(replace(order, status=OrderStatus.PENDING, prepay_id=prepay_id))


def order_failed(book: OrderBook, out_trade_no: str) -> OrderBook:
    """WeChat refused or did not answer; kept open (it may exist there) until it is closed."""
    order = book.find(out_trade_no)
    if order is None or order.status is not OrderStatus.CREATING:
        return book
    return book.put(replace(order, status=OrderStatus.FAILED))


def order_closed(book: OrderBook, out_trade_no: str, now: datetime, reason: CloseReason) -> OrderBook:
    """WeChat closed it (or never had it): an open order becomes closed; anything else is unchanged."""
    order = book.find(out_trade_no)
    if order is None or not order.open:
        return book
    return book.put(replace(order, status=OrderStatus.CLOSED, closed_at=now, close_reason=reason))


# --- payments ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PaymentDecision:
    outcome: PaymentOutcome
    book: OrderBook
    state: State | None = None  # the application's new state, when it changes
    events: Sequence[Envelope] = ()
    refund: Refund | None = None  # a refund to ask WeChat for (recorded in `book` already)
    order: Order | None = None


STALE_REFUND_REASON = "重复支付自动退款"


def decide_payment(
    book: OrderBook,
    transaction: Transaction,
    *,
    state: str,
    application_id: str,
    student_id: str,
    via: str,
    now: datetime,
) -> PaymentDecision:
    """Apply a verified WeChat Pay transaction (already checked to be for our merchant)."""
    order = book.find(transaction.out_trade_no)
    if order is None:
        return PaymentDecision(PaymentOutcome.UNKNOWN_ORDER, book)
    if not transaction.paid:
        return PaymentDecision(PaymentOutcome.NOT_SUCCESS, book, order=order)
    if order.payment is not None:
        return PaymentDecision(PaymentOutcome.ALREADY_APPLIED, book, order=order)
    if transaction.total_fen != order.amount_fen:
        return PaymentDecision(PaymentOutcome.AMOUNT_MISMATCH, book, order=order)
    payment = Payment(
        transaction_id=transaction.transaction_id,
        total_fen=order.amount_fen,
        paid_at=transaction.success_time or now,
        payer_openid=transaction.payer_openid,
        via=via,
    )
    paid = replace(order, status=OrderStatus.PAID, payment=payment)
    if book.is_current(order) and order.open:
        with contextlib.suppress(IllegalTransition):
            new_state = transition(state, Action.PAY)
            event = make_event(
                OrderPaid(
                    order_id=order.order_id,
                    student_id=student_id,
                    amount_fen=order.amount_fen,
                    transaction_id=transaction.transaction_id,
                    payer_openid=transaction.payer_openid,
                    paid_at=payment.paid_at,
                ),
                application_id=application_id,
            )
            return PaymentDecision(PaymentOutcome.PAID, book.put(paid), new_state, [event], order=paid)
    # Superseded, closed, or the application no longer takes a payment: the money goes back.
    refund = Refund(
        out_refund_no=paid.next_refund_number(),
        amount_fen=payment.total_fen,
        kind=RefundKind.STALE_PAYMENT,
        status=RefundStatus.REQUESTED,
        requested_at=now,
        reason=STALE_REFUND_REASON,
    )
    refunding = replace(paid, refunds=(*paid.refunds, refund))
    return PaymentDecision(PaymentOutcome.STALE, book.put(refunding), refund=refund, order=refunding)


# --- refunds -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RefundDecision:
    book: OrderBook
    order: Order
    refund: Refund  # to ask WeChat for (status REQUESTED), or the one already in flight
    repeated: bool = False  # nothing new: the refund was already requested


def _withdrawn(book: OrderBook, order: Order, state: str) -> State | None:
    """A refund of all of the application's payment withdraws the application (it leaves every queue)."""
    if not book.is_current(order) or order.payment is None or order.refundable_fen > 0:
        return None
    try:
        return transition(state, Action.REFUND)
    except IllegalTransition:
        return None


def decide_refund(
    book: OrderBook,
    *,
    out_trade_no: str | None,
    amount_fen: int | None,
    reason: str,
    operator_id: str,
    now: datetime,
) -> RefundDecision:
    """An operator refunds a paid order (the current one unless named), all of what is left unless
    `amount_fen`. Recorded before WeChat is asked; `refund_accepted` withdraws the application once
    WeChat takes a refund that leaves nothing of its payment."""
    order = book.find(out_trade_no) if out_trade_no else book.paid_order
    if order is None or order.payment is None:
        raise DomainError("no_paid_order")
    left = order.refundable_fen
    if left <= 0:
        raise DomainError("nothing_to_refund", out_trade_no=order.out_trade_no)
    amount = left if amount_fen is None else amount_fen
    if not 0 < amount <= left:
        raise DomainError("refund_amount_invalid", refundable_fen=left)
    refund = Refund(
        out_refund_no=order.next_refund_number(),
        amount_fen=amount,
        kind=RefundKind.OPERATOR,
        status=RefundStatus.REQUESTED,
        requested_at=now,
        reason=reason,
        operator_id=operator_id,
    )
    updated = replace(order, refunds=(*order.refunds, refund))
    return RefundDecision(book.put(updated), updated, refund)


def retry_refund(book: OrderBook, out_trade_no: str, *, operator_id: str, now: datetime) -> RefundDecision:
    """The console's "refund" on a paid stale order: the refund still waiting for WeChat is asked again
    under its own number (WeChat refunds a number once), one in flight or done is answered as it is,
    and only when every earlier one failed finally is a new one made, for the amount and reason of the
    last failed one (a partial refund stays partial). A double click refunds once."""
    order = book.find(out_trade_no)
    if order is None or order.payment is None:
        raise DomainError("no_paid_order")
    waiting = next(
        (r for r in order.refunds if r.status is not RefundStatus.SUCCESS and r.status in LIVE_REFUND), None
    )
    if waiting is not None:
        return RefundDecision(book, order, waiting, repeated=waiting.status is RefundStatus.PROCESSING)
    if order.refundable_fen <= 0:
        done = next(r for r in reversed(order.refunds) if r.status is RefundStatus.SUCCESS)
        return RefundDecision(book, order, done, repeated=True)
    # Asked again for what failed (an operator's partial refund stays partial), never more than is left.
    failed = next((r for r in reversed(order.refunds) if r.status in FINAL_REFUND - LIVE_REFUND), None)
    refund = Refund(
        out_refund_no=order.next_refund_number(),
        amount_fen=min(failed.amount_fen, order.refundable_fen) if failed else order.refundable_fen,
        kind=RefundKind.STALE_PAYMENT if not book.is_current(order) else RefundKind.OPERATOR,
        status=RefundStatus.REQUESTED,
        requested_at=now,
        reason=failed.reason if failed and failed.reason else STALE_REFUND_REASON,
        operator_id=operator_id,
    )
    updated = replace(order, refunds=(*order.refunds, refund))
    return RefundDecision(book.put(updated), updated, refund)


@dataclass(frozen=True)
class RefundOutcome:
    book: OrderBook
    outcome: str  # refund_<status>, "duplicate", "unknown_order"
    state: State | None = None


def _order_status(order: Order) -> OrderStatus:
    if order.payment is None:
        return order.status
    refunded = order.refunded_fen
    if refunded >= order.payment.total_fen:
        return OrderStatus.REFUNDED
    return OrderStatus.PARTIALLY_REFUNDED if refunded > 0 else OrderStatus.PAID


def apply_refund_result(book: OrderBook, result: RefundResult, *, state: str, now: datetime) -> RefundOutcome:
    """WeChat's answer or notification about a refund. A final status is never overwritten by a later
    PROCESSING (notifications come out of order); a refund we never asked for is recorded as external,
    so the order's refunded amount stays true. Partial refunds leave the order partially refunded."""
    order = book.find(result.out_trade_no)
    if order is None:
        return RefundOutcome(book, "unknown_order")
    existing = order.refund(result.out_refund_no)
    if existing is None:
        if result.amount_fen is None or result.amount_fen < 1:
            return RefundOutcome(book, "malformed")
        existing = Refund(
            out_refund_no=result.out_refund_no,
            amount_fen=result.amount_fen,
            kind=RefundKind.EXTERNAL,
            status=RefundStatus.PROCESSING,
            requested_at=now,
        )
        order = replace(order, refunds=(*order.refunds, existing))
    elif existing.status in FINAL_REFUND or existing.status == result.status:
        return RefundOutcome(book, "duplicate")
    if result.status is RefundStatus.REQUESTED:
        return RefundOutcome(book, "duplicate")
    settled = replace(
        existing,
        status=result.status,
        refund_id=result.refund_id or existing.refund_id,
        completed_at=now if result.status in FINAL_REFUND else existing.completed_at,
    )
    order = replace(
        order,
        refunds=tuple(settled if r.out_refund_no == settled.out_refund_no else r for r in order.refunds),
    )
    order = replace(order, status=_order_status(order))
    book = book.put(order)
    return RefundOutcome(book, f"refund_{result.status}", _withdrawn(book, order, state))


def refund_accepted(
    book: OrderBook, out_trade_no: str, out_refund_no: str, answer: Mapping[str, Any], *, state: str
) -> RefundOutcome:
    """WeChat accepted a refund request (its answer's status is usually PROCESSING). From here the money
    is on its way back: a refund of all of the application's payment withdraws the application."""
    order = book.find(out_trade_no)
    refund = order.refund(out_refund_no) if order is not None else None
    raw = _text(answer.get("status")).lower() or RefundStatus.PROCESSING
    if (
        order is None
        or refund is None
        or refund.status is not RefundStatus.REQUESTED
        or raw not in set(RefundStatus)
    ):
        return RefundOutcome(book, "duplicate")
    status = RefundStatus(raw)
    accepted = replace(
        refund,
        status=status,
        refund_id=_text(answer.get("refund_id")) or refund.refund_id,
        completed_at=refund.requested_at if status in FINAL_REFUND else None,
    )
    order = replace(
        order, refunds=tuple(accepted if r.out_refund_no == out_refund_no else r for r in order.refunds)
    )
    order = replace(order, status=_order_status(order))
    book = book.put(order)
    return RefundOutcome(book, f"refund_{status}", _withdrawn(book, order, state))


def refund_refused(book: OrderBook, out_trade_no: str, out_refund_no: str, now: datetime) -> OrderBook:
    """WeChat refused the refund for good (not a transient error): it is closed, nothing went back."""
    order = book.find(out_trade_no)
    refund = order.refund(out_refund_no) if order is not None else None
    if order is None or refund is None or refund.status is not RefundStatus.REQUESTED:
        return book
    closed = replace(refund, status=RefundStatus.CLOSED, completed_at=now)
    return book.put(
        replace(
            order, refunds=tuple(closed if r.out_refund_no == out_refund_no else r for r in order.refunds)
        )
    )


def order_amount(fee_fen: int, onsite_extra_fen: int, onsite_attendee: bool) -> int:
    """The school's fee, plus its extra manual-review fee for an on-site attendee it lets collect (seed 2)."""
    return fee_fen + (onsite_extra_fen if onsite_attendee else 0)


# --- reconciliation ------------------------------------------------------------------------------


class Reconcile(StrEnum):
    APPLY_PAYMENT = "apply_payment"  # WeChat says paid: decide_payment
    CLOSE = "close"  # unpaid and no longer wanted (expired, or not the current order): close at WeChat
    MARK_CLOSED = "mark_closed"  # WeChat holds it closed, or never had it and it has expired
    WAIT = "wait"


def reconcile_order(
    book: OrderBook, order: Order, transaction: Transaction | None, *, now: datetime
) -> Reconcile:
    """What an open order needs, from WeChat's answer to a query (None: WeChat does not know it)."""
    if not order.open:
        return Reconcile.WAIT
    expired = order.expires_at <= now
    wanted = book.is_current(order) and not expired
    if transaction is None:
        stale_creating = order.status is OrderStatus.CREATING and now - order.created_at >= CREATING_PATIENCE
        failed = order.status is OrderStatus.FAILED
        return Reconcile.MARK_CLOSED if (not wanted or stale_creating or failed) else Reconcile.WAIT
    if transaction.paid:
        return Reconcile.APPLY_PAYMENT
    if transaction.trade_state in ("CLOSED", "REVOKED", "PAYERROR"):
        return Reconcile.MARK_CLOSED
    return Reconcile.CLOSE if not wanted else Reconcile.WAIT


# --- the document form ---------------------------------------------------------------------------


def order_to_doc(order: Order) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "order_id": order.order_id,
        "out_trade_no": order.out_trade_no,
        "amount_fen": order.amount_fen,
        "status": str(order.status),
        "created_at": order.created_at,
        "expires_at": order.expires_at,
        "created_by": order.created_by,
        "prepay_id": order.prepay_id,
        "refunds": [_refund_to_doc(r) for r in order.refunds],
        "closed_at": order.closed_at,
        "close_reason": str(order.close_reason) if order.close_reason else None,
    }
    if order.payment is not None:
        p = order.payment
        # Flat, as the status page, notify and erasure have always read them.
        doc.update(
            transaction_id=p.transaction_id,
            paid_total_fen=p.total_fen,
            paid_at=p.paid_at,
            payer_openid=p.payer_openid,
            paid_via=p.via,
        )
    return doc


def order_from_doc(doc: Mapping[str, Any]) -> Order:
    payment = None
    if doc.get("transaction_id") is not None or doc.get("paid_at") is not None:
        payment = Payment(
            transaction_id=str(doc.get("transaction_id") or ""),
            total_fen=int(doc.get("paid_total_fen") or doc["amount_fen"]),
            paid_at=_time(doc.get("paid_at")) or _epoch(),
            payer_openid=str(doc.get("payer_openid") or ""),
            via=str(doc.get("paid_via") or "notification"),
        )
    refunds = [_refund_from_doc(r) for r in doc.get("refunds") or [] if isinstance(r, Mapping)]
    legacy = doc.get("refund")  # before the ledger: one refund, its status in lower case
    if isinstance(legacy, Mapping) and legacy.get("out_refund_no") and not refunds:
        refunds.append(_refund_from_doc({**legacy, "kind": RefundKind.OPERATOR}))
    status = OrderStatus(doc.get("status") or OrderStatus.CREATING)
    order = Order(
        order_id=str(doc.get("order_id") or derived_id("order", str(doc["out_trade_no"]))),
        out_trade_no=str(doc["out_trade_no"]),
        amount_fen=int(doc["amount_fen"]),
        status=status,
        created_at=_time(doc.get("created_at")) or _epoch(),
        expires_at=_time(doc.get("expires_at")) or _epoch(),
        created_by=doc.get("created_by"),
        prepay_id=doc.get("prepay_id"),
        payment=payment,
        refunds=tuple(refunds),
        closed_at=_time(doc.get("closed_at")),
        close_reason=CloseReason(doc["close_reason"]) if doc.get("close_reason") else None,
    )
    return replace(order, status=_order_status(order)) if payment is not None else order


def _refund_to_doc(refund: Refund) -> dict[str, Any]:
    return {
        "out_refund_no": refund.out_refund_no,
        "amount_fen": refund.amount_fen,
        "kind": str(refund.kind),
        "status": str(refund.status),
        "requested_at": refund.requested_at,
        "reason": refund.reason,
        "operator_id": refund.operator_id,
        "refund_id": refund.refund_id,
        "completed_at": refund.completed_at,
    }


def _refund_from_doc(doc: Mapping[str, Any]) -> Refund:
    status = str(doc.get("status") or RefundStatus.REQUESTED).lower()
    return Refund(
        out_refund_no=str(doc["out_refund_no"]),
        amount_fen=int(doc.get("amount_fen") or 0),
        kind=RefundKind(doc.get("kind") or RefundKind.OPERATOR),
        status=RefundStatus(status) if status in set(RefundStatus) else RefundStatus.PROCESSING,
        requested_at=_time(doc.get("requested_at")) or _epoch(),
        reason=str(doc.get("reason") or ""),
        operator_id=doc.get("operator_id"),
        refund_id=doc.get("refund_id"),
        completed_at=_time(doc.get("completed_at")),
    )


def _text(value: Any, limit: int = 64) -> str:
    return value[:limit] if isinstance(value, str) else ""


def _time(value: Any) -> datetime | None:
    """A stored or WeChat time as an aware datetime (nx-27017 may hand back naive ISO text for UTC)."""
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, str) and value:
        with contextlib.suppress(ValueError):
            parsed = datetime.fromisoformat(value)
            return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return None


def _epoch() -> datetime:
    return datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class RefundNotice:
    """What the student's status page says about money going back."""

    out_trade_no: str
    amount_fen: int
    kind: RefundKind
    status: RefundStatus
    requested_at: datetime
    completed_at: datetime | None = None


def refund_notices(book: OrderBook) -> list[RefundNotice]:
    return [
        RefundNotice(o.out_trade_no, r.amount_fen, r.kind, r.status, r.requested_at, r.completed_at)
        for o in book.orders
        for r in o.refunds
    ]
