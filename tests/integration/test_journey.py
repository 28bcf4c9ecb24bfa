"""The student journey through HTTP: login → code → confirm → pay → photos → submit → match → status."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import aiohttp
import pytest

from services.gateway.schools import demo_school
from tests.support.codes import code_text
from tests.support.photos import photo_jpeg, reject, score, standardise
from tests.support.system import ROSTER_ROW, SECOND_ROW, running_system
from tests.support.wechat import shared_keyset

pytestmark = pytest.mark.slow


def photo_form(data: bytes, source: str = "camera") -> aiohttp.FormData:
    form = aiohttp.FormData()
    form.add_field("source", source)
    form.add_field("image", data, filename="photo.jpg", content_type="image/jpeg")
    return form


async def wait_photo(student, photo_id: str, status: str) -> dict:
    for _ in range(200):
        photos = {p["photo_id"]: p for p in (await student.status())["photos"]}
        if photos[photo_id]["status"] == status:
            return photos[photo_id]
        await asyncio.sleep(0.05)
    raise AssertionError(f"photo {photo_id} never became {status}")


async def test_the_whole_journey_over_http(env):
    async with running_system(env) as system:
        student = await system.student("o-journey")
        status, school = await student.request("GET", "/api/v1/schools/10487")
        assert status == 200 and school["support"]["phone"] == "027-87885551" and school["fee_fen"] == 3500
        status, phone_code = await system.sandbox_call("POST", "phone-codes", {"phone": "13812345678"})
        status, phone = await student.request("POST", "/api/v1/me/phone", json={"code": phone_code["code"]})
        assert status == 200 and phone == {"phone": "138****5678"}
        user = await system.gateway.database.db["users"].find_one({"_id": "o-journey"})
        assert "13812345678" not in str(user)  # encrypted at rest

        status, scan = await student.submit_text(code_text())
        assert (await student.wait_for_scan(scan["scan_id"]))["status"] == "decoded"
        status, confirmation = await student.request("POST", "/api/v1/application/confirm", json={})
        assert status == 200
        assert confirmation["graduation_year"]["code"] == "2025"  # the default is preselected
        assert confirmation["mailing_method"]["code"] == "registrar"
        status, order = await student.request(
            "POST", "/api/v1/orders", headers={"Idempotency-Key": "order-1"}
        )
        assert status == 201, order
        assert order["amount_fen"] == 3500
        assert order["payment"]["package"].startswith("prepay_id=") and order["payment"]["signType"] == "RSA"
        status, again = await student.request(
            "POST", "/api/v1/orders", headers={"Idempotency-Key": "order-1"}
        )
        assert again["out_trade_no"] == order["out_trade_no"]  # a retried order is the same order
        status, _ = await system.sandbox_call("POST", f"pay/{order['out_trade_no']}", {})
        assert status == 200
        paid = await student.wait_for_state("paid")
        assert paid["order"]["status"] == "paid" and paid["next"]["action"] == "take_photo"
        db = system.gateway.database.db
        app = await db["applications"].find_one({"_id": paid["application_id"]})
        assert app["order"]["payer_openid"] == "o-journey" and app["student_id"] == "10487:2110216052"
        assert app["outbox_pending"] == 0

        status, photo = await student.request("POST", "/api/v1/photos", data=photo_form(photo_jpeg()))
        assert status == 202, photo
        assert photo["standardisation_number"] == 1 and photo["standardisations_left_today"] == 2
        await standardise(env, system, paid["application_id"], photo["photo_id"])
        ready = await wait_photo(student, photo["photo_id"], "standardized")
        status, image = await student.request("GET", ready["image_url"])
        assert status == 200 and image[:3] == b"\xff\xd8\xff"
        status, admission = await student.request("GET", "/api/v1/admission-photo")
        assert status == 200 and len(admission) > 100

        body = {"photo_id": photo["photo_id"], "admission_photo_confirmed": True}
        status, submitted = await student.request("POST", "/api/v1/submissions", json=body)
        assert status == 202, submitted
        assert (await student.status())["state"] == "submitted"
        await score(env, paid["application_id"], photo["photo_id"], "10487:2110216052", 91.5)
        final = await student.wait_for_state("in_review")
        assert final["match"] == {"score": 91.5, "passed": True, "photo_id": photo["photo_id"]}
        assert final["next"]["action"] == "wait" and final["last_failure"] is None


async def test_failed_match_lets_the_student_try_another_photo(env):
    async with running_system(env) as system:
        student = await system.paid_student("o-match")
        app_id = (await student.status())["application_id"]
        status, photo = await student.request("POST", "/api/v1/photos", data=photo_form(photo_jpeg()))
        await standardise(env, system, app_id, photo["photo_id"])
        await wait_photo(student, photo["photo_id"], "standardized")
        body = {"photo_id": photo["photo_id"], "admission_photo_confirmed": True}
        assert (await student.request("POST", "/api/v1/submissions", json=body))[0] == 202
        await score(env, app_id, photo["photo_id"], "10487:2110216052", 62.0)
        failed = await student.wait_for_state("match_failed")
        assert failed["last_failure"]["code"] == "match_failed" and "80" in failed["last_failure"]["message"]
        assert failed["next"]["action"] == "take_photo"
        # Submitting again needs a standardised photo; the same one may be tried.
        assert (await student.request("POST", "/api/v1/submissions", json=body))[0] == 202


async def test_payment_notifications_are_verified_deduplicated_and_checked(env):
    from services.gateway.context import APPLICATIONS, PAY
    from services.gateway.payments import reconcile_once

    async with running_system(env, roster=[ROSTER_ROW, SECOND_ROW]) as system:
        db = system.gateway.database.db
        # A tampered signature: every delivery is refused (WeChat keeps retrying), nothing is paid...
        forged = await system.verified_student("o-forged")
        await forged.request("POST", "/api/v1/application/confirm", json={})
        await system.sandbox_call("POST", "knobs", {"tampered_signature": True})
        status, order = await forged.request("POST", "/api/v1/orders")
        await system.sandbox_call("POST", f"pay/{order['out_trade_no']}", {})
        await asyncio.sleep(0.5)
        assert (await forged.status())["state"] == "confirmed"
        status, sent = await system.sandbox_call("GET", f"notifications?out_trade_no={order['out_trade_no']}")
        responses = [a["status"] for n in sent["notifications"] for a in n["attempts"]]
        assert responses and set(responses) == {401}
        # ...until reconciliation asks WeChat Pay directly.
        app = system.gateway.app
        assert await reconcile_once(
            system.gateway.database, app[APPLICATIONS], app[PAY], older_than=timedelta(0)
        ) == {"paid": 1}
        assert (await forged.status())["state"] == "paid"

        # Duplicated and replayed notifications: applied once.
        await system.sandbox_call("POST", "knobs", {"tampered_signature": False, "duplicate": 2})
        student = await system.verified_student("o-duplicate", SECOND_ROW)
        await student.request("POST", "/api/v1/application/confirm", json={})
        status, order = await student.request("POST", "/api/v1/orders")
        await system.sandbox_call("POST", f"pay/{order['out_trade_no']}", {})
        paid = await student.wait_for_state("paid")
        await asyncio.sleep(0.5)
        status, sent = await system.sandbox_call("GET", f"notifications?out_trade_no={order['out_trade_no']}")
        (notification,) = sent["notifications"]
        assert len(notification["attempts"]) == 3 and {a["status"] for a in notification["attempts"]} == {204}
        await system.sandbox_call("POST", f"notifications/{notification['id']}/replay", {})
        await asyncio.sleep(0.3)
        app_doc = await db["applications"].find_one({"_id": paid["application_id"]})
        assert app_doc["order"]["status"] == "paid"
        assert await db["payment_notifications"].count_documents({"out_trade_no": order["out_trade_no"]}) == 1
        published = await db["processed_events"].count_documents({"consumer": "gateway", "state": "done"})
        assert published >= 1

        # Unknown order and garbage.
        keyset = shared_keyset()
        resource = {
            "out_trade_no": "GPNOSUCHORDER0001",
            "trade_state": "SUCCESS",
            "amount": {"total": 3500},
            "transaction_id": "4200000000000000000000000001",
            "payer": {"openid": "o-x"},
            "appid": keyset.appid,  # a real notification names our app and merchant (checked)
            "mchid": keyset.mchid,
        }
        assert await post_signed(system, keyset, resource) == 204
        assert await db["payment_anomalies"].count_documents({"kind": "unknown_order"}) == 1
        async with system.http.post(f"{system.base_url}/api/v1/pay/notify", data=b"{}") as r:
            assert r.status in (400, 401) and (await r.json())["code"] == "FAIL"


async def post_signed(system, keyset, resource: dict) -> int:
    """A correctly signed, encrypted notification, as WeChat Pay would send it, with our own resource."""
    from sandbox.wechat.signing import notification_body, signature_headers
    from shared.wechat.crypto import load_private_key

    _, body = notification_body(
        event_type="TRANSACTION.SUCCESS",
        summary="支付成功",
        original_type="transaction",
        resource=resource,
        apiv3_key=keyset.apiv3_key,
    )
    headers = signature_headers(
        body,
        platform_key=load_private_key(keyset.platform_private_key),
        public_key_id=keyset.platform_public_key_id,
    )
    async with system.http.post(
        f"{system.base_url}/api/v1/pay/notify",
        data=body,
        headers={**headers, "Content-Type": "application/json"},
    ) as r:
        return r.status


async def test_wrong_amount_is_not_applied(env):
    async with running_system(env) as system:
        db = system.gateway.database.db
        student = await system.verified_student("o-amount")
        await student.request("POST", "/api/v1/application/confirm", json={})
        await system.sandbox_call("POST", "knobs", {"never_notify": True})
        status, order = await student.request("POST", "/api/v1/orders")
        resource = {
            "out_trade_no": order["out_trade_no"],
            "trade_state": "SUCCESS",
            "amount": {"total": 1},
            "transaction_id": "4200000000000000000000000002",
            "payer": {"openid": "o-amount"},
            "appid": shared_keyset().appid,
            "mchid": shared_keyset().mchid,
        }
        assert await post_signed(system, shared_keyset(), resource) == 204
        assert (await student.status())["state"] == "confirmed"
        anomaly = await db["payment_anomalies"].find_one({"kind": "amount_mismatch"})
        assert anomaly["out_trade_no"] == order["out_trade_no"]


async def test_a_never_notified_payment_is_found_by_reconciliation(env):
    from services.gateway.context import APPLICATIONS, PAY
    from services.gateway.payments import reconcile_once

    async with running_system(env) as system:
        student = await system.verified_student("o-recon")
        await student.request("POST", "/api/v1/application/confirm", json={})
        await system.sandbox_call("POST", "knobs", {"never_notify": True})
        status, order = await student.request("POST", "/api/v1/orders")
        await system.sandbox_call("POST", f"pay/{order['out_trade_no']}", {})
        await asyncio.sleep(0.3)
        assert (await student.status())["state"] == "confirmed"  # WeChat never told us
        app = system.gateway.app
        counts = await reconcile_once(
            system.gateway.database, app[APPLICATIONS], app[PAY], older_than=timedelta(0)
        )
        assert counts == {"paid": 1}
        status = await student.status()
        assert status["state"] == "paid" and status["order"]["status"] == "paid"
        again = await reconcile_once(
            system.gateway.database, app[APPLICATIONS], app[PAY], older_than=timedelta(0)
        )
        assert again == {}


async def test_quota_three_a_day_then_cooling_off(env):
    async with running_system(env) as system:
        student = await system.paid_student("o-quota")
        numbers = []
        for seed in range(3):
            status, body = await student.request(
                "POST", "/api/v1/photos", data=photo_form(photo_jpeg(seed=seed))
            )
            assert status == 202, body
            numbers.append(body["standardisation_number"])
        assert numbers == [1, 2, 3]
        status, refused = await student.request("POST", "/api/v1/photos", data=photo_form(photo_jpeg(seed=9)))
        assert (status, refused["code"]) == (429, "quota_exhausted")
        reopens = datetime.fromisoformat(refused["details"]["reopens_at"])
        assert timedelta(hours=23, minutes=59) < reopens - datetime.now(UTC) <= timedelta(hours=24)
        current = await student.status()
        assert current["quota"]["standardisations_left"] == 0 and len(current["photos"]) == 3


async def test_twenty_concurrent_uploads_take_exactly_three_slots(env):
    async with running_system(env, gateway_upload_burst=100) as system:
        student = await system.paid_student("o-burst")
        data = photo_jpeg()
        replies = await asyncio.gather(
            *(student.request("POST", "/api/v1/photos", data=photo_form(data)) for _ in range(20))
        )
        accepted = [body for status, body in replies if status == 202]
        refused = [body["code"] for status, body in replies if status != 202]
        assert len(accepted) == 3, replies
        assert sorted(b["standardisation_number"] for b in accepted) == [1, 2, 3]
        assert set(refused) <= {"quota_exhausted", "busy"} and "quota_exhausted" in refused
        current = await student.status()
        assert len(current["photos"]) == 3
        app = await system.gateway.database.db["applications"].find_one({"_id": current["application_id"]})
        assert len(app["quota"]["taken"]) == 3


async def test_album_uploads_are_checked_before_anything_is_counted(env):
    async with running_system(env) as system:
        student = await system.paid_student("o-album")
        cases = [
            ("too small", photo_jpeg(300, 400)),
            ("png", _png()),
            ("too light in bytes", photo_jpeg(600, 800, quality=5)),
        ]
        for label, data in cases:
            status, body = await student.request("POST", "/api/v1/photos", data=photo_form(data, "album"))
            assert (status, body["code"]) == (400, "album_photo_invalid"), label
        status, body = await student.request("POST", "/api/v1/photos", data=photo_form(photo_jpeg(), "album"))
        assert status == 202 and body["standardisation_number"] == 1  # nothing was counted before


def _png() -> bytes:
    import io

    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (600, 800), "white").save(out, format="PNG")
    return out.getvalue()


async def test_steps_out_of_order_and_other_students_ids_are_refused(env):
    async with running_system(env) as system:
        stranger = await system.student("o-stranger")
        status, body = await stranger.request("POST", "/api/v1/orders")
        assert (status, body["code"]) == (409, "no_application")
        student = await system.verified_student("o-owner")
        status, body = await student.request("POST", "/api/v1/photos", data=photo_form(photo_jpeg()))
        assert (status, body["code"]) == (409, "illegal_transition")  # no photo before paying
        status, body = await student.request("POST", "/api/v1/orders")
        assert (status, body["code"]) == (409, "illegal_transition")  # no order before confirming
        cases = [
            ({"graduation_year": "1999"}, 400, "invalid_option"),
            ({"graduation_year": {"$ne": None}}, 400, "invalid_request"),
            ({"mailing_method": ["registrar"]}, 400, "invalid_request"),
        ]
        for body_in, code_status, code in cases:
            status, body = await student.request("POST", "/api/v1/application/confirm", json=body_in)
            assert (status, body["code"]) == (code_status, code), body_in
        status, body = await student.request(
            "POST",
            "/api/v1/application/confirm",
            data="x" * 70_000,
            headers={"Content-Type": "application/json"},
        )
        assert (status, body["code"]) == (413, "payload_too_large")
        status, body = await student.request(
            "POST", "/api/v1/application/confirm", data="graduation_year=2025"
        )
        assert (status, body["code"]) == (415, "unsupported_media_type")
        assert (await student.status())["state"] == "code_verified"  # none of it changed anything
        # The stranger cannot see the student's scan or photos, even knowing their ids.
        scan_id = (await system.gateway.database.db["applications"].find_one({"owner_openid": "o-owner"}))[
            "code"
        ]["scan_id"]
        status, body = await stranger.request("GET", f"/api/v1/codes/{scan_id}")
        assert (status, body["code"]) == (404, "not_found")


async def test_login_codes_work_once(env):
    async with running_system(env, with_codec=False) as system:
        student = await system.student("o-login", login=False)
        code = await system.login_code("o-login")
        status, body = await student.request("POST", "/api/v1/login", json={"code": code})
        assert status == 200 and body["bound"] is False
        status, body = await student.request("POST", "/api/v1/login", json={"code": code})
        assert (status, body["code"]) == (400, "invalid_login_code")
        status, body = await student.request("POST", "/api/v1/login", json={"code": "made-up"})
        assert (status, body["code"]) == (400, "invalid_login_code")
        status, body = await student.request("POST", "/api/v1/login", json={"code": {"$gt": ""}})
        assert (status, body["code"]) == (400, "invalid_request")
        assert await system.gateway.database.db["sessions"].count_documents({}) == 1


async def test_sessions_expire(env):
    async with running_system(env, with_codec=False, gateway_session_ttl_hours=1.5 / 3600) as system:
        student = await system.student("o-expiring")
        assert (await student.request("GET", "/api/v1/me"))[0] == 200
        await asyncio.sleep(1.6)
        status, body = await student.request("GET", "/api/v1/me")
        assert (status, body["code"]) == (401, "unauthenticated")


async def test_one_account_one_student_and_unbinding_carries_the_application_over(env):
    async with running_system(env, roster=[ROSTER_ROW, SECOND_ROW]) as system:
        first = await system.paid_student("o-first")
        app_id = (await first.status())["application_id"]
        # Another WeChat account cannot take the bound student.
        other = await system.student("o-other")
        status, scan = await other.submit_text(code_text())
        result = await other.wait_for_scan(scan["scan_id"])
        assert (result["status"], result["reason"]) == ("rejected", "student_bound_elsewhere")
        # The bound account cannot act for a second student.
        from tests.support.codes import RECORD

        record = RECORD.model_copy(
            update={"name": "钱小红", "student_number": "2110216053", "id_masked": "****1234"}
        )
        # (the first account's application is past the code step, so a re-scan is refused outright)
        status, body = await first.submit_text(
            code_text(record), name="钱小红", student_number="2110216053", id_last4="1234"
        )
        assert (status, body["code"]) == (409, "application_locked")
        # Unbind (我的), then the other account binds and carries on where the student was.
        status, body = await first.request("DELETE", "/api/v1/me/binding")
        assert status == 200 and body["bound"] is False
        status, scan = await other.submit_text(code_text())
        assert (await other.wait_for_scan(scan["scan_id"]))["status"] == "decoded"
        carried = await other.status()
        assert carried["application_id"] == app_id and carried["state"] == "paid"
        status, body = await first.request("GET", "/api/v1/application")
        assert (status, body["code"]) == (409, "no_application")


async def test_roster_eligibility_and_the_onsite_rule(env):
    onsite = {**ROSTER_ROW, "onsite_shot": "是"}
    async with running_system(env, roster=[onsite]) as system:
        student = await system.student("o-onsite")
        status, scan = await student.submit_text(code_text())
        result = await student.wait_for_scan(scan["scan_id"])
        assert result["reason"] == "onsite_shoot_attended" and "线下拍摄" in result["message"]
    allowing = demo_school().model_copy(update={"allow_onsite_attendees": True, "onsite_extra_fee_fen": 2000})
    async with running_system(env, roster=[onsite], school=allowing) as system:
        student = await system.verified_student("o-onsite-ok")
        await student.request("POST", "/api/v1/application/confirm", json={})
        status, order = await student.request("POST", "/api/v1/orders")
        assert order["amount_fen"] == 3500 + 2000  # the school's extra manual-review fee
    async with running_system(env, roster=[]) as system:
        await system.gateway.database.db["students"].delete_many({})  # the blocks above share a database
        student = await system.student("o-nobody")
        status, scan = await student.submit_text(code_text())
        assert (await student.wait_for_scan(scan["scan_id"]))["reason"] == "not_in_roster"


async def test_the_funnel_gauge_counts_applications_by_state(env):
    from prometheus_client import REGISTRY

    from services.gateway.funnel import refresh_funnel

    async with running_system(env, roster=[ROSTER_ROW, SECOND_ROW]) as system:
        await system.paid_student("o-funnel-1")
        await system.verified_student("o-funnel-2", SECOND_ROW)
        counts = await refresh_funnel(system.gateway.database)
        assert counts == {("10487", "paid"): 1, ("10487", "code_verified"): 1}
        sample = REGISTRY.get_sample_value("applications_by_state", {"school": "10487", "state": "paid"})
        assert sample == 1.0


async def test_a_refused_photo_shows_the_imaging_services_reasons_in_chinese(env):
    async with running_system(env) as system:
        student = await system.paid_student("o-refused")
        app_id = (await student.status())["application_id"]
        status, photo = await student.request("POST", "/api/v1/photos", data=photo_form(photo_jpeg()))
        sentences = ["请摘下帽子、头巾等头饰，露出头顶后重拍。", "请闭上嘴巴，保持自然表情后重拍。"]
        await reject(env, app_id, photo["photo_id"], ["headwear", "mouth_open"], sentences)
        refused = await wait_photo(student, photo["photo_id"], "rejected")
        assert refused["reasons"] == ["headwear", "mouth_open"] and refused["messages"] == sentences
        current = await student.status()
        assert current["last_failure"]["code"] == "photo_rejected"
        assert current["last_failure"]["message"] == "；".join(sentences)
        assert current["state"] == "paid" and current["next"]["action"] == "take_photo"
        assert current["quota"]["standardisations_left"] == 2  # the refused photo still used its slot
