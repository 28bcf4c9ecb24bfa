"""api.weixin.qq.com as the mini-program backend sees it: login, access tokens, phone numbers, messages.

Answers carry WeChat's `errcode`/`errmsg` convention (HTTP 200 either way) and its real error codes.
"""

from __future__ import annotations

import base64
import json
import re
import secrets
import time
from typing import Any

from aiohttp import web

from sandbox.wechat.state import AccessToken, SandboxState
from shared.wechat.subscribe import VALUE_LIMITS

# errmsg texts as WeChat writes them; WeChat appends " rid: <request id>".
ERRMSG = {
    -1: "system error",
    40001: "invalid credential, access_token is invalid or not latest",
    40002: "invalid grant_type",
    40003: "invalid openid",
    40013: "invalid appid",
    40014: "invalid access_token",
    40029: "invalid code",
    40037: "invalid template_id",
    40125: "invalid appsecret",
    40163: "code been used",
    41001: "access_token missing",
    41008: "missing code",
    41030: "invalid page",
    42001: "access_token expired",
    43101: "user refuse to accept the msg",
    45009: "reach max api daily quota limit",
    45011: "api minute-quota reach limit  mustslower  retry next minute",
    47001: "data format error",
    47003: "argument invalid!",
}

_OPENID_RE = re.compile(r"^[A-Za-z0-9_-]{6,64}$")
_DATA_KEY_RE = re.compile(r"^([a-z_]+?)(\d+)$")
_MINIPROGRAM_STATES = {"developer", "trial", "formal"}
_LANGS = {"zh_CN", "en_US", "zh_HK", "zh_TW"}


def wechat_error(errcode: int, detail: str = "") -> web.Response:
    message = ERRMSG.get(errcode, "error") + (f" {detail}" if detail else "")
    return web.json_response({"errcode": errcode, "errmsg": f"{message} rid: {secrets.token_hex(12)}"})


def _ok(payload: dict[str, Any], *, content_type: str = "application/json") -> web.Response:
    return web.Response(
        text=json.dumps(payload, ensure_ascii=False), content_type=content_type, charset="utf-8"
    )


class MiniProgramApi:
    def __init__(self, state: SandboxState) -> None:
        self.state = state

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/sns/jscode2session", self.jscode2session),
            web.get("/cgi-bin/token", self.token),
            web.post("/cgi-bin/stable_token", self.stable_token),
            web.post("/wxa/business/getuserphonenumber", self.getuserphonenumber),
            web.post("/cgi-bin/message/subscribe/send", self.subscribe_send),
        ]

    # --- credentials -----------------------------------------------------------------------------

    def _check_app(self, appid: str | None, secret: str | None) -> int | None:
        keyset = self.state.config.keyset
        if appid != keyset.appid:
            return 40013
        if secret != keyset.secret:
            return 40125
        return None

    async def jscode2session(self, request: web.Request) -> web.Response:
        self.state.calls["jscode2session"] += 1
        q = request.query
        if (err := self._check_app(q.get("appid"), q.get("secret"))) is not None:
            return wechat_error(err)
        if q.get("grant_type") != "authorization_code":
            return wechat_error(40002)
        js_code = q.get("js_code", "")
        if not js_code:
            return wechat_error(41008)
        if (fault := self.state.take_fault("code2session")) is not None:
            return wechat_error(fault)
        code = self.state.login_codes.get(js_code)
        if code is None or not self.state.code_fresh(code):
            return wechat_error(40029)
        if code.used:
            return wechat_error(40163)
        code.used = True
        answer: dict[str, Any] = {
            # Base64 of 16 bytes: the AES key wx.getUserInfo-style encrypted data is decrypted with.
            "session_key": base64.b64encode(secrets.token_bytes(16)).decode(),
            "openid": code.openid,
        }
        if code.unionid:
            answer["unionid"] = code.unionid
        # WeChat really answers this one as text/plain.
        return _ok(answer, content_type="text/plain")

    def _issue(self, api: str) -> AccessToken:
        ttl = self.state.knobs.token_ttl_s
        token = AccessToken(
            value=f"{int(time.time())}_{secrets.token_urlsafe(96)}",
            api="stable_token" if api == "stable_token" else "token",
            expires_at=time.time() + ttl,
        )
        self.state.tokens[token.value] = token
        return token

    def _renew_window(self) -> float:
        # Real WeChat renews a stable token in its last 5 minutes of 2 hours; scale it with the TTL.
        return min(300.0, self.state.knobs.token_ttl_s * 0.1)

    async def token(self, request: web.Request) -> web.Response:
        """The legacy API: every call makes a new token; older ones live on for 5 minutes at most."""
        self.state.calls["token"] += 1
        q = request.query
        if q.get("grant_type") != "client_credential":
            return wechat_error(40002)
        if (err := self._check_app(q.get("appid"), q.get("secret"))) is not None:
            return wechat_error(err)
        if (fault := self.state.take_fault("token")) is not None:
            return wechat_error(fault)
        cutoff = time.time() + self._renew_window()
        for old in self.state.tokens.values():
            if old.api == "token":
                old.expires_at = min(old.expires_at, cutoff)
        token = self._issue("token")
        return _ok({"access_token": token.value, "expires_in": int(self.state.knobs.token_ttl_s)})

    async def stable_token(self, request: web.Request) -> web.Response:
        """One token shared by all callers; a new one only in its last minutes or when forced."""
        self.state.calls["stable_token"] += 1
        body = await _json_body(request)
        if body is None:
            return wechat_error(47001)
        if body.get("grant_type") != "client_credential":
            return wechat_error(40002)
        if (err := self._check_app(body.get("appid"), body.get("secret"))) is not None:
            return wechat_error(err)
        if (fault := self.state.take_fault("token")) is not None:
            return wechat_error(fault)
        now = time.time()
        current = self.state.tokens.get(self.state.stable_token or "")
        force = body.get("force_refresh") is True
        if force and current is not None:
            current.invalid = True  # forcing a refresh invalidates the previous stable token
        if force or current is None or current.invalid or current.expires_at - now <= self._renew_window():
            current = self._issue("stable_token")
            self.state.stable_token = current.value
        return _ok({"access_token": current.value, "expires_in": max(1, round(current.expires_at - now))})

    def _check_token(self, request: web.Request) -> int | None:
        value = request.query.get("access_token")
        if not value:
            return 41001
        token = self.state.tokens.get(value)
        if token is None or token.invalid:
            return 40001
        if token.expires_at <= time.time():
            return 42001
        return None

    # --- APIs that need the access token -------------------------------------------------------

    async def getuserphonenumber(self, request: web.Request) -> web.Response:
        self.state.calls["getuserphonenumber"] += 1
        if (err := self._check_token(request)) is not None:
            return wechat_error(err)
        if (fault := self.state.take_fault("phone")) is not None:
            return wechat_error(fault)
        body = await _json_body(request)
        if body is None:
            return wechat_error(47001)
        code = self.state.phone_codes.get(str(body.get("code", "")))
        if code is None or code.used or not self.state.code_fresh(code):
            return wechat_error(40029)
        code.used = True
        phone_number = code.phone if code.country_code == "86" else f"+{code.country_code} {code.phone}"
        return _ok(
            {
                "errcode": 0,
                "errmsg": "ok",
                "phone_info": {
                    "phoneNumber": phone_number,
                    "purePhoneNumber": code.phone,
                    "countryCode": code.country_code,
                    "watermark": {"timestamp": int(time.time()), "appid": self.state.config.keyset.appid},
                },
            }
        )

    async def subscribe_send(self, request: web.Request) -> web.Response:
        self.state.calls["subscribe_send"] += 1
        if (err := self._check_token(request)) is not None:
            return wechat_error(err)
        body = await _json_body(request)
        if body is None:
            return wechat_error(47001)
        errcode, detail = self._validate_message(body)
        if errcode == 0 and (fault := self.state.take_fault("subscribe")) is not None:
            errcode, detail = fault, ""
        record = {
            "touser": body.get("touser"),
            "template_id": body.get("template_id"),
            "page": body.get("page"),
            "data": body.get("data"),
            "miniprogram_state": body.get("miniprogram_state", "formal"),
            "lang": body.get("lang", "zh_CN"),
            "received_at": time.time(),
            "errcode": errcode,
        }
        if errcode:
            self.state.rejected_messages.append(record)
            return wechat_error(errcode, detail)
        self.state.messages.append(record)
        return _ok({"errcode": 0, "errmsg": "ok", "msgid": int(time.time() * 1000)})

    def _validate_message(self, body: dict[str, Any]) -> tuple[int, str]:
        touser, template_id, data = body.get("touser"), body.get("template_id"), body.get("data")
        if not isinstance(touser, str) or not _OPENID_RE.match(touser):
            return 40003, ""
        templates = self.state.knobs.subscribe_templates
        if (
            not isinstance(template_id, str)
            or not template_id
            or (templates and template_id not in templates)
        ):
            return 40037, ""
        page = body.get("page")
        if page is not None and (not isinstance(page, str) or len(page) > 1024):
            return 41030, ""
        if body.get("miniprogram_state", "formal") not in _MINIPROGRAM_STATES:
            return 47003, "miniprogram_state invalid"
        if body.get("lang", "zh_CN") not in _LANGS:
            return 47003, "lang invalid"
        if not isinstance(data, dict) or not data:
            return 47003, "data invalid"
        if templates and sorted(data) != sorted(templates[template_id]):
            return 47003, f"data keys {sorted(data)} do not match the template"
        for key, item in data.items():
            match = _DATA_KEY_RE.match(str(key))
            if match is None or not isinstance(item, dict) or not isinstance(item.get("value"), str):
                return 47003, f"data.{key}.value invalid"
            value: str = item["value"]
            limit = VALUE_LIMITS.get(match.group(1))
            if not value or (limit is not None and len(value) > limit):
                return 47003, f"data.{key}.value invalid"
        return 0, ""


async def _json_body(request: web.Request) -> dict[str, Any] | None:
    try:
        body = json.loads(await request.read())
    except ValueError:
        return None
    return body if isinstance(body, dict) else None
