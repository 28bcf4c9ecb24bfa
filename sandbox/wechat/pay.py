"""api.mch.weixin.qq.com, API v3, for a JSAPI merchant in public-key mode.

Every request must carry a valid merchant `Authorization` (else 401 SIGN_ERROR); every answer, errors
included, is signed with the platform key and carries `Wechatpay-Serial: PUB_KEY_ID_...`.
"""

from __future__ import annotations

import asyncio
import json
import re
import secrets
import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from aiohttp import web

from sandbox.wechat.notifier import Notifier
from sandbox.wechat.signing import SignError, check_authorization, signature_headers
from sandbox.wechat.state import Order, Refund, SandboxState, now_cst, random_digits
from shared.logging import get_logger
from shared.wechat.crypto import load_private_key, load_public_key

log = get_logger(__name__)

_OUT_NO_RE = re.compile(r"^[0-9A-Za-z_\-|*]{6,32}$")
# 申请退款: out_refund_no "只能是数字、大小写字母_-|*@", string(64); independent SDKs send `@`.
_OUT_REFUND_NO_RE = re.compile(r"^[0-9A-Za-z_\-|*@]{1,64}$")
_OPENID_RE = re.compile(r"^[A-Za-z0-9_-]{6,128}$")

Handler = Callable[[web.Request, bytes], Awaitable[tuple[int, dict[str, Any] | None]]]


class PayError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def _param_error(message: str) -> PayError:
    return PayError(400, "PARAM_ERROR", message)


class PayApi:
    def __init__(self, state: SandboxState, notifier: Notifier) -> None:
        self.state = state
        self.notifier = notifier
        keyset = state.config.keyset
        self._merchant_public_key = load_public_key(keyset.merchant_public_key)
        self._platform_key = load_private_key(keyset.platform_private_key)

    def routes(self) -> list[web.RouteDef]:
        w = self._wrap
        return [
            web.post("/v3/pay/transactions/jsapi", w(self.create_jsapi)),
            web.get("/v3/pay/transactions/out-trade-no/{out_trade_no}", w(self.query_by_out_trade_no)),
            web.get("/v3/pay/transactions/id/{transaction_id}", w(self.query_by_transaction_id)),
            web.post("/v3/pay/transactions/out-trade-no/{out_trade_no}/close", w(self.close)),
            web.post("/v3/refund/domestic/refunds", w(self.create_refund)),
            web.get("/v3/refund/domestic/refunds/{out_refund_no}", w(self.query_refund)),
        ]

    # --- the envelope: authentication, faults, signed answers ----------------------------------

    def _wrap(self, handler: Handler) -> Callable[[web.Request], Awaitable[web.Response]]:
        name = handler.__name__

        async def wrapped(request: web.Request) -> web.Response:
            self.state.calls[f"pay:{name}"] += 1
            body = await request.read()
            try:
                check_authorization(
                    request.headers.get("Authorization", ""),
                    request.method,
                    request.raw_path,
                    body,
                    mchid=self.state.config.keyset.mchid,
                    merchant_serial=self.state.config.keyset.merchant_serial,
                    merchant_public_key=self._merchant_public_key,
                    max_skew_s=self.state.config.auth_max_skew_s,
                )
                if (fault := self.state.take_pay_fault()) is not None:
                    raise PayError(fault.status, fault.code, fault.message)
                status, payload = await handler(request, body)
            except SignError as exc:
                status, payload = 401, {"code": "SIGN_ERROR", "message": str(exc)}
            except PayError as exc:
                status, payload = exc.status, {"code": exc.code, "message": exc.message}
            return self._signed(status, payload)

        return wrapped

    def _signed(self, status: int, payload: dict[str, Any] | None) -> web.Response:
        raw = (
            b""
            if payload is None
            else json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
        )
        tamper = False
        if self.state.bad_response_signatures > 0:
            self.state.bad_response_signatures -= 1
            tamper = True
        headers = signature_headers(
            raw,
            platform_key=self._platform_key,
            public_key_id=self.state.config.keyset.platform_public_key_id,
            tamper=tamper,
        )
        headers["Request-ID"] = secrets.token_hex(16)
        if payload is None:
            return web.Response(status=status, headers=headers)
        return web.Response(status=status, body=raw, headers=headers, content_type="application/json")

    @staticmethod
    def _json(body: bytes) -> dict[str, Any]:
        try:
            data = json.loads(body)
        except ValueError:
            raise _param_error("请求体不是合法的JSON") from None
        if not isinstance(data, dict):
            raise _param_error("请求体不是JSON对象")
        return data

    def _check_mchid(self, value: Any) -> None:
        if not isinstance(value, str) or not value:
            raise _param_error("输入源“/body/mchid”映射到字段“直连商户号”必填性规则校验失败，此字段为必填项")
        if value != self.state.config.keyset.mchid:
            raise PayError(400, "MCH_NOT_EXISTS", "商户号不存在")

    # --- orders --------------------------------------------------------------------------------

    async def create_jsapi(self, _request: web.Request, raw: bytes) -> tuple[int, dict[str, Any] | None]:
        body = self._json(raw)
        keyset = self.state.config.keyset
        for name in ("appid", "mchid", "description", "out_trade_no", "notify_url"):
            if not isinstance(body.get(name), str) or not body[name]:
                raise _param_error(f"输入源“/body/{name}”映射到值字段必填性规则校验失败，此字段为必填项")
        self._check_mchid(body["mchid"])
        if body["appid"] != keyset.appid:
            raise PayError(400, "APPID_MCHID_NOT_MATCH", "appid和mch_id不匹配")
        out_trade_no, description = body["out_trade_no"], body["description"]
        if not _OUT_NO_RE.match(out_trade_no):
            raise _param_error("out_trade_no 只能是6-32位数字、大小写字母_-|*")
        if len(description) > 127:
            raise _param_error("description 长度不能超过127个字符")
        notify_url: str = body["notify_url"]
        if not notify_url.startswith(("https://", "http://")) or "?" in notify_url or len(notify_url) > 256:
            raise _param_error("notify_url 必须是不带参数的 http(s) 地址")
        amount, payer = body.get("amount"), body.get("payer")
        total = amount.get("total") if isinstance(amount, dict) else None
        if not isinstance(total, int) or isinstance(total, bool) or total < 1:
            raise _param_error("amount.total 必须是大于0的整数（单位：分）")
        currency = amount.get("currency", "CNY") if isinstance(amount, dict) else "CNY"
        if currency != "CNY":
            raise _param_error("amount.currency 只支持CNY")
        openid = payer.get("openid") if isinstance(payer, dict) else None
        if not isinstance(openid, str) or not _OPENID_RE.match(openid):
            raise _param_error(
                "输入源“/body/payer/openid”映射到值字段“用户标识”必填性规则校验失败，此字段为必填项"
            )
        time_expire = body.get("time_expire")
        if time_expire is not None:
            try:
                parsed = datetime.fromisoformat(str(time_expire))
            except ValueError:
                raise _param_error("time_expire 必须是 rfc3339 格式") from None
            if parsed.tzinfo is None:
                raise _param_error("time_expire 必须带时区")
        attach = body.get("attach")
        if attach is not None and (not isinstance(attach, str) or len(attach) > 128):
            raise _param_error("attach 长度不能超过128个字符")

        existing = self.state.orders.get(out_trade_no)
        if existing is not None:
            if existing.trade_state in ("SUCCESS", "REFUND"):
                raise PayError(400, "ORDERPAID", "该订单已支付")
            if existing.trade_state == "CLOSED":
                raise PayError(400, "ORDER_CLOSED", "订单已关闭")
            if existing.params != body:
                raise PayError(400, "INVALID_REQUEST", "201 商户订单号重复")
            return 200, {"prepay_id": existing.prepay_id}
        prepay_id = "wx" + datetime.now().strftime("%d%H%M%S") + secrets.token_hex(13)
        self.state.orders[out_trade_no] = Order(
            out_trade_no=out_trade_no,
            appid=body["appid"],
            mchid=body["mchid"],
            description=description,
            notify_url=notify_url,
            total=total,
            currency="CNY",
            payer_openid=openid,
            attach=attach,
            time_expire=time_expire,
            prepay_id=prepay_id,
            params=body,
        )
        log.info("order_created", out_trade_no=out_trade_no, total=total)
        return 200, {"prepay_id": prepay_id}

    def _order(self, out_trade_no: str) -> Order:
        order = self.state.orders.get(out_trade_no)
        if order is None:
            raise PayError(404, "ORDER_NOT_EXIST", "订单不存在")
        return order

    async def query_by_out_trade_no(
        self, request: web.Request, _raw: bytes
    ) -> tuple[int, dict[str, Any] | None]:
        self._check_mchid(request.query.get("mchid"))
        return 200, self._order(request.match_info["out_trade_no"]).transaction()

    async def query_by_transaction_id(
        self, request: web.Request, _raw: bytes
    ) -> tuple[int, dict[str, Any] | None]:
        self._check_mchid(request.query.get("mchid"))
        wanted = request.match_info["transaction_id"]
        for order in self.state.orders.values():
            if order.transaction_id == wanted:
                return 200, order.transaction()
        raise PayError(404, "ORDER_NOT_EXIST", "订单不存在")

    async def close(self, request: web.Request, raw: bytes) -> tuple[int, dict[str, Any] | None]:
        self._check_mchid(self._json(raw).get("mchid"))
        order = self._order(request.match_info["out_trade_no"])
        if order.trade_state in ("SUCCESS", "REFUND"):
            raise PayError(400, "ORDERPAID", "订单已支付")
        order.trade_state = "CLOSED"
        return 204, None

    def pay(self, order: Order, payer_openid: str | None) -> None:
        """The user completes `wx.requestPayment` (control API): the order is paid, WeChat notifies."""
        if order.trade_state != "NOTPAY":
            raise PayError(409, "ORDER_NOT_PAYABLE", f"order is {order.trade_state}")
        if payer_openid is not None and payer_openid != order.payer_openid:
            # A JSAPI prepay_id can only be paid by the openid it was placed for.
            raise PayError(409, "PAYER_MISMATCH", "the order was placed for another payer openid")
        if (
            order.time_expire is not None
            and datetime.fromisoformat(order.time_expire).timestamp() < time.time()
        ):
            raise PayError(409, "ORDER_EXPIRED", "time_expire has passed")
        order.trade_state = "SUCCESS"
        order.transaction_id = "4200" + random_digits(24)
        order.success_time = now_cst()
        self.notifier.send(
            url=order.notify_url,
            event_type="TRANSACTION.SUCCESS",
            summary="支付成功",
            original_type="transaction",
            resource=order.transaction(),
            out_trade_no=order.out_trade_no,
        )

    # --- refunds -------------------------------------------------------------------------------

    async def create_refund(self, _request: web.Request, raw: bytes) -> tuple[int, dict[str, Any] | None]:
        body = self._json(raw)
        out_refund_no = body.get("out_refund_no")
        if not isinstance(out_refund_no, str) or not _OUT_REFUND_NO_RE.match(out_refund_no):
            raise _param_error("out_refund_no 只能是1-64位数字、大小写字母_-|*@")
        amount = body.get("amount")
        if not isinstance(amount, dict):
            raise _param_error("输入源“/body/amount”映射到值字段“金额信息”必填性规则校验失败，此字段为必填项")
        refund, total = amount.get("refund"), amount.get("total")
        if not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in (refund, total)):
            raise _param_error("amount.refund 和 amount.total 必须是大于0的整数（单位：分）")
        assert isinstance(refund, int) and isinstance(total, int)
        if amount.get("currency", "CNY") != "CNY":
            raise _param_error("amount.currency 只支持CNY")
        order = self._find_order(body)
        existing = self.state.refunds.get(out_refund_no)
        if existing is not None:
            if existing.params != body:
                raise PayError(400, "INVALID_REQUEST", "退款单号重复，且退款参数与之前请求不一致")
            return 200, existing.answer(order.mchid)
        if order.trade_state not in ("SUCCESS", "REFUND") or order.transaction_id is None:
            raise PayError(400, "INVALID_REQUEST", "订单未支付，不能退款")
        if total != order.total:
            raise PayError(400, "INVALID_REQUEST", "订单金额与原订单金额不一致")
        pending = sum(
            r.refund
            for r in self.state.refunds.values()
            if r.out_trade_no == order.out_trade_no and r.status in ("PROCESSING", "SUCCESS")
        )
        if refund > order.total - pending:
            raise PayError(400, "INVALID_REQUEST", "申请退款金额超过订单可退金额")
        reason, notify_url = body.get("reason"), body.get("notify_url")
        record = Refund(
            refund_id="50" + random_digits(27),
            out_refund_no=out_refund_no,
            out_trade_no=order.out_trade_no,
            transaction_id=order.transaction_id,
            refund=refund,
            total=total,
            reason=reason if isinstance(reason, str) else None,
            notify_url=notify_url if isinstance(notify_url, str) and notify_url else None,
            params=body,
            create_time=now_cst(),
        )
        self.state.refunds[out_refund_no] = record
        self.notifier.spawn(self._settle_refund(record, order))
        return 200, record.answer(order.mchid)

    def _find_order(self, body: dict[str, Any]) -> Order:
        out_trade_no, transaction_id = body.get("out_trade_no"), body.get("transaction_id")
        if isinstance(out_trade_no, str) and out_trade_no:
            order = self.state.orders.get(out_trade_no)
        elif isinstance(transaction_id, str) and transaction_id:
            order = next((o for o in self.state.orders.values() if o.transaction_id == transaction_id), None)
        else:
            raise _param_error("transaction_id 和 out_trade_no 必须二选一")
        if order is None:
            raise PayError(404, "RESOURCE_NOT_EXISTS", "订单不存在")
        return order

    async def _settle_refund(self, record: Refund, order: Order) -> None:
        knobs = self.state.knobs
        if knobs.refund_delay_s > 0:
            await asyncio.sleep(knobs.refund_delay_s)
        record.status = knobs.refund_result
        if record.status == "SUCCESS":
            record.success_time = now_cst()
            order.refunded += record.refund
            order.trade_state = "REFUND"
        if record.notify_url:
            self.notifier.send(
                url=record.notify_url,
                event_type=f"REFUND.{record.status}",
                summary={"SUCCESS": "退款成功", "ABNORMAL": "退款异常", "CLOSED": "退款关闭"}[record.status],
                original_type="refund",
                resource=record.notification_resource(order.mchid),
                out_trade_no=order.out_trade_no,
                out_refund_no=record.out_refund_no,
            )

    async def query_refund(self, request: web.Request, _raw: bytes) -> tuple[int, dict[str, Any] | None]:
        record = self.state.refunds.get(request.match_info["out_refund_no"])
        if record is None:
            raise PayError(404, "RESOURCE_NOT_EXISTS", "退款单不存在")
        return 200, record.answer(self.state.config.keyset.mchid)
