"""Console: student search, application history, unbinding, refunds and the exception queue over HTTP."""

from __future__ import annotations

import json

from services.gateway.console.operators import Role
from shared.events import new_id
from tests.support.console import in_review_case, operator
from tests.support.system import ROSTER_ROW, running_system


async def test_support_finds_a_student_sees_the_history_unbinds_and_refunds(env):
    async with running_system(env) as system:
        student = await system.paid_student("o-console")
        application_id = (await student.status())["application_id"]
        support = await operator(system, "sam@example.com", Role.SUPPORT, ["10487"])
        reviewer = await operator(system, "rita@example.com", Role.REVIEWER, ["10487"])
        stranger = await operator(system, "other@example.com", Role.SUPPORT, ["10001"])

        number = ROSTER_ROW["student_number"]
        for q in (number, ROSTER_ROW["name"][:2]):
            status, found = await support.request("GET", "/console/api/v1/students", params={"q": q})
            assert status == 200, found
            [match] = found["students"]
            assert (
                match["student_number"] == number
                and match["applications"][0]["application_id"] == application_id
            )
        status, found = await stranger.request("GET", "/console/api/v1/students", params={"q": number})
        assert status == 200 and found["students"] == []
        assert (await support.request("GET", "/console/api/v1/students", params={"q": ".*"}))[1][
            "students"
        ] == []

        status, history = await support.request("GET", f"/console/api/v1/applications/{application_id}")
        assert status == 200 and history["application"]["state"] == "paid"
        assert history["codes"] and history["codes"][0]["status"] == "decoded"
        assert "outbox" not in history["application"]
        # Below admin: no openid (the student's, the payer's), no prepay id, wherever it is stored.
        shown = json.dumps(history, ensure_ascii=False)
        assert "o-console" not in shown and "prepay_id" not in shown and "payer_openid" not in shown
        assert (await stranger.request("GET", f"/console/api/v1/applications/{application_id}"))[0] == 404

        # A reviewer cannot refund; another school's support cannot even find the case; nothing changes.
        status, body = await reviewer.request(
            "POST",
            f"/console/api/v1/applications/{application_id}/refund",
            json={"reason": "student request"},
        )
        assert status == 403 and body["code"] == "forbidden"
        status, _ = await stranger.request(
            "POST",
            f"/console/api/v1/applications/{application_id}/refund",
            json={"reason": "student request"},
        )
        assert status == 404
        status, _ = await support.request(
            "POST",
            f"/console/api/v1/applications/{application_id}/refund",
            json={"reason": "student request"},
            csrf="",
        )
        assert status == 403
        db = system.gateway.database.db
        assert "refund" not in (await db["applications"].find_one({"_id": application_id}))["order"]
        status, refunded = await support.request(
            "POST",
            f"/console/api/v1/applications/{application_id}/refund",
            json={"reason": "student request"},
        )
        assert status == 200, refunded
        assert (
            refunded["refund"]["amount_fen"] == 3500
            and refunded["refund"]["operator_id"] == support.operator_id
        )

        # Unbinding: the WeChat account no longer acts for the student, as after 我的 → 解除绑定.
        assert (await reviewer.request("POST", f"/console/api/v1/applications/{application_id}/unbind"))[
            0
        ] == 403
        status, unbound = await support.request(
            "POST", f"/console/api/v1/applications/{application_id}/unbind"
        )
        # The answer says what happened without the WeChat identifier (issue 13: exposure).
        assert status == 200 and unbound["had_binding"] is True and "o-console" not in json.dumps(unbound)
        status, profile = await student.request("GET", "/api/v1/me")
        assert status == 200 and profile["bound"] is False
        assert (await db["applications"].find_one({"_id": application_id}))["owner_openid"] is None

        actions = {d["action"]: d async for d in db["audit_log"].find({"operator_id": support.operator_id})}
        assert {"student.search", "application.view", "order.refund", "student.unbind"} <= set(actions)
        assert actions["order.refund"]["target"]["application_id"] == application_id


async def test_exception_queue_and_quality_override(env):
    async with running_system(env, with_codec=False) as system:
        registrar = await in_review_case(system, state="registrar_review")
        photo_id = new_id()
        blob_id = await system.gateway.blobs.put(
            b"\xff\xd8\xffraw", filename="raw", content_type="image/jpeg"
        )
        placed_id = await system.gateway.blobs.put(
            b"\xff\xd8\xffplaced-480x640", filename="placed", content_type="image/jpeg"
        )
        unplaceable_id = new_id()
        refused = await in_review_case(
            system,
            state="match_failed",
            photos={
                photo_id: {
                    "status": "rejected",
                    "raw_blob_id": blob_id,
                    "placed_blob_id": placed_id,
                    "reasons": ["headwear"],
                },
                unplaceable_id: {"status": "rejected", "raw_blob_id": blob_id, "reasons": ["no_face"]},
            },
            last_failure={"code": "photo_rejected", "message": "请摘下帽子"},
        )
        elsewhere = await in_review_case(system, "10001", state="registrar_review")
        reviewer = await operator(system, "rita@example.com", Role.REVIEWER, ["10487"])
        support = await operator(system, "sam@example.com", Role.SUPPORT, ["10487"])

        status, listed = await reviewer.request("GET", "/console/api/v1/exceptions")
        assert status == 200
        kinds = {(c["kind"], c["application_id"]) for c in listed["cases"]}
        assert ("registrar_review", registrar) in kinds and ("quality_rejected", refused) in kinds
        assert ("low_score", refused) in kinds
        assert all(c["application_id"] != elsewhere for c in listed["cases"])
        status, only = await reviewer.request(
            "GET", "/console/api/v1/exceptions", params={"kind": "registrar_review"}
        )
        assert {c["application_id"] for c in only["cases"]} == {registrar}
        # Each look at the list (student ids, scores) is audited, with what was asked and how many.
        views = [
            d["target"]
            async for d in system.gateway.database.db["audit_log"].find(
                {"action": "exceptions.view", "operator_id": reviewer.operator_id}
            )
        ]
        assert sorted(views, key=len) == [
            {"count": len(listed["cases"])},
            {"kind": "registrar_review", "count": 1},
        ]

        # Support may look but not override; the override needs a reason; another school's case is 404.
        url = f"/console/api/v1/exceptions/{refused}/photos/{photo_id}/override"
        assert (await support.request("POST", url, json={"reason": "cap is a hair clip"}))[0] == 403
        assert (await reviewer.request("POST", url, json={"reason": ""}))[0] == 400
        status, overridden = await reviewer.request("POST", url, json={"reason": "the 'cap' is a hair clip"})
        assert status == 200 and overridden["photo"]["status"] == "standardized"
        assert overridden["photo"]["override"]["reasons_overridden"] == ["headwear"]
        # Imaging's placed rendering becomes the standardised photo, never the raw upload.
        stored = await system.gateway.database.db["applications"].find_one({"_id": refused})
        assert stored["photos"][photo_id]["standardized_blob_id"] == placed_id
        # A photo imaging could not place (no face) cannot be overridden: nothing standard to accept.
        status, body = await reviewer.request(
            "POST",
            f"/console/api/v1/exceptions/{refused}/photos/{unplaceable_id}/override",
            json={"reason": "looks fine to me"},
        )
        assert status == 409 and body["code"] == "photo_not_placeable", body
        stored = await system.gateway.database.db["applications"].find_one({"_id": refused})
        assert stored["photos"][unplaceable_id]["status"] == "rejected"
        assert (await reviewer.request("POST", url, json={"reason": "again"}))[1][
            "code"
        ] == "photo_not_rejected"
        stored = await system.gateway.database.db["applications"].find_one({"_id": refused})
        assert stored["last_failure"] is None

        # The registrar's case is decided like any review.
        status, decided = await reviewer.request(
            "POST", f"/console/api/v1/reviews/{registrar}/decision", json={"decision": "approved"}
        )
        assert status == 200 and decided["state"] == "approved"
        status, _ = await reviewer.request(
            "POST", f"/console/api/v1/reviews/{elsewhere}/decision", json={"decision": "approved"}
        )
        assert status == 404
