"""Seed step 6: the order and WeChat Pay; the payment notification endpoint WeChat Pay calls.

Thin: authenticate, load, decide (services/gateway/domain/orders.py through payments.py), present.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

from aiohttp import web
from pydantic import BaseModel, Field

from services.gateway.api.common import Caller, idempotency_key, my_application
from services.gateway.context import APPLICATIONS, DATABASE, PAY, SCHOOLS, SETTINGS
from services.gateway.domain.orders import Order, OrderBook, RefundKind, RefundStatus, order_amount
from services.gateway.http.auth import PUBLIC, STUDENT
from services.gateway.http.errors import ApiError, json_response
from services.gateway.http.registry import Api
from services.gateway.messages import REFUND_KIND_MESSAGES, REFUND_STATUS_MESSAGES
from services.gateway.payments import Payments
from services.gateway.request_keys import Answer, RequestKeys, fingerprint
from shared.db import Document
from shared.events import utcnow
from shared.logging import get_logger
from shared.wechat.errors import NotificationRejected

log = get_logger(__name__)
api = Api()
MAX_NOTIFICATION_BYTES = 64 * 1024
# An order request has no body; anything sent is read (bounded) only to tell two requests apart.
MAX_ORDER_BODY_BYTES = 4 * 1024


class PaymentParams(BaseModel):
    """Exactly what `wx.requestPayment` takes."""

    timeStamp: str
    nonceStr: str
    package: str
    signType: str
    paySign: str


class OrderResponse(BaseModel):
    order_id: str
    out_trade_no: str
    amount_fen: int = Field(description="what the student pays, in fen (分)")
    status: str
    expires_at: datetime
    payment: PaymentParams


class RefundView(BaseModel):
    """Money going back to the student (a payment of a superseded order, or an operator's refund)."""

    out_trade_no: str
    amount_fen: int
    kind: RefundKind
    status: RefundStatus
    message: str = Field(description="what the status page shows, in Chinese")
    requested_at: datetime
    completed_at: datetime | None


def refund_views(application: Document) -> list[RefundView]:
    """Every refund of the application's ledger, as the student's status page shows it."""
    ledger = application.get("orders") or [application.get("order") or {}]
    if not any(isinstance(o, dict) and (o.get("refunds") or o.get("refund")) for o in ledger):
        return []  # the status page is polled every second: no parsing when there is nothing to show
    views = []
    for order in OrderBook.from_document(application).orders:
        for refund in order.refunds:
            what = REFUND_KIND_MESSAGES[refund.kind].format(yuan=f"{refund.amount_fen / 100:.2f}")
            views.append(
                RefundView(
                    out_trade_no=order.out_trade_no,
                    amount_fen=refund.amount_fen,
                    kind=refund.kind,
                    status=refund.status,
                    message=what + REFUND_STATUS_MESSAGES[refund.status],
                    requested_at=refund.requested_at,
                    completed_at=refund.completed_at,
                )
            )
    return views


@api.route(
    "POST",
    "/api/v1/orders",
    summary="Create (or reuse) the application's one open order and get wx.requestPayment parameters",
    response=OrderResponse,
    status=201,
    also=(200,),  # the open order reused
    errors=("no_application", "illegal_transition", "order_failed", "idempotency_key_reused", "busy"),
    auth=STUDENT,
)
async def create_order(request: web.Request, *, who: Caller) -> web.Response:
    application = await my_application(request, who)
    key = idempotency_key(request)
    keys = RequestKeys(request.app[DATABASE])
    claim = None
    if key is not None:
        body = await request.content.read(MAX_ORDER_BODY_BYTES)
        # The application is part of the request: an account that unbinds and binds to another student
        # (one phone, two students) and retries a key gets 409, never the first student's order.
        print_ = fingerprint(request.method, request.path, f"{application['_id']}\n".encode() + body)
        # DomainError (idempotency_key_reused, busy) is answered by the error middleware.
        got = await keys.begin(who.openid, key, print_)
        if isinstance(got, Answer):
            return json_response(got.body, status=got.status)
        claim = got
    try:
        status, reply = await _place(request, who.openid, application)
    except BaseException:
        if claim is not None:
            await keys.release(claim)  # a failed request leaves nothing: an honest retry does the work
        raise
    if claim is not None:
        await keys.finish(claim, Answer(status, reply))
    return json_response(reply, status=status)


async def _place(request: web.Request, openid: str, application: Document) -> tuple[int, dict[str, Any]]:
    school = await request.app[SCHOOLS].get(application.get("school_code") or "")
    if school is None:
        raise ApiError(409, "illegal_transition", reason="school_not_configured")
    amount = order_amount(
        school.fee_fen, school.onsite_extra_fee_fen, bool(application.get("onsite_attendee"))
    )
    payments = Payments(request.app[DATABASE], request.app[APPLICATIONS], request.app[PAY])
    # A DomainError (illegal_transition, order_failed, busy) is answered by the error middleware.
    order, issued = await payments.place_order(
        application["_id"],
        openid=openid,
        amount_fen=amount,
        description=f"{school.name}毕业照片采集服务",
        expiry=_expiry(request),
        current=application,
    )
    reply = _order_reply(order, request.app[PAY].request_payment_params(order.prepay_id or ""))
    return (201 if issued else 200), reply


def _expiry(request: web.Request) -> timedelta:
    return timedelta(minutes=request.app[SETTINGS].gateway_order_expiry_minutes)


def _order_reply(order: Order, params: dict[str, str]) -> dict[str, Any]:
    reply = OrderResponse(
        order_id=order.order_id,
        out_trade_no=order.out_trade_no,
        amount_fen=order.amount_fen,
        status=order.status,
        expires_at=order.expires_at,
        payment=PaymentParams(**params),
    )
    return reply.model_dump(mode="json")


def _wechat_reply(status: int, message: str = "") -> web.Response:
    """WeChat Pay reads 2xx as received; a 4xx/5xx with {code: FAIL} makes it retry later."""
    if status < 300:
        return web.Response(status=204)
    return web.json_response({"code": "FAIL", "message": message}, status=status)


@api.route(
    "POST",
    "/api/v1/pay/notify",
    summary="WeChat Pay's payment and refund notifications (signed, encrypted)",
    auth=PUBLIC,
    status=204,
    errors=("unauthenticated", "payload_too_large", "invalid_request"),
    # WeChat Pay's own answer format: {"code": "FAIL", "message": ...} makes it retry later.
    error_schema={
        "type": "object",
        "required": ["code", "message"],
        "properties": {"code": {"type": "string", "enum": ["FAIL"]}, "message": {"type": "string"}},
    },
)
async def pay_notify(request: web.Request) -> web.Response:
    body = await request.content.read(MAX_NOTIFICATION_BYTES + 1)
    if len(body) > MAX_NOTIFICATION_BYTES:
        return _wechat_reply(413, "too large")
    try:
        notification = request.app[PAY].verify_notification(request.headers, body)
    except NotificationRejected as exc:
        log.warning("payment notification rejected", reason=exc.reason)
        return _wechat_reply(401 if exc.reason != "malformed" else 400, exc.reason)
    database = request.app[DATABASE]
    notifications = database.db["payment_notifications"]
    resource = notification["resource"]
    if not isinstance(resource, dict):
        return _wechat_reply(400, "malformed")
    if await notifications.find_one({"_id": notification["id"], "outcome": {"$exists": True}}):
        return _wechat_reply(204)  # a duplicate or a retry of one already applied
    payments = Payments(database, request.app[APPLICATIONS], request.app[PAY])
    kind = notification.get("event_type", "")
    if kind == "TRANSACTION.SUCCESS":
        outcome = await payments.apply_transaction(resource, via="notification")
    elif isinstance(kind, str) and kind.startswith("REFUND."):
        outcome = await payments.apply_refund_notification(resource)
    else:
        outcome = "ignored"
    if outcome in ("appid_mismatch", "mchid_mismatch"):
        # Signed by WeChat Pay but for another app or merchant: not ours to apply or to acknowledge.
        return _wechat_reply(400, outcome)
    await notifications.update_one(
        {"_id": notification["id"]},
        {
            "$set": {
                "event_type": kind,
                "out_trade_no": resource.get("out_trade_no"),
                "outcome": outcome,
                "received_at": utcnow(),
                "resource": json.dumps(resource, ensure_ascii=False)[:4000],
            }
        },
        upsert=True,
    )
    return _wechat_reply(204)
