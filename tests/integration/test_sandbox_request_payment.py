"""`POST /sandbox/request-payment`: what the WeChat client does with wx.requestPayment's parameters.

The client e2e's Node `wx.requestPayment` calls it with exactly what the gateway handed the page; the
sandbox checks paySign as WeChat does, finds the order by prepay_id and pays (or the user cancels).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from sandbox.wechat import SandboxServer
from shared.wechat.pay import WeChatPayClient
from tests.support.wechat import client_settings, running_sandbox, shared_keyset

PAYER = "oPayer_000000000000000000001"


@pytest.fixture
async def sandbox() -> AsyncIterator[SandboxServer]:
    async with running_sandbox(shared_keyset()) as server:
        yield server


async def _call(sandbox: SandboxServer, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{sandbox.url}/sandbox/request-payment", json=body) as resp,
    ):
        return resp.status, await resp.json()


async def _order(sandbox: SandboxServer, out_trade_no: str) -> dict[str, str]:
    settings = client_settings(shared_keyset(), sandbox.url, notify_url="http://127.0.0.1:9/pay/notify")
    async with aiohttp.ClientSession() as http:
        pay = WeChatPayClient(settings, http)
        prepay = await pay.create_jsapi_order(out_trade_no, "毕业照片采集服务", 3500, PAYER)
        return pay.request_payment_params(prepay)


async def test_cancel_then_pay_charges_once(sandbox: SandboxServer) -> None:
    params = await _order(sandbox, "T20260101cancel01")
    status, answer = await _call(sandbox, {**params, "cancel": True})
    assert (status, answer["errMsg"]) == (200, "requestPayment:fail cancel")
    assert sandbox.state.orders["T20260101cancel01"].trade_state == "NOTPAY"
    status, answer = await _call(sandbox, {**params, "openid": PAYER})
    assert (status, answer["errMsg"]) == (200, "requestPayment:ok")
    assert sandbox.state.orders["T20260101cancel01"].trade_state == "SUCCESS"
    status, answer = await _call(sandbox, {**params, "openid": PAYER})  # the same params again
    assert status == 409 and answer["code"] == "ORDER_NOT_PAYABLE"


@pytest.mark.parametrize(
    ("change", "status", "why"),
    [
        ({"paySign": "AAAA"}, 400, "sign error"),
        ({"nonceStr": "other"}, 400, "sign error"),
        ({"signType": "MD5"}, 400, "parameter error"),
        ({"package": ""}, 400, "parameter error"),
        ({"timeStamp": 1}, 400, "parameter error"),
        ({"openid": "oSomeoneElse"}, 409, None),
    ],
)
async def test_tampered_or_foreign_payments_are_refused(
    sandbox: SandboxServer, change: dict[str, Any], status: int, why: str | None
) -> None:
    params = await _order(sandbox, "T20260101tamper01")
    got, answer = await _call(sandbox, {**params, **change})
    assert got == status, answer
    if why:
        assert why in answer["errMsg"]
    else:
        assert answer["code"] == "PAYER_MISMATCH"
    assert sandbox.state.orders["T20260101tamper01"].trade_state == "NOTPAY"
