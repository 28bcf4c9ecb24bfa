"""Orders and WeChat Pay (seed step 6): paying, the notification, reconciliation, refunds.

The order lives in its application document, so "paid" and `order.paid.v1` are one atomic write.
The notification and the reconciliation task both end in `apply_payment`, which is idempotent and
checks the amount against the order; anything that does not fit is kept in
`payment_anomalies` for an operator instead of being applied.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from datetime import datetime, timedelta
from typing import Any

from services.gateway.applications import Action, IllegalTransition, State, transition
from services.gateway.store import Applications, Change
from shared.db import Database, Document
from shared.events import OrderPaid, make_event, utcnow
from shared.logging import get_logger
from shared.wechat.errors import WeChatPayError
from shared.wechat.pay import WeChatPayClient

log = get_logger(__name__)


def new_out_trade_no(now: datetime) -> str:
    """WeChat Pay allows 6-32 characters of [A-Za-z0-9_-*|]; ours sort by date and never repeat."""
    return f"GP{now:%Y%m%d%H%M%S}{secrets.token_hex(8)}"


def parse_time(value: str | None) -> datetime | None:
    if not value:
        return None
    with contextlib.suppress(ValueError):
        return datetime.fromisoformat(value)
    return None


async def record_anomaly(
    database: Database, kind: str, out_trade_no: str | None, details: dict[str, Any]
) -> None:
    log.error("payment anomaly", kind=kind, out_trade_no=out_trade_no)
    await database.db["payment_anomalies"].insert_one(
        {"kind": kind, "out_trade_no": out_trade_no, "details": details, "at": utcnow(), "resolved": False}
    )


async def apply_payment(
    database: Database, applications: Applications, transaction: dict[str, Any], *, source: str
) -> str:
    """Mark the order paid from a verified WeChat Pay transaction; returns what happened."""
    out_trade_no = str(transaction.get("out_trade_no", ""))
    if transaction.get("trade_state") != "SUCCESS":
        return "not_success"
    application = await database.db["applications"].find_one({"order.out_trade_no": out_trade_no}, {"_id": 1})
    if application is None:
        await record_anomaly(database, "unknown_order", out_trade_no, {"source": source})
        return "unknown_order"
    paid_total = int((transaction.get("amount") or {}).get("total", -1))
    outcome = "paid"

    def decide(current: Document) -> Change:
        nonlocal outcome
        order = dict(current["order"])
        if order["out_trade_no"] != out_trade_no:
            outcome = "superseded_order"
            return Change()
        if order["status"] == "paid":
            outcome = "already_paid"
            return Change()
        if paid_total != order["amount_fen"]:
            outcome = "amount_mismatch"
            return Change()
        try:
            state = transition(current["state"], Action.PAY)
        except IllegalTransition:
            outcome = "not_payable"
            return Change()
        paid_at = parse_time(transaction.get("success_time")) or utcnow()
        payer = str((transaction.get("payer") or {}).get("openid", ""))
        order.update(
            status="paid",
            transaction_id=transaction.get("transaction_id"),
            paid_at=paid_at,
            payer_openid=payer,
            paid_via=source,
        )
        event = make_event(
            OrderPaid(
                order_id=order["order_id"],
                student_id=current.get("student_id") or "",
                amount_fen=order["amount_fen"],
                transaction_id=str(transaction.get("transaction_id", "")),
                payer_openid=payer,
                paid_at=paid_at,
            ),
            application_id=current["_id"],
        )
        return Change(set={"order": order, "state": state}, events=[event])

    await applications.mutate(application["_id"], decide)
    if outcome in ("amount_mismatch", "superseded_order", "not_payable"):
        await record_anomaly(
            database,
            outcome,
            out_trade_no,
            {"source": source, "total": paid_total, "application": application["_id"]},
        )
    log.info("payment applied", outcome=outcome, source=source, application_id=application["_id"])
    return outcome


async def reconcile_once(
    database: Database, applications: Applications, pay: WeChatPayClient, *, older_than: timedelta
) -> dict[str, int]:
    """Ask WeChat Pay about every pending order whose notification has not come; apply what it says."""
    counts: dict[str, int] = {}
    cutoff = utcnow() - older_than
    # Pending orders are few; their age is checked here rather than in the filter, because nx-27017's
    # find() does not reliably compare a datetime inside a sub-document (docs/architecture.md).
    cursor = database.db["applications"].find({"order.status": "pending"}, {"order": 1})
    async for doc in cursor:
        if doc["order"]["created_at"] >= cutoff:
            continue
        out_trade_no = doc["order"]["out_trade_no"]
        try:
            transaction = await pay.query_order(out_trade_no)
        except WeChatPayError as exc:
            outcome = "query_failed" if exc.code != "ORDER_NOT_EXIST" else "not_exist"
            counts[outcome] = counts.get(outcome, 0) + 1
            continue
        state = transaction.get("trade_state")
        if state == "SUCCESS":
            outcome = await apply_payment(database, applications, transaction, source="reconciliation")
        elif state in ("CLOSED", "PAYERROR", "REVOKED") or (
            state == "NOTPAY" and (doc["order"].get("expires_at") or cutoff) < utcnow()
        ):
            if state == "NOTPAY":
                with contextlib.suppress(WeChatPayError):
                    await pay.close_order(out_trade_no)
            outcome = await _close(applications, doc["_id"], out_trade_no)
        else:
            outcome = "still_pending"
        counts[outcome] = counts.get(outcome, 0) + 1
    if counts:
        log.info("reconciliation pass", **counts)
    return counts


async def _close(applications: Applications, application_id: str, out_trade_no: str) -> str:
    def decide(current: Document) -> Change:
        order = dict(current.get("order") or {})
        if order.get("out_trade_no") != out_trade_no or order.get("status") != "pending":
            return Change()
        order["status"] = "closed"
        return Change(set={"order": order})

    await applications.mutate(application_id, decide)
    return "closed"


async def reconciliation_loop(
    database: Database, applications: Applications, pay: WeChatPayClient, *, interval_s: float, after_s: float
) -> None:
    while True:
        await asyncio.sleep(interval_s)
        try:
            await reconcile_once(database, applications, pay, older_than=timedelta(seconds=after_s))
        except Exception as exc:  # the next pass tries again; never let the task die
            log.warning("reconciliation pass failed", error=repr(exc)[:300])


async def refund(
    applications: Applications,
    pay: WeChatPayClient,
    application_id: str,
    *,
    reason: str,
    operator_id: str,
    amount_fen: int | None = None,
) -> Document:
    """An operator's refund of a paid order (all of it unless `amount_fen`); used by the console."""
    application = await applications.get(application_id)
    if application is None or (application.get("order") or {}).get("status") != "paid":
        raise ValueError("no paid order to refund")
    order = application["order"]
    refund_fen = order["amount_fen"] if amount_fen is None else amount_fen
    if not 0 < refund_fen <= order["amount_fen"]:
        raise ValueError("refund amount out of range")
    out_refund_no = order.get("refund", {}).get("out_refund_no") or f"RF{order['out_trade_no'][2:]}"
    result = await pay.refund(
        order["out_trade_no"], out_refund_no, refund_fen, order["amount_fen"], reason=reason
    )

    def decide(current: Document) -> Change:
        updated = dict(current["order"])
        updated["refund"] = {
            "out_refund_no": out_refund_no,
            "amount_fen": refund_fen,
            "status": str(result.get("status", "PROCESSING")).lower(),
            "reason": reason,
            "operator_id": operator_id,
            "requested_at": utcnow(),
        }
        return Change(set={"order": updated})

    log.info(
        "refund requested", application_id=application_id, operator_id=operator_id, amount_fen=refund_fen
    )
    return await applications.mutate(application_id, decide)


async def apply_refund_notification(
    applications: Applications, database: Database, resource: dict[str, Any]
) -> str:
    out_trade_no = str(resource.get("out_trade_no", ""))
    doc = await database.db["applications"].find_one({"order.out_trade_no": out_trade_no}, {"_id": 1})
    if doc is None:
        await record_anomaly(database, "unknown_refund", out_trade_no, {})
        return "unknown_order"
    status = str(resource.get("refund_status", "")).lower()

    def decide(current: Document) -> Change:
        order = dict(current["order"])
        refund_doc = dict(order.get("refund") or {"out_refund_no": resource.get("out_refund_no")})
        refund_doc["status"] = status
        refund_doc["completed_at"] = utcnow()
        order["refund"] = refund_doc
        if status == "success":
            order["status"] = "refunded"
        return Change(set={"order": order})

    await applications.mutate(doc["_id"], decide)
    return f"refund_{status}"


def order_amount(fee_fen: int, onsite_extra_fen: int, onsite_attendee: bool) -> int:
    return fee_fen + (onsite_extra_fen if onsite_attendee else 0)


def paid_states() -> set[str]:
    return {
        str(s)
        for s in State
        if s not in (State.CODE_SUBMITTED, State.CODE_REJECTED, State.CODE_VERIFIED, State.CONFIRMED)
    }
