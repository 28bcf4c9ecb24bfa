"""School staff accounts (role `school`) on the real database and broker: invited by an admin with a
one-time set-password link, they see their own school's progress and registrar cases and decide them
(audited), download their school's files; another school's anything is 404, every other console route
is 403, and no answer they get carries payment data.
"""

from __future__ import annotations

from typing import Any

import pytest
from playwright.async_api import expect

from services.gateway.console.operators import Operators, Role
from services.gateway.schools import Schools, demo_school
from shared.events import utcnow
from tests.integration.test_console_web import sign_in
from tests.support.browser import chromium, screenshot_dir
from tests.support.console import PASSWORD, OperatorClient, in_review_case, operator
from tests.support.system import ROSTER_ROW, running_system

pytestmark = pytest.mark.slow
expect.set_options(timeout=20_000)
DOCS = screenshot_dir("console")
API = "/console/api/v1"
SCHOOL, OTHER = demo_school().school_code, "10001"
ROSTER = [
    {**ROSTER_ROW, "name": "赵一", "student_number": "2110216001", "class_name": "计科1班"},
    {**ROSTER_ROW, "name": "钱二", "student_number": "2110216002", "class_name": "计科1班"},
    {**ROSTER_ROW, "name": "孙三", "student_number": "2110216003", "class_name": "计科2班"},
]
# Keys that would be payment data anywhere in an answer.
PAYMENT_KEYS = {
    "order",
    "orders",
    "payer",
    "payer_openid",
    "amount_fen",
    "prepay_id",
    "transaction_id",
    "refund",
}


def keys(value: Any) -> set[str]:
    if isinstance(value, dict):
        return set(value) | {k for v in value.values() for k in keys(v)}
    if isinstance(value, list):
        return {k for v in value for k in keys(v)}
    return set()


async def registrar_case(system: Any, school: str, number: str) -> str:
    application_id = await in_review_case(system, school, number)
    await system.gateway.database.db["applications"].update_one(
        {"_id": application_id},
        {
            "$set": {
                "state": "registrar_review",
                "order": {"status": "paid", "amount_fen": 1500, "payer_openid": "o-payer"},
                "last_failure": {"code": "match_failed", "message": "比对未通过", "at": utcnow()},
            }
        },
    )
    return application_id


async def test_school_staff_are_invited_and_see_only_their_school(env):
    async with running_system(env, with_codec=False, roster=ROSTER) as system:
        await Schools(system.gateway.database).put(
            demo_school().model_copy(update={"school_code": OTHER, "name": "另一所大学"})
        )
        admin = await operator(system, "admin@example.com", Role.ADMIN, [])
        mine = await registrar_case(system, SCHOOL, "2110216001")
        theirs = await registrar_case(system, OTHER, "2110216901")
        stale = await in_review_case(system, SCHOOL, "2110216002")
        await system.gateway.database.db["applications"].update_one(
            {"_id": stale},
            {
                "$set": {
                    "state": "match_failed",
                    "last_failure": {"code": "match_failed", "message": "分数低"},
                }
            },
        )

        # The admin invites; hostile and wrong invitations are refused and nothing is made.
        for body, code in (
            ({"email": "reg@example.com", "role": "school", "schools": ["99999"]}, 400),
            ({"email": "reg@example.com", "role": "admin", "schools": [SCHOOL]}, 400),
            ({"email": "not-an-email", "role": "school", "schools": [SCHOOL]}, 400),
            ({"email": "reg@example.com", "role": "school", "schools": []}, 400),
            ({"email": "reg@example.com", "role": "school", "schools": [SCHOOL], "password": "x"}, 400),
        ):
            status, answer = await admin.request("POST", f"{API}/operators/invite", json=body)
            assert status == code, (body, answer)
        assert (
            await system.gateway.database.db["operators"].count_documents({"email": "reg@example.com"}) == 0
        )
        status, invite = await admin.request(
            "POST",
            f"{API}/operators/invite",
            json={"email": "Reg@Example.com", "role": "school", "schools": [SCHOOL]},
        )
        assert status == 201, invite
        assert invite["role"] == "school" and invite["schools"] == [SCHOOL]
        token = invite["invite_path"].split("token=")[1]
        status, again = await admin.request(
            "POST",
            f"{API}/operators/invite",
            json={"email": "reg@example.com", "role": "school", "schools": [SCHOOL]},
        )
        assert (status, again["code"]) == (409, "operator_exists")
        status, listing = await admin.request("GET", f"{API}/operators")
        line = next(o for o in listing["operators"] if o["email"] == "reg@example.com")
        assert line["invited"] is True and line["password_set"] is False
        listed = await system.gateway.database.db["audit_log"].find_one({"action": "operator.list"})
        assert listed["role"] == "admin" and listed["target"]["count"] == len(listing["operators"])

        # Nobody can sign in before the link is used; the link sets the password once.
        staff = OperatorClient(system.base_url, admin.http)
        assert (await staff.login("reg@example.com"))[0] == 401
        status, _ = await staff.request(
            "POST", f"{API}/operators/set-password", json={"token": "x" * 43, "password": PASSWORD}
        )
        assert status == 400
        status, _ = await staff.request(
            "POST", f"{API}/operators/set-password", json={"token": token, "password": "short"}
        )
        assert status == 400
        status, _ = await staff.request(
            "POST", f"{API}/operators/set-password", json={"token": token, "password": PASSWORD}
        )
        assert status == 204
        status, reused = await staff.request(
            "POST", f"{API}/operators/set-password", json={"token": token, "password": PASSWORD + "!"}
        )
        assert (status, reused["code"]) == (400, "invite_invalid")
        assert (await staff.login("reg@example.com"))[0] == 200
        status, me = await staff.request("GET", f"{API}/me")
        assert status == 200 and me["role"] == "school" and me["all_schools"] is False

        # Progress: counts by state and class, who has not started, who is stuck and why.
        status, progress = await staff.request("GET", f"{API}/school/progress")
        assert status == 200, progress
        assert progress["school_code"] == SCHOOL and progress["students"] == 3 and progress["started"] == 2
        assert [s["student_number"] for s in progress["not_started"]] == ["2110216003"]
        stuck = {s["student_number"]: s for s in progress["stuck"]}
        assert stuck["2110216001"]["reason_code"] == "registrar_review"
        assert (
            stuck["2110216002"]["reason_code"] == "match_failed" and "分数低" in stuck["2110216002"]["reason"]
        )
        classes = {c["class_name"]: c for c in progress["by_class"]}
        assert classes["计科1班"]["students"] == 2 and classes["计科1班"]["stuck"] == 2
        assert classes["计科2班"]["not_started"] == 1

        # Registrar cases: only this school's, with the photos; the decision needs a reason.
        status, cases = await staff.request("GET", f"{API}/school/cases")
        assert status == 200 and [c["application_id"] for c in cases["cases"]] == [mine]
        status, photo = await staff.request("GET", cases["cases"][0]["photo_url"])
        assert status == 200 and photo.startswith(b"\xff\xd8")
        status, refused = await staff.request(
            "POST", f"{API}/school/cases/{mine}/decision", json={"decision": "approved", "note": ""}
        )
        assert status == 400
        status, refused = await staff.request(
            "POST",
            f"{API}/school/cases/{mine}/decision",
            json={"decision": "rejected", "note": "照片不是本人"},
        )
        assert (status, refused["code"]) == (400, "reason_required")
        status, decided = await staff.request(
            "POST",
            f"{API}/school/cases/{mine}/decision",
            json={"decision": "approved", "note": "核对学籍照片，确认本人"},
        )
        assert status == 200 and decided["state"] == "approved", decided
        status, twice = await staff.request(
            "POST", f"{API}/school/cases/{mine}/decision", json={"decision": "approved", "note": "再次"}
        )
        assert (status, twice["code"]) == (409, "illegal_transition")
        stored = await system.gateway.database.db["applications"].find_one({"_id": mine})
        assert stored["state"] == "approved" and stored["review"]["note"] == "核对学籍照片，确认本人"
        audit = await system.gateway.database.db["audit_log"].find_one(
            {"action": "review.decided", "target.application_id": mine}
        )
        assert audit["role"] == "school" and audit["target"]["registrar"] is True
        # An in_review case is the reviewers' queue, not the registrar's.
        status, body = await staff.request(
            "POST", f"{API}/school/cases/{stale}/decision", json={"decision": "approved", "note": "不是复核"}
        )
        assert status == 409

        # Another school: 404 whatever is asked; the staff's own routes only, 403 elsewhere.
        for method, path, body in (
            ("GET", f"{API}/school/progress?school={OTHER}", None),
            ("GET", f"{API}/school/cases?school={OTHER}", None),
            ("POST", f"{API}/school/cases/{theirs}/decision", {"decision": "approved", "note": "越权尝试"}),
            ("GET", f"{API}/applications/{theirs}/admission-photo", None),
            ("GET", f"{API}/schools/{OTHER}/delivery", None),
        ):
            status, answer = await staff.request(method, path, json=body)
            assert (status, answer["code"]) == (404, "not_found"), (path, answer)
        assert (await system.gateway.database.db["applications"].find_one({"_id": theirs}))[
            "state"
        ] == "registrar_review"
        for method, path in (
            ("GET", f"{API}/applications/{mine}"),
            ("GET", f"{API}/students?q=2110216001"),
            ("GET", f"{API}/dashboard"),
            ("GET", f"{API}/schools"),
            ("GET", f"{API}/schools/{SCHOOL}"),
            ("GET", f"{API}/exceptions"),
            ("POST", f"{API}/reviews/next"),
            ("POST", f"{API}/applications/{mine}/refund"),
            ("GET", f"{API}/operators"),
            ("POST", f"{API}/schools/{SCHOOL}/delivery/batches"),
        ):
            status, answer = await staff.request(method, path, json={})
            assert (status, answer["code"]) == (403, "forbidden"), (path, answer)

        # Their school's files: the delivery listing answers; no answer carries payment data.
        status, delivery = await staff.request("GET", f"{API}/schools/{SCHOOL}/delivery")
        assert status == 200 and delivery["ready"] == 1
        for path in ("/school/progress", "/school/cases", f"/schools/{SCHOOL}/delivery", "/me"):
            status, answer = await staff.request("GET", f"{API}{path}")
            assert status == 200 and not keys(answer) & PAYMENT_KEYS, (path, keys(answer) & PAYMENT_KEYS)

        # A reviewer is not a school account: the school pages are admins' and school staff's.
        reviewer = await operator(system, "rev@example.com", Role.REVIEWER, [SCHOOL])
        status, answer = await reviewer.request("GET", f"{API}/school/progress")
        assert status == 403
        status, answer = await admin.request("GET", f"{API}/school/progress?school={OTHER}")
        assert status == 200 and answer["school_code"] == OTHER


async def test_school_staff_in_the_browser(env):
    """An admin invites a registrar from the 账号 page; the link sets the password; the registrar sees
    the school's progress (their school only) and decides a registrar case with a reason."""
    async with running_system(env, with_codec=False, roster=ROSTER) as system:
        await Schools(system.gateway.database).put(
            demo_school().model_copy(update={"school_code": OTHER, "name": "另一所大学"})
        )
        await Operators(system.gateway.database).create("admin@example.com", PASSWORD, Role.ADMIN, [])
        mine = await registrar_case(system, SCHOOL, "2110216001")
        theirs = await registrar_case(system, OTHER, "2110216901")
        async with chromium() as browser:
            admin = await (await browser.new_context(base_url=system.base_url)).new_page()
            errors: list[str] = []
            admin.on("pageerror", lambda exc: errors.append(str(exc)))
            await sign_in(admin, system.base_url, "admin@example.com")
            await admin.click("nav a[data-route=accounts]")
            await admin.fill("input[name=invite-email]", "registrar@example.com")
            await admin.select_option("select[name=invite-role]", "school")
            await admin.fill("input[name=invite-schools]", SCHOOL)
            await admin.get_by_role("button", name="邀请").click()
            link = await admin.locator("input.invite-link").input_value()
            assert "/console/#/set-password?token=" in link
            await expect(admin.locator("section.page table")).to_contain_text("待设置密码")

            page = await (await browser.new_context(base_url=system.base_url)).new_page()
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            await page.set_viewport_size({"width": 1280, "height": 1100})
            await page.goto(link)
            await page.fill("input[name=new-password]", PASSWORD)
            await page.fill("input[name=new-password-again]", PASSWORD)
            await page.get_by_role("button", name="设置密码").click()
            await expect(page.locator("form.login [role=alert]")).to_have_text("密码已设置，请登录")
            await page.fill("input[name=email]", "registrar@example.com")
            await page.fill("input[name=password]", PASSWORD)
            await page.click("form.login button[type=submit]")

            # Their own pages only: progress first, registrar cases, delivery downloads.
            await expect(page.locator("nav a.active")).to_have_text("学生进度")
            routes = await page.eval_on_selector_all("nav a", "links => links.map(a => a.dataset.route)")
            assert routes == ["progress", "registrar", "delivery"]
            summary = page.locator(f'section.summary[data-school="{SCHOOL}"]')
            await expect(summary).to_be_visible()
            await expect(page.locator("[data-stuck]")).to_have_attribute("data-stuck", "1")
            await expect(page.locator("section.page")).to_contain_text("孙三")  # not started
            await expect(page.locator("section.page")).not_to_contain_text("2110216901")
            # Another school's progress and case, asked from the page's own session: 404.
            answers = await page.evaluate(
                """async ([other, theirs]) => {
                     const csrf = document.cookie.split("; ").find(c => c.startsWith("console_csrf=")).split("=")[1];
                     const a = await fetch(`/console/api/v1/school/progress?school=${other}`);
                     const b = await fetch(`/console/api/v1/school/cases/${theirs}/decision`, {method: "POST",
                       headers: {"Content-Type": "application/json", "X-CSRF-Token": csrf},
                       body: JSON.stringify({decision: "approved", note: "越权尝试"})});
                     return [a.status, b.status];
                   }""",
                [OTHER, theirs],
            )
            assert answers == [404, 404]
            await page.screenshot(path=str(DOCS / "school.png"), full_page=True)

            await page.click("nav a[data-route=registrar]")
            card = page.locator(f'article.card[data-application-id="{mine}"]')
            await expect(card.locator("img.photo")).to_have_count(2)
            await card.get_by_role("button", name="确认本人，通过").click()
            await expect(card.locator("p.status")).to_have_text("请填写理由")
            await card.locator("input[type=text]").fill("与学籍照片核对一致")
            await card.get_by_role("button", name="确认本人，通过").click()
            await expect(card).to_have_attribute("data-decided", "approved")
            stored = await system.gateway.database.db["applications"].find_one({"_id": mine})
            assert stored["state"] == "approved" and stored["review"]["note"] == "与学籍照片核对一致"
            assert (await system.gateway.database.db["applications"].find_one({"_id": theirs}))[
                "state"
            ] == "registrar_review"
            assert errors == []
