"""The client's signatures and the notification check, against messages built by hand in the test.

Everything here is written out with `cryptography` directly, not with the helpers under test, so a
wrong canonical string on the client side cannot agree with itself.
"""

from __future__ import annotations

import base64
import json
import re
import time
from datetime import UTC, datetime
from typing import Any

import aiohttp
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from shared.wechat.config import WeChatSettings
from shared.wechat.errors import NotificationRejected, WeChatPayError
from shared.wechat.keys import client_env
from shared.wechat.pay import NotificationVerifier, WeChatPayClient, format_time
from tests.support.wechat import client_settings, shared_keyset


def _public(pem: str) -> rsa.RSAPublicKey:
    key = serialization.load_pem_public_key(pem.encode())
    assert isinstance(key, rsa.RSAPublicKey)
    return key


def _private(pem: str) -> rsa.RSAPrivateKey:
    key = serialization.load_pem_private_key(pem.encode(), password=None)
    assert isinstance(key, rsa.RSAPrivateKey)
    return key


def _verifies(public_pem: str, message: bytes, signature_b64: str) -> bool:
    try:
        _public(public_pem).verify(
            base64.b64decode(signature_b64), message, padding.PKCS1v15(), hashes.SHA256()
        )
    except Exception:
        return False
    return True


def _notification(
    resource: dict[str, Any],
    *,
    signing_key_pem: str | None = None,
    serial: str | None = None,
    timestamp: int | None = None,
    apiv3_key: str | None = None,
    mutate_ciphertext: bool = False,
) -> tuple[dict[str, str], bytes]:
    """A TRANSACTION.SUCCESS notification exactly as WeChat Pay documents it."""
    ks = shared_keyset()
    nonce = "fR3sNonce12x"
    ciphertext = AESGCM((apiv3_key or ks.apiv3_key).encode()).encrypt(
        nonce.encode(), json.dumps(resource).encode(), b"transaction"
    )
    if mutate_ciphertext:
        ciphertext = bytes([ciphertext[0] ^ 1]) + ciphertext[1:]
    body = json.dumps(
        {
            "id": "EV-2018022511223320873",
            "create_time": "2024-06-08T10:34:56+08:00",
            "resource_type": "encrypt-resource",
            "event_type": "TRANSACTION.SUCCESS",
            "summary": "支付成功",
            "resource": {
                "original_type": "transaction",
                "algorithm": "AEAD_AES_256_GCM",
                "ciphertext": base64.b64encode(ciphertext).decode(),
                "associated_data": "transaction",
                "nonce": nonce,
            },
        },
        ensure_ascii=False,
    ).encode()
    ts = str(int(time.time()) if timestamp is None else timestamp)
    header_nonce = "593BEC0C930BF1AFEB40B4A08C8FB242"
    key = _private(signing_key_pem or ks.platform_private_key)
    signature = key.sign(
        f"{ts}\n{header_nonce}\n".encode() + body + b"\n", padding.PKCS1v15(), hashes.SHA256()
    )
    headers = {
        "Wechatpay-Timestamp": ts,
        "Wechatpay-Nonce": header_nonce,
        "Wechatpay-Signature": base64.b64encode(signature).decode(),
        "Wechatpay-Serial": serial or ks.platform_public_key_id,
        "Wechatpay-Signature-Type": "WECHATPAY2-SHA256-RSA2048",
    }
    return headers, body


@pytest.fixture
def verifier() -> NotificationVerifier:
    ks = shared_keyset()
    return NotificationVerifier(ks.platform_public_key, ks.platform_public_key_id, ks.apiv3_key, 300)


RESOURCE = {"out_trade_no": "ORDER_000001", "trade_state": "SUCCESS", "amount": {"total": 3000}}


def test_a_genuine_notification_is_verified_and_decrypted(verifier: NotificationVerifier) -> None:
    headers, body = _notification(RESOURCE)
    result = verifier.verify_notification(headers, body)
    assert result["id"] == "EV-2018022511223320873"
    assert result["event_type"] == "TRANSACTION.SUCCESS"
    assert result["resource"] == RESOURCE


def test_header_names_are_case_insensitive(verifier: NotificationVerifier) -> None:
    headers, body = _notification(RESOURCE)
    lowered = {k.lower(): v for k, v in headers.items()}
    assert verifier.verify_notification(lowered, body)["resource"]["amount"]["total"] == 3000


def _reason(verifier: NotificationVerifier, headers: dict[str, str], body: bytes, **kw: Any) -> str:
    with pytest.raises(NotificationRejected) as info:
        verifier.verify_notification(headers, body, **kw)
    return info.value.reason


def test_a_signature_by_another_key_is_refused(verifier: NotificationVerifier) -> None:
    forged_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = forged_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    headers, body = _notification(RESOURCE, signing_key_pem=pem)
    assert _reason(verifier, headers, body) == "bad_signature"


def test_a_changed_body_breaks_the_signature(verifier: NotificationVerifier) -> None:
    headers, body = _notification(RESOURCE)
    assert _reason(verifier, headers, body.replace(b"TRANSACTION.SUCCESS", b"TRANSACTION.SUCCESX")) == (
        "bad_signature"
    )


def test_wechat_pay_signtest_probes_are_refused(verifier: NotificationVerifier) -> None:
    headers, body = _notification(RESOURCE)
    headers["Wechatpay-Signature"] = "WECHATPAY/SIGNTEST/" + headers["Wechatpay-Signature"]
    assert _reason(verifier, headers, body) == "bad_signature"


def test_an_unknown_serial_is_refused(verifier: NotificationVerifier) -> None:
    headers, body = _notification(RESOURCE, serial="5157F09EFDC096DE15EBE81A47057A7232F1B8E1")
    assert _reason(verifier, headers, body) == "unknown_serial"


@pytest.mark.parametrize("offset", [301, -301])
def test_stale_or_future_timestamps_are_refused(verifier: NotificationVerifier, offset: int) -> None:
    now = time.time()
    headers, body = _notification(RESOURCE, timestamp=int(now) - offset)
    assert _reason(verifier, headers, body, now=now) == "stale_timestamp"
    # Inside the window the same notification passes.
    assert verifier.verify_notification(headers, body, now=int(now) - offset + 299)["resource"] == RESOURCE


def test_tampered_ciphertext_fails_decryption(verifier: NotificationVerifier) -> None:
    headers, body = _notification(RESOURCE, mutate_ciphertext=True)  # re-signed: only AES-GCM notices
    assert _reason(verifier, headers, body) == "decrypt_failed"


def test_a_resource_encrypted_with_another_apiv3_key_fails_decryption(verifier: NotificationVerifier) -> None:
    headers, body = _notification(RESOURCE, apiv3_key="0123456789abcdef0123456789abcdef")
    assert _reason(verifier, headers, body) == "decrypt_failed"


def test_missing_headers_and_non_json_bodies_are_malformed(verifier: NotificationVerifier) -> None:
    headers, body = _notification(RESOURCE)
    del headers["Wechatpay-Nonce"]
    assert _reason(verifier, headers, body) == "malformed"
    ks = shared_keyset()
    ts, nonce, junk = str(int(time.time())), "N" * 32, b"not json"
    sig = _private(ks.platform_private_key).sign(
        f"{ts}\n{nonce}\n".encode() + junk + b"\n", padding.PKCS1v15(), hashes.SHA256()
    )
    signed_junk = {
        "Wechatpay-Timestamp": ts,
        "Wechatpay-Nonce": nonce,
        "Wechatpay-Signature": base64.b64encode(sig).decode(),
        "Wechatpay-Serial": ks.platform_public_key_id,
    }
    assert _reason(verifier, signed_junk, junk) == "malformed"


async def test_authorization_header_signs_method_path_time_nonce_body() -> None:
    ks = shared_keyset()
    async with aiohttp.ClientSession() as http:
        client = WeChatPayClient(client_settings(ks, "http://unused"), http)
    body = '{"mchid":"' + ks.mchid + '"}'
    header = client.authorization("POST", "/v3/pay/transactions/out-trade-no/ORDER_000001/close", body)
    scheme, _, params_text = header.partition(" ")
    assert scheme == "WECHATPAY2-SHA256-RSA2048"
    params = dict(re.findall(r'(\w+)="([^"]*)"', params_text))
    assert set(params) == {"mchid", "nonce_str", "signature", "timestamp", "serial_no"}
    assert params["mchid"] == ks.mchid and params["serial_no"] == ks.merchant_serial
    assert abs(int(params["timestamp"]) - time.time()) < 5
    message = (
        f"POST\n/v3/pay/transactions/out-trade-no/ORDER_000001/close\n{params['timestamp']}\n"
        f"{params['nonce_str']}\n{body}\n"
    ).encode()
    assert _verifies(ks.merchant_public_key, message, params["signature"])


async def test_request_payment_params_verify_with_the_merchant_public_key() -> None:
    ks = shared_keyset()
    async with aiohttp.ClientSession() as http:
        client = WeChatPayClient(client_settings(ks, "http://unused"), http)
    params = client.request_payment_params("wx201410272009395522657a690389285100")
    assert set(params) == {"timeStamp", "nonceStr", "package", "signType", "paySign"}
    assert params["package"] == "prepay_id=wx201410272009395522657a690389285100"
    assert params["signType"] == "RSA" and len(params["nonceStr"]) <= 32
    message = f"{ks.appid}\n{params['timeStamp']}\n{params['nonceStr']}\n{params['package']}\n".encode()
    assert _verifies(ks.merchant_public_key, message, params["paySign"])


async def test_pay_client_refuses_bad_order_numbers_and_partial_configuration() -> None:
    ks = shared_keyset()
    async with aiohttp.ClientSession() as http:
        client = WeChatPayClient(client_settings(ks, "http://unused"), http)
        assert client.configured
        with pytest.raises(ValueError, match="out_trade_no"):
            await client.query_order("../../v3/refund")
        with pytest.raises(ValueError, match="in part: WECHATPAY_PRIVATE_KEY not set"):
            WeChatPayClient(client_settings(ks, "http://unused", wechatpay_private_key=""), http)


async def test_an_unconfigured_pay_client_can_be_built_but_does_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    names = [
        *client_env(shared_keyset(), api_base="x"),
        "WECHATPAY_PRIVATE_KEY_FILE",
        "WECHATPAY_PUBLIC_KEY_FILE",
    ]
    for name in names:
        monkeypatch.delenv(name, raising=False)
    async with aiohttp.ClientSession() as http:
        client = WeChatPayClient(WeChatSettings(wechat_appid="wx1234567890abcdef"), http)
        assert not client.configured
        with pytest.raises(WeChatPayError) as failed:
            await client.create_jsapi_order("GP20240608000001", "毕业照", 3000, "oPayer_0001")
        assert (failed.value.status, failed.value.code, failed.value.retryable) == (
            0,
            "NOT_CONFIGURED",
            False,
        )
        with pytest.raises(WeChatPayError):
            client.request_payment_params("wx201410272009395522657a690389285100")
        headers, body = _notification(RESOURCE)
        with pytest.raises(NotificationRejected) as refused:
            client.verify_notification(headers, body)
        assert refused.value.reason == "unknown_serial"


def test_time_expire_is_china_time_and_must_be_aware() -> None:
    assert format_time(datetime(2024, 6, 8, 2, 34, 56, tzinfo=UTC)) == "2024-06-08T10:34:56+08:00"
    with pytest.raises(ValueError, match="timezone"):
        format_time(datetime(2024, 6, 8, 2, 34, 56))
