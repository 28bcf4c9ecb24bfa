"""What API fuzzing (tests/integration/test_api_fuzz.py) found, pinned down as plain regression tests."""

from __future__ import annotations

import re

from services.gateway.console.operators import Role
from tests.support.console import operator
from tests.support.system import running_system

BROKEN_PART = (
    b"--B\r\n"
    b'Content-Disposition: form-data; name="\x1c\xc3\xa3Vn\xc3\xbf"\r\n\r\n{"x": 1}\r\n'
    b'--B\r\nContent-Disposition: form-data; name="image"; filename="image"\r\n\r\n\xb6\xf1\x91\r\n'
    b"--B--\r\n"
)


async def test_unparseable_multipart_bodies_are_400_and_change_nothing(env):
    async with running_system(env, with_codec=False) as system:
        student = await system.student("o-fuzz-findings")
        before = await system.gateway.database.db["applications"].count_documents({})
        for path in ("/api/v1/codes", "/api/v1/photos"):
            # A multipart content type without its boundary: was a 500.
            status, body = await student.request(
                "POST", path, data=b'{"agreed": true}', headers={"Content-Type": "multipart/form-data"}
            )
            assert status in (400, 409), (path, body)  # photos: 409 first, no paid application yet
            if path == "/api/v1/codes":
                assert body["code"] == "invalid_request"
                assert body["details"]["fields"] == [{"field": "body", "error": "malformed"}]
            # A part whose header the parser refuses (control characters in the name): was a 500.
            status, body = await student.request(
                "POST", path, data=BROKEN_PART, headers={"Content-Type": "multipart/form-data; boundary=B"}
            )
            assert status in (400, 409), (path, body)
            if path == "/api/v1/codes":
                assert body["code"] == "invalid_request"
        assert await system.gateway.database.db["applications"].count_documents({}) == before

        admin = await operator(system, "fuzz-findings@example.com", Role.ADMIN, [])
        status, body = await admin.request(
            "POST",
            "/console/api/v1/schools/10487/roster",
            data=b"roster",
            headers={"Content-Type": "multipart/form-data"},
        )
        assert status == 400 and body["code"] == "invalid_request", body


async def test_json_routes_say_json_is_expected_and_times_carry_their_utc_offset(env):
    async with running_system(env, with_codec=True) as system:
        student = await system.verified_student("o-fuzz-findings-2")
        # A JSON route sent form data: 415 with a message about JSON, not about images.
        status, body = await student.request(
            "POST", "/api/v1/me/phone", data=b"code=1", headers={"Content-Type": "text/plain"}
        )
        assert status == 415 and body["code"] == "unsupported_media_type"
        assert "JSON" in body["message"] and "图片" not in body["message"]

        # Timestamps the database hands back without an offset (nx-27017 after an update) are marked UTC.
        status, confirmed = await student.request("POST", "/api/v1/application/confirm", json={})
        assert status == 200, confirmed
        current = await student.status()
        assert re.fullmatch(
            r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})", current["updated_at"]
        )

        # Reusing the pending order answers 200 (documented beside the 201 of a new one).
        status, first = await student.request("POST", "/api/v1/orders")
        assert status == 201, first
        status, again = await student.request("POST", "/api/v1/orders")
        assert status == 200 and again["out_trade_no"] == first["out_trade_no"]
        status, document = await student.request("GET", "/api/v1/openapi.json")
        assert set(document["paths"]["/api/v1/orders"]["post"]["responses"]) >= {"200", "201"}
