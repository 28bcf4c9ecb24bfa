"""PIPL erasure on request: everything about the student goes, an anonymised trail stays (real broker and DB)."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

from services.gateway.console.operators import Role
from services.gateway.erasure import ErasureRefused, erase_application, find_erasure
from services.gateway.privacy import FieldCipher
from services.gateway.store import Applications, Change
from shared.blobs import BlobStore
from shared.events import new_id
from tests.integration.test_retention import T0, cli_env, readable, run_privacy_cli, seed
from tests.support.codes import CLAIM
from tests.support.console import in_review_case, operator
from tests.support.system import ROSTER_ROW, running_system

PHONE = "13812345678"
# Collections that may keep nothing personal once the student is erased (the roster `students` may).
CHECKED = (
    "applications",
    "users",
    "bindings",
    "sessions",
    "codes",
    "photos",
    "matches",
    "notifications",
    "payment_notifications",
    "audit_log",
    "erasures",
    "review_leases",
    "blobs.files",
)


async def dump(db: Any, names: tuple[str, ...] = CHECKED) -> str:
    # The roster's admission photos are the school's data, kept (docs/operations.md).
    out = {
        name: [
            doc
            async for doc in db[name].find({})
            if not str(doc.get("filename", "")).startswith("admission-")
        ]
        for name in names
    }
    return json.dumps(out, ensure_ascii=False, default=str)


async def add_photo_history(system: Any, application_id: str) -> list[str]:
    """A photo, its imaging and matching documents and a notification, as the workers would leave them."""
    blobs, db = system.gateway.blobs, system.gateway.database.db
    photo_id = new_id()
    raw = await blobs.put(b"raw", filename="raw", content_type="image/jpeg", application_id=application_id)
    std = await blobs.put(b"std", filename="std", content_type="image/jpeg", photo_id=photo_id)

    def add(current: Any) -> Change:
        photos = {
            **(current.get("photos") or {}),
            photo_id: {
                "status": "standardized",
                "raw_blob_id": raw,
                "standardized_blob_id": std,
                "uploaded_at": T0,
            },
        }
        return Change(set={"photos": photos})

    await Applications(system.gateway.database, lambda: None).mutate(application_id, add)
    await db["photos"].insert_one(
        {"_id": photo_id, "application_id": application_id, "standardized_blob_id": std}
    )
    await db["matches"].insert_one({"_id": photo_id, "application_id": application_id, "score": 90.0})
    await db["notifications"].insert_one(
        {
            "_id": new_id(),
            "application_id": application_id,
            "recipient": "o-erase",
            "data": {"name": CLAIM["name"]},
        }
    )
    return [raw, std]


async def test_admin_erases_a_student_and_only_an_anonymised_trail_remains(env: dict[str, str]) -> None:
    async with running_system(env) as system:
        db = system.gateway.database.db
        student = await system.paid_student("o-erase")
        _, minted = await system.sandbox_call("POST", "phone-codes", {"phone": PHONE})
        assert (await student.request("POST", "/api/v1/me/phone", json={"code": minted["code"]}))[0] == 200
        application_id = (await student.status())["application_id"]
        blob_ids = await add_photo_history(system, application_id)
        code_doc = await db["codes"].find_one({"application_id": application_id})
        assert code_doc is not None and await db["payment_notifications"].count_documents({}) >= 1

        admin = await operator(system, "ada@example.com", Role.ADMIN, [])
        reviewer = await operator(system, "rita@example.com", Role.REVIEWER, ["10487"])
        stranger = await operator(system, "sam@example.com", Role.SUPPORT, ["10001"])
        # Operator traces that name the student: a search by name and a view of the application.
        assert (await admin.request("GET", "/console/api/v1/students", params={"q": CLAIM["name"]}))[0] == 200
        assert (await admin.request("GET", f"/console/api/v1/applications/{application_id}"))[0] == 200
        audit_search = await admin.request(
            "GET", "/console/api/v1/audit", params={"application_id": application_id}
        )
        assert audit_search[0] == 200
        # Another application of another student, which must not be touched.
        other_id = await in_review_case(system, number="2110216099")
        busy_id = await in_review_case(system, number="2110216098", state="submitted")

        path = f"/console/api/v1/applications/{application_id}/erase"
        before = await dump(db)
        hostile: list[tuple[Any, str, dict[str, Any], int, str]] = [
            (reviewer, path, {"json": {"reason": "ticket 42"}}, 403, "forbidden"),
            (stranger, path, {"json": {"reason": "ticket 42"}}, 403, "forbidden"),
            (
                stranger,
                "/console/api/v1/applications/nope/erase",
                {"json": {"reason": "ticket 42"}},
                403,
                "forbidden",
            ),
            (admin, path, {"json": {"reason": "ticket 42"}, "csrf": ""}, 403, "csrf_failed"),
            (admin, path, {"json": {"reason": "ticket 42"}, "csrf": "forged"}, 403, "csrf_failed"),
            (admin, path, {"json": {}}, 400, "invalid_request"),
            (admin, path, {"json": {"reason": "ab"}}, 400, "invalid_request"),
            (admin, path, {"json": {"reason": "x" * 201}}, 400, "invalid_request"),
            (admin, path, {"json": {"reason": "ticket 42", "force": True}}, 400, "invalid_request"),
            (
                admin,
                path,
                {"data": b"not json", "headers": {"Content-Type": "application/json"}},
                400,
                "invalid_json",
            ),
            (
                admin,
                "/console/api/v1/applications/unknown-id/erase",
                {"json": {"reason": "ticket 42"}},
                404,
                "not_found",
            ),
            (
                admin,
                f"/console/api/v1/applications/{'a' * 65}/erase",
                {"json": {"reason": "ticket 42"}},
                404,
                "not_found",
            ),
        ]
        for client, url, kwargs, status_expected, code in hostile:
            status, body = await client.request("POST", url, **kwargs)
            assert (status, body.get("code")) == (status_expected, code), (url, kwargs.keys(), body)
        status, body = await admin.request(
            "POST", f"/console/api/v1/applications/{busy_id}/erase", json={"reason": "ticket 43"}
        )
        assert (status, body["code"]) == (409, "application_in_flight")
        audit_rows = await db["audit_log"].count_documents({})
        for name in ("applications", "users", "bindings", "codes", "photos", "matches", "erasures"):
            assert json.loads(before)[name] == json.loads(await dump(db, (name,)))[name], name
        assert audit_rows > 0

        # The admission photo's descriptor matching would have stored (biometric data).
        erased_student = (await db["applications"].find_one({"_id": application_id}))["student_id"]
        await db["admission_descriptors"].insert_one({"_id": erased_student, "reading": "v1:dev:AAAA"})
        status, erased = await admin.request("POST", path, json={"reason": "PIPL request ticket 42"})
        assert status == 200, erased
        assert erased["already_erased"] is False and erased["school_code"] == "10487"
        counts = erased["counts"]
        assert counts["applications"] == counts["applications_deleted"] == 1
        assert counts["blobs"] == 2 and counts["codes"] == 1 and counts["matches"] == 1
        assert counts["users"] == 1 and counts["bindings"] == 1 and counts["sessions"] >= 1
        assert counts["notifications"] >= 1 and counts["payment_notifications_stripped"] >= 1
        assert counts["audit_entries_scrubbed"] >= 2 and erased["orders_kept"] == 1
        assert counts["admission_descriptors"] == 1
        assert await db["admission_descriptors"].count_documents({}) == 0

        # The student's session is gone at once (the in-process cache too), and so is the application.
        assert (await student.request("GET", "/api/v1/application"))[0] == 401
        assert await db["applications"].find_one({"_id": application_id}) is None
        for blob_id in blob_ids:
            assert not await readable(system.gateway.blobs, blob_id)
        remaining = await dump(db)
        for secret in (
            CLAIM["name"],
            CLAIM["student_number"],
            PHONE,
            "138****5678",
            "o-erase",
            application_id,
        ):
            assert secret not in remaining, (secret, remaining[remaining.find(secret) - 300 :][:400])
        assert await db["applications"].find_one({"_id": other_id}) is not None
        assert await db["students"].find_one({"_id": f"10487:{ROSTER_ROW['student_number']}"}) is not None

        record = await db["erasures"].find_one({"_id": erased["erasure_ref"]})
        assert record["status"] == "erased" and record["reason"] == "PIPL request ticket 42"
        assert record["operator_id"] == admin.operator_id
        [order] = record["orders"]
        assert order["amount_fen"] == 3500 and order["status"] == "paid" and order["out_trade_no"]
        scrubbed = [e async for e in db["audit_log"].find({"erased": True})]
        assert {e["action"] for e in scrubbed} >= {"application.view", "student.search", "audit.search"}
        [search] = [e for e in scrubbed if e["action"] == "audit.search"]
        assert search["target"]["query"]["application_id"] == erased["erasure_ref"]
        assert all("application_id" not in e["target"] for e in scrubbed)
        [entry] = [e async for e in db["audit_log"].find({"action": "application.erase", "outcome": "ok"})]
        assert entry["target"]["application_ref"] == erased["erasure_ref"]
        assert entry["target"]["reason"] == "PIPL request ticket 42"
        refused = [
            e async for e in db["audit_log"].find({"action": "application.erase", "outcome": "refused"})
        ]
        assert len(refused) == 1
        # An id never known is audited too (as failed, by its hash).
        failed = [e async for e in db["audit_log"].find({"action": "application.erase", "outcome": "failed"})]
        assert [e["target"]["error"] for e in failed] == ["not_found"]
        assert "unknown-id" not in json.dumps(failed, default=str)

        # Again: the same answer from the record (idempotent), nothing more deleted.
        status, again = await admin.request("POST", path, json={"reason": "PIPL request ticket 42"})
        assert status == 200 and again["already_erased"] is True
        assert again["erasure_ref"] == erased["erasure_ref"] and again["counts"] == counts
        # Logging in again with the same WeChat account starts from nothing.
        fresh = await system.student("o-erase")
        status, me = await fresh.request("GET", "/api/v1/me")
        assert status == 200 and me["bound"] is False and me["phone"] is None


async def test_erasure_with_an_injected_clock_refuses_in_flight_work_and_the_cli(
    database: Any, mongo_url: str, mongo_db: str
) -> None:
    blobs = BlobStore(database)
    cipher = FieldCipher.from_config(data_key="AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=")
    app = await seed(database, blobs, exported_at=T0 - timedelta(days=3))
    busy = await seed(database, blobs, exported_at=None, state="code_submitted")
    try:
        await erase_application(database, blobs, cipher, busy["id"], reason="ticket 1", operator_id="op")
    except ErasureRefused as exc:
        assert exc.code == "application_in_flight" and exc.application_state == "code_submitted"
    else:
        raise AssertionError("an application waiting for the codec was erased")
    assert [await readable(blobs, b) for b in busy["blobs"]] == [True] * 5

    clock = iter([T0, T0 + timedelta(seconds=2)])
    result = await erase_application(
        database, blobs, cipher, app["id"], reason="ticket 2", operator_id="op-1", now=lambda: next(clock)
    )
    assert result is not None and not result.already_erased
    assert result.record["requested_at"] == T0 and result.record["completed_at"] == T0 + timedelta(seconds=2)
    assert result.record["counts"]["blobs"] == 5 and result.record["counts"]["matches"] == 1
    assert await readable(blobs, app["admission"])  # the roster is the school's data
    # After a key rotation the record is still found (hashed under the old key).
    rotated = FieldCipher.from_config(f"k9:{'A' * 43}=,k0:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=")
    assert (await find_erasure(database, rotated, app["id"]))["_id"] == result.record["_id"]
    again = await erase_application(
        database, blobs, rotated, app["id"], reason="ticket 2", operator_id="op-1"
    )
    assert again is not None and again.already_erased and again.record["requested_at"] == T0
    assert (
        await erase_application(database, blobs, cipher, "never-existed", reason="x", operator_id="op")
        is None
    )

    env = cli_env(mongo_url, mongo_db, GATEWAY_DATA_KEY="AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=")
    code, out, err = run_privacy_cli(env, "erase", busy["id"], "--reason", "ticket 3", "--operator", "dpo")
    assert code == 3 and out[0]["error"] == "application_in_flight"
    code, out, err = run_privacy_cli(env, "erase", busy["id"], "--reason", "ab")
    assert code == 2 and out == []
    code, out, err = run_privacy_cli(env, "erase", "no-such-id", "--reason", "ticket 3")
    assert code == 4 and out[0]["error"] == "not_found"
    await database.db["applications"].update_one({"_id": busy["id"]}, {"$set": {"state": "code_rejected"}})
    code, out, err = run_privacy_cli(env, "erase", busy["id"], "--reason", "ticket 3", "--operator", "dpo")
    assert code == 0 and out[0]["counts"]["applications_deleted"] == 1, err
    assert busy["id"] not in json.dumps(out) + err
    entry = await database.db["audit_log"].find_one({"action": "application.erase", "outcome": "ok"})
    assert entry["email"] == "cli:dpo" and entry["target"]["application_ref"] == out[0]["erasure_ref"]
    assert isinstance(entry["at"], datetime) and entry["at"].tzinfo is not None


async def test_erasure_takes_the_students_other_applications_and_finishes_after_a_crash(
    database: Any,
) -> None:
    blobs = BlobStore(database)
    cipher = FieldCipher.from_config(data_key="AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=")
    first = await seed(database, blobs, exported_at=None, state="code_rejected")
    doc = await database.db["applications"].find_one({"_id": first["id"]})
    # The same student again (a later application), an application merged into it, and a stranger.
    applications = Applications(database, lambda: None)
    later, merged, stranger = new_id(), new_id(), new_id()
    await applications.create(
        {"_id": later, "state": "paid", "student_id": doc["student_id"], "school_code": "10487"}
    )
    await applications.create(
        {"_id": merged, "state": "code_verified", "merged_into": later, "owner_openid": "o-m"}
    )
    await applications.create(
        {"_id": stranger, "state": "paid", "student_id": "10487:999", "school_code": "10487"}
    )
    await database.db["users"].insert_one({"_id": "o-m", "phone_encrypted": "v1:k0:x"})
    await database.db["sessions"].insert_one({"_id": "h", "openid": "o-m", "expires_at": T0})

    # A run that died part-way: its record says "erasing", some documents are already gone.
    ref = cipher.keyed_hash(later, purpose="erasure")
    await database.db["erasures"].insert_one({"_id": ref, "status": "erasing", "requested_at": T0})
    await blobs.delete(first["blobs"][0])

    result = await erase_application(
        database,
        blobs,
        cipher,
        later,
        reason="ticket 7",
        operator_id="op",
        now=lambda: T0 + timedelta(hours=1),
    )
    assert result is not None and result.record["status"] == "erased"
    assert result.record["requested_at"] == T0 and result.record["completed_at"] == T0 + timedelta(hours=1)
    counts = result.record["counts"]
    assert counts["applications"] == counts["applications_deleted"] == 3
    assert counts["users"] == 1 and counts["sessions"] == 1 and counts["blobs"] == 5
    assert len(result.record["related_refs"]) == 2 and later not in json.dumps(result.record, default=str)
    for gone in (first["id"], later, merged):
        assert await database.db["applications"].find_one({"_id": gone}) is None
    assert await database.db["applications"].find_one({"_id": stranger}) is not None
    assert [await readable(blobs, b) for b in first["blobs"]] == [False] * 5


async def test_erasure_refuses_while_imaging_still_has_a_photo(database: Any) -> None:
    """A photo uploaded in `paid` and not yet answered by imaging: imaging would write the student's
    standardised face and its `photos` document back after the erasure, so the erasure waits."""
    blobs = BlobStore(database)
    cipher = FieldCipher.from_config(data_key="AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=")
    app = await seed(database, blobs, exported_at=None, state="paid")
    raw = await blobs.put(b"raw2", filename="raw", content_type="image/jpeg", application_id=app["id"])

    def upload(current: Any) -> Change:
        photos = {**current["photos"], new_id(): {"status": "processing", "raw_blob_id": raw}}
        return Change(set={"photos": photos})

    await Applications(database, lambda: None).mutate(app["id"], upload)
    try:
        await erase_application(database, blobs, cipher, app["id"], reason="ticket 9", operator_id="op")
    except ErasureRefused as exc:
        assert exc.code == "application_in_flight" and exc.application_state == "paid"
    else:
        raise AssertionError("an application whose photo imaging is still processing was erased")
    assert await database.db["applications"].find_one({"_id": app["id"]}) is not None
    assert await readable(blobs, raw)
    assert await database.db["erasures"].count_documents({}) == 0

    # Once imaging has answered, the erasure goes through.
    def answered(current: Any) -> Change:
        photos = {k: {**v, "status": "rejected"} for k, v in current["photos"].items()}
        return Change(set={"photos": photos})

    await Applications(database, lambda: None).mutate(app["id"], answered)
    result = await erase_application(database, blobs, cipher, app["id"], reason="ticket 9", operator_id="op")
    assert result is not None and result.record["status"] == "erased"
    assert not await readable(blobs, raw)


async def test_delivery_batches_name_an_erased_application_by_its_hash(database: Any) -> None:
    blobs = BlobStore(database)
    cipher = FieldCipher.from_config(data_key="AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=")
    app = await seed(database, blobs, exported_at=T0)
    batches = database.db["delivery_batches"]
    await batches.insert_one(
        {
            "_id": "b-1",
            "school_code": "10487",
            "state": "closed",
            "application_ids": ["other-1", app["id"]],
            "count": 2,
            "refused": [],
            "version": 3,
        }
    )
    await batches.insert_one(
        {
            "_id": "b-2",
            "school_code": "10487",
            "state": "closed",
            "application_ids": ["other-2"],
            "count": 1,
            "refused": [{"application_id": app["id"], "reason": "photo_unreadable"}],
            "version": 1,
        }
    )
    result = await erase_application(database, blobs, cipher, app["id"], reason="ticket 11", operator_id="op")
    assert result is not None and result.record["counts"]["delivery_batches_scrubbed"] == 2
    ref = result.record["_id"]
    first, second = await batches.find_one({"_id": "b-1"}), await batches.find_one({"_id": "b-2"})
    assert first["application_ids"] == ["other-1", ref] and first["version"] == 4
    assert second["application_ids"] == ["other-2"]
    assert second["refused"] == [{"application_id": ref, "reason": "photo_unreadable"}]
    assert app["id"] not in json.dumps([first, second], default=str)
