"""Mini-program server APIs: login (`jscode2session`), phone number, subscribe messages, access token."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from shared.logging import get_logger
from shared.wechat.config import WeChatSettings
from shared.wechat.errors import WeChatError
from shared.wechat.http import request_json

log = get_logger(__name__)

# Refresh this long before `expires_in` runs out. WeChat's stable_token hands out a new token only in
# the last 5 minutes (earlier it returns the same one), so the margin never exceeds 300 s.
_MAX_REFRESH_MARGIN_S = 300.0
_REFRESH_MARGIN_FRACTION = 0.1


@dataclass(frozen=True)
class SessionInfo:
    """What `jscode2session` proves: the user's openid in this mini-program (and unionid if bound)."""

    openid: str
    session_key: str = field(repr=False)
    unionid: str | None = None


@dataclass(frozen=True)
class PhoneInfo:
    """The phone number the user authorised; personal data, kept out of reprs and logs."""

    phone_number: str = field(repr=False)
    pure_phone_number: str = field(repr=False)
    country_code: str


class AccessTokenCache:
    """The app's access token, refreshed by one caller at a time, a little before it expires.

    Concurrent callers that need a refresh wait for the same one; a caller whose token was rejected
    passes it as `rejected`, so a refresh another caller already made is reused instead of repeated.
    """

    def __init__(
        self,
        settings: WeChatSettings,
        session: aiohttp.ClientSession,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._settings = settings
        self._session = session
        self._clock = clock
        self._lock = asyncio.Lock()
        self._token: str | None = None
        self._expires_at = 0.0
        self._refresh_at = 0.0
        self.refreshes = 0  # calls made to the token API: a metric, and what tests count

    async def get(self, *, force_refresh: bool = False, rejected: str | None = None) -> str:
        if not force_refresh and self._token is not None and self._clock() < self._refresh_at:
            return self._token
        async with self._lock:
            current = self._token
            if current is not None:
                if force_refresh and rejected is not None and current != rejected:
                    return current  # someone refreshed while we waited
                if not force_refresh and self._clock() < self._refresh_at:
                    return current
            try:
                return await self._refresh()
            except WeChatError as exc:
                # An early refresh failed but the token still has time left: keep serving it.
                if not force_refresh and current is not None and self._clock() < self._expires_at:
                    log.warning("wechat_token_refresh_failed", errcode=exc.errcode, errmsg=exc.errmsg)
                    return current
                raise

    def invalidate(self) -> None:
        """Forget the token, so the next `get` fetches a new one."""
        self._token = None
        self._refresh_at = self._expires_at = 0.0

    async def _refresh(self) -> str:
        s = self._settings
        base = s.wechat_api_base.rstrip("/")
        started = self._clock()
        self.refreshes += 1
        if s.wechat_token_api == "stable_token":  # noqa: S105
            payload = await request_json(
                self._session,
                "POST",
                f"{base}/cgi-bin/stable_token",
                timeout_s=s.wechat_timeout_s,
                body={
                    "grant_type": "client_credential",
                    "appid": s.wechat_appid,
                    "secret": s.wechat_secret.get_secret_value(),
                    "force_refresh": False,
                },
            )
        else:
            payload = await request_json(
                self._session,
                "GET",
                f"{base}/cgi-bin/token",
                timeout_s=s.wechat_timeout_s,
                params={
                    "grant_type": "client_credential",
                    "appid": s.wechat_appid,
                    "secret": s.wechat_secret.get_secret_value(),
                },
            )
        token = payload.get("access_token")
        try:
            expires_in = float(payload.get("expires_in", 0))
        except (TypeError, ValueError):
            expires_in = 0.0
        if not isinstance(token, str) or not token or expires_in <= 0:
            raise WeChatError(-1, "token API answered without access_token/expires_in")
        margin = min(_MAX_REFRESH_MARGIN_S, expires_in * _REFRESH_MARGIN_FRACTION)
        self._token = token
        self._expires_at = started + expires_in
        self._refresh_at = self._expires_at - margin
        log.info("wechat_token_refreshed", api=s.wechat_token_api, expires_in=int(expires_in))
        return token


class WeChatClient:
    """The mini-program's server-side APIs. Raises WeChatError for any `errcode != 0`."""

    def __init__(
        self,
        settings: WeChatSettings,
        session: aiohttp.ClientSession,
        *,
        tokens: AccessTokenCache | None = None,
    ) -> None:
        self._settings = settings
        self._session = session
        self._base = settings.wechat_api_base.rstrip("/")
        self.tokens = tokens if tokens is not None else AccessTokenCache(settings, session)

    async def code2session(self, js_code: str) -> SessionInfo:
        """Exchange a `wx.login` code (valid 5 minutes, once) for the user's openid and session key."""
        s = self._settings
        payload = await request_json(
            self._session,
            "GET",
            f"{self._base}/sns/jscode2session",
            timeout_s=s.wechat_timeout_s,
            params={
                "appid": s.wechat_appid,
                "secret": s.wechat_secret.get_secret_value(),
                "js_code": js_code,
                "grant_type": "authorization_code",
            },
        )
        openid, session_key = payload.get("openid"), payload.get("session_key")
        if not isinstance(openid, str) or not openid or not isinstance(session_key, str):
            raise WeChatError(-1, "jscode2session answered without openid/session_key")
        unionid = payload.get("unionid")
        return SessionInfo(openid, session_key, unionid if isinstance(unionid, str) and unionid else None)

    async def get_phone_number(self, code: str) -> PhoneInfo:
        """Exchange a `getPhoneNumber` button code (valid 5 minutes, once) for the user's phone number."""
        payload = await self._call_with_token("/wxa/business/getuserphonenumber", {"code": code})
        info = payload.get("phone_info")
        if not isinstance(info, dict) or not info.get("purePhoneNumber"):
            raise WeChatError(-1, "getuserphonenumber answered without phone_info")
        pure = str(info["purePhoneNumber"])
        return PhoneInfo(
            phone_number=str(info.get("phoneNumber") or pure),
            pure_phone_number=pure,
            country_code=str(info.get("countryCode", "")),
        )

    async def send_subscribe_message(
        self,
        openid: str,
        template_id: str,
        data: dict[str, dict[str, str]],
        page: str | None = None,
        miniprogram_state: str = "formal",
        lang: str = "zh_CN",
    ) -> None:
        """Send one subscribe message; each consumes one subscription the user granted (else 43101)."""
        body: dict[str, Any] = {
            "touser": openid,
            "template_id": template_id,
            "data": data,
            "miniprogram_state": miniprogram_state,
            "lang": lang,
        }
        if page is not None:
            body["page"] = page
        await self._call_with_token("/cgi-bin/message/subscribe/send", body)

    async def _call_with_token(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        token = await self.tokens.get()
        try:
            return await self._post(path, token, body)
        except WeChatError as exc:
            if not exc.token_invalid:
                raise
            log.info("wechat_token_rejected", errcode=exc.errcode, path=path)
        token = await self.tokens.get(force_refresh=True, rejected=token)
        return await self._post(path, token, body)

    async def _post(self, path: str, token: str, body: dict[str, Any]) -> dict[str, Any]:
        return await request_json(
            self._session,
            "POST",
            f"{self._base}{path}",
            timeout_s=self._settings.wechat_timeout_s,
            params={"access_token": token},
            body=body,
        )
