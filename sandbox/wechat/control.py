"""The control API under `/sandbox/`: what a test or `make demo` does in place of a user and of WeChat.

Mint login and phone codes, pay an order, read the subscribe messages and notifications sent,
inject errors, expire tokens, and turn the notification knobs. JSON in, JSON out.
"""

from __future__ import annotations

import json
import re
import secrets
import time
from dataclasses import asdict
from typing import Any

from aiohttp import web
from pydantic import ValidationError

from sandbox.wechat.chsi import CodeRequest, mint
from sandbox.wechat.notifier import Notifier
from sandbox.wechat.pay import PayApi, PayError
from sandbox.wechat.state import FAULT_APIS, Fault, OneTimeCode, PayFault, SandboxState, new_openid
from shared.wechat.crypto import load_public_key, rsa_verify

_PHONE_RE = re.compile(r"^\d{5,15}$")
_REFUND_RESULTS = {"SUCCESS", "ABNORMAL", "CLOSED"}


class ControlError(Exception):
    pass


def _json_error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


async def _body(request: web.Request) -> dict[str, Any]:
    raw = await request.read()
    if not raw.strip():
        return {}
    try:
        data = json.loads(raw)
    except ValueError:
        raise ControlError("body is not JSON") from None
    if not isinstance(data, dict):
        raise ControlError("body is not a JSON object")
    return data


def _number(data: dict[str, Any], name: str, *, minimum: float = 0.0, integer: bool = False) -> Any:
    value = data[name]
    if isinstance(value, bool) or not isinstance(value, int | float) or value < minimum:
        raise ControlError(f"{name} must be a number >= {minimum:g}")
    if integer and not isinstance(value, int):
        raise ControlError(f"{name} must be an integer")
    return value


class ControlApi:
    def __init__(self, state: SandboxState, notifier: Notifier, pay: PayApi) -> None:
        self.state = state
        self.notifier = notifier
        self.pay_api = pay

    def routes(self) -> list[web.RouteDef]:
        h = self._handle
        return [
            web.post("/sandbox/login-codes", h(self.login_code)),
            web.post("/sandbox/phone-codes", h(self.phone_code)),
            web.post("/sandbox/chsi/codes", h(self.chsi_code)),
            web.post("/sandbox/pay/{out_trade_no}", h(self.pay)),
            web.post("/sandbox/request-payment", h(self.request_payment)),
            web.get("/sandbox/orders", h(self.orders)),
            web.get("/sandbox/orders/{out_trade_no}", h(self.order)),
            web.get("/sandbox/refunds", h(self.refunds)),
            web.get("/sandbox/messages", h(self.messages)),
            web.delete("/sandbox/messages", h(self.clear_messages)),
            web.get("/sandbox/faults", h(self.faults)),
            web.post("/sandbox/faults", h(self.add_faults)),
            web.delete("/sandbox/faults", h(self.clear_faults)),
            web.post("/sandbox/tokens/expire", h(self.expire_tokens)),
            web.get("/sandbox/knobs", h(self.knobs)),
            web.post("/sandbox/knobs", h(self.set_knobs)),
            web.get("/sandbox/notifications", h(self.notifications)),
            web.delete("/sandbox/notifications", h(self.clear_notifications)),
            web.post("/sandbox/notifications/{id}/replay", h(self.replay)),
            web.post("/sandbox/notifications/{id}/resend", h(self.resend)),
            web.get("/sandbox/stats", h(self.stats)),
            web.get("/sandbox/info", h(self.info)),
            web.post("/sandbox/reset", h(self.reset)),
        ]

    def _handle(self, fn: Any) -> Any:
        async def wrapped(request: web.Request) -> web.Response:
            try:
                status, payload = await fn(request)
            except ControlError as exc:
                return _json_error(400, str(exc))
            except PayError as exc:
                return web.json_response({"error": exc.message, "code": exc.code}, status=exc.status)
            return web.json_response(
                payload, status=status, dumps=lambda o: json.dumps(o, ensure_ascii=False)
            )

        return wrapped

    # --- users ---------------------------------------------------------------------------------

    async def login_code(self, request: web.Request) -> tuple[int, dict[str, Any]]:
        """A `wx.login` code for `openid` (a new openid when none is given)."""
        body = await _body(request)
        openid = body.get("openid") or new_openid()
        unionid = body.get("unionid")
        if not isinstance(openid, str) or not re.fullmatch(r"[A-Za-z0-9_-]{6,64}", openid):
            raise ControlError("openid must be 6-64 characters of A-Z a-z 0-9 _ -")
        if unionid is not None and not isinstance(unionid, str):
            raise ControlError("unionid must be a string")
        code = secrets.token_hex(16)
        self.state.login_codes[code] = OneTimeCode(created=time.time(), openid=openid, unionid=unionid)
        answer: dict[str, Any] = {"code": code, "openid": openid}
        if unionid:
            answer["unionid"] = unionid
        return 201, answer

    async def chsi_code(self, request: web.Request) -> tuple[int, dict[str, Any]]:
        """The CHSI stand-in: a roster student's collection code, QR text and PNG (sandbox/wechat/chsi.py)."""
        cipher = self.state.config.chsi_cipher
        if cipher is None:
            return 409, {"error": "no CHSI key configured (CODEC_CIPHER_KEY)"}
        try:
            wanted = CodeRequest.model_validate(await _body(request))
        except ValidationError as exc:
            fields = ", ".join(".".join(str(p) for p in e["loc"]) for e in exc.errors())
            raise ControlError(f"invalid student: {fields}") from None
        return 201, mint(wanted, cipher).answer()

    async def phone_code(self, request: web.Request) -> tuple[int, dict[str, Any]]:
        """A `getPhoneNumber` button code for `phone` (digits, without the country code)."""
        body = await _body(request)
        phone, country = body.get("phone"), str(body.get("country_code", "86"))
        if not isinstance(phone, str) or not _PHONE_RE.match(phone) or not country.isdigit():
            raise ControlError("phone must be 5-15 digits; country_code digits (default 86)")
        code = secrets.token_hex(32)
        self.state.phone_codes[code] = OneTimeCode(created=time.time(), phone=phone, country_code=country)
        return 201, {"code": code}

    async def pay(self, request: web.Request) -> tuple[int, dict[str, Any]]:
        """The user pays the order (as `wx.requestPayment` succeeding would); WeChat then notifies."""
        body = await _body(request)
        payer = body.get("payer_openid")
        if payer is not None and not isinstance(payer, str):
            raise ControlError("payer_openid must be a string")
        order = self.state.orders.get(request.match_info["out_trade_no"])
        if order is None:
            raise PayError(404, "ORDER_NOT_EXIST", "no such order")
        self.pay_api.pay(order, payer)
        notification = next(
            (n for n in reversed(self.state.notifications.values()) if n.out_trade_no == order.out_trade_no),
            None,
        )
        return 200, {
            "out_trade_no": order.out_trade_no,
            "transaction_id": order.transaction_id,
            "trade_state": order.trade_state,
            "notification_id": notification.id if notification else None,
        }

    # --- inspection ----------------------------------------------------------------------------

    async def request_payment(self, request: web.Request) -> tuple[int, dict[str, Any]]:
        """What the WeChat client does on `wx.requestPayment(params)`: check paySign (SHA256withRSA by the
        merchant key over `appId\ntimeStamp\nnonceStr\npackage\n`), find the order by its prepay_id, and
        pay it as `openid` (the paying user) unless `cancel` (the user closed the cashier: nothing paid)."""
        body = await _body(request)
        names = ("timeStamp", "nonceStr", "package", "signType", "paySign")
        params = {k: v for k in names if isinstance(v := body.get(k), str) and v}
        if len(params) != len(names) or params["signType"] != "RSA":
            return 400, {"errMsg": "requestPayment:fail parameter error"}
        keyset = self.state.config.keyset
        message = f"{keyset.appid}\n{params['timeStamp']}\n{params['nonceStr']}\n{params['package']}\n"
        if not rsa_verify(load_public_key(keyset.merchant_public_key), message, params["paySign"]):
            return 400, {"errMsg": "requestPayment:fail sign error"}
        prepay_id = params["package"].removeprefix("prepay_id=")
        order = next((o for o in self.state.orders.values() if o.prepay_id == prepay_id), None)
        if order is None:
            return 404, {"errMsg": "requestPayment:fail prepay_id not found"}
        if body.get("cancel"):
            return 200, {"errMsg": "requestPayment:fail cancel", "out_trade_no": order.out_trade_no}
        payer = body.get("openid")
        if payer is not None and not isinstance(payer, str):
            raise ControlError("openid must be a string")
        self.pay_api.pay(order, payer)
        return 200, {"errMsg": "requestPayment:ok", "out_trade_no": order.out_trade_no}

    async def orders(self, _request: web.Request) -> tuple[int, dict[str, Any]]:
        return 200, {"orders": [o.transaction() for o in self.state.orders.values()]}

    async def order(self, request: web.Request) -> tuple[int, dict[str, Any]]:
        order = self.state.orders.get(request.match_info["out_trade_no"])
        if order is None:
            raise PayError(404, "ORDER_NOT_EXIST", "no such order")
        return 200, {**order.transaction(), "prepay_id": order.prepay_id, "notify_url": order.notify_url}

    async def refunds(self, _request: web.Request) -> tuple[int, dict[str, Any]]:
        mchid = self.state.config.keyset.mchid
        return 200, {"refunds": [r.answer(mchid) for r in self.state.refunds.values()]}

    async def messages(self, _request: web.Request) -> tuple[int, dict[str, Any]]:
        return 200, {"messages": self.state.messages, "rejected": self.state.rejected_messages}

    async def clear_messages(self, _request: web.Request) -> tuple[int, dict[str, Any]]:
        self.state.messages.clear()
        self.state.rejected_messages.clear()
        return 200, {"cleared": True}

    async def notifications(self, request: web.Request) -> tuple[int, dict[str, Any]]:
        wanted = request.query.get("out_trade_no")
        items = [
            n.view() for n in self.state.notifications.values() if wanted is None or n.out_trade_no == wanted
        ]
        return 200, {"notifications": items}

    async def clear_notifications(self, _request: web.Request) -> tuple[int, dict[str, Any]]:
        self.state.notifications.clear()
        return 200, {"cleared": True}

    def _notification(self, request: web.Request) -> Any:
        notification = self.state.notifications.get(request.match_info["id"])
        if notification is None:
            raise PayError(404, "NOT_FOUND", "no such notification")
        return notification

    async def replay(self, request: web.Request) -> tuple[int, dict[str, Any]]:
        """Send the last request of a notification again, same signature and timestamp (a replay)."""
        notification = self._notification(request)
        if not notification.last_headers:
            raise ControlError("this notification was never sent")
        self.notifier.replay(notification)
        return 202, {"id": notification.id}

    async def resend(self, request: web.Request) -> tuple[int, dict[str, Any]]:
        """Send a notification once more with a fresh signature, as WeChat's own retries do."""
        notification = self._notification(request)
        self.notifier.resend(notification)
        return 202, {"id": notification.id}

    async def stats(self, _request: web.Request) -> tuple[int, dict[str, Any]]:
        return 200, {"calls": dict(self.state.calls)}

    async def info(self, _request: web.Request) -> tuple[int, dict[str, Any]]:
        """The public identifiers of the key set (never a secret): handy for demos and debugging."""
        keyset = self.state.config.keyset
        return 200, {
            "appid": keyset.appid,
            "mchid": keyset.mchid,
            "merchant_serial": keyset.merchant_serial,
            "platform_public_key_id": keyset.platform_public_key_id,
        }

    async def reset(self, _request: web.Request) -> tuple[int, dict[str, Any]]:
        self.state.reset()
        return 200, {"reset": True}

    # --- faults and knobs ----------------------------------------------------------------------

    async def faults(self, _request: web.Request) -> tuple[int, dict[str, Any]]:
        return 200, {
            "faults": {api: asdict(f) for api, f in self.state.faults.items()},
            "pay_faults": [asdict(f) for f in self.state.pay_faults],
            "bad_response_signatures": self.state.bad_response_signatures,
        }

    async def add_faults(self, request: web.Request) -> tuple[int, dict[str, Any]]:
        """`{"subscribe_errcode": 43101, "count": 2}` (also phone_, code2session_, token_errcode);
        `{"pay_status": 500, "pay_code": "SYSTEM_ERROR", "count": 1}`; `{"bad_response_signatures": 1}`."""
        body = await _body(request)
        known = {f"{api}_errcode" for api in FAULT_APIS} | {
            "count",
            "pay_status",
            "pay_code",
            "pay_message",
            "bad_response_signatures",
        }
        if unknown := sorted(set(body) - known):
            raise ControlError(f"unknown fields: {', '.join(unknown)}")
        count = _number(body, "count", minimum=1, integer=True) if "count" in body else 1
        for api in FAULT_APIS:
            if f"{api}_errcode" in body:
                errcode = body[f"{api}_errcode"]
                if isinstance(errcode, bool) or not isinstance(errcode, int) or errcode == 0:
                    raise ControlError(f"{api}_errcode must be a non-zero integer")
                self.state.faults[api] = Fault(errcode, count)
        if "pay_status" in body or "pay_code" in body:
            status = _number(body, "pay_status", minimum=400, integer=True) if "pay_status" in body else 500
            code = body.get("pay_code", "SYSTEM_ERROR")
            if not isinstance(code, str) or not code:
                raise ControlError("pay_code must be a string")
            message = str(body.get("pay_message", "系统异常，请稍后重试"))
            self.state.pay_faults.append(PayFault(status, code, message, count))
        if "bad_response_signatures" in body:
            self.state.bad_response_signatures = _number(body, "bad_response_signatures", integer=True)
        return await self.faults(request)

    async def clear_faults(self, request: web.Request) -> tuple[int, dict[str, Any]]:
        self.state.faults.clear()
        self.state.pay_faults.clear()
        self.state.bad_response_signatures = 0
        return await self.faults(request)

    async def expire_tokens(self, request: web.Request) -> tuple[int, dict[str, Any]]:
        """Every token issued so far stops working: `errcode` 42001 (expired, default) or 40001 (invalid)."""
        body = await _body(request)
        errcode = body.get("errcode", 42001)
        if errcode not in (42001, 40001):
            raise ControlError("errcode must be 42001 or 40001")
        now = time.time()
        for token in self.state.tokens.values():
            if errcode == 40001:
                token.invalid = True
            else:
                token.expires_at = min(token.expires_at, now)
        self.state.stable_token = None
        return 200, {"expired": len(self.state.tokens), "errcode": errcode}

    async def knobs(self, _request: web.Request) -> tuple[int, dict[str, Any]]:
        return 200, asdict(self.state.knobs)

    async def set_knobs(self, request: web.Request) -> tuple[int, dict[str, Any]]:
        """Change some knobs; notifications take the knobs in force when they are created."""
        body = await _body(request)
        knobs = self.state.knobs
        if unknown := sorted(set(body) - set(asdict(knobs))):
            raise ControlError(f"unknown knobs: {', '.join(unknown)}")
        for name in ("delay_s", "refund_delay_s"):
            if name in body:
                setattr(knobs, name, float(_number(body, name)))
        for name in ("token_ttl_s", "notify_timeout_s"):
            if name in body:
                value = float(_number(body, name))
                if value <= 0:
                    raise ControlError(f"{name} must be > 0")
                setattr(knobs, name, value)
        if "duplicate" in body:
            knobs.duplicate = int(_number(body, "duplicate", integer=True))
        for name in ("tampered_signature", "never_notify"):
            if name in body:
                if not isinstance(body[name], bool):
                    raise ControlError(f"{name} must be true or false")
                setattr(knobs, name, body[name])
        if "retry_delays_s" in body:
            delays = body["retry_delays_s"]
            if not isinstance(delays, list) or len(delays) > 30:
                raise ControlError("retry_delays_s must be a list of at most 30 numbers")
            knobs.retry_delays_s = [float(_number({"d": d}, "d")) for d in delays]
        if "refund_result" in body:
            if body["refund_result"] not in _REFUND_RESULTS:
                raise ControlError(f"refund_result must be one of {sorted(_REFUND_RESULTS)}")
            knobs.refund_result = body["refund_result"]
        if "subscribe_templates" in body:
            templates = body["subscribe_templates"]
            if not isinstance(templates, dict) or not all(
                isinstance(k, str) and isinstance(v, list) and all(isinstance(x, str) for x in v)
                for k, v in templates.items()
            ):
                raise ControlError("subscribe_templates must map template ids to lists of data keys")
            knobs.subscribe_templates = templates
        return 200, asdict(knobs)
