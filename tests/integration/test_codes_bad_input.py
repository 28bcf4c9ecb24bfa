"""Bad input on the code path: each gets a clear error, and nothing stored is lost or half-written."""

from __future__ import annotations

import base64

import aiohttp
import pytest

from services.codec.cipher import AesGcmCipher, Sm4CbcCipher
from tests.support.codes import CLAIM, RECORD, blank_image, code_text, png_bomb, qr_image
from tests.support.system import running_system

pytestmark = pytest.mark.slow


def form(image: bytes | None, content_type: str = "image/png", **fields: str) -> aiohttp.FormData:
    data = aiohttp.FormData()
    for key, value in {**CLAIM, "agreed": "true", **fields}.items():
        data.add_field(key, value)
    if image is not None:
        data.add_field("image", image, filename="code.png", content_type=content_type)
    return data


async def stored_counts(system) -> dict[str, int]:
    db = system.gateway.database.db
    return {
        "applications": await db["applications"].count_documents({}),
        "blobs": await db["blobs.files"].count_documents({}),
        "codes": await db["codes"].count_documents({}),
    }


async def post(system, **kwargs):
    async with system.http.post(f"{system.base_url}/api/v1/codes", **kwargs) as resp:
        return resp.status, await resp.json(content_type=None)


async def test_requests_refused_at_the_gateway_store_nothing(env):
    truncated_header_only = b"\xff\xd8\xff\xe0" + b"\x00" * 10
    cases = [
        (
            "not json",
            {"data": b"{not json", "headers": {"Content-Type": "application/json"}},
            400,
            "invalid_json",
        ),
        ("json array", {"json": [1, 2]}, 400, "invalid_json"),
        ("form-encoded body", {"data": {"a": "b"}}, 415, "unsupported_media_type"),
        ("missing fields", {"json": {"agreed": True, "qr_text": "x"}}, 400, "invalid_request"),
        (
            "unknown field",
            {"json": {**CLAIM, "agreed": True, "qr_text": "x", "admin": True}},
            400,
            "invalid_request",
        ),
        (
            "control characters",
            {"json": {**CLAIM, "name": "赵\x00小明", "agreed": True, "qr_text": "x"}},
            400,
            "invalid_request",
        ),
        (
            "name too long",
            {"json": {**CLAIM, "name": "赵" * 51, "agreed": True, "qr_text": "x"}},
            400,
            "invalid_request",
        ),
        (
            "agreement not ticked",
            {"json": {**CLAIM, "agreed": False, "qr_text": code_text()}},
            400,
            "agreement_required",
        ),
        ("neither text nor image", {"json": {**CLAIM, "agreed": True}}, 400, "code_source_required"),
        ("empty text", {"json": {**CLAIM, "agreed": True, "qr_text": ""}}, 400, "code_source_required"),
        ("both text and image", {"data": form(qr_image("x"), qr_text="x")}, 400, "code_source_required"),
        ("over-long text", {"json": {**CLAIM, "agreed": True, "qr_text": "A" * 5000}}, 400, "text_too_long"),
        ("0-byte upload", {"data": form(b"")}, 400, "empty_file"),
        ("not an image", {"data": form(b"%PDF-1.7 this is a pdf", "application/pdf")}, 415, "not_an_image"),
        ("text posing as png", {"data": form(b"hello world, definitely not a png")}, 415, "not_an_image"),
        ("jpeg magic, no header", {"data": form(truncated_header_only, "image/jpeg")}, 415, "not_an_image"),
        ("30000x30000 png bomb", {"data": form(png_bomb())}, 413, "image_too_large"),
        (
            "11 MB body",
            {"data": form(b"\xff\xd8\xff" + b"\x00" * (11 * 1024 * 1024))},
            413,
            "payload_too_large",
        ),
        (
            "bad application id",
            {"json": {**CLAIM, "agreed": True, "qr_text": "x", "application_id": "../../etc"}},
            400,
            "invalid_request",
        ),
        (
            "unknown application",
            {
                "json": {
                    **CLAIM,
                    "agreed": True,
                    "qr_text": "x",
                    "application_id": "00000000-0000-4000-8000-000000000000",
                }
            },
            404,
            "not_found",
        ),
    ]
    async with running_system(env, with_codec=False) as system:
        before = await stored_counts(system)
        for label, kwargs, status, code in cases:
            got_status, body = await post(system, **kwargs)
            assert (got_status, body.get("code")) == (status, code), f"{label}: {got_status} {body}"
            assert body["message"], label  # a sentence the student can act on
            assert body["request_id"], label
        assert await stored_counts(system) == before
        # Unknown routes and methods are JSON errors too, never an HTML page or a bare 500.
        async with system.http.get(f"{system.base_url}/api/v1/nowhere") as resp:
            assert resp.status == 404 and (await resp.json())["code"] == "not_found"
        async with system.http.delete(f"{system.base_url}/api/v1/codes") as resp:
            assert resp.status == 405 and (await resp.json())["code"] == "method_not_allowed"
        async with system.http.get(f"{system.base_url}/api/v1/codes/not-a-scan") as resp:
            assert resp.status == 404


async def test_codes_refused_by_the_codec_are_explained_and_recorded_once(env):
    other_key_text = AesGcmCipher(b"\x01" * 32).encrypt(RECORD.model_dump_json().encode())
    sm4_text = Sm4CbcCipher(b"\x02" * 16).encrypt(RECORD.model_dump_json().encode())
    good = code_text()
    truncated = qr_image(good, fmt="JPEG")
    truncated = truncated[: len(truncated) // 2]
    cases = [
        ("image without a code", {"data": form(blank_image())}, "no_code_found", []),
        (
            "two codes",
            {"data": form(qr_image(good, code_text(RECORD.model_copy(update={"chsi_id": "other"}))))},
            "multiple_codes",
            [],
        ),
        ("a URL QR code", {"data": form(qr_image("https://weixin.qq.com/r/abc"))}, "not_chsi_code", []),
        (
            "a URL scanned as text",
            {"json": {**CLAIM, "agreed": True, "qr_text": "https://weixin.qq.com/r/abc"}},
            "not_chsi_code",
            [],
        ),
        (
            "another key (AES-GCM)",
            {"json": {**CLAIM, "agreed": True, "qr_text": other_key_text}},
            "decryption_failed",
            [],
        ),
        (
            "another cipher (SM4)",
            {"json": {**CLAIM, "agreed": True, "qr_text": sm4_text}},
            "decryption_failed",
            [],
        ),
        (
            "tampered text",
            {"json": {**CLAIM, "agreed": True, "qr_text": _tamper(good)}},
            "decryption_failed",
            [],
        ),
        ("truncated JPEG", {"data": form(truncated, "image/jpeg")}, "truncated_image", []),
        (
            "name one character off",
            {"json": {**CLAIM, "name": "赵小名", "agreed": True, "qr_text": good}},
            "fields_mismatch",
            ["name"],
        ),
        (
            "student number one digit off",
            {"json": {**CLAIM, "student_number": "2110216053", "agreed": True, "qr_text": good}},
            "fields_mismatch",
            ["student_number"],
        ),
        (
            "ID last 4 without brackets",
            {"json": {**CLAIM, "id_last4": "23", "agreed": True, "qr_text": good}},
            "fields_mismatch",
            ["id_last4"],
        ),
        (
            "another school (学籍异动)",
            {"json": {**CLAIM, "agreed": True, "qr_text": good, "school_code": "10001"}},
            "school_mismatch",
            [],
        ),
    ]
    async with running_system(env) as system:
        for label, kwargs, reason, mismatched in cases:
            status, body = await post(system, **kwargs)
            assert status == 202, f"{label}: {body}"
            result = await system.wait_for_scan(body["scan_id"])
            assert result["status"] == "rejected", f"{label}: {result}"
            assert result["reason"] == reason, f"{label}: {result}"
            assert result["mismatched_fields"] == mismatched, label
            assert result["message"], label
            assert "student" not in result, label
            app = await system.gateway.database.db["applications"].find_one({"_id": body["application_id"]})
            assert app["state"] == "code_rejected", label
            assert "verified_code" not in app, label
            assert await system.gateway.database.db["codes"].count_documents({"_id": body["scan_id"]}) == 1
        # The same student then succeeds: brackets typed full-width, the way a phone keyboard gives them.
        status, body = await post(
            system, json={**CLAIM, "id_last4": "2（3）", "agreed": True, "qr_text": good}
        )
        result = await system.wait_for_scan(body["scan_id"])
        assert result["status"] == "decoded", result


async def test_a_refused_rescan_keeps_the_verified_code(env):
    async with running_system(env) as system:
        status, first = await post(system, json={**CLAIM, "agreed": True, "qr_text": code_text()})
        assert (await system.wait_for_scan(first["scan_id"]))["status"] == "decoded"
        app_id = first["application_id"]
        status, second = await post(
            system, json={**CLAIM, "agreed": True, "qr_text": "https://x.y/z", "application_id": app_id}
        )
        assert status == 202 and second["application_id"] == app_id
        assert (await system.wait_for_scan(second["scan_id"]))["reason"] == "not_chsi_code"
        app = await system.gateway.database.db["applications"].find_one({"_id": app_id})
        assert app["state"] == "code_verified"
        assert app["verified_code"]["masked_name"] == "赵**"
        # The superseded first scan is no longer the one the student is shown.
        async with system.http.get(f"{system.base_url}/api/v1/codes/{first['scan_id']}") as resp:
            assert resp.status == 404


async def test_duplicate_submission_is_one_scan_and_one_event(env):
    headers = {"Idempotency-Key": "wx-req-0001"}
    payload = {**CLAIM, "agreed": True, "qr_text": code_text()}
    async with running_system(env) as system:
        replies = [await post(system, json=payload, headers=headers) for _ in range(3)]
        assert {r[1]["scan_id"] for r in replies} == {replies[0][1]["scan_id"]}
        assert all(r[0] == 202 for r in replies)
        result = await system.wait_for_scan(replies[0][1]["scan_id"])
        assert result["status"] == "decoded"
        db = system.gateway.database.db
        assert await db["applications"].count_documents({}) == 1
        assert await db["codes"].count_documents({}) == 1
        assert await db["processed_events"].count_documents({"consumer": "codec"}) == 1
        # The same key with a different request is refused, and the first submission stands.
        status, body = await post(system, json={**payload, "name": "钱小红"}, headers=headers)
        assert (status, body["code"]) == (409, "idempotency_conflict")
        app = await db["applications"].find_one({})
        assert app["claim"]["name"] == CLAIM["name"] and app["state"] == "code_verified"


def _tamper(text: str) -> str:
    raw = bytearray(base64.b64decode(text))
    raw[len(raw) // 2] ^= 0x01
    return base64.b64encode(bytes(raw)).decode()
