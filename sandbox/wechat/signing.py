"""WeChat Pay's side of the signatures: check the merchant's Authorization, sign answers and notifications.

The strings signed here are built independently of `shared.wechat.pay`, so a mistake in one side's
canonical form shows up as a failed signature instead of agreeing with itself.
"""

from __future__ import annotations

import json
import re
import secrets
import string
import time
import uuid
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric import rsa

from sandbox.wechat.state import now_cst
from shared.wechat.crypto import aes_gcm_encrypt, rsa_sign, rsa_verify

AUTH_SCHEME = "WECHATPAY2-SHA256-RSA2048"
_AUTH_PARAM_RE = re.compile(r'\s*([a-z_]+)="([^"]*)"\s*')
_REQUIRED_AUTH_PARAMS = ("mchid", "nonce_str", "signature", "timestamp", "serial_no")


class SignError(Exception):
    """The merchant request's Authorization is missing, malformed or does not verify (401 SIGN_ERROR)."""


@dataclass(frozen=True)
class MerchantAuth:
    mchid: str
    serial_no: str


def check_authorization(
    header: str,
    method: str,
    raw_path_qs: str,
    body: bytes,
    *,
    mchid: str,
    merchant_serial: str,
    merchant_public_key: rsa.RSAPublicKey,
    max_skew_s: float,
) -> MerchantAuth:
    """Verify `WECHATPAY2-SHA256-RSA2048 mchid=..,nonce_str=..,signature=..,timestamp=..,serial_no=..`."""
    scheme, _, params_text = header.partition(" ")
    if scheme != AUTH_SCHEME or not params_text:
        raise SignError("Http头Authorization值格式错误，请参考《微信支付商户REST API签名规则》")
    params: dict[str, str] = {}
    for part in params_text.split(","):
        match = _AUTH_PARAM_RE.fullmatch(part)
        if match is None:
            raise SignError("Http头Authorization值格式错误，请参考《微信支付商户REST API签名规则》")
        params[match.group(1)] = match.group(2)
    if any(not params.get(name) for name in _REQUIRED_AUTH_PARAMS):
        raise SignError("Http头Authorization值格式错误，缺少必要的签名参数")
    if params["mchid"] != mchid:
        raise SignError("商户号与Authorization中的mchid不符")
    if params["serial_no"] != merchant_serial:
        raise SignError("商户证书序列号有误。请使用签名私钥匹配的证书序列号")
    timestamp = params["timestamp"]
    if not timestamp.isdigit() or abs(time.time() - int(timestamp)) > max_skew_s:
        raise SignError("HTTP头Authorization中的timestamp与当前时间相差过大")
    signed = (
        method.upper().encode()
        + b"\n"
        + raw_path_qs.encode()
        + b"\n"
        + timestamp.encode()
        + b"\n"
        + params["nonce_str"].encode()
        + b"\n"
        + body
        + b"\n"
    )
    if not rsa_verify(merchant_public_key, signed, params["signature"]):
        raise SignError("错误的签名，验签失败")
    return MerchantAuth(params["mchid"], params["serial_no"])


def signature_headers(
    body: bytes, *, platform_key: rsa.RSAPrivateKey, public_key_id: str, tamper: bool = False
) -> dict[str, str]:
    """The `Wechatpay-*` headers WeChat Pay puts on every answer and notification."""
    timestamp = str(int(time.time()))
    nonce = secrets.token_hex(16).upper()
    signature = rsa_sign(platform_key, timestamp.encode() + b"\n" + nonce.encode() + b"\n" + body + b"\n")
    if tamper:
        # Still well-formed base64 of the right length, just not a signature of this message.
        signature = signature[:10] + ("A" if signature[10] != "A" else "B") + signature[11:]
    return {
        "Wechatpay-Timestamp": timestamp,
        "Wechatpay-Nonce": nonce,
        "Wechatpay-Signature": signature,
        "Wechatpay-Serial": public_key_id,
        "Wechatpay-Signature-Type": AUTH_SCHEME,
    }


def notification_body(
    *,
    event_type: str,
    summary: str,
    original_type: str,
    resource: dict[str, Any],
    apiv3_key: str,
) -> tuple[str, bytes]:
    """A notification as WeChat Pay posts it: the resource encrypted with AEAD_AES_256_GCM."""
    nonce = "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(12))
    associated_data = original_type
    plaintext = json.dumps(resource, ensure_ascii=False, separators=(",", ":"))
    event_id = str(uuid.uuid4())
    envelope = {
        "id": event_id,
        "create_time": now_cst(),
        "resource_type": "encrypt-resource",
        "event_type": event_type,
        "summary": summary,
        "resource": {
            "original_type": original_type,
            "algorithm": "AEAD_AES_256_GCM",
            "ciphertext": aes_gcm_encrypt(apiv3_key, nonce, associated_data, plaintext),
            "associated_data": associated_data,
            "nonce": nonce,
        },
    }
    return event_id, json.dumps(envelope, ensure_ascii=False, separators=(",", ":")).encode()
