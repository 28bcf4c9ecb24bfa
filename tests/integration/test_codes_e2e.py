"""The event path end to end: HTTP → outbox → RabbitMQ → codec → result → gateway → status endpoint."""

from __future__ import annotations

import aiohttp
import pytest

from tests.support.codes import CLAIM, code_text, qr_image
from tests.support.system import running_system

pytestmark = pytest.mark.slow


async def post_code(system, *, data=None, json=None, headers=None):
    async with system.http.post(
        f"{system.base_url}/api/v1/codes", data=data, json=json, headers=headers
    ) as resp:
        return resp.status, await resp.json()


def upload_form(image: bytes, **fields: str) -> aiohttp.FormData:
    form = aiohttp.FormData()
    for key, value in {**CLAIM, "agreed": "true", **fields}.items():
        form.add_field(key, value)
    form.add_field("image", image, filename="code.png", content_type="image/png")
    return form


async def test_uploaded_code_image_is_decoded_and_verified(env):
    async with running_system(env) as system:
        status, body = await post_code(system, data=upload_form(qr_image(code_text())))
        assert status == 202, body
        assert body["status"] == "pending"
        result = await system.wait_for_scan(body["scan_id"])
        assert result["status"] == "decoded", result
        assert result["student"]["masked_name"] == "赵**"
        assert result["student"]["id_last4"] == "2(3)"
        assert result["student"]["class_name"] == "2021级口腔医学16班"
        app = await system.gateway.database.db["applications"].find_one({"_id": body["application_id"]})
        assert app["state"] == "code_verified"
        assert app["outbox_pending"] == 0 and app["outbox"] == {}
        code = await system.gateway.database.db["codes"].find_one({"_id": body["scan_id"]})
        assert code["status"] == "decoded" and code["source"] == "image"


async def test_scanned_text_is_verified(env):
    async with running_system(env) as system:
        status, body = await post_code(system, json={**CLAIM, "agreed": True, "qr_text": code_text()})
        assert status == 202, body
        result = await system.wait_for_scan(body["scan_id"])
        assert result["status"] == "decoded"
        async with system.http.get(f"{system.base_url}/api/v1/applications/{body['application_id']}") as resp:
            app = await resp.json()
        assert app["state"] == "code_verified"
        assert app["verified_code"]["student_number"] == CLAIM["student_number"]
