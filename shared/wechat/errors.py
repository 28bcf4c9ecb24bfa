"""Errors of the WeChat APIs, as values a caller can act on (retry, refresh, tell the student)."""

from __future__ import annotations

from typing import Any, Literal

# Access-token errors: the token is invalid (40001, 40014) or expired (42001); refresh and retry once.
TOKEN_ERRCODES = frozenset({40001, 40014, 42001})
# Worth retrying later: system busy (-1) and call-frequency limits (45011).
_RETRYABLE_ERRCODES = frozenset({-1, 45011})
_RETRYABLE_PAY_CODES = frozenset({"SYSTEM_ERROR", "SYSTEMERROR", "FREQUENCY_LIMITED", "TRANSPORT_ERROR"})

RejectionReason = Literal["bad_signature", "stale_timestamp", "unknown_serial", "malformed", "decrypt_failed"]


class WeChatError(Exception):
    """A mini-program API answered `errcode != 0` (or could not be reached: errcode -1)."""

    def __init__(self, errcode: int, errmsg: str) -> None:
        super().__init__(f"WeChat error {errcode}: {errmsg}")
        self.errcode = errcode
        self.errmsg = errmsg

    @property
    def token_invalid(self) -> bool:
        return self.errcode in TOKEN_ERRCODES

    @property
    def retryable(self) -> bool:
        return self.errcode in _RETRYABLE_ERRCODES


class WeChatPayError(Exception):
    """WeChat Pay API v3 answered 4xx/5xx (`{"code", "message"}`), or the answer could not be trusted.

    `status` 0 means no answer at all (code `TRANSPORT_ERROR`): the outcome of a write is unknown, and
    repeating it with the same `out_trade_no` / `out_refund_no` is safe.
    """

    def __init__(self, status: int, code: str, message: str, detail: Any = None) -> None:
        super().__init__(f"WeChat Pay error {status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.detail = detail

    @property
    def retryable(self) -> bool:
        return self.status >= 500 or self.status == 429 or self.code in _RETRYABLE_PAY_CODES


class NotificationRejected(Exception):
    """A WeChat Pay notification failed verification; answer it with a non-2xx so WeChat retries."""

    def __init__(self, reason: RejectionReason, detail: str = "") -> None:
        super().__init__(f"notification rejected: {reason}" + (f" ({detail})" if detail else ""))
        self.reason: RejectionReason = reason
        self.detail = detail
