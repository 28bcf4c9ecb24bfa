"""Bad input on the code path: each gets a clear error, and nothing stored is lost or half-written."""

from __future__ import annotations

import asyncio
import base64
from typing import Any

import aiohttp
import pytest
from gridfs import AsyncGridFSBucket
from pymongo.errors import DuplicateKeyError

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
        "blobs": len([f async for f in AsyncGridFSBucket(db, bucket_name="blobs").find({})]),
        "codes": await db["codes"].count_documents({}),
    }


def ok(**extra):
    return {"json": {**CLAIM, "agreed": True, "qr_text": "x", **extra}}


GATEWAY_CASES = [
    (
        "not json",
        {"data": b"{not json", "headers": {"Content-Type": "application/json"}},
        400,
        "invalid_json",
    ),
    ("json array", {"json": [1, 2]}, 400, "invalid_json"),
    ("form-encoded body", {"data": {"a": "b"}}, 415, "unsupported_media_type"),
    ("missing fields", {"json": {"agreed": True, "qr_text": "x"}}, 400, "invalid_request"),
    ("unknown field", ok(admin=True), 400, "invalid_request"),
    ("mongo operator as a value", ok(name={"$gt": ""}), 400, "invalid_request"),
    ("mongo operator as a key", {"json": {**CLAIM, "agreed": True, "$where": "1"}}, 400, "invalid_request"),
    ("wrong types", ok(agreed="yes please", qr_text=42), 400, "invalid_request"),
    ("control characters", ok(name="赵\x00小明"), 400, "invalid_request"),
    ("name too long", ok(name="赵" * 51), 400, "invalid_request"),
    ("agreement not ticked", ok(agreed=False), 400, "agreement_required"),
    ("neither text nor image", {"json": {**CLAIM, "agreed": True}}, 400, "code_source_required"),
    ("empty text", ok(qr_text=""), 400, "code_source_required"),
    ("both text and image", {"data": form(qr_image("x"), qr_text="x")}, 400, "code_source_required"),
    ("over-long text", ok(qr_text="A" * 5000), 400, "text_too_long"),
    ("0-byte upload", {"data": form(b"")}, 400, "empty_file"),
    ("not an image", {"data": form(b"%PDF-1.7 this is a pdf", "application/pdf")}, 415, "not_an_image"),
    ("text posing as png", {"data": form(b"hello world, definitely not a png")}, 415, "not_an_image"),
    (
        "jpeg magic, no header",
        {"data": form(b"\xff\xd8\xff\xe0" + b"\x00" * 10, "image/jpeg")},
        415,
        "not_an_image",
    ),
    ("30000x30000 png bomb", {"data": form(png_bomb())}, 413, "image_too_large"),
    ("11 MB body", {"data": form(b"\xff\xd8\xff" + b"\x00" * (11 * 1024 * 1024))}, 413, "payload_too_large"),
    ("bad idempotency key", {**ok(), "headers": {"Idempotency-Key": "x" * 65}}, 400, "invalid_request"),
]


async def test_requests_refused_at_the_gateway_store_nothing(env):
    async with running_system(env, with_codec=False) as system:
        student = await system.student()
        before = await stored_counts(system)
        for label, kwargs, status, code in GATEWAY_CASES:
            got_status, body = await student.request("POST", "/api/v1/codes", **kwargs)
            assert (got_status, body.get("code")) == (status, code), f"{label}: {got_status} {body}"
            assert body["message"], label  # a sentence the student can act on
            assert body["request_id"], label
        assert await stored_counts(system) == before
        # No session, a forged one, an expired one: 401, and still nothing stored.
        for headers in ({}, {"Authorization": "Bearer forged"}, {"Authorization": "Basic abc"}):
            async with system.http.post(
                f"{system.base_url}/api/v1/codes", json=ok()["json"], headers=headers
            ) as r:
                assert r.status == 401 and (await r.json())["code"] == "unauthenticated"
        assert await stored_counts(system) == before
        # Unknown routes and methods are JSON errors too, never an HTML page or a bare 500.
        async with system.http.get(f"{system.base_url}/api/v1/nowhere") as resp:
            assert resp.status == 404 and (await resp.json())["code"] == "not_found"
        async with system.http.delete(f"{system.base_url}/api/v1/codes") as resp:
            assert resp.status == 405 and (await resp.json())["code"] == "method_not_allowed"


def _tamper(text: str) -> str:
    raw = bytearray(base64.b64decode(text))
    raw[len(raw) // 2] ^= 0x01
    return base64.b64encode(bytes(raw)).decode()


async def test_codes_refused_by_the_codec_are_explained_and_recorded_once(env):
    other_key_text = AesGcmCipher(b"\x01" * 32).encrypt(RECORD.model_dump_json().encode())
    sm4_text = Sm4CbcCipher(b"\x02" * 16).encrypt(RECORD.model_dump_json().encode())
    good = code_text()
    truncated = qr_image(good, fmt="JPEG")
    truncated = truncated[: len(truncated) // 2]
    other_code = code_text(RECORD.model_copy(update={"chsi_id": "other"}))
    cases = [
        ("image without a code", {"data": form(blank_image())}, "no_code_found", []),
        ("two codes", {"data": form(qr_image(good, other_code))}, "multiple_codes", []),
        ("a URL QR code", {"data": form(qr_image("https://weixin.qq.com/r/abc"))}, "not_chsi_code", []),
        ("a URL scanned as text", ok(qr_text="https://weixin.qq.com/r/abc"), "not_chsi_code", []),
        ("another key (AES-GCM)", ok(qr_text=other_key_text), "decryption_failed", []),
        ("another cipher (SM4)", ok(qr_text=sm4_text), "decryption_failed", []),
        ("tampered text", ok(qr_text=_tamper(good)), "decryption_failed", []),
        ("truncated JPEG", {"data": form(truncated, "image/jpeg")}, "truncated_image", []),
        ("name one character off", ok(name="赵小名", qr_text=good), "fields_mismatch", ["name"]),
        (
            "student number one digit off",
            ok(student_number="2110216053", qr_text=good),
            "fields_mismatch",
            ["student_number"],
        ),
        ("ID last 4 without brackets", ok(id_last4="23", qr_text=good), "fields_mismatch", ["id_last4"]),
        ("another school (学籍异动)", ok(qr_text=good, school_code="10001"), "school_mismatch", []),
    ]
    async with running_system(env) as system:
        student = await system.student()
        for label, kwargs, reason, mismatched in cases:
            status, body = await student.request("POST", "/api/v1/codes", **kwargs)
            assert status == 202, f"{label}: {body}"
            result = await student.wait_for_scan(body["scan_id"])
            assert result["status"] == "rejected", f"{label}: {result}"
            assert result["reason"] == reason, f"{label}: {result}"
            assert result["mismatched_fields"] == mismatched, label
            assert result["message"], label
            assert result["student"] is None, label
            app = await student.status()
            assert app["state"] == "code_rejected", label
            assert app["last_failure"]["code"] == reason, label
            assert await system.gateway.database.db["codes"].count_documents({"_id": body["scan_id"]}) == 1
        assert await system.gateway.database.db["applications"].count_documents({}) == 1
        assert (
            await system.gateway.database.db["bindings"].count_documents({}) == 0
        )  # nothing bound on failure
        # The same student then succeeds: brackets typed full-width, the way a phone keyboard gives them.
        status, body = await student.submit_text(good, id_last4="2（3）")
        assert (await student.wait_for_scan(body["scan_id"]))["status"] == "decoded"


async def test_a_refused_rescan_keeps_the_verified_code(env):
    async with running_system(env) as system:
        student = await system.verified_student()
        first = (await student.status())["student"]
        status, second = await student.submit_text("https://x.y/z")
        assert status == 202
        assert (await student.wait_for_scan(second["scan_id"]))["reason"] == "not_chsi_code"
        app = await student.status()
        assert app["state"] == "code_verified"
        assert app["student"] == first


async def test_duplicate_submission_is_one_scan_and_one_event(env):
    headers = {"Idempotency-Key": "wx-req-0001"}
    payload = {**CLAIM, "agreed": True, "qr_text": code_text()}
    async with running_system(env) as system:
        student = await system.student()
        replies = [
            await student.request("POST", "/api/v1/codes", json=payload, headers=headers) for _ in range(3)
        ]
        assert {r[1]["scan_id"] for r in replies} == {replies[0][1]["scan_id"]}
        assert all(r[0] == 202 for r in replies)
        assert (await student.wait_for_scan(replies[0][1]["scan_id"]))["status"] == "decoded"
        db = system.gateway.database.db
        assert await db["applications"].count_documents({}) == 1
        assert await db["codes"].count_documents({}) == 1
        # One event, one result applied (the codec takes no claim: its one outcome is the `codes` document).
        assert await db["processed_events"].count_documents({"consumer": "gateway"}) == 1
        # The same key with a different request is refused, and the first submission stands.
        status, body = await student.request(
            "POST", "/api/v1/codes", json={**payload, "name": "钱小红"}, headers=headers
        )
        assert (status, body["code"]) == (409, "idempotency_key_reused")
        app = await db["applications"].find_one({})
        assert app["claim"]["name"] == CLAIM["name"] and app["state"] == "code_verified"


async def test_concurrent_first_scans_from_one_account_open_one_application(env):
    """Two first scans at the same moment under different keys (two taps, one account on two phones) once
    opened two applications for one account: the unique `active_owner` index lets one open it, and the other
    scan goes to that application as a second scan does (or, if it keeps losing, answers 409 busy)."""
    async with running_system(env) as system:
        student = await system.student()
        db = system.gateway.database.db

        async def scan(i: int) -> tuple[int, Any]:
            headers = {"Idempotency-Key": f"wx-race-{i:04d}"}
            if i % 2:
                return await student.request(
                    "POST", "/api/v1/codes", data=form(qr_image(code_text())), headers=headers
                )
            payload = {**CLAIM, "agreed": True, "qr_text": code_text()}
            return await student.request("POST", "/api/v1/codes", json=payload, headers=headers)

        replies = await asyncio.gather(*(scan(i) for i in range(6)))
        assert all(status == 202 or (status, body["code"]) == (409, "busy") for status, body in replies), (
            replies
        )
        accepted = [body for status, body in replies if status == 202]
        assert accepted and {body["application_id"] for body in accepted} == {accepted[0]["application_id"]}
        assert await db["applications"].count_documents({}) == 1
        application_id = accepted[0]["application_id"]
        # Every code image stored belongs to that application: none is left tagged with one that does not exist.
        blobs = [
            f async for f in AsyncGridFSBucket(db, bucket_name="blobs").find({"metadata.kind": "code_image"})
        ]
        assert blobs and all(f.metadata["application_id"] == application_id for f in blobs)
        # The account goes on as usual with its one application.
        app = await student.status()
        assert app["application_id"] == application_id


async def test_the_store_refuses_a_second_application_an_account_acts_for(env):
    """The guarantee itself, without timing: the index refuses it; unbound and merged ones are outside it."""
    async with running_system(env) as system:
        applications = system.gateway.database.db["applications"]
        await applications.insert_one(
            {"_id": "a1", "owner_openid": "o-x", "active_owner": "o-x", "state": "code_submitted"}
        )
        with pytest.raises(DuplicateKeyError):
            await applications.insert_one(
                {"_id": "a2", "owner_openid": "o-x", "active_owner": "o-x", "state": "code_submitted"}
            )
        # Unbound (null) and merged (null) applications of any number coexist, and the account may open one.
        await applications.update_one({"_id": "a1"}, {"$set": {"active_owner": None, "owner_openid": None}})
        await applications.insert_one(
            {"_id": "a3", "owner_openid": None, "active_owner": None, "state": "paid"}
        )
        await applications.insert_one(
            {"_id": "a4", "owner_openid": "o-x", "active_owner": "o-x", "state": "code_submitted"}
        )
        assert await applications.count_documents({"active_owner": "o-x"}) == 1


@pytest.mark.parametrize(
    "left_behind",
    [
        {"owner_openid": None},  # unbound by a gateway from before the field (a rolling deploy)
        {"merged_into": "a-continued"},  # merged by one: still readable by its account, no longer its own
    ],
)
async def test_an_active_owner_left_behind_does_not_lock_the_account_out(env, left_behind):
    """`active_owner` left on an application the account no longer acts for (written by a replica from before
    the field, which unbound or merged without clearing it) held the index's slot: every first scan of that
    account answered 409 busy, for good. The scan releases such a slot (never a live one) and goes on."""
    async with running_system(env) as system:
        student = await system.student()
        applications = system.gateway.database.db["applications"]
        await applications.insert_one(
            {"_id": "a-old", "owner_openid": student.openid, "active_owner": student.openid,
             "state": "paid", **left_behind}
        )  # fmt: skip
        payload = {**CLAIM, "agreed": True, "qr_text": code_text()}
        status, body = await student.request(
            "POST", "/api/v1/codes", json=payload, headers={"Idempotency-Key": "wx-left-behind-01"}
        )
        assert status == 202, body
        assert body["application_id"] != "a-old"
        old = await applications.find_one({"_id": "a-old"})
        assert old["active_owner"] is None
        assert old.get("owner_openid") == left_behind.get("owner_openid", student.openid)  # nothing else
        assert await applications.count_documents({"active_owner": student.openid}) == 1
