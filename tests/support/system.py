"""The gateway, the codec and the WeChat sandbox in the test's event loop, on the real broker and database."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from sandbox.wechat import SandboxServer
from services.codec.cipher import cipher_from_config
from services.codec.config import CodecSettings
from services.codec.handlers import INDEXES as CODEC_INDEXES
from services.codec.handlers import CodecHandlers
from services.gateway.app import build_app, start_background, stop_background
from services.gateway.config import GatewaySettings
from services.gateway.context import SCHOOLS
from services.gateway.roster import import_roster
from services.gateway.schools import SchoolConfig, demo_school
from shared.runtime import Runtime
from tests.conftest import free_port
from tests.support.codes import CLAIM, RECORD, blank_image
from tests.support.wechat import client_settings, running_sandbox, shared_keyset

ROSTER_ROW = {
    "name": CLAIM["name"],
    "student_number": CLAIM["student_number"],
    "id_last4": CLAIM["id_last4"],
    "class_name": RECORD.class_name,
    "level": RECORD.level,
    "onsite_shot": "否",
}


SECOND_ROW = {**ROSTER_ROW, "name": "钱小红", "student_number": "2110216053", "id_last4": "1234"}


def settings_from(env: dict[str, str], cls: type[Any], **overrides: Any) -> Any:
    return cls.model_validate({**{k.lower(): v for k, v in env.items()}, **overrides})


@dataclass
class Student:
    """A student's mini-program: an HTTP session that logged in through the WeChat sandbox."""

    system: System
    openid: str
    http: aiohttp.ClientSession
    token: str = ""
    scan_id: str = ""  # the last code submission's, once verified_student made one

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    async def request(self, method: str, path: str, **kwargs: Any) -> tuple[int, Any]:
        headers = {**self.headers, **kwargs.pop("headers", {})}
        async with self.http.request(
            method, f"{self.system.base_url}{path}", headers=headers, **kwargs
        ) as resp:
            body = (
                await resp.json(content_type=None)
                if resp.content_type == "application/json"
                else await resp.read()
            )
            return resp.status, body

    async def login(self) -> dict[str, Any]:
        code = await self.system.login_code(self.openid)
        status, body = await self.request("POST", "/api/v1/login", json={"code": code})
        assert status == 200, body
        self.token = body["token"]
        return dict(body)

    async def submit_text(self, qr_text: str, **fields: Any) -> tuple[int, Any]:
        return await self.request(
            "POST", "/api/v1/codes", json={**CLAIM, "agreed": True, "qr_text": qr_text, **fields}
        )

    async def wait_for_scan(self, scan_id: str) -> dict[str, Any]:
        status, body = await self.request("GET", f"/api/v1/codes/{scan_id}?wait=20")
        assert status == 200, body
        assert body["status"] != "pending", body
        return dict(body)

    async def status(self) -> dict[str, Any]:
        status, body = await self.request("GET", "/api/v1/application")
        assert status == 200, body
        return dict(body)

    async def wait_for_state(self, *states: str, timeout: float = 20.0) -> dict[str, Any]:
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            current = await self.status()
            if current["state"] in states:
                return current
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"state {current['state']}, expected {states}")
            await asyncio.sleep(0.1)


@dataclass
class System:
    gateway: Runtime
    codec: Runtime | None
    sandbox: SandboxServer
    http: aiohttp.ClientSession
    base_url: str
    students: list[Student] = field(default_factory=list)

    async def login_code(self, openid: str) -> str:
        async with self.http.post(f"{self.sandbox.url}/sandbox/login-codes", json={"openid": openid}) as resp:
            assert resp.status in (200, 201), await resp.text()
            return str((await resp.json())["code"])

    async def sandbox_call(
        self, method: str, path: str, body: dict[str, Any] | None = None
    ) -> tuple[int, Any]:
        async with self.http.request(method, f"{self.sandbox.url}/sandbox/{path}", json=body) as resp:
            return resp.status, await resp.json(content_type=None)

    async def student(self, openid: str = "o-student-1", *, login: bool = True) -> Student:
        student = Student(self, openid, aiohttp.ClientSession())
        self.students.append(student)
        if login:
            await student.login()
        return student

    async def verified_student(
        self, openid: str = "o-student-1", row: dict[str, str] | None = None
    ) -> Student:
        """A logged-in student whose collection code has been verified (the roster's first student by default)."""
        from tests.support.codes import code_text

        student = await self.student(openid)
        row = row or ROSTER_ROW
        record = RECORD.model_copy(
            update={
                "name": row["name"],
                "student_number": row["student_number"],
                "id_masked": f"****{row['id_last4']}",
            }
        )
        claim = {"name": row["name"], "student_number": row["student_number"], "id_last4": row["id_last4"]}
        status, body = await student.submit_text(code_text(record), **claim)
        assert status == 202, body
        assert (await student.wait_for_scan(body["scan_id"]))["status"] == "decoded"
        student.scan_id = body["scan_id"]
        return student

    async def paid_student(self, openid: str = "o-student-1", row: dict[str, str] | None = None) -> Student:
        student = await self.verified_student(openid, row)
        status, body = await student.request("POST", "/api/v1/application/confirm", json={})
        assert status == 200, body
        status, order = await student.request("POST", "/api/v1/orders")
        assert status == 201, order
        status, paid = await self.sandbox_call("POST", f"pay/{order['out_trade_no']}", {})
        assert status == 200, paid
        await student.wait_for_state("paid")
        return student


@asynccontextmanager
async def running_system(
    env: dict[str, str],
    *,
    with_codec: bool = True,
    school: SchoolConfig | None = None,
    roster: list[dict[str, str]] | None = None,
    admission_photo: bytes | None = None,
    **gateway_overrides: Any,
) -> AsyncIterator[System]:
    keyset = shared_keyset()
    port = free_port()
    gateway_url = f"http://127.0.0.1:{port}"
    async with running_sandbox(keyset) as sandbox:
        wechat = client_settings(
            keyset,
            sandbox.url,
            notify_url=f"{gateway_url}/api/v1/pay/notify",
            refund_notify_url=f"{gateway_url}/api/v1/pay/notify",
        )
        gateway_settings = settings_from(
            env, GatewaySettings, service_name="gateway", http_port=port, **gateway_overrides
        )
        app, gateway = build_app(gateway_settings, wechat)
        codec: Runtime | None = None
        await gateway.start()
        await app[SCHOOLS].put(school or demo_school())
        rows = [ROSTER_ROW] if roster is None else roster
        photos = {row["student_number"]: admission_photo or blank_image() for row in rows}
        await import_roster(
            gateway.database, gateway.blobs, (school or demo_school()).school_code, rows, photos
        )
        tasks = await start_background(app, gateway)
        try:
            if with_codec:
                codec_settings = settings_from(env, CodecSettings, service_name="codec")
                codec = Runtime(codec_settings, indexes=[CODEC_INDEXES])
                await codec.start()
                cipher = cipher_from_config(
                    codec_settings.codec_cipher_algorithm, codec_settings.codec_cipher_key.get_secret_value()
                )
                handlers = CodecHandlers(codec.database, codec.blobs, codec_settings, cipher)
                await codec.consume(handlers.subscription())
            async with aiohttp.ClientSession() as http:
                system = System(gateway, codec, sandbox, http, gateway_url)
                try:
                    yield system
                finally:
                    for student in system.students:
                        await student.http.close()
        finally:
            await stop_background(app, tasks)
            if codec is not None:
                await codec.shutdown()
            await gateway.shutdown()
