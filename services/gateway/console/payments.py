"""Payments in the console (admin and support only): payment anomalies with the action each needs,
refunds issued and their state, a daily reconciliation summary (JSON and CSV), and refunds.

Support staff see their schools' payments; an anomaly no application can be found for (an unknown
order, a notification for another merchant) is an admin's. Every call is audited, views included;
every action is idempotent: a refund clicked twice refunds once (the decision answers the refund
already in flight), and an `Idempotency-Key` header replays the first answer.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any, Literal

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from services.gateway.api.common import idempotency_key
from services.gateway.console.auth import CONSOLE, roles
from services.gateway.console.cases import PREFIX, scoped_application
from services.gateway.console.exports import csv_bytes
from services.gateway.console.operators import Operator, Role
from services.gateway.context import APPLICATIONS, DATABASE, PAY
from services.gateway.domain.errors import DomainError
from services.gateway.domain.orders import OrderBook, Refund, RefundKind, RefundStatus
from services.gateway.http.errors import ApiError, json_response
from services.gateway.http.registry import Api
from services.gateway.payments import Payments
from services.gateway.request_keys import Answer, RequestKeys, fingerprint
from shared.db import Document
from shared.events import utcnow
from shared.logging import get_logger

log = get_logger(__name__)
api = Api()
PAYERS = (Role.ADMIN, Role.SUPPORT)
PAYMENTS = f"{PREFIX}/payments"
# Business days are China's: a payment at 23:30 UTC belongs to the next day in Beijing.
CHINA = timezone(timedelta(hours=8), "Asia/Shanghai")
MAX_DAYS = 366

Action = Literal["refund", "investigate", "wait", "none"]
# What an anomaly needs of an operator, by kind (a stale-order payment: see `_refund_action`).
ACTIONS: dict[str, Action] = {
    "amount_mismatch": "investigate",
    "unknown_order": "investigate",
    "unknown_refund": "investigate",
    "appid_mismatch": "investigate",
    "mchid_mismatch": "investigate",
    "refund_abnormal": "refund",
    "refund_closed": "refund",
}


class RefundRecord(BaseModel):
    application_id: str
    school_code: str | None
    out_trade_no: str
    out_refund_no: str
    amount_fen: int
    kind: RefundKind
    status: RefundStatus
    reason: str
    operator_id: str | None
    requested_at: datetime
    completed_at: datetime | None


class AnomalyView(BaseModel):
    anomaly_id: str
    kind: str
    out_trade_no: str | None
    application_id: str | None
    school_code: str | None
    at: datetime
    action: Action = Field(description="what it needs: refund (again), investigate, wait for WeChat, none")
    resolved: bool
    resolution: dict[str, Any] | None = None
    details: dict[str, Any]
    refunds: list[RefundRecord] = Field(default_factory=list, description="the refunds of its order")


class AnomalyList(BaseModel):
    anomalies: list[AnomalyView]


class RefundList(BaseModel):
    refunds: list[RefundRecord]


class DaySummary(BaseModel):
    day: date = Field(description="the business day in China (UTC+8)")
    orders: int = Field(description="orders issued")
    paid: int = Field(description="payments received")
    paid_fen: int
    refunded: int = Field(description="refunds completed")
    refunded_fen: int
    net_fen: int = Field(description="paid less refunded")


class Reconciliation(BaseModel):
    since: date
    until: date
    days: list[DaySummary]
    total: DaySummary


class RefundRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str = Field(min_length=2, max_length=80, description="shown to the payer by WeChat Pay")
    amount_fen: int | None = Field(default=None, gt=0, description="all that is left when absent")
    out_trade_no: str | None = Field(
        default=None, max_length=32, description="the current paid order when absent"
    )


class RefundResponse(BaseModel):
    application_id: str
    refund: RefundRecord
    repeated: bool = Field(default=False, description="nothing new: the refund was already asked for")


class ResolveRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    note: str = Field(min_length=2, max_length=500)


def _refund_record(application: Document, out_trade_no: str, refund: Refund) -> RefundRecord:
    return RefundRecord(
        application_id=application["_id"],
        school_code=application.get("school_code"),
        out_trade_no=out_trade_no,
        out_refund_no=refund.out_refund_no,
        amount_fen=refund.amount_fen,
        kind=refund.kind,
        status=refund.status,
        reason=refund.reason,
        operator_id=refund.operator_id,
        requested_at=refund.requested_at,
        completed_at=refund.completed_at,
    )


def _payments(request: web.Request) -> Payments:
    return Payments(request.app[DATABASE], request.app[APPLICATIONS], request.app[PAY])


def _sees(who: Operator, anomaly: Document) -> bool:
    return who.all_schools or (
        anomaly.get("school_code") is not None and who.sees(anomaly.get("school_code"))
    )


def _refund_action(refunds: list[RefundRecord], resolved: bool) -> Action:
    """A paid stale order: refund it while no refund is on its way, wait while one is, else nothing."""
    if resolved:
        return "none"
    if any(r.status is RefundStatus.SUCCESS for r in refunds) and not any(
        r.status in (RefundStatus.REQUESTED, RefundStatus.PROCESSING) for r in refunds
    ):
        return "none"
    if any(r.status is RefundStatus.PROCESSING for r in refunds):
        return "wait"
    return "refund"


async def _anomaly_view(request: web.Request, anomaly: Document) -> AnomalyView:
    refunds: list[RefundRecord] = []
    application_id = anomaly.get("application_id")
    out_trade_no = anomaly.get("out_trade_no")
    if application_id and out_trade_no:
        application = await request.app[APPLICATIONS].get(application_id)
        order = OrderBook.from_document(application).find(out_trade_no) if application else None
        if application is not None and order is not None:
            refunds = [_refund_record(application, order.out_trade_no, r) for r in order.refunds]
    resolved = bool(anomaly.get("resolved"))
    kind = str(anomaly["kind"])
    if kind == "stale_order_paid" or (ACTIONS.get(kind) == "refund" and refunds):
        action: Action = _refund_action(refunds, resolved)
    else:
        action = "none" if resolved else ACTIONS.get(kind, "investigate")
    return AnomalyView(
        anomaly_id=str(anomaly["_id"]),
        kind=kind,
        out_trade_no=out_trade_no,
        application_id=application_id,
        school_code=anomaly.get("school_code"),
        at=anomaly["at"],
        action=action,
        resolved=resolved,
        resolution=anomaly.get("resolution"),
        details=dict(anomaly.get("details") or {}),
        refunds=refunds,
    )


async def _replayed(
    request: web.Request, who: Operator, body: BaseModel | None = None
) -> tuple[RequestKeys, Any] | web.Response:
    """An action's Idempotency-Key: the first answer when it was used already, else the claim."""
    keys = RequestKeys(request.app[DATABASE])
    key = idempotency_key(request)
    if key is None:
        return keys, None
    # The registry has read and parsed a declared body: the request is fingerprinted by what it says.
    raw = body.model_dump_json().encode() if body is not None else b""
    got = await keys.begin(f"console:{who.operator_id}", key, fingerprint(request.method, request.path, raw))
    if isinstance(got, Answer):
        return json_response(got.body, status=got.status)
    return keys, got


async def _answered(keys: RequestKeys, claim: Any, body: dict[str, Any], status: int = 200) -> web.Response:
    if claim is not None:
        await keys.finish(claim, Answer(status, body))
    return json_response(body, status=status)


@asynccontextmanager
async def _refusal_audited(
    request: web.Request, who: Operator, keys: RequestKeys, claim: Any, action: str, target: dict[str, Any]
) -> AsyncIterator[None]:
    """A refund refused by the domain: the key's claim released (the same key may try again), the refusal
    audited, the DomainError re-raised for the error middleware (http/statuses.py)."""
    try:
        yield
    except DomainError as exc:
        if claim is not None:
            await keys.release(claim)
        await request.app[CONSOLE].audit.record(
            request, who, action, outcome="refused", error=exc.code, **target
        )
        raise


# --- anomalies -----------------------------------------------------------------------------------


@api.route(
    "GET",
    f"{PAYMENTS}/anomalies",
    summary="Payment anomalies with the action each needs (refund a stale-order payment, investigate a wrong amount)",
    response=AnomalyList,
    query={
        "state": {"type": "string", "enum": ["open", "resolved", "all"]},
        "limit": {"type": "integer", "minimum": 1, "maximum": 500},
    },
    errors=("forbidden", "invalid_request"),
    auth=roles(*PAYERS),
)
async def list_anomalies(request: web.Request, *, who: Operator) -> web.Response:
    state = request.query.get("state", "open")
    limit = _limit(request)
    if state not in ("open", "resolved", "all"):
        raise ApiError(400, "invalid_request", fields=[{"field": "state", "error": "open, resolved or all"}])
    query: dict[str, Any] = {} if who.all_schools else who.school_filter()
    if state != "all":
        query["resolved"] = state == "resolved"
    cursor = request.app[DATABASE].db["payment_anomalies"].find(query).sort("at", -1).limit(limit)
    views = [await _anomaly_view(request, a) async for a in cursor]
    await request.app[CONSOLE].audit.record(
        request, who, "payments.anomalies_view", state=state, results=len(views)
    )
    return json_response(AnomalyList(anomalies=views).model_dump(mode="json"))


async def _anomaly(request: web.Request, who: Operator) -> Document:
    anomaly_id = request.match_info["anomaly_id"]
    found = (
        await request.app[DATABASE].db["payment_anomalies"].find_one({"_id": anomaly_id})
        if len(anomaly_id) <= 200
        else None
    )
    if found is None or not _sees(who, found):
        raise ApiError(404, "not_found")
    return found


@api.route(
    "POST",
    f"{PAYMENTS}/anomalies/{{anomaly_id}}/refund",
    summary="Refund the payment of a stale order (once: a repeat answers the refund already asked for)",
    response=AnomalyView,
    errors=(
        "forbidden",
        "csrf_failed",
        "not_found",
        "anomaly_not_refundable",
        "refund_failed",
        "idempotency_key_reused",
        "busy",
    ),
    auth=roles(*PAYERS),
)
async def refund_anomaly(request: web.Request, *, who: Operator) -> web.Response:
    anomaly = await _anomaly(request, who)
    replay = await _replayed(request, who)
    if isinstance(replay, web.Response):
        return replay
    keys, claim = replay
    audit = request.app[CONSOLE].audit
    target = {
        "anomaly_id": anomaly["_id"],
        "application_id": anomaly.get("application_id"),
        "school_code": anomaly.get("school_code"),
        "out_trade_no": anomaly.get("out_trade_no"),
    }
    async with _refusal_audited(request, who, keys, claim, "payment.refund", target):
        if anomaly["kind"] not in ("stale_order_paid", "refund_abnormal", "refund_closed") or not anomaly.get(
            "application_id"
        ):
            raise DomainError("anomaly_not_refundable", kind=anomaly["kind"])
        _, refund, repeated = await _payments(request).retry_refund(
            anomaly["application_id"], anomaly["out_trade_no"], operator_id=who.operator_id
        )
    await audit.record(
        request,
        who,
        "payment.refund",
        out_refund_no=refund.out_refund_no,
        repeated=repeated,
        status=str(refund.status),
        **target,
    )
    view = await _anomaly_view(request, anomaly)
    return await _answered(keys, claim, view.model_dump(mode="json"))


@api.route(
    "POST",
    f"{PAYMENTS}/anomalies/{{anomaly_id}}/resolve",
    summary="Mark an anomaly investigated, with a note (a repeat keeps the first resolution)",
    body=ResolveRequest,
    response=AnomalyView,
    errors=("forbidden", "csrf_failed", "not_found"),
    auth=roles(*PAYERS),
)
async def resolve_anomaly(request: web.Request, *, who: Operator, body: ResolveRequest) -> web.Response:
    anomaly = await _anomaly(request, who)
    collection = request.app[DATABASE].db["payment_anomalies"]
    resolution = {"note": body.note, "operator_id": who.operator_id, "at": utcnow()}
    written = await collection.update_one(
        {"_id": anomaly["_id"], "resolved": False}, {"$set": {"resolved": True, "resolution": resolution}}
    )
    await request.app[CONSOLE].audit.record(
        request,
        who,
        "payment.anomaly_resolve",
        anomaly_id=anomaly["_id"],
        application_id=anomaly.get("application_id"),
        school_code=anomaly.get("school_code"),
        repeated=written.modified_count == 0,
    )
    fresh = await collection.find_one({"_id": anomaly["_id"]})
    assert fresh is not None
    return json_response((await _anomaly_view(request, fresh)).model_dump(mode="json"))


# --- refunds -------------------------------------------------------------------------------------


async def _ledgers(request: web.Request, who: Operator, extra: dict[str, Any]) -> list[Document]:
    """The operator's schools' applications that ever had an order, with their ledgers."""
    query = {**extra, **who.school_filter()}
    projection = {"orders": 1, "order": 1, "school_code": 1}
    return [d async for d in request.app[APPLICATIONS].collection.find(query, projection)]


@api.route(
    "GET",
    f"{PAYMENTS}/refunds",
    summary="Refunds issued (automatic and by operators) and their state, newest first",
    response=RefundList,
    query={
        "status": {"type": "string", "enum": [str(s) for s in RefundStatus]},
        "limit": {"type": "integer", "minimum": 1, "maximum": 500},
    },
    errors=("forbidden", "invalid_request"),
    auth=roles(*PAYERS),
)
async def list_refunds(request: web.Request, *, who: Operator) -> web.Response:
    wanted = request.query.get("status")
    if wanted is not None and wanted not in set(RefundStatus):
        raise ApiError(400, "invalid_request", fields=[{"field": "status", "error": "a refund status"}])
    limit = _limit(request)
    records = [
        _refund_record(doc, order.out_trade_no, refund)
        for doc in await _ledgers(request, who, {"refunds_total": {"$gt": 0}})
        for order in OrderBook.from_document(doc).orders
        for refund in order.refunds
        if wanted is None or refund.status == wanted
    ]
    records.sort(key=lambda r: r.requested_at, reverse=True)
    await request.app[CONSOLE].audit.record(
        request, who, "payments.refunds_view", status=wanted, results=len(records)
    )
    return json_response(RefundList(refunds=records[:limit]).model_dump(mode="json"))


@api.route(
    "POST",
    f"{PREFIX}/applications/{{application_id}}/refund",
    summary="Refund a paid order of the application through WeChat Pay (all that is left unless amount_fen)",
    body=RefundRequest,
    response=RefundResponse,
    errors=(
        "forbidden",
        "csrf_failed",
        "not_found",
        "no_paid_order",
        "nothing_to_refund",
        "refund_amount_invalid",
        "refund_failed",
        "idempotency_key_reused",
        "busy",
    ),
    auth=roles(*PAYERS),
)
async def refund_order(request: web.Request, *, who: Operator, body: RefundRequest) -> web.Response:
    application = await scoped_application(request, who, request.match_info["application_id"])
    replay = await _replayed(request, who, body)
    if isinstance(replay, web.Response):
        return replay
    keys, claim = replay
    audit = request.app[CONSOLE].audit
    target = {"application_id": application["_id"], "school_code": application.get("school_code")}
    async with _refusal_audited(request, who, keys, claim, "order.refund", target):
        written, out_trade_no, refund = await _payments(request).refund(
            application["_id"],
            reason=body.reason,
            operator_id=who.operator_id,
            amount_fen=body.amount_fen,
            out_trade_no=body.out_trade_no,
        )
    await audit.record(
        request,
        who,
        "order.refund",
        amount_fen=refund.amount_fen,
        reason=body.reason,
        out_refund_no=refund.out_refund_no,
        status=str(refund.status),
        **target,
    )
    reply = RefundResponse(
        application_id=written["_id"], refund=_refund_record(written, out_trade_no, refund)
    )
    return await _answered(keys, claim, reply.model_dump(mode="json"))


# --- reconciliation ------------------------------------------------------------------------------


def _day(value: datetime) -> date:
    at = value if value.tzinfo else value.replace(tzinfo=UTC)
    return at.astimezone(CHINA).date()


def summarise(ledgers: Iterable[Document], since: date, until: date) -> Reconciliation:
    """Per business day: orders issued, payments received, refunds completed, and the net."""
    days = {
        since + timedelta(days=n): DaySummary(
            day=since + timedelta(days=n), orders=0, paid=0, paid_fen=0, refunded=0, refunded_fen=0, net_fen=0
        )
        for n in range((until - since).days + 1)
    }
    for doc in ledgers:
        for order in OrderBook.from_document(doc).orders:
            if (d := days.get(_day(order.created_at))) is not None:
                d.orders += 1
            if order.payment is not None and (d := days.get(_day(order.payment.paid_at))) is not None:
                d.paid += 1
                d.paid_fen += order.payment.total_fen
            for refund in order.refunds:
                done = refund.completed_at or refund.requested_at
                if refund.status is RefundStatus.SUCCESS and (d := days.get(_day(done))) is not None:
                    d.refunded += 1
                    d.refunded_fen += refund.amount_fen
    for d in days.values():
        d.net_fen = d.paid_fen - d.refunded_fen
    listed = sorted(days.values(), key=lambda d: d.day)
    total = DaySummary(
        day=until,
        orders=sum(d.orders for d in listed),
        paid=sum(d.paid for d in listed),
        paid_fen=sum(d.paid_fen for d in listed),
        refunded=sum(d.refunded for d in listed),
        refunded_fen=sum(d.refunded_fen for d in listed),
        net_fen=sum(d.net_fen for d in listed),
    )
    return Reconciliation(since=since, until=until, days=listed, total=total)


def _period(request: web.Request) -> tuple[date, date]:
    today = utcnow().astimezone(CHINA).date()
    try:
        until = date.fromisoformat(request.query["until"]) if request.query.get("until") else today
        since = (
            date.fromisoformat(request.query["since"])
            if request.query.get("since")
            else until - timedelta(days=29)
        )
    except ValueError as exc:
        raise ApiError(
            400, "invalid_request", fields=[{"field": "since/until", "error": "YYYY-MM-DD"}]
        ) from exc
    if since > until or (until - since).days >= MAX_DAYS:
        raise ApiError(
            400, "invalid_request", fields=[{"field": "since/until", "error": f"1-{MAX_DAYS} days"}]
        )
    return since, until


def _limit(request: web.Request) -> int:
    raw = request.query.get("limit", "200")
    if not raw.isdigit() or not 1 <= int(raw) <= 500:
        raise ApiError(400, "invalid_request", fields=[{"field": "limit", "error": "1-500"}])
    return int(raw)


PERIOD_QUERY: dict[str, str | dict[str, Any]] = {
    "since": {"type": "string", "format": "date"},
    "until": {"type": "string", "format": "date"},
}


async def _reconciliation(request: web.Request, who: Operator) -> Reconciliation:
    since, until = _period(request)
    return summarise(await _ledgers(request, who, {"orders": {"$exists": True}}), since, until)


@api.route(
    "GET",
    f"{PAYMENTS}/reconciliation",
    summary="Daily reconciliation: orders issued, paid, refunded and net per business day (UTC+8)",
    response=Reconciliation,
    query=PERIOD_QUERY,
    errors=("forbidden", "invalid_request"),
    auth=roles(*PAYERS),
)
async def reconciliation(request: web.Request, *, who: Operator) -> web.Response:
    summary = await _reconciliation(request, who)
    await request.app[CONSOLE].audit.record(
        request, who, "payments.reconciliation_view", since=str(summary.since), until=str(summary.until)
    )
    return json_response(summary.model_dump(mode="json"))


RECONCILIATION_COLUMNS = (
    "日期",
    "订单数",
    "支付笔数",
    "支付金额(元)",
    "退款笔数",
    "退款金额(元)",
    "净收入(元)",
)


@api.route(
    "GET",
    f"{PAYMENTS}/reconciliation.csv",
    summary="The daily reconciliation as CSV (UTF-8 with BOM; formula-looking cells neutralised)",
    binary="text/csv",
    query=PERIOD_QUERY,
    errors=("forbidden", "invalid_request"),
    auth=roles(*PAYERS),
)
async def reconciliation_csv(request: web.Request, *, who: Operator) -> web.Response:
    summary = await _reconciliation(request, who)
    rows = [
        (
            d.day.isoformat(),
            d.orders,
            d.paid,
            _yuan(d.paid_fen),
            d.refunded,
            _yuan(d.refunded_fen),
            _yuan(d.net_fen),
        )
        for d in [*summary.days]
    ]
    t = summary.total
    rows.append(
        ("合计", t.orders, t.paid, _yuan(t.paid_fen), t.refunded, _yuan(t.refunded_fen), _yuan(t.net_fen))
    )
    await request.app[CONSOLE].audit.record(
        request, who, "payments.reconciliation_export", since=str(summary.since), until=str(summary.until)
    )
    name = f"reconciliation-{summary.since}-{summary.until}.csv"
    return web.Response(
        body=csv_bytes(RECONCILIATION_COLUMNS, rows),
        headers={
            "Content-Type": "text/csv; charset=utf-8",
            "Content-Disposition": f'attachment; filename="{name}"',
        },
    )


def _yuan(fen: int) -> str:
    return f"{fen / 100:.2f}"
