"""Seed step 6: the order and WeChat Pay; the payment notification endpoint WeChat Pay calls."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

from aiohttp import web
from pydantic import BaseModel, Field

from services.gateway.api.common import caller, idempotency_key, my_application
from services.gateway.applications import Action, IllegalTransition, transition
from services.gateway.context import APPLICATIONS, DATABASE, PAY, SCHOOLS, SETTINGS
from services.gateway.http.errors import ApiError, json_response
from services.gateway.http.registry import Api
from services.gateway.payments import apply_payment, apply_refund_notification, new_out_trade_no, order_amount
from services.gateway.store import Change
from shared.db import Document
from shared.events import derived_id, utcnow
from shared.logging import get_logger
from shared.wechat.errors import NotificationRejected, WeChatPayError

log = get_logger(__name__)
api = Api()
MAX_NOTIFICATION_BYTES = 64 * 1024


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


@api.route(
    "POST",
    "/api/v1/orders",
    summary="Create (or reuse) the order and get wx.requestPayment parameters",
    response=OrderResponse,
    status=201,
    also=(200,),  # the pending order reused
    errors=("no_application", "illegal_transition", "order_failed"),
)
async def create_order(request: web.Request) -> web.Response:
    who = await caller(request)
    application = await my_application(request, who)
    key = idempotency_key(request)
    try:
        transition(application["state"], Action.ORDER)
    except IllegalTransition as exc:
        if (application.get("order") or {}).get("status") == "paid":
            raise ApiError(409, "illegal_transition", reason="already_paid") from exc
        raise ApiError(409, "illegal_transition") from exc
    pay = request.app[PAY]
    now = utcnow()
    current = application.get("order") or {}
    reusable = (
        current.get("status") == "pending"
        and current.get("expires_at")
        and current["expires_at"] > now + timedelta(minutes=2)
    )
    if reusable and (key is None or current.get("idempotency_key") in (None, key)):
        return _order_response(current, pay.request_payment_params(current["prepay_id"]))

    school = await request.app[SCHOOLS].get(application.get("school_code") or "")
    if school is None:
        raise ApiError(409, "illegal_transition", reason="school_not_configured")
    amount = order_amount(
        school.fee_fen, school.onsite_extra_fee_fen, bool(application.get("onsite_attendee"))
    )
    out_trade_no = new_out_trade_no(now)
    order: Document = {
        "order_id": derived_id("order", out_trade_no),
        "out_trade_no": out_trade_no,
        "amount_fen": amount,
        "status": "creating",
        "created_at": now,
        "expires_at": now + timedelta(minutes=request.app[SETTINGS].gateway_order_expiry_minutes),
        "idempotency_key": key,
        "created_by": who.openid,
    }
    # Stored before WeChat is called, so an order WeChat knows of is never unknown to us.
    await request.app[APPLICATIONS].mutate(application["_id"], lambda cur: _store_order(cur, order))
    try:
        prepay_id = await pay.create_jsapi_order(
            out_trade_no,
            f"{school.name}毕业照片采集服务",
            amount,
            who.openid,
            time_expire=order["expires_at"],
        )
    except WeChatPayError as exc:
        log.warning("jsapi order failed", code=exc.code, status=exc.status)
        order["status"] = "failed"
        await request.app[APPLICATIONS].mutate(application["_id"], lambda cur: _store_order(cur, order))
        raise ApiError(502, "order_failed") from exc
    order.update(status="pending", prepay_id=prepay_id)
    await request.app[APPLICATIONS].mutate(application["_id"], lambda cur: _store_order(cur, order))
    log.info("order created", out_trade_no=out_trade_no, amount_fen=amount)
    return _order_response(order, pay.request_payment_params(prepay_id), status=201)


def _store_order(current: Document, order: Document) -> Change:
    previous = current.get("order") or {}
    if previous.get("status") == "paid":
        raise ApiError(409, "illegal_transition", reason="already_paid")
    return Change(set={"order": order})


def _order_response(order: Document, params: dict[str, str], status: int = 200) -> web.Response:
    reply = OrderResponse(
        order_id=order["order_id"],
        out_trade_no=order["out_trade_no"],
        amount_fen=order["amount_fen"],
        status=order["status"],
        expires_at=order["expires_at"],
        payment=PaymentParams(**params),
    )
    return json_response(reply.model_dump(mode="json"), status=status)


def _wechat_reply(status: int, message: str = "") -> web.Response:
    """WeChat Pay reads 2xx as received; a 4xx/5xx with {code: FAIL} makes it retry later."""
    if status < 300:
        return web.Response(status=204)
    return web.json_response({"code": "FAIL", "message": message}, status=status)


@api.route(
    "POST",
    "/api/v1/pay/notify",
    summary="WeChat Pay's payment and refund notifications (signed, encrypted)",
    auth=False,
    status=204,
    errors=("unauthenticated", "payload_too_large"),
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
    if await notifications.find_one({"_id": notification["id"], "outcome": {"$exists": True}}):
        return _wechat_reply(204)  # a duplicate or a retry of one already applied
    kind = notification.get("event_type", "")
    if kind == "TRANSACTION.SUCCESS":
        outcome = await apply_payment(database, request.app[APPLICATIONS], resource, source="notification")
    elif kind.startswith("REFUND."):
        outcome = await apply_refund_notification(request.app[APPLICATIONS], database, resource)
    else:
        outcome = "ignored"
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
