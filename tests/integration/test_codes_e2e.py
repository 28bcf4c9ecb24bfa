"""The event path end to end: HTTP → outbox → RabbitMQ → codec → result → gateway → status endpoint."""

from __future__ import annotations

import aiohttp
import pytest

from tests.support.codes import CLAIM, code_text, qr_image
from tests.support.system import running_system

pytestmark = pytest.mark.slow


def upload_form(image: bytes, **fields: str) -> aiohttp.FormData:
    form = aiohttp.FormData()
    for key, value in {**CLAIM, "agreed": "true", **fields}.items():
        form.add_field(key, value)
    form.add_field("image", image, filename="code.png", content_type="image/png")
    return form


async def test_uploaded_code_image_is_decoded_verified_and_binds_the_account(env):
    async with running_system(env) as system:
        student = await system.student()
        status, body = await student.request("POST", "/api/v1/codes", data=upload_form(qr_image(code_text())))
        assert status == 202, body
        assert body["status"] == "pending"
        result = await student.wait_for_scan(body["scan_id"])
        assert result["status"] == "decoded", result
        assert result["student"]["masked_name"] == "赵**"
        assert result["student"]["id_last4"] == "2(3)"
        assert result["student"]["class_name"] == "2021级口腔医学16班"
        db = system.gateway.database.db
        app = await db["applications"].find_one({"_id": body["application_id"]})
        assert app["state"] == "code_verified" and app["student_id"] == "10487:2110216052"
        assert app["outbox_pending"] == 0 and app["outbox"] == {}
        assert (await db["codes"].find_one({"_id": body["scan_id"]}))["source"] == "image"
        assert (await db["bindings"].find_one({"_id": "10487:2110216052"}))["openid"] == student.openid
        status, me = await student.request("GET", "/api/v1/me")
        assert me["bound"] is True and me["student"]["masked_name"] == "赵**"
        assert me["student"]["student_number"] == "21******52"  # masked in the profile too


async def test_scanned_text_is_verified_and_the_status_endpoint_says_what_next(env):
    async with running_system(env) as system:
        student = await system.student()
        status, body = await student.submit_text(code_text())
        assert status == 202, body
        assert (await student.wait_for_scan(body["scan_id"]))["status"] == "decoded"
        app = await student.status()
        assert app["state"] == "code_verified"
        assert app["next"] == {"action": "confirm", "label": "确认采集码信息"}
        assert app["student"]["student_number"] == CLAIM["student_number"]
        assert app["last_failure"] is None
