"""The real mini-program client against the WeChat sandbox: login, phone number, token, messages."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from sandbox.wechat import SandboxServer
from shared.wechat.errors import WeChatError
from shared.wechat.miniprogram import WeChatClient
from tests.support.wechat import client_settings, running_sandbox, shared_keyset


@pytest.fixture
async def sandbox() -> AsyncIterator[SandboxServer]:
    async with running_sandbox(shared_keyset()) as server:
        yield server


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
def client(sandbox: SandboxServer, http: aiohttp.ClientSession) -> WeChatClient:
    return WeChatClient(client_settings(shared_keyset(), sandbox.url), http)


async def control(
    http: aiohttp.ClientSession, sandbox: SandboxServer, path: str, body: dict[str, Any] | None = None
) -> dict[str, Any]:
    async with http.post(f"{sandbox.url}/sandbox/{path}", json=body or {}) as resp:
        assert resp.status in (200, 201), await resp.text()
        result: dict[str, Any] = await resp.json()
        return result


async def test_login_code_gives_the_openid_once(
    client: WeChatClient, sandbox: SandboxServer, http: aiohttp.ClientSession
) -> None:
    minted = await control(http, sandbox, "login-codes", {"openid": "oStudent_0000000000000000001"})
    session = await client.code2session(minted["code"])
    assert session.openid == "oStudent_0000000000000000001"
    assert len(base64.b64decode(session.session_key, validate=True)) == 16 and session.unionid is None
    assert session.session_key not in repr(session)
    with pytest.raises(WeChatError) as reused:
        await client.code2session(minted["code"])
    assert reused.value.errcode == 40163 and reused.value.errmsg.startswith("code been used")


async def test_login_passes_the_unionid_through(
    client: WeChatClient, sandbox: SandboxServer, http: aiohttp.ClientSession
) -> None:
    minted = await control(http, sandbox, "login-codes", {"unionid": "oUnion_abcdefghijklmnopqrstu"})
    session = await client.code2session(minted["code"])
    assert session.unionid == "oUnion_abcdefghijklmnopqrstu"
    assert session.openid == minted["openid"] and session.openid.startswith("o") and len(session.openid) == 28


async def test_unknown_code_and_wrong_credentials_get_wechat_errcodes(
    sandbox: SandboxServer, http: aiohttp.ClientSession
) -> None:
    ks = shared_keyset()
    good = WeChatClient(client_settings(ks, sandbox.url), http)
    with pytest.raises(WeChatError) as unknown:
        await good.code2session("071abcDEF")
    assert unknown.value.errcode == 40029
    minted = await control(http, sandbox, "login-codes")
    wrong_secret = WeChatClient(client_settings(ks, sandbox.url, wechat_secret="0" * 32), http)
    with pytest.raises(WeChatError) as secret_error:
        await wrong_secret.code2session(minted["code"])
    assert secret_error.value.errcode == 40125
    wrong_appid = WeChatClient(client_settings(ks, sandbox.url, wechat_appid="wx0000000000000000"), http)
    with pytest.raises(WeChatError) as appid_error:
        await wrong_appid.code2session(minted["code"])
    assert appid_error.value.errcode == 40013
    # The refused attempts did not consume the code.
    assert (await good.code2session(minted["code"])).openid == minted["openid"]


async def test_phone_number_once_per_code(
    client: WeChatClient, sandbox: SandboxServer, http: aiohttp.ClientSession
) -> None:
    minted = await control(http, sandbox, "phone-codes", {"phone": "13800138000"})
    phone = await client.get_phone_number(minted["code"])
    assert (phone.phone_number, phone.pure_phone_number, phone.country_code) == (
        "13800138000",
        "13800138000",
        "86",
    )
    assert "13800138000" not in repr(phone)
    with pytest.raises(WeChatError) as reused:
        await client.get_phone_number(minted["code"])
    assert reused.value.errcode == 40029


async def test_twenty_callers_on_a_rejected_token_share_one_refresh(
    client: WeChatClient, sandbox: SandboxServer, http: aiohttp.ClientSession
) -> None:
    first = await control(http, sandbox, "phone-codes", {"phone": "13900000000"})
    await client.get_phone_number(first["code"])
    assert client.tokens.refreshes == 1
    await control(http, sandbox, "tokens/expire", {"errcode": 40001})
    codes = [
        (await control(http, sandbox, "phone-codes", {"phone": f"1390000{i:04d}"}))["code"] for i in range(20)
    ]
    phones = await asyncio.gather(*(client.get_phone_number(code) for code in codes))
    assert sorted(p.pure_phone_number for p in phones) == [f"1390000{i:04d}" for i in range(20)]
    assert client.tokens.refreshes == 2
    assert sandbox.state.calls["stable_token"] == 2
    # 1 + 20 rejected with 40001 + 20 retries.
    assert sandbox.state.calls["getuserphonenumber"] == 41


async def test_an_expired_token_is_refreshed_and_the_call_retried_once(
    client: WeChatClient, sandbox: SandboxServer, http: aiohttp.ClientSession
) -> None:
    await control(http, sandbox, "phone-codes", {"phone": "13700000000"})
    token = await client.tokens.get()
    await control(http, sandbox, "tokens/expire")  # 42001
    minted = await control(http, sandbox, "phone-codes", {"phone": "13700000001"})
    assert (await client.get_phone_number(minted["code"])).pure_phone_number == "13700000001"
    assert await client.tokens.get() != token
    assert sandbox.state.calls["getuserphonenumber"] == 2


async def test_the_token_is_renewed_before_it_expires(
    sandbox: SandboxServer, http: aiohttp.ClientSession
) -> None:
    await control(http, sandbox, "knobs", {"token_ttl_s": 2})
    client = WeChatClient(client_settings(shared_keyset(), sandbox.url), http)
    first = await client.tokens.get()
    assert await client.tokens.get() == first and client.tokens.refreshes == 1
    await asyncio.sleep(1.85)  # inside the last 10 % of the TTL, before expiry
    minted = await control(http, sandbox, "phone-codes", {"phone": "13600000000"})
    await client.get_phone_number(minted["code"])
    assert client.tokens.refreshes == 2 and await client.tokens.get() != first
    assert sandbox.state.calls["getuserphonenumber"] == 1  # renewed ahead: never rejected


async def test_the_legacy_token_api_can_be_configured(
    sandbox: SandboxServer, http: aiohttp.ClientSession
) -> None:
    client = WeChatClient(client_settings(shared_keyset(), sandbox.url, wechat_token_api="token"), http)
    await client.send_subscribe_message("oStudent_0000000000000000001", "T1", {"thing1": {"value": "通过"}})
    assert sandbox.state.calls["token"] == 1 and sandbox.state.calls["stable_token"] == 0


async def test_subscribe_message_is_recorded_as_sent(
    client: WeChatClient, sandbox: SandboxServer, http: aiohttp.ClientSession
) -> None:
    data = {"thing1": {"value": "毕业照审核通过"}, "time2": {"value": "2024-06-08 10:34"}}
    await client.send_subscribe_message(
        "oStudent_0000000000000000001", "TPL_review", data, page="pages/status/index", lang="zh_CN"
    )
    async with http.get(f"{sandbox.url}/sandbox/messages") as resp:
        recorded = await resp.json()
    assert len(recorded["messages"]) == 1
    message = recorded["messages"][0]
    assert message["touser"] == "oStudent_0000000000000000001"
    assert message["template_id"] == "TPL_review" and message["data"] == data
    assert message["page"] == "pages/status/index" and message["miniprogram_state"] == "formal"
    async with http.delete(f"{sandbox.url}/sandbox/messages") as resp:
        assert resp.status == 200
    assert sandbox.state.messages == []


@pytest.mark.parametrize("errcode", [43101, 45009, 47003, -1])
async def test_injected_subscribe_errors_reach_the_caller(
    client: WeChatClient, sandbox: SandboxServer, http: aiohttp.ClientSession, errcode: int
) -> None:
    await control(http, sandbox, "faults", {"subscribe_errcode": errcode, "count": 1})
    data = {"thing1": {"value": "审核未通过"}}
    with pytest.raises(WeChatError) as failed:
        await client.send_subscribe_message("oStudent_0000000000000000001", "T1", data)
    assert failed.value.errcode == errcode
    assert failed.value.retryable is (errcode == -1)
    await client.send_subscribe_message("oStudent_0000000000000000001", "T1", data)  # the fault was used up
    assert len(sandbox.state.messages) == 1 and len(sandbox.state.rejected_messages) == 1


async def test_a_40001_on_subscribe_is_retried_once_after_a_refresh(
    client: WeChatClient, sandbox: SandboxServer, http: aiohttp.ClientSession
) -> None:
    data = {"thing1": {"value": "已支付"}}
    await control(http, sandbox, "faults", {"subscribe_errcode": 40001, "count": 1})
    await client.send_subscribe_message("oStudent_0000000000000000001", "T1", data)
    assert len(sandbox.state.messages) == 1 and client.tokens.refreshes == 2
    await control(http, sandbox, "faults", {"subscribe_errcode": 40001, "count": 2})
    with pytest.raises(WeChatError) as failed:
        await client.send_subscribe_message("oStudent_0000000000000000001", "T1", data)
    assert failed.value.errcode == 40001 and failed.value.token_invalid
    assert sandbox.state.calls["subscribe_send"] == 4  # 2 + one try and exactly one retry
    assert client.tokens.refreshes == 3


async def test_the_sandbox_checks_the_message_shape(
    client: WeChatClient, sandbox: SandboxServer, http: aiohttp.ClientSession
) -> None:
    openid = "oStudent_0000000000000000001"
    cases: list[tuple[dict[str, Any], int]] = [
        ({"openid": "", "data": {"thing1": {"value": "x"}}}, 40003),
        ({"openid": openid, "data": {"thing1": {"value": "超" * 21}}}, 47003),  # thing: 20 at most
        ({"openid": openid, "data": {"thing1": "plain string"}}, 47003),
        ({"openid": openid, "data": {"thing1": {"value": "x"}}, "miniprogram_state": "beta"}, 47003),
    ]
    for case, errcode in cases:
        with pytest.raises(WeChatError) as failed:
            await client.send_subscribe_message(
                case["openid"],
                "T1",
                case["data"],
                miniprogram_state=case.get("miniprogram_state", "formal"),
            )
        assert failed.value.errcode == errcode, case
    await control(http, sandbox, "knobs", {"subscribe_templates": {"T_result": ["thing1", "phrase2"]}})
    with pytest.raises(WeChatError) as wrong_keys:
        await client.send_subscribe_message(openid, "T_result", {"thing1": {"value": "x"}})
    assert wrong_keys.value.errcode == 47003
    with pytest.raises(WeChatError) as unknown_template:
        await client.send_subscribe_message(openid, "T_other", {"thing1": {"value": "x"}})
    assert unknown_template.value.errcode == 40037
    await client.send_subscribe_message(
        openid, "T_result", {"thing1": {"value": "x"}, "phrase2": {"value": "通过"}}
    )
    assert len(sandbox.state.messages) == 1 and len(sandbox.state.rejected_messages) == 6


async def test_an_unreachable_wechat_is_errcode_minus_one_without_the_secret(
    http: aiohttp.ClientSession,
) -> None:
    ks = shared_keyset()
    client = WeChatClient(client_settings(ks, "http://127.0.0.1:9", wechat_timeout_s=2), http)
    with pytest.raises(WeChatError) as failed:
        await client.code2session("071abcDEF")
    assert failed.value.errcode == -1 and failed.value.retryable
    assert ks.secret not in str(failed.value) and "071abcDEF" not in str(failed.value)
