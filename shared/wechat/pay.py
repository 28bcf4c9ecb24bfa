"""WeChat Pay API v3 for JSAPI (mini-program) payments: signed requests, verified answers and notifications.

Public-key mode only: WeChat Pay signs with its platform key, identified by `PUB_KEY_ID_...` in the
`Wechatpay-Serial` header; we sign with the merchant API key, identified by its certificate serial.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import quote, urlencode

import aiohttp
from cryptography.hazmat.primitives.asymmetric import rsa
from yarl import URL

from shared.wechat.config import WeChatSettings
from shared.wechat.crypto import (
    aes_gcm_decrypt,
    load_private_key,
    load_public_key,
    nonce_str,
    rsa_sign,
    rsa_verify,
)
from shared.wechat.errors import NotificationRejected, WeChatPayError
from shared.wechat.http import transport_detail

AUTH_SCHEME = "WECHATPAY2-SHA256-RSA2048"
CHINA_TZ = timezone(timedelta(hours=8))
# 6-32 of digits, letters and _-|*: WeChat's rule for out_trade_no and out_refund_no.
_OUT_NO_RE = re.compile(r"^[0-9A-Za-z_\-|*]{6,32}$")
# WeChat's out_refund_no: "只能是数字、大小写字母_-|*@", string(64) (申请退款, /v3/refund/domestic/refunds).
_OUT_REFUND_NO_RE = re.compile(r"^[0-9A-Za-z_\-|*@]{1,64}$")
_USER_AGENT = "gradphoto-wechatpay/1 (aiohttp)"


def _lower_headers(headers: Mapping[str, str]) -> dict[str, str]:
    return {str(k).lower(): str(v) for k, v in headers.items()}


def _check_out_no(name: str, value: str) -> None:
    if not _OUT_NO_RE.match(value):
        raise ValueError(f"{name} must be 6-32 characters of 0-9 A-Z a-z _ - | *")


def _check_refund_no(value: str) -> None:
    if not _OUT_REFUND_NO_RE.match(value):
        raise ValueError("out_refund_no must be 1-64 characters of 0-9 A-Z a-z _ - | * @")


def format_time(value: datetime) -> str:
    """RFC 3339 in China time, as WeChat Pay writes and expects it (`2024-06-08T10:34:56+08:00`)."""
    if value.tzinfo is None:
        raise ValueError("time_expire must be timezone-aware")
    return value.astimezone(CHINA_TZ).isoformat(timespec="seconds")


class NotificationVerifier:
    """Checks what WeChat Pay signs (responses and notifications) and decrypts notification resources.

    Needs no merchant private key and no HTTP session, so a callback handler can hold just this.
    """

    def __init__(self, public_key_pem: str, public_key_id: str, apiv3_key: str, max_age_s: float) -> None:
        self._public_key = load_public_key(public_key_pem)
        self._public_key_id = public_key_id
        self._apiv3_key = apiv3_key
        self._max_age_s = max_age_s

    @classmethod
    def from_settings(cls, settings: WeChatSettings) -> NotificationVerifier:
        return cls(
            settings.wechatpay_public_key,
            settings.wechatpay_public_key_id,
            settings.wechatpay_apiv3_key.get_secret_value(),
            settings.wechatpay_notify_max_age_s,
        )

    def verify_signature(self, headers: Mapping[str, str], body: bytes, *, now: float | None = None) -> None:
        """Serial, signature over `timestamp\\nnonce\\nbody\\n`, freshness; raises NotificationRejected."""
        h = _lower_headers(headers)
        serial = h.get("wechatpay-serial", "")
        timestamp = h.get("wechatpay-timestamp", "")
        nonce = h.get("wechatpay-nonce", "")
        signature = h.get("wechatpay-signature", "")
        if not (serial and timestamp and nonce and signature):
            raise NotificationRejected("malformed", "missing Wechatpay-* signature headers")
        if serial != self._public_key_id:
            # A platform-certificate serial, or a key we were not given: never trust it.
            raise NotificationRejected("unknown_serial", serial[:64])
        if not timestamp.isdigit():
            raise NotificationRejected("malformed", "Wechatpay-Timestamp is not a number")
        message = f"{timestamp}\n{nonce}\n".encode() + body + b"\n"
        # WeChat Pay probes merchants with `WECHATPAY/SIGNTEST/...` signatures: they must fail here.
        if not rsa_verify(self._public_key, message, signature):
            raise NotificationRejected("bad_signature")
        current = time.time() if now is None else now
        if abs(current - int(timestamp)) > self._max_age_s:
            raise NotificationRejected("stale_timestamp", f"{int(current - int(timestamp))} s off")

    def verify_notification(
        self, headers: Mapping[str, str], body: bytes, *, now: float | None = None
    ) -> dict[str, Any]:
        """Verify and decrypt a payment or refund notification.

        Returns `{"id", "event_type", "create_time", "resource_type", "summary", "resource"}` with
        `resource` the decrypted JSON object (a transaction or a refund).
        """
        self.verify_signature(headers, body, now=now)
        try:
            envelope = json.loads(body)
        except ValueError:
            raise NotificationRejected("malformed", "body is not JSON") from None
        if not isinstance(envelope, dict):
            raise NotificationRejected("malformed", "body is not a JSON object")
        resource = envelope.get("resource")
        if not isinstance(resource, dict):
            raise NotificationRejected("malformed", "no resource")
        if resource.get("algorithm") != "AEAD_AES_256_GCM":
            raise NotificationRejected("malformed", f"algorithm {str(resource.get('algorithm'))[:32]}")
        ciphertext, nonce = resource.get("ciphertext"), resource.get("nonce")
        associated_data = resource.get("associated_data") or ""
        if (
            not isinstance(ciphertext, str)
            or not isinstance(nonce, str)
            or not isinstance(associated_data, str)
        ):
            raise NotificationRejected("malformed", "resource lacks ciphertext/nonce")
        event_id, event_type = envelope.get("id"), envelope.get("event_type")
        if not isinstance(event_id, str) or not isinstance(event_type, str):
            raise NotificationRejected("malformed", "no id/event_type")
        try:
            plaintext = aes_gcm_decrypt(self._apiv3_key, nonce, associated_data, ciphertext)
        except ValueError:
            raise NotificationRejected("decrypt_failed") from None
        try:
            decrypted = json.loads(plaintext)
        except ValueError:
            raise NotificationRejected("malformed", "decrypted resource is not JSON") from None
        if not isinstance(decrypted, dict):
            raise NotificationRejected("malformed", "decrypted resource is not a JSON object")
        return {
            "id": event_id,
            "event_type": event_type,
            "create_time": envelope.get("create_time"),
            "resource_type": envelope.get("resource_type"),
            "summary": envelope.get("summary"),
            "resource": decrypted,
        }


class WeChatPayClient:
    """JSAPI orders, queries, closing, refunds; every request signed, every 2xx answer verified.

    Raises WeChatPayError on a 4xx/5xx answer, an answer whose signature fails, or no answer. Built
    from settings without any WECHATPAY_* credential it is "not configured": every call raises
    WeChatPayError(0, "NOT_CONFIGURED") and every notification is refused (`unknown_serial`), so a
    service may always build one. Credentials given only in part are a configuration error (ValueError).
    """

    def __init__(self, settings: WeChatSettings, session: aiohttp.ClientSession) -> None:
        required = (
            ("WECHAT_APPID", settings.wechat_appid),
            ("WECHATPAY_MCHID", settings.wechatpay_mchid),
            ("WECHATPAY_MERCHANT_SERIAL", settings.wechatpay_merchant_serial),
            ("WECHATPAY_PRIVATE_KEY", settings.wechatpay_private_key.get_secret_value()),
            ("WECHATPAY_PUBLIC_KEY", settings.wechatpay_public_key),
            ("WECHATPAY_PUBLIC_KEY_ID", settings.wechatpay_public_key_id),
            ("WECHATPAY_APIV3_KEY", settings.wechatpay_apiv3_key.get_secret_value()),
        )
        missing = [name for name, value in required if not value]
        self._settings = settings
        self._session = session
        self._base = settings.wechatpay_api_base.rstrip("/")
        self._private_key: rsa.RSAPrivateKey | None = None
        self._verifier: NotificationVerifier | None = None
        self._missing = missing
        if missing and any(value for name, value in required if name.startswith("WECHATPAY_")):
            raise ValueError(f"WeChat Pay is configured in part: {', '.join(missing)} not set")
        if not missing:
            self._private_key = load_private_key(settings.wechatpay_private_key.get_secret_value())
            self._verifier = NotificationVerifier.from_settings(settings)

    @property
    def configured(self) -> bool:
        return not self._missing

    @property
    def merchant(self) -> tuple[str, str]:
        """(appid, mchid): a notification naming another one is not for us."""
        return self._settings.wechat_appid, self._settings.wechatpay_mchid

    @property
    def verifier(self) -> NotificationVerifier:
        if self._verifier is None:
            raise self._not_configured()
        return self._verifier

    def _key(self) -> rsa.RSAPrivateKey:
        if self._private_key is None:
            raise self._not_configured()
        return self._private_key

    def _not_configured(self) -> WeChatPayError:
        return WeChatPayError(
            0, "NOT_CONFIGURED", f"WeChat Pay is not configured: {', '.join(self._missing)}"
        )

    # --- the mini-program side -----------------------------------------------------------------

    def request_payment_params(self, prepay_id: str) -> dict[str, str]:
        """Arguments for `wx.requestPayment`; paySign covers `appId\\ntimeStamp\\nnonceStr\\npackage\\n`."""
        timestamp = str(int(time.time()))
        nonce = nonce_str()
        package = f"prepay_id={prepay_id}"
        message = f"{self._settings.wechat_appid}\n{timestamp}\n{nonce}\n{package}\n"
        return {
            "timeStamp": timestamp,
            "nonceStr": nonce,
            "package": package,
            "signType": "RSA",
            "paySign": rsa_sign(self._key(), message),
        }

    def verify_notification(
        self, headers: Mapping[str, str], body: bytes, *, now: float | None = None
    ) -> dict[str, Any]:
        """See NotificationVerifier.verify_notification; raises NotificationRejected(reason)."""
        if self._verifier is None:
            raise NotificationRejected("unknown_serial", "WeChat Pay is not configured")
        return self._verifier.verify_notification(headers, body, now=now)

    # --- orders --------------------------------------------------------------------------------

    async def create_jsapi_order(
        self,
        out_trade_no: str,
        description: str,
        amount_fen: int,
        payer_openid: str,
        *,
        attach: str | None = None,
        time_expire: datetime | str | None = None,
    ) -> str:
        """Place a JSAPI order and return its prepay_id (valid 2 hours).

        Repeating the call with the same parameters returns the same prepay_id, so a retry after a
        lost answer is safe; different parameters under the same out_trade_no are refused.
        """
        _check_out_no("out_trade_no", out_trade_no)
        s = self._settings
        body: dict[str, Any] = {
            "appid": s.wechat_appid,
            "mchid": s.wechatpay_mchid,
            "description": description,
            "out_trade_no": out_trade_no,
        }
        if time_expire is not None:
            body["time_expire"] = (
                format_time(time_expire) if isinstance(time_expire, datetime) else time_expire
            )
        if attach is not None:
            body["attach"] = attach
        body["notify_url"] = s.wechatpay_notify_url
        body["amount"] = {"total": amount_fen, "currency": "CNY"}
        body["payer"] = {"openid": payer_openid}
        _status, answer = await self._request("POST", "/v3/pay/transactions/jsapi", body=body)
        prepay_id = (answer or {}).get("prepay_id")
        if not isinstance(prepay_id, str) or not prepay_id:
            raise WeChatPayError(200, "INVALID_RESPONSE", "answer without prepay_id")
        return prepay_id

    async def query_order(self, out_trade_no: str) -> dict[str, Any]:
        """The order as WeChat Pay sees it (`trade_state` NOTPAY, SUCCESS, CLOSED, REFUND, ...)."""
        _check_out_no("out_trade_no", out_trade_no)
        _status, answer = await self._request(
            "GET",
            f"/v3/pay/transactions/out-trade-no/{quote(out_trade_no, safe='')}",
            query={"mchid": self._settings.wechatpay_mchid},
        )
        return answer or {}

    async def close_order(self, out_trade_no: str) -> None:
        """Close an unpaid order so it can no longer be paid (WeChat answers 204)."""
        _check_out_no("out_trade_no", out_trade_no)
        await self._request(
            "POST",
            f"/v3/pay/transactions/out-trade-no/{quote(out_trade_no, safe='')}/close",
            body={"mchid": self._settings.wechatpay_mchid},
        )

    async def refund(
        self,
        out_trade_no: str,
        out_refund_no: str,
        refund_fen: int,
        total_fen: int,
        reason: str | None = None,
    ) -> dict[str, Any]:
        """Ask for a refund; the answer's `status` is usually PROCESSING, the result comes by notification."""
        _check_out_no("out_trade_no", out_trade_no)
        _check_refund_no(out_refund_no)
        body: dict[str, Any] = {"out_trade_no": out_trade_no, "out_refund_no": out_refund_no}
        if reason:
            body["reason"] = reason
        if self._settings.wechatpay_refund_notify_url:
            body["notify_url"] = self._settings.wechatpay_refund_notify_url
        body["amount"] = {"refund": refund_fen, "total": total_fen, "currency": "CNY"}
        _status, answer = await self._request("POST", "/v3/refund/domestic/refunds", body=body)
        return answer or {}

    async def query_refund(self, out_refund_no: str) -> dict[str, Any]:
        _check_refund_no(out_refund_no)
        _status, answer = await self._request(
            "GET", f"/v3/refund/domestic/refunds/{quote(out_refund_no, safe='')}"
        )
        return answer or {}

    # --- the wire ------------------------------------------------------------------------------

    def authorization(self, method: str, path_with_query: str, body: str) -> str:
        """The `Authorization` header over `METHOD\\nPATH?QUERY\\nTIMESTAMP\\nNONCE\\nBODY\\n`."""
        timestamp = str(int(time.time()))
        nonce = nonce_str()
        message = f"{method}\n{path_with_query}\n{timestamp}\n{nonce}\n{body}\n"
        signature = rsa_sign(self._key(), message)
        s = self._settings
        return (
            f'{AUTH_SCHEME} mchid="{s.wechatpay_mchid}",nonce_str="{nonce}",signature="{signature}",'
            f'timestamp="{timestamp}",serial_no="{s.wechatpay_merchant_serial}"'
        )

    async def _request(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, str] | None = None,
        body: Mapping[str, Any] | None = None,
    ) -> tuple[int, dict[str, Any] | None]:
        verifier = self.verifier  # not configured: fail before anything is sent
        url = URL(self._base + path + (f"?{urlencode(query)}" if query else ""), encoded=True)
        body_text = "" if body is None else json.dumps(body, ensure_ascii=False, separators=(",", ":"))
        headers = {
            # Signed over the path exactly as sent, including any path prefix of the base URL.
            "Authorization": self.authorization(method, url.raw_path_qs, body_text),
            "Accept": "application/json",
            "User-Agent": _USER_AGENT,
        }
        if body is not None:
            headers["Content-Type"] = "application/json"
        try:
            async with self._session.request(
                method,
                url,
                data=body_text.encode() if body is not None else None,
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=self._settings.wechat_timeout_s),
            ) as resp:
                status = resp.status
                raw = await resp.read()
                resp_headers = dict(resp.headers)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise WeChatPayError(0, "TRANSPORT_ERROR", transport_detail(exc)) from None
        if not 200 <= status < 300:
            # Error answers are not trusted for anything but their code: a forged one can only make
            # us fail or retry, never record a payment.
            raise _error_from(status, raw)
        try:
            verifier.verify_signature(resp_headers, raw)
        except NotificationRejected as exc:
            raise WeChatPayError(status, "INVALID_RESPONSE_SIGNATURE", exc.reason) from None
        if not raw:
            return status, None
        try:
            answer = json.loads(raw)
        except ValueError:
            raise WeChatPayError(status, "INVALID_RESPONSE", "answer is not JSON") from None
        if not isinstance(answer, dict):
            raise WeChatPayError(status, "INVALID_RESPONSE", "answer is not a JSON object")
        return status, answer


def _error_from(status: int, raw: bytes) -> WeChatPayError:
    try:
        payload = json.loads(raw)
    except ValueError:
        payload = None
    if isinstance(payload, dict) and isinstance(payload.get("code"), str):
        return WeChatPayError(status, payload["code"], str(payload.get("message", "")), payload.get("detail"))
    return WeChatPayError(status, "HTTP_ERROR", f"HTTP {status} without an error body")
