"""The real WeChat Pay client against the sandbox: orders, payment, notifications, refunds, signatures."""

from __future__ import annotations

import asyncio
import base64
import json
import re
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from sandbox.wechat import SandboxServer
from shared.wechat.errors import NotificationRejected, WeChatPayError
from shared.wechat.keys import generate_keyset
from shared.wechat.pay import WeChatPayClient
from tests.support.wechat import (
    NotificationReceiver,
    client_settings,
    notification_receiver,
    running_sandbox,
    shared_keyset,
)

PAYER = "oPayer_000000000000000000001"


@pytest.fixture
async def sandbox() -> AsyncIterator[SandboxServer]:
    async with running_sandbox(shared_keyset()) as server:
        yield server


@pytest.fixture
async def receiver() -> AsyncIterator[NotificationReceiver]:
    async with notification_receiver() as r:
        yield r


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
def pay(
    sandbox: SandboxServer, receiver: NotificationReceiver, http: aiohttp.ClientSession
) -> WeChatPayClient:
    settings = client_settings(
        shared_keyset(),
        sandbox.url,
        notify_url=f"{receiver.url}/pay/notify",
        refund_notify_url=f"{receiver.url}/refund/notify",
    )
    return WeChatPayClient(settings, http)


async def control(
    http: aiohttp.ClientSession, sandbox: SandboxServer, path: str, body: dict[str, Any] | None = None
) -> tuple[int, dict[str, Any]]:
    async with http.post(f"{sandbox.url}/sandbox/{path}", json=body or {}) as resp:
        return resp.status, await resp.json()


async def paid_order(
    pay: WeChatPayClient,
    sandbox: SandboxServer,
    http: aiohttp.ClientSession,
    out_trade_no: str,
    total: int = 3000,
) -> dict[str, Any]:
    await pay.create_jsapi_order(out_trade_no, "毕业照采集服务", total, PAYER)
    status, paid = await control(http, sandbox, f"pay/{out_trade_no}")
    assert status == 200, paid
    return paid


async def test_create_pay_and_receive_a_verified_notification(
    pay: WeChatPayClient, sandbox: SandboxServer, receiver: NotificationReceiver, http: aiohttp.ClientSession
) -> None:
    ks = shared_keyset()
    prepay_id = await pay.create_jsapi_order(
        "GP20240608000001", "毕业照采集服务", 3000, PAYER, attach="application=app-1"
    )
    assert re.fullmatch(r"wx[0-9a-f]{34}", prepay_id)
    params = pay.request_payment_params(prepay_id)
    merchant_public = serialization.load_pem_public_key(ks.merchant_public_key.encode())
    assert isinstance(merchant_public, rsa.RSAPublicKey)
    merchant_public.verify(  # raises if paySign is wrong
        base64.b64decode(params["paySign"]),
        f"{ks.appid}\n{params['timeStamp']}\n{params['nonceStr']}\nprepay_id={prepay_id}\n".encode(),
        padding.PKCS1v15(),
        hashes.SHA256(),
    )
    before = await pay.query_order("GP20240608000001")
    assert before["trade_state"] == "NOTPAY" and "transaction_id" not in before
    assert before["amount"]["total"] == 3000 and before["payer"]["openid"] == PAYER

    status, paid = await control(http, sandbox, "pay/GP20240608000001", {"payer_openid": PAYER})
    assert status == 200 and paid["trade_state"] == "SUCCESS"
    [arrived] = await receiver.wait_for(1)
    assert arrived.path == "/pay/notify"
    assert arrived.headers["Wechatpay-Serial"] == ks.platform_public_key_id
    notification = pay.verify_notification(arrived.headers, arrived.body)
    assert notification["event_type"] == "TRANSACTION.SUCCESS"
    assert notification["id"] == paid["notification_id"]
    resource = notification["resource"]
    assert resource["out_trade_no"] == "GP20240608000001" and resource["trade_state"] == "SUCCESS"
    assert resource["amount"]["total"] == 3000 and resource["payer"]["openid"] == PAYER
    assert resource["attach"] == "application=app-1" and resource["mchid"] == ks.mchid
    assert resource["transaction_id"] == paid["transaction_id"]
    # The envelope is as WeChat sends it, and the resource really is encrypted on the wire.
    envelope = json.loads(arrived.body)
    assert envelope["resource_type"] == "encrypt-resource"
    assert envelope["resource"]["algorithm"] == "AEAD_AES_256_GCM"
    assert b"GP20240608000001" not in arrived.body

    after = await pay.query_order("GP20240608000001")
    assert after["trade_state"] == "SUCCESS" and after["transaction_id"] == paid["transaction_id"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+08:00", after["success_time"])
    [record] = (await (await http.get(f"{sandbox.url}/sandbox/notifications")).json())["notifications"]
    assert record["state"] == "delivered" and record["attempts"][0]["status"] == 204


async def test_a_repeated_order_returns_the_same_prepay_id_and_a_conflicting_one_is_refused(
    pay: WeChatPayClient, sandbox: SandboxServer, http: aiohttp.ClientSession
) -> None:
    first = await pay.create_jsapi_order("GP20240608000002", "毕业照采集服务", 3000, PAYER)
    assert await pay.create_jsapi_order("GP20240608000002", "毕业照采集服务", 3000, PAYER) == first
    with pytest.raises(WeChatPayError) as conflict:
        await pay.create_jsapi_order("GP20240608000002", "毕业照采集服务", 4500, PAYER)
    assert (conflict.value.status, conflict.value.code) == (400, "INVALID_REQUEST")
    await control(http, sandbox, "pay/GP20240608000002")
    with pytest.raises(WeChatPayError) as paid:
        await pay.create_jsapi_order("GP20240608000002", "毕业照采集服务", 3000, PAYER)
    assert (paid.value.status, paid.value.code) == (400, "ORDERPAID")


async def test_only_the_payer_the_order_was_placed_for_can_pay(
    pay: WeChatPayClient, sandbox: SandboxServer, http: aiohttp.ClientSession
) -> None:
    await pay.create_jsapi_order("GP20240608000003", "毕业照采集服务", 3000, PAYER)
    status, body = await control(
        http, sandbox, "pay/GP20240608000003", {"payer_openid": "oSomeoneElse_0000000000001"}
    )
    assert (status, body["code"]) == (409, "PAYER_MISMATCH")
    assert (await pay.query_order("GP20240608000003"))["trade_state"] == "NOTPAY"


async def test_close_order(pay: WeChatPayClient, sandbox: SandboxServer, http: aiohttp.ClientSession) -> None:
    await pay.create_jsapi_order("GP20240608000004", "毕业照采集服务", 3000, PAYER)
    await pay.close_order("GP20240608000004")
    assert (await pay.query_order("GP20240608000004"))["trade_state"] == "CLOSED"
    status, body = await control(http, sandbox, "pay/GP20240608000004")
    assert (status, body["code"]) == (409, "ORDER_NOT_PAYABLE")
    with pytest.raises(WeChatPayError) as closed:
        await pay.create_jsapi_order("GP20240608000004", "毕业照采集服务", 3000, PAYER)
    assert closed.value.code == "ORDER_CLOSED"
    await paid_order(pay, sandbox, http, "GP20240608000005")
    with pytest.raises(WeChatPayError) as already_paid:
        await pay.close_order("GP20240608000005")
    assert (already_paid.value.status, already_paid.value.code) == (400, "ORDERPAID")


async def test_unknown_orders_and_refunds_are_404(pay: WeChatPayClient) -> None:
    with pytest.raises(WeChatPayError) as order:
        await pay.query_order("GP_NEVER_PLACED")
    assert (order.value.status, order.value.code, order.value.retryable) == (404, "ORDER_NOT_EXIST", False)
    with pytest.raises(WeChatPayError) as refund:
        await pay.query_refund("RF_NEVER_ASKED")
    assert (refund.value.status, refund.value.code) == (404, "RESOURCE_NOT_EXISTS")
    with pytest.raises(WeChatPayError) as refund_unknown_order:
        await pay.refund("GP_NEVER_PLACED", "RF_000000001", 100, 100)
    assert refund_unknown_order.value.code == "RESOURCE_NOT_EXISTS"


async def test_refund_then_its_notification(
    pay: WeChatPayClient, sandbox: SandboxServer, receiver: NotificationReceiver, http: aiohttp.ClientSession
) -> None:
    paid = await paid_order(pay, sandbox, http, "GP20240608000006")
    await receiver.wait_for(1)
    refund = await pay.refund("GP20240608000006", "RF20240608000006", 1000, 3000, reason="学生申请退款")
    assert refund["status"] == "PROCESSING" and refund["transaction_id"] == paid["transaction_id"]
    assert refund["amount"]["refund"] == 1000 and refund["amount"]["total"] == 3000
    arrived = (await receiver.wait_for(2))[1]
    assert arrived.path == "/refund/notify"
    notification = pay.verify_notification(arrived.headers, arrived.body)
    assert notification["event_type"] == "REFUND.SUCCESS"
    assert notification["resource"]["refund_status"] == "SUCCESS"
    assert notification["resource"]["out_refund_no"] == "RF20240608000006"
    assert notification["resource"]["refund_id"] == refund["refund_id"]
    assert (await pay.query_refund("RF20240608000006"))["status"] == "SUCCESS"
    assert (await pay.query_order("GP20240608000006"))["trade_state"] == "REFUND"
    # The same refund asked again is the same refund; more than what is left is refused.
    assert (await pay.refund("GP20240608000006", "RF20240608000006", 1000, 3000, reason="学生申请退款"))[
        "refund_id"
    ] == refund["refund_id"]
    with pytest.raises(WeChatPayError) as too_much:
        await pay.refund("GP20240608000006", "RF20240608000007", 2001, 3000)
    assert (too_much.value.status, too_much.value.code) == (400, "INVALID_REQUEST")
    assert (await pay.refund("GP20240608000006", "RF20240608000008", 2000, 3000))["status"] == "PROCESSING"


async def test_a_refund_that_goes_abnormal_is_notified_as_such(
    pay: WeChatPayClient, sandbox: SandboxServer, receiver: NotificationReceiver, http: aiohttp.ClientSession
) -> None:
    await control(http, sandbox, "knobs", {"refund_result": "ABNORMAL", "refund_delay_s": 0.1})
    await paid_order(pay, sandbox, http, "GP20240608000009")
    await pay.refund("GP20240608000009", "RF20240608000009", 3000, 3000)
    assert (await pay.query_refund("RF20240608000009"))["status"] == "PROCESSING"
    notification = pay.verify_notification(*_hb((await receiver.wait_for(2))[1]))
    assert notification["event_type"] == "REFUND.ABNORMAL"
    assert (await pay.query_refund("RF20240608000009"))["status"] == "ABNORMAL"


def _hb(received: Any) -> tuple[dict[str, str], bytes]:
    return received.headers, received.body


async def test_a_badly_signed_merchant_request_gets_401_sign_error(
    sandbox: SandboxServer, http: aiohttp.ClientSession
) -> None:
    ks = shared_keyset()
    other = generate_keyset()
    forged = WeChatPayClient(
        client_settings(ks, sandbox.url, wechatpay_private_key=other.merchant_private_key), http
    )
    with pytest.raises(WeChatPayError) as bad_key:
        await forged.create_jsapi_order("GP20240608000010", "毕业照采集服务", 3000, PAYER)
    assert (bad_key.value.status, bad_key.value.code) == (401, "SIGN_ERROR")
    wrong_serial = WeChatPayClient(
        client_settings(ks, sandbox.url, wechatpay_merchant_serial=other.merchant_serial), http
    )
    with pytest.raises(WeChatPayError) as bad_serial:
        await wrong_serial.query_order("GP20240608000010")
    assert (bad_serial.value.status, bad_serial.value.code) == (401, "SIGN_ERROR")
    assert "GP20240608000010" not in sandbox.state.orders


async def test_unsigned_and_stale_requests_are_refused_with_a_signed_answer(
    pay: WeChatPayClient, sandbox: SandboxServer, http: aiohttp.ClientSession
) -> None:
    path = "/v3/pay/transactions/out-trade-no/GP20240608000011?mchid=" + shared_keyset().mchid
    async with http.get(sandbox.url + path) as resp:
        assert resp.status == 401
        body = await resp.read()
        assert json.loads(body)["code"] == "SIGN_ERROR"
        pay.verifier.verify_signature(resp.headers, body)  # errors are signed too
    stale = pay.authorization("GET", path, "").replace(
        f'timestamp="{int(time.time())}"', f'timestamp="{int(time.time()) - 600}"'
    )
    async with http.get(sandbox.url + path, headers={"Authorization": stale}) as resp:
        assert resp.status == 401 and (await resp.json())["code"] == "SIGN_ERROR"


async def test_an_answer_with_a_bad_signature_is_not_trusted(
    pay: WeChatPayClient, sandbox: SandboxServer, http: aiohttp.ClientSession
) -> None:
    await control(http, sandbox, "faults", {"bad_response_signatures": 1})
    with pytest.raises(WeChatPayError) as untrusted:
        await pay.create_jsapi_order("GP20240608000012", "毕业照采集服务", 3000, PAYER)
    assert (untrusted.value.code, untrusted.value.message) == ("INVALID_RESPONSE_SIGNATURE", "bad_signature")
    # The order was placed: asking again with the same parameters is safe and now verifies.
    assert await pay.create_jsapi_order("GP20240608000012", "毕业照采集服务", 3000, PAYER)


async def test_answers_signed_under_another_key_id_are_not_trusted(
    sandbox: SandboxServer, http: aiohttp.ClientSession
) -> None:
    settings = client_settings(
        shared_keyset(),
        sandbox.url,
        notify_url="http://127.0.0.1:9/pay/notify",
        wechatpay_public_key_id="PUB_KEY_ID_0000000000",
    )
    with pytest.raises(WeChatPayError) as untrusted:
        await WeChatPayClient(settings, http).create_jsapi_order("GP20240608000013", "毕业照", 3000, PAYER)
    assert untrusted.value.message == "unknown_serial"


async def test_injected_server_errors_are_retryable(
    pay: WeChatPayClient, sandbox: SandboxServer, http: aiohttp.ClientSession
) -> None:
    await control(http, sandbox, "faults", {"pay_status": 500, "pay_code": "SYSTEM_ERROR", "count": 1})
    with pytest.raises(WeChatPayError) as failed:
        await pay.create_jsapi_order("GP20240608000014", "毕业照采集服务", 3000, PAYER)
    assert (failed.value.status, failed.value.code, failed.value.retryable) == (500, "SYSTEM_ERROR", True)
    assert await pay.create_jsapi_order("GP20240608000014", "毕业照采集服务", 3000, PAYER)


async def test_unreachable_wechat_pay_is_a_transport_error(http: aiohttp.ClientSession) -> None:
    settings = client_settings(shared_keyset(), "http://127.0.0.1:9", wechat_timeout_s=2)
    with pytest.raises(WeChatPayError) as failed:
        await WeChatPayClient(settings, http).query_order("GP20240608000015")
    assert (failed.value.status, failed.value.code, failed.value.retryable) == (0, "TRANSPORT_ERROR", True)


# --- notification knobs ------------------------------------------------------------------------


async def test_a_tampered_notification_is_rejected_and_retried(
    pay: WeChatPayClient, sandbox: SandboxServer, receiver: NotificationReceiver, http: aiohttp.ClientSession
) -> None:
    await control(http, sandbox, "knobs", {"tampered_signature": True, "retry_delays_s": [0.05, 0.05]})
    receiver.statuses = [401, 401, 401]  # what a verifying merchant answers
    await paid_order(pay, sandbox, http, "GP20240608000020")
    arrivals = await receiver.wait_for(3)
    for arrived in arrivals:
        with pytest.raises(NotificationRejected) as rejected:
            pay.verify_notification(arrived.headers, arrived.body)
        assert rejected.value.reason == "bad_signature"
    await sandbox.notifier.idle()
    [record] = sandbox.state.notifications.values()
    assert record.state == "failed" and [a.status for a in record.attempts] == [401, 401, 401]


async def test_a_failed_delivery_is_retried_until_it_is_accepted(
    pay: WeChatPayClient, sandbox: SandboxServer, receiver: NotificationReceiver, http: aiohttp.ClientSession
) -> None:
    receiver.statuses = [500]
    await paid_order(pay, sandbox, http, "GP20240608000021")
    first, second = await receiver.wait_for(2)
    assert json.loads(first.body)["id"] == json.loads(second.body)["id"]
    assert first.headers["Wechatpay-Nonce"] != second.headers["Wechatpay-Nonce"]  # signed afresh
    assert pay.verify_notification(second.headers, second.body)["resource"]["trade_state"] == "SUCCESS"
    await sandbox.notifier.idle()
    [record] = sandbox.state.notifications.values()
    assert record.state == "delivered" and [a.status for a in record.attempts] == [500, 204]


async def test_duplicates_arrive_with_the_same_id(
    pay: WeChatPayClient, sandbox: SandboxServer, receiver: NotificationReceiver, http: aiohttp.ClientSession
) -> None:
    await control(http, sandbox, "knobs", {"duplicate": 2})
    await paid_order(pay, sandbox, http, "GP20240608000022")
    arrivals = await receiver.wait_for(3)
    ids = {pay.verify_notification(a.headers, a.body)["id"] for a in arrivals}
    assert len(ids) == 1
    await sandbox.notifier.idle()
    assert len(receiver.received) == 3


async def test_never_notify_leaves_the_order_to_reconciliation(
    pay: WeChatPayClient, sandbox: SandboxServer, receiver: NotificationReceiver, http: aiohttp.ClientSession
) -> None:
    await control(http, sandbox, "knobs", {"never_notify": True})
    await paid_order(pay, sandbox, http, "GP20240608000023")
    await sandbox.notifier.idle()
    assert receiver.received == []
    [record] = sandbox.state.notifications.values()
    assert record.state == "suppressed"
    assert (await pay.query_order("GP20240608000023"))["trade_state"] == "SUCCESS"


async def test_a_delayed_notification_arrives_late(
    pay: WeChatPayClient, sandbox: SandboxServer, receiver: NotificationReceiver, http: aiohttp.ClientSession
) -> None:
    await control(http, sandbox, "knobs", {"delay_s": 0.4})
    await pay.create_jsapi_order("GP20240608000024", "毕业照采集服务", 3000, PAYER)
    paid_at = asyncio.get_running_loop().time()
    await control(http, sandbox, "pay/GP20240608000024")
    [arrived] = await receiver.wait_for(1)
    assert arrived.at - paid_at >= 0.4


async def test_a_replayed_notification_carries_the_original_signature(
    pay: WeChatPayClient, sandbox: SandboxServer, receiver: NotificationReceiver, http: aiohttp.ClientSession
) -> None:
    paid = await paid_order(pay, sandbox, http, "GP20240608000025")
    [original] = await receiver.wait_for(1)
    status, _ = await control(http, sandbox, f"notifications/{paid['notification_id']}/replay")
    assert status == 202
    replayed = (await receiver.wait_for(2))[1]
    assert replayed.body == original.body
    assert replayed.headers["Wechatpay-Signature"] == original.headers["Wechatpay-Signature"]
    # Within five minutes a replay verifies: the merchant must deduplicate on the id.
    assert pay.verify_notification(replayed.headers, replayed.body)["id"] == paid["notification_id"]
    # Later it is stale.
    ts = int(replayed.headers["Wechatpay-Timestamp"])
    with pytest.raises(NotificationRejected) as stale:
        pay.verify_notification(replayed.headers, replayed.body, now=ts + 301)
    assert stale.value.reason == "stale_timestamp"


async def test_real_notifications_with_a_wrong_serial_or_tampered_ciphertext_are_rejected(
    pay: WeChatPayClient, sandbox: SandboxServer, receiver: NotificationReceiver, http: aiohttp.ClientSession
) -> None:
    await paid_order(pay, sandbox, http, "GP20240608000026")
    [arrived] = await receiver.wait_for(1)
    wrong_serial = {**arrived.headers, "Wechatpay-Serial": "PUB_KEY_ID_0000000000000000"}
    with pytest.raises(NotificationRejected) as serial:
        pay.verify_notification(wrong_serial, arrived.body)
    assert serial.value.reason == "unknown_serial"
    # Flip one ciphertext byte and sign again with the platform key: only AES-GCM can notice.
    envelope = json.loads(arrived.body)
    raw = bytearray(base64.b64decode(envelope["resource"]["ciphertext"]))
    raw[5] ^= 0x01
    envelope["resource"]["ciphertext"] = base64.b64encode(bytes(raw)).decode()
    body = json.dumps(envelope).encode()
    platform = serialization.load_pem_private_key(shared_keyset().platform_private_key.encode(), None)
    assert isinstance(platform, rsa.RSAPrivateKey)
    ts, nonce = arrived.headers["Wechatpay-Timestamp"], arrived.headers["Wechatpay-Nonce"]
    signature = platform.sign(f"{ts}\n{nonce}\n".encode() + body + b"\n", padding.PKCS1v15(), hashes.SHA256())
    headers = {**arrived.headers, "Wechatpay-Signature": base64.b64encode(signature).decode()}
    with pytest.raises(NotificationRejected) as tampered:
        pay.verify_notification(headers, body)
    assert tampered.value.reason == "decrypt_failed"


async def test_sandbox_keys_are_independent_per_instance(http: aiohttp.ClientSession) -> None:
    """A client holding one key set cannot talk to a sandbox holding another: no shared global state."""
    async with running_sandbox(generate_keyset()) as server:
        client = WeChatPayClient(client_settings(shared_keyset(), server.url), http)
        with pytest.raises(WeChatPayError) as refused:
            await client.query_order("GP20240608000027")
        assert refused.value.code == "SIGN_ERROR"
