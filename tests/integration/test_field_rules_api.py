"""The field rules over HTTP on a real gateway, broker and database: consent with the policy version,
capture sources a school accepts, withdrawing a submission in review, and 「录取照片不是本人」."""

from __future__ import annotations

import aiohttp
import pytest

from services.gateway.console.operators import Role
from services.gateway.schools import demo_school
from tests.support.console import operator
from tests.support.photos import photo_jpeg, score, standardise
from tests.support.system import running_system

pytestmark = pytest.mark.slow


def photo_form(source: str, data: bytes | None = None) -> aiohttp.FormData:
    form = aiohttp.FormData()
    form.add_field("source", source)
    form.add_field("image", data or photo_jpeg(), filename="photo.jpg", content_type="image/jpeg")
    return form


async def test_consent_is_recorded_with_the_version_shown(env):
    async with running_system(env) as system:
        student = await system.student("o-consent")
        status, school = await student.request("GET", "/api/v1/schools/10487")
        assert status == 200 and school["policy_version"] == "2026-01"
        assert school["capture_sources"] == ["camera", "album"]
        assert school["subscribe_templates"]["submission"] == ["demo_match_result", "demo_review_result"]
        body = {"school_code": "10487", "policy_version": "2026-01"}
        status, first = await student.request("POST", "/api/v1/consents", json=body)
        assert status == 201 and first["policy_version"] == "2026-01"
        status, again = await student.request("POST", "/api/v1/consents", json=body)
        assert status == 201 and again == first  # once per version: the first agreement stands
        user = await system.gateway.database.db["users"].find_one({"_id": "o-consent"})
        assert [c["policy_version"] for c in user["consents"]] == ["2026-01"]

        status, old = await student.request(
            "POST", "/api/v1/consents", json={**body, "policy_version": "2025-09"}
        )
        assert status == 409 and old["code"] == "policy_outdated" and "重新阅读" in old["message"]
        assert old["details"] == {"policy_version": "2026-01"}
        for hostile, code in (
            ({**body, "school_code": "99999"}, "not_found"),
            ({**body, "policy_version": ""}, "invalid_request"),
            ({**body, "policy_version": "x" * 33}, "invalid_request"),
            ({**body, "admin": True}, "invalid_request"),
            ({"school_code": "10487"}, "invalid_request"),
        ):
            status, refused = await student.request("POST", "/api/v1/consents", json=hostile)
            assert refused["code"] == code, (hostile, refused)
        status, _ = await student.request("POST", "/api/v1/consents", data=b"not json")
        assert status in (400, 415)
        user = await system.gateway.database.db["users"].find_one({"_id": "o-consent"})
        assert len(user["consents"]) == 1  # nothing refused was recorded
        anonymous = await system.student("o-nobody", login=False)
        status, _ = await anonymous.request("POST", "/api/v1/consents", json=body)
        assert status == 401


async def test_a_camera_only_school_refuses_album_uploads_before_counting(env):
    school = demo_school().model_copy(update={"capture_sources": ["camera"]})
    async with running_system(env, school=school) as system:
        student = await system.paid_student("o-camera-only")
        status, refused = await student.request("POST", "/api/v1/photos", data=photo_form("album"))
        assert status == 400 and refused["code"] == "capture_source_not_accepted"
        assert refused["details"] == {"accepted": ["camera"]} and "摄像头" in refused["message"]
        status, bad = await student.request("POST", "/api/v1/photos", data=photo_form("screenshot"))
        assert status == 400 and bad["code"] == "invalid_request"
        view = await student.status()
        assert view["photos"] == [] and view["quota"]["standardisations_left"] == 3  # nothing counted
        status, accepted = await student.request("POST", "/api/v1/photos", data=photo_form("camera"))
        assert status == 202 and accepted["standardisations_left_today"] == 2


async def test_withdraw_in_review_then_resubmit_with_quota_and_resubmissions_unchanged(env):
    async with running_system(env) as system:
        student = await system.paid_student("o-withdraw")
        app_id = (await student.status())["application_id"]
        status, photo = await student.request("POST", "/api/v1/photos", data=photo_form("camera"))
        await standardise(env, system, app_id, photo["photo_id"])
        await student.wait_for_state("paid")
        for _ in range(100):
            if (await student.status())["photos"][0]["status"] == "standardized":
                break
        body = {"photo_id": photo["photo_id"], "admission_photo_confirmed": True}
        status, _ = await student.request("POST", "/api/v1/submissions", json=body)
        assert status == 202
        status, early = await student.request("POST", "/api/v1/submission/withdraw")
        assert status == 409 and early["code"] == "illegal_transition"  # still being compared
        await score(env, app_id, photo["photo_id"], "10487:2110216052", 92.0)
        before = await student.wait_for_state("in_review")

        headers = {"Idempotency-Key": "withdraw-1"}
        status, withdrawn = await student.request("POST", "/api/v1/submission/withdraw", headers=headers)
        assert status == 200 and withdrawn["state"] == "withdrawn"
        status, repeat = await student.request("POST", "/api/v1/submission/withdraw", headers=headers)
        assert status == 200 and repeat == withdrawn  # a retry: the same answer
        status, twice = await student.request("POST", "/api/v1/submission/withdraw")
        assert status == 409 and twice["code"] == "illegal_transition"
        after = await student.status()
        assert after["state"] == "withdrawn" and after["next"]["action"] == "take_photo"
        assert (
            after["quota"] == before["quota"] and after["resubmissions_left"] == before["resubmissions_left"]
        )
        stored = await system.gateway.database.db["applications"].find_one({"_id": app_id})
        assert [w["from_state"] for w in stored["withdrawals"]] == ["in_review"]
        assert stored["withdrawals"][0]["photo_id"] == photo["photo_id"]

        # An operator still holding the case cannot decide it any more.
        reviewer = await operator(system, "rev@school.example", Role.REVIEWER, ["10487"])
        status, late = await reviewer.request(
            "POST", f"/console/api/v1/reviews/{app_id}/decision", json={"decision": "approved"}
        )
        assert status == 409 and late["code"] == "illegal_transition"

        status, _ = await student.request("POST", "/api/v1/submissions", json=body)
        assert status == 202  # resubmitted from withdrawn: no free resubmission spent
        assert (await student.status())["resubmissions_left"] == before["resubmissions_left"]


async def test_admission_photo_not_me_opens_a_support_case(env):
    async with running_system(env) as system:
        student = await system.paid_student("o-not-me")
        app_id = (await student.status())["application_id"]
        status, opened = await student.request("POST", "/api/v1/admission-photo/dispute")
        assert status == 202 and opened["status"] == "open"
        status, again = await student.request("POST", "/api/v1/admission-photo/dispute")
        assert status == 202 and again == opened
        support = await operator(system, "support@school.example", Role.REVIEWER, ["10487"])
        status, queue = await support.request(
            "GET", "/console/api/v1/exceptions?kind=admission_photo_disputed"
        )
        assert status == 200 and [c["application_id"] for c in queue["cases"]] == [app_id]
        assert queue["cases"][0]["kind"] == "admission_photo_disputed"
        stranger = await system.student("o-stranger")
        status, none = await stranger.request("POST", "/api/v1/admission-photo/dispute")
        assert status == 409 and none["code"] == "no_application"
