"""Everything the sandbox remembers, in memory: codes, tokens, orders, refunds, messages, notifications."""

from __future__ import annotations

import secrets
import string
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from sandbox.wechat.config import SandboxConfig
from shared.wechat.pay import CHINA_TZ

_OPENID_ALPHABET = string.ascii_letters + string.digits + "_-"
FAULT_APIS = ("subscribe", "phone", "code2session", "token")
TRADE_STATE_DESC = {
    "NOTPAY": "订单未支付",
    "SUCCESS": "支付成功",
    "CLOSED": "订单已关闭",
    "REFUND": "订单发生过退款",
}


def now_cst() -> str:
    """WeChat Pay's time format: RFC 3339 in China time."""
    return datetime.now(CHINA_TZ).isoformat(timespec="seconds")


def new_openid() -> str:
    """28 characters starting with `o`, like real openids."""
    return "o" + "".join(secrets.choice(_OPENID_ALPHABET) for _ in range(27))


def random_digits(n: int) -> str:
    return "".join(secrets.choice(string.digits) for _ in range(n))


@dataclass
class Knobs:
    """What a test or `make demo` may change at run time (`POST /sandbox/knobs`)."""

    token_ttl_s: float
    retry_delays_s: list[float]
    notify_timeout_s: float
    delay_s: float = 0.0  # before the first notification attempt
    duplicate: int = 0  # extra copies sent after the notification was delivered
    tampered_signature: bool = False
    never_notify: bool = False
    refund_delay_s: float = 0.0  # PROCESSING -> final status
    refund_result: Literal["SUCCESS", "ABNORMAL", "CLOSED"] = "SUCCESS"
    # template_id -> the data keys it takes; empty means any template and any keys are accepted.
    subscribe_templates: dict[str, list[str]] = field(default_factory=dict)

    @classmethod
    def defaults(cls, config: SandboxConfig) -> Knobs:
        return cls(
            token_ttl_s=config.token_ttl_s,
            retry_delays_s=list(config.notify_retry_delays_s),
            notify_timeout_s=config.notify_timeout_s,
        )


@dataclass
class OneTimeCode:
    created: float
    used: bool = False
    openid: str = ""
    unionid: str | None = None
    phone: str = ""
    country_code: str = "86"


@dataclass
class AccessToken:
    value: str
    api: Literal["stable_token", "token"]
    expires_at: float
    invalid: bool = False  # invalidated: answers 40001 rather than 42001


@dataclass
class Fault:
    errcode: int
    remaining: int


@dataclass
class PayFault:
    status: int
    code: str
    message: str
    remaining: int


@dataclass
class Order:
    out_trade_no: str
    appid: str
    mchid: str
    description: str
    notify_url: str
    total: int
    currency: str
    payer_openid: str
    attach: str | None
    time_expire: str | None
    prepay_id: str
    params: dict[str, Any]  # the request body, to tell a repeated request from a conflicting one
    trade_state: Literal["NOTPAY", "SUCCESS", "CLOSED", "REFUND"] = "NOTPAY"
    transaction_id: str | None = None
    success_time: str | None = None
    refunded: int = 0

    def transaction(self) -> dict[str, Any]:
        """The order as the query API and the TRANSACTION.SUCCESS notification show it."""
        paid = self.transaction_id is not None
        doc: dict[str, Any] = {
            "appid": self.appid,
            "mchid": self.mchid,
            "out_trade_no": self.out_trade_no,
            "trade_type": "JSAPI",
            "trade_state": self.trade_state,
            "trade_state_desc": TRADE_STATE_DESC[self.trade_state],
            "payer": {"openid": self.payer_openid},
            "amount": {"total": self.total, "currency": self.currency, "payer_currency": self.currency},
        }
        if paid:
            doc["transaction_id"] = self.transaction_id
            doc["bank_type"] = "OTHERS"
            doc["success_time"] = self.success_time
            doc["amount"]["payer_total"] = self.total
            doc["promotion_detail"] = []
        if self.attach is not None:
            doc["attach"] = self.attach
        return doc


@dataclass
class Refund:
    refund_id: str
    out_refund_no: str
    out_trade_no: str
    transaction_id: str
    refund: int
    total: int
    reason: str | None
    notify_url: str | None
    params: dict[str, Any]
    create_time: str
    status: Literal["PROCESSING", "SUCCESS", "ABNORMAL", "CLOSED"] = "PROCESSING"
    success_time: str | None = None

    def answer(self, mchid: str) -> dict[str, Any]:
        """The refund as the refund APIs answer it."""
        doc: dict[str, Any] = {
            "refund_id": self.refund_id,
            "out_refund_no": self.out_refund_no,
            "transaction_id": self.transaction_id,
            "out_trade_no": self.out_trade_no,
            "channel": "ORIGINAL",
            "user_received_account": "支付用户零钱",
            "create_time": self.create_time,
            "status": self.status,
            "funds_account": "AVAILABLE",
            "amount": {
                "total": self.total,
                "refund": self.refund,
                "payer_total": self.total,
                "payer_refund": self.refund,
                "settlement_total": self.total,
                "settlement_refund": self.refund,
                "discount_refund": 0,
                "currency": "CNY",
                "refund_fee": 0,
            },
            "promotion_detail": [],
        }
        if self.success_time:
            doc["success_time"] = self.success_time
        return doc

    def notification_resource(self, mchid: str) -> dict[str, Any]:
        """The decrypted resource of a REFUND.* notification."""
        doc: dict[str, Any] = {
            "mchid": mchid,
            "transaction_id": self.transaction_id,
            "out_trade_no": self.out_trade_no,
            "refund_id": self.refund_id,
            "out_refund_no": self.out_refund_no,
            "refund_status": self.status,
            "user_received_account": "支付用户零钱",
            "amount": {
                "total": self.total,
                "refund": self.refund,
                "payer_total": self.total,
                "payer_refund": self.refund,
            },
        }
        if self.success_time:
            doc["success_time"] = self.success_time
        return doc


@dataclass
class Attempt:
    at: str
    status: int | None
    error: str | None
    response: str
    duplicate: bool = False
    replay: bool = False


@dataclass
class Notification:
    id: str
    event_type: str
    url: str
    body: bytes
    resource: dict[str, Any]
    tampered_signature: bool
    out_trade_no: str
    out_refund_no: str | None = None
    state: Literal["pending", "delivered", "failed", "suppressed"] = "pending"
    attempts: list[Attempt] = field(default_factory=list)
    last_headers: dict[str, str] = field(default_factory=dict)

    def view(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "event_type": self.event_type,
            "url": self.url,
            "out_trade_no": self.out_trade_no,
            "out_refund_no": self.out_refund_no,
            "state": self.state,
            "tampered_signature": self.tampered_signature,
            "resource": self.resource,
            "attempts": [a.__dict__ for a in self.attempts],
        }


class SandboxState:
    """One sandbox's memory. All access happens on the event loop, so no locking is needed."""

    def __init__(self, config: SandboxConfig) -> None:
        self.config = config
        self.reset()

    def reset(self) -> None:
        self.knobs = Knobs.defaults(self.config)
        self.login_codes: dict[str, OneTimeCode] = {}
        self.phone_codes: dict[str, OneTimeCode] = {}
        self.tokens: dict[str, AccessToken] = {}
        self.stable_token: str | None = None
        self.faults: dict[str, Fault] = {}
        self.pay_faults: list[PayFault] = []
        self.bad_response_signatures = 0
        self.messages: list[dict[str, Any]] = []
        self.rejected_messages: list[dict[str, Any]] = []
        self.orders: dict[str, Order] = {}
        self.refunds: dict[str, Refund] = {}
        self.notifications: dict[str, Notification] = {}
        self.calls: Counter[str] = Counter()

    def take_fault(self, api: str) -> int | None:
        """The errcode to answer instead, while an injected fault for `api` has calls left."""
        fault = self.faults.get(api)
        if fault is None or fault.remaining <= 0:
            return None
        fault.remaining -= 1
        if fault.remaining == 0:
            del self.faults[api]
        return fault.errcode

    def take_pay_fault(self) -> PayFault | None:
        if not self.pay_faults:
            return None
        fault = self.pay_faults[0]
        fault.remaining -= 1
        if fault.remaining <= 0:
            self.pay_faults.pop(0)
        return fault

    def code_fresh(self, code: OneTimeCode) -> bool:
        return time.time() - code.created <= self.config.code_ttl_s
