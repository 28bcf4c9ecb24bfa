"""One JSON request to a WeChat mini-program API, with WeChat's error convention turned into exceptions."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import aiohttp

from shared.wechat.errors import WeChatError


def transport_detail(exc: BaseException) -> str:
    """What may be said about a failed request: never the URL, which can carry the app secret or a code."""
    if isinstance(exc, aiohttp.ClientConnectorError):
        return f"cannot connect to {exc.host}:{exc.port}"
    return type(exc).__name__


async def request_json(
    session: aiohttp.ClientSession,
    method: str,
    url: str,
    *,
    timeout_s: float,
    params: Mapping[str, str] | None = None,
    body: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Send, parse and check `errcode`; raises WeChatError (errcode -1 when WeChat could not be reached).

    The body is sent as UTF-8 JSON without `\\u` escapes: some WeChat APIs show escaped Chinese literally.
    Responses are parsed whatever their Content-Type: `jscode2session` answers JSON as `text/plain`.
    """
    data = None if body is None else json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
    headers = {"Content-Type": "application/json; charset=utf-8"} if data is not None else {}
    try:
        async with session.request(
            method,
            url,
            params=params,
            data=data,
            headers=headers,
            timeout=aiohttp.ClientTimeout(total=timeout_s),
        ) as resp:
            status = resp.status
            text = await resp.text(encoding="utf-8", errors="replace")
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise WeChatError(-1, f"transport error: {transport_detail(exc)}") from None
    try:
        payload = json.loads(text)
    except ValueError:
        payload = None
    if not isinstance(payload, dict):
        raise WeChatError(-1, f"unexpected response (HTTP {status}, not a JSON object)")
    errcode = payload.get("errcode", 0)
    if errcode not in (0, None):
        try:
            code = int(errcode)
        except (TypeError, ValueError):
            code = -1
        raise WeChatError(code, str(payload.get("errmsg", "")))
    return payload
