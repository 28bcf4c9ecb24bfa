"""The console's web page in a real headless browser (Debian's chromium, driven by playwright), against
the gateway on the real broker and database: sign-in, reviewing by keyboard, a rejection whose note is
hostile markup (shown as text, never run), the dashboard following the decisions, role-aware navigation,
session expiry; and the page's own routes: the strict CSP, no traversal out of the static files.
"""

from __future__ import annotations

import asyncio
import json
import re
from datetime import timedelta
from typing import Any

import aio_pika
import aiohttp
import pytest
from playwright.async_api import Page, expect

from services.gateway.console.operators import Operators, Role
from services.gateway.console.webapp import PAGE_CSP, WEB_DIR
from services.gateway.messages import ERROR_MESSAGES
from services.gateway.schools import demo_school
from shared.events import new_id, utcnow
from tests.support.browser import chromium, jpeg
from tests.support.console import PASSWORD, operator
from tests.support.system import ROSTER_ROW, running_system

pytestmark = pytest.mark.slow
# Two shared cores run the gateway, the database, the broker and chromium: give each step room.
expect.set_options(timeout=15_000)
SCHOOL = demo_school().school_code
HOSTILE_NAME = '<img src=x onerror="window.__pwned=1">'
HOSTILE_NOTE = '<script>window.__pwned=2</script><img src=y onerror="window.__pwned=3">'
ROSTER = [
    {**ROSTER_ROW, "name": "赵一", "student_number": "2110216001"},
    {**ROSTER_ROW, "name": HOSTILE_NAME, "student_number": "2110216002"},
    {**ROSTER_ROW, "name": "孙三", "student_number": "2110216003"},
]


async def waiting_case(system: Any, number: str, *, age_s: float = 0.0) -> str:
    """An in_review application with a real standardised JPEG (the roster gave the admission photo)."""
    application_id, photo_id = new_id(), new_id()
    blob_id = await system.gateway.blobs.put(
        jpeg((70, 130, 200)), filename=f"std-{photo_id}", content_type="image/jpeg"
    )
    now = utcnow()
    await system.gateway.database.db["applications"].insert_one(
        {
            "_id": application_id,
            "state": "in_review",
            "version": 1,
            "created_at": now,
            "updated_at": now - timedelta(seconds=age_s),
            "school_code": SCHOOL,
            "student_id": f"{SCHOOL}:{number}",
            "owner_openid": f"o-{application_id}",
            "photos": {
                photo_id: {
                    "status": "standardized",
                    "raw_blob_id": blob_id,
                    "standardized_blob_id": blob_id,
                    "uploaded_at": now,
                    "measures": [{"code": "face_count", "raw": 1.0, "score": 100.0, "passed": True}],
                }
            },
            "submission": {"submission_id": new_id(), "photo_id": photo_id, "submitted_at": now, "count": 1},
            "match": {"score": 91.5, "passed": True, "photo_id": photo_id},
            "resubmissions_left": 2,
            "outbox": {},
            "outbox_pending": 0,
        }
    )
    return application_id


async def park(env: dict[str, str], queue: str, body: bytes, message_id: str, **headers: Any) -> None:
    """A message put straight into a dead queue, as the bus parks one."""
    connection = await aio_pika.connect(env["AMQP_URL"])
    try:
        channel = await connection.channel()
        message = aio_pika.Message(body, message_id=message_id, headers=headers)
        await channel.default_exchange.publish(message, routing_key=queue)
    finally:
        await connection.close()


async def raw_get(base_url: str, target: str) -> tuple[int, bytes]:
    """GET with the request target sent exactly as written (clients normalise `..` away)."""
    host, port = base_url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(f"GET {target} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
    await writer.drain()
    data = await reader.read()
    writer.close()
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split(b" ")[1]), body


async def sign_in(page: Page, base_url: str, email: str, password: str = PASSWORD) -> None:
    await page.goto(f"{base_url}/console/")
    await page.fill("input[name=email]", email)
    await page.fill("input[name=password]", password)
    await page.click("form.login button[type=submit]")


async def funnel_count(page: Page, state: str) -> int:
    cell = page.locator(f'[data-funnel="{SCHOOL}:{state}"]')
    return int(await cell.text_content() or "0") if await cell.count() else 0


async def test_page_routes_csp_and_no_traversal(env):
    async with running_system(env, with_codec=False) as system, aiohttp.ClientSession() as http:
        async with http.get(f"{system.base_url}/console", allow_redirects=False) as resp:
            assert resp.status == 302 and resp.headers["Location"] == "/console/"
        async with http.get(f"{system.base_url}/console/") as resp:
            page = await resp.text()
            assert resp.status == 200 and resp.content_type == "text/html"
            assert resp.headers["Content-Security-Policy"] == PAGE_CSP
            assert resp.headers["X-Frame-Options"] == "DENY" and resp.headers["Cache-Control"] == "no-store"
        # No inline script or style for the CSP to forbid: every script is a file of ours.
        assert re.findall(r"<script[^>]*>", page) == ['<script type="module" src="/console/static/app.js">']
        assert "style=" not in page and "<style" not in page
        for name, content_type in (("app.js", "text/javascript"), ("app.css", "text/css")):
            async with http.get(f"{system.base_url}/console/static/{name}") as resp:
                assert resp.status == 200 and resp.content_type == content_type
                assert await resp.read() == (WEB_DIR / name).read_bytes()
                assert resp.headers["Content-Security-Policy"] == PAGE_CSP
        # No data is ever written as HTML by the scripts.
        for script in WEB_DIR.glob("*.js"):
            source = script.read_text(encoding="utf-8")
            assert not re.search(r"innerHTML|outerHTML|insertAdjacentHTML|document\.write|eval\(", source), (
                script
            )
        # The API keeps its closed policy.
        async with http.get(f"{system.base_url}/console/api/v1/me") as resp:
            assert resp.status == 401
            assert resp.headers["Content-Security-Policy"] == "default-src 'none'; frame-ancestors 'none'"
        # Nothing outside the fixed table of files, however the name is spelt.
        for target in (
            "/console/static/nope.js",
            "/console/static/webapp.py",
            "/console/static/../webapp.py",
            "/console/static/..%2fwebapp.py",
            "/console/static/%2e%2e/webapp.py",
            "/console/static/%2e%2e%2fwiring.py",
            "/console/static/../../../../etc/passwd",
            "/console/static/",
            "/console/static/app.js%00.py",
            "/console/static/" + "a" * 5000,
        ):
            status, body = await raw_get(system.base_url, target)
            assert status in (400, 404, 414), (target, status)
            assert b"import" not in body and b"root:" not in body, target


async def test_next_case_skips_what_the_reviewer_skipped(env):
    async with running_system(env, with_codec=False, roster=ROSTER) as system:
        reviewer = await operator(system, "rev@example.com", Role.REVIEWER, [SCHOOL])
        first = await waiting_case(system, "2110216001", age_s=20)
        second = await waiting_case(system, "2110216003", age_s=10)
        status, body = await reviewer.request("POST", "/console/api/v1/reviews/next")  # no body: as before
        assert status == 200 and body["case"]["application_id"] == first
        # Held cases come back first, unless skipped; skipped ones are not offered at all.
        status, body = await reviewer.request("POST", "/console/api/v1/reviews/next", json={"skip": [first]})
        assert status == 200 and body["case"]["application_id"] == second
        status, body = await reviewer.request(
            "POST", "/console/api/v1/reviews/next", json={"skip": [first, second]}
        )
        assert status == 200 and body["case"] is None
        # Hostile bodies: too many ids, an oversized id, the wrong type, unknown fields: 400, nothing claimed.
        leases = system.gateway.database.db["review_leases"]
        before = sorted([d["_id"] async for d in leases.find({})])
        for bad in (
            {"skip": [new_id() for _ in range(101)]},
            {"skip": ["x" * 65]},
            {"skip": "all"},
            {"skip": [], "extra": 1},
        ):
            status, body = await reviewer.request("POST", "/console/api/v1/reviews/next", json=bad)
            assert status == 400 and body["code"] == "invalid_request", (bad, body)
        status, body = await reviewer.request(
            "POST",
            "/console/api/v1/reviews/next",
            data=b"{not json",
            headers={"Content-Type": "application/json"},
        )
        assert status == 400, body
        assert sorted([d["_id"] async for d in leases.find({})]) == before


async def test_review_by_keyboard_in_a_real_browser(env):
    # No console auth cache: the session deleted in the database below (as another replica's logout would)
    # must end at once here, not within CONSOLE_AUTH_CACHE_S.
    async with running_system(
        env, with_codec=False, roster=ROSTER, console_dashboard_cache_s=0, console_auth_cache_s=0
    ) as system:
        await Operators(system.gateway.database).create("admin@example.com", PASSWORD, Role.ADMIN, [])
        await Operators(system.gateway.database).create(
            "support@example.com", PASSWORD, Role.SUPPORT, [SCHOOL]
        )
        cases = [
            await waiting_case(system, number, age_s=30 - 10 * i)
            for i, number in enumerate(("2110216001", "2110216002", "2110216003"))
        ]
        applications = system.gateway.database.db["applications"]
        async with chromium() as browser:
            context = await browser.new_context(base_url=system.base_url)
            page = await context.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)

            # A wrong password: the server's message, still on the sign-in form.
            await sign_in(page, system.base_url, "admin@example.com", "not the password")
            await expect(page.locator("form.login [role=alert]")).to_have_text(
                ERROR_MESSAGES["invalid_credentials"]
            )
            response = await page.goto(f"{system.base_url}/console/")
            assert response is not None and response.headers["content-security-policy"] == PAGE_CSP
            await sign_in(page, system.base_url, "admin@example.com")

            # The review page opens on the oldest case, both photos loaded, the score shown.
            review = page.locator("section.page[data-page=review]")
            await expect(page.locator("nav a.active")).to_have_text("照片审核")
            assert [e for e in errors if "401" not in e] == [], errors
            await expect(review).to_have_attribute("data-case-id", cases[0])
            await expect(review).to_have_attribute("data-ready", "1")
            assert await page.locator(".score strong").text_content() == "91.5"
            widths = await page.eval_on_selector_all("img.photo", "imgs => imgs.map(i => i.naturalWidth)")
            assert widths == [480, 640]  # standardised 480x640, admission photo 640x480

            # A approves; the next case comes up at once. Its student's name is hostile markup: text.
            await page.keyboard.press("a")
            await expect(review).to_have_attribute("data-case-id", cases[1])
            await expect(review).to_have_attribute("data-ready", "1")
            await expect(page.locator(".case-head .name")).to_have_text(HOSTILE_NAME)

            # R, 2 picks the second reason, the note is typed, Enter confirms.
            await page.keyboard.press("r")
            await expect(page.locator("section.reject")).to_be_visible()
            await page.keyboard.press("2")
            await expect(page.locator("ol.reasons li.picked")).to_have_attribute("data-code", "head_position")
            await page.keyboard.type(HOSTILE_NOTE)
            await page.keyboard.press("Enter")
            await expect(review).to_have_attribute("data-case-id", cases[2])
            status = page.locator("p.status").first
            await expect(status).to_contain_text(HOSTILE_NOTE)
            # Shown as text: no element was made from it and nothing ran.
            assert await page.evaluate("window.__pwned") is None
            assert await page.locator("img[src=x], img[src=y], section.page script").count() == 0

            first = await applications.find_one({"_id": cases[0]})
            second = await applications.find_one({"_id": cases[1]})
            assert first["state"] == "approved" and first["review"]["operator_id"]
            assert second["state"] == "rejected"
            assert (
                second["review"]["reason_code"] == "head_position"
                and second["review"]["note"] == HOSTILE_NOTE
            )

            # S skips the last case (given back, not offered again); N refreshes the queue and it returns.
            await page.keyboard.press("s")
            await expect(page.locator("section.case .empty")).to_be_visible()
            assert await system.gateway.database.db["review_leases"].find_one({"_id": cases[2]}) is None
            await page.keyboard.press("n")
            await expect(review).to_have_attribute("data-case-id", cases[2])

            # The dashboard shows the decisions, and follows the next one by itself (5 s refresh).
            await page.click("nav a[data-route=dashboard]")
            await expect(page.locator(f'[data-funnel="{SCHOOL}:approved"]')).to_have_text("1")
            await expect(page.locator(f'[data-funnel="{SCHOOL}:rejected"]')).to_have_text("1")
            await expect(page.locator(f'[data-funnel="{SCHOOL}:in_review"]')).to_have_text("1")
            # Leaving the review page gave the case back; another admin decides it.
            leases = system.gateway.database.db["review_leases"]
            for _ in range(50):
                if await leases.find_one({"_id": cases[2]}) is None:
                    break
                await asyncio.sleep(0.1)
            admin = await operator(system, "admin2@example.com", Role.ADMIN, [])
            status_code, _ = await admin.request(
                "POST", f"/console/api/v1/reviews/{cases[2]}/decision", json={"decision": "approved"}
            )
            assert status_code == 200
            await expect(page.locator(f'[data-funnel="{SCHOOL}:approved"]')).to_have_text("2", timeout=12_000)
            assert await funnel_count(page, "in_review") == 0

            # The admin's navigation has everything; a support operator's has no review, dead letters or audit.
            routes = await page.eval_on_selector_all("nav a", "links => links.map(a => a.dataset.route)")
            assert {"review", "dashboard", "deadletters", "audit", "delivery"} <= set(routes)
            other = await (await browser.new_context(base_url=system.base_url)).new_page()
            await sign_in(other, system.base_url, "support@example.com")
            await expect(other.locator("nav a").first).to_be_visible()
            routes = await other.eval_on_selector_all("nav a", "links => links.map(a => a.dataset.route)")
            assert "review" not in routes and "deadletters" not in routes and "audit" not in routes
            assert "students" in routes and "delivery" in routes

            # The session ends on the server (expiry, logout elsewhere): the next call brings the sign-in back.
            await system.gateway.database.db["console_sessions"].delete_many({})
            await page.click("nav a[data-route=review]")
            await expect(page.locator("form.login [role=alert]")).to_have_text("登录已过期，请重新登录")
            assert errors == [] or all("401" in e for e in errors), errors


async def test_every_page_for_an_admin(env):
    """Exceptions (override, registrar decision), students, school configuration and roster import,
    delivery, dead letters and audit, through the page; hostile text stays text everywhere."""
    async with running_system(env, with_codec=False, roster=ROSTER) as system:
        await Operators(system.gateway.database).create("admin@example.com", PASSWORD, Role.ADMIN, [])
        applications = system.gateway.database.db["applications"]
        registrar = await waiting_case(system, "2110216001")
        await applications.update_one({"_id": registrar}, {"$set": {"state": "registrar_review"}})
        refused, refused_photo = new_id(), new_id()
        blob_id = await system.gateway.blobs.put(
            jpeg((90, 90, 90)), filename="raw", content_type="image/jpeg"
        )
        now = utcnow()
        await applications.insert_one(
            {
                "_id": refused,
                "state": "paid",
                "version": 1,
                "created_at": now,
                "updated_at": now,
                "school_code": SCHOOL,
                "student_id": f"{SCHOOL}:2110216002",
                "owner_openid": "o-refused",
                "photos": {
                    refused_photo: {
                        "status": "rejected",
                        "raw_blob_id": blob_id,
                        "uploaded_at": now,
                        "measures": [],
                        "reasons": ["background_not_uniform"],
                    }
                },
                "last_failure": {"code": "photo_rejected", "message": HOSTILE_NOTE, "at": now},
                "outbox": {},
                "outbox_pending": 0,
            }
        )
        async with chromium() as browser:
            page = await (await browser.new_context(base_url=system.base_url)).new_page()
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            await sign_in(page, system.base_url, "admin@example.com")
            await expect(page.locator("nav a.active")).to_have_text("照片审核")

            # 异常队列: override the refused photo with a hostile reason; approve the registrar's case.
            await page.click("nav a[data-route=exceptions]")
            card = page.locator(f'article.card[data-application-id="{refused}"]')
            await expect(card.locator("p.warn")).to_have_text(HOSTILE_NOTE)
            await card.locator("input[type=text]").fill(HOSTILE_NOTE)
            await card.get_by_role("button", name="人工放行").click()
            # Imaging could not place this photo: the server's refusal is shown, nothing changes.
            await expect(card.locator("p.status.error")).to_contain_text("photo_not_placeable")
            assert (await applications.find_one({"_id": refused}))["photos"][refused_photo][
                "status"
            ] == "rejected"
            # Once imaging's placed rendering exists, the override goes through.
            await applications.update_one(
                {"_id": refused}, {"$set": {f"photos.{refused_photo}.placed_blob_id": blob_id}}
            )
            await card.get_by_role("button", name="人工放行").click()
            await expect(card.locator("p.status")).to_have_text("已放行，学生可提交该照片")
            photo = (await applications.find_one({"_id": refused}))["photos"][refused_photo]
            assert photo["status"] == "standardized" and photo["override"]["reason"] == HOSTILE_NOTE
            card = page.locator(f'article.card[data-application-id="{registrar}"]')
            await card.get_by_role("button", name="通过", exact=True).click()
            await expect(card.locator("p.status")).to_have_text("已通过")
            assert (await applications.find_one({"_id": registrar}))["state"] == "approved"

            # 学生查询: the hostile name is a name, in the results and the history.
            await page.click("nav a[data-route=students]")
            await page.fill("input[type=search]", "img")
            await page.keyboard.press("Enter")
            await expect(page.locator("table td").first).to_have_text(HOSTILE_NAME)
            await page.locator("table button.link").first.click()
            await expect(page.locator(".detail h3")).to_have_text(f"申请 {refused}")

            # 学校管理: the configuration is edited as JSON and validated by the server.
            await page.click("nav a[data-route=schools]")
            await page.locator("details.advanced summary").click()  # the raw JSON: admins' advanced view
            editor = page.locator("textarea.config")
            await expect(editor).to_have_value(re.compile("示范大学"))
            config = await editor.input_value()
            await editor.fill(config.replace('"fee_fen": ', '"fee_fen": -'))
            await page.get_by_role("button", name="保存配置").click()
            await expect(page.locator("details.advanced p.status")).to_contain_text("invalid_request")
            await editor.fill(config.replace("示范大学", "示范大学<b>改</b>"))
            await page.get_by_role("button", name="保存配置").click()
            await expect(page.locator("details.advanced p.status")).to_have_text("配置已保存")
            stored = await system.gateway.database.db["schools"].find_one({"_id": SCHOOL})
            assert stored["name"] == "示范大学<b>改</b>"
            # Roster import: one good row, one without 证件号后4位; the report lists the refused row.
            csv = "姓名,学号,证件号后4位\n周五,2110216099,4321\n吴六,2110216098,\n".encode()
            await page.set_input_files(
                "form.upload input[type=file] >> nth=0",
                files=[{"name": "roster.csv", "mimeType": "text/csv", "buffer": csv}],
            )
            await page.get_by_role("button", name="导入").click()
            report = page.locator("form.upload .report")
            await expect(report.locator("p").first).to_contain_text("共 2 行：新增 1")
            await expect(report.locator("td").nth(1)).to_have_text("2110216098")
            assert await system.gateway.database.db["students"].find_one({"_id": f"{SCHOOL}:2110216099"})

            # 交付, 死信, 审计日志 render; the audit log holds what was just done.
            # 交付: the approved registrar case is ready; a batch is made, opened and marked printed.
            await page.click("nav a[data-route=delivery]")
            await expect(page.locator("p[data-ready]")).to_have_attribute("data-ready", "1")
            await page.get_by_role("button", name="新建交付批次").click()
            await expect(page.locator(".detail p.status").first).to_contain_text("（1 人）")
            await page.locator(".detail table button.link").first.click()
            batch = page.locator(".batch")
            await expect(batch.locator("table")).to_contain_text("2110216001")
            await batch.get_by_role("button", name="已打印").click()
            await expect(batch.locator("p.status:not(.download)")).to_have_text("已标记：已打印")
            stored = await system.gateway.database.db["applications"].find_one({"_id": registrar})
            assert stored["delivery"]["printed_at"] is not None
            # 死信: a parked message whose body is hostile markup is shown as text, then discarded.
            await park(env, "notify.dead", HOSTILE_NOTE.encode(), "bad-1", **{"x-dead-reason": HOSTILE_NAME})
            page.on("dialog", lambda dialog: asyncio.ensure_future(dialog.accept()))
            await page.click("nav a[data-route=deadletters]")
            dead = page.locator("section.page[data-page=deadletters]")
            await dead.locator("tr", has_text="notify.dead").get_by_role("button", name="查看").click()
            letter = dead.locator("article.card")
            await expect(letter).to_contain_text(f"原因：{HOSTILE_NAME}")
            await expect(letter.locator("pre.json").first).to_have_text(json.dumps(HOSTILE_NOTE))
            await letter.get_by_role("button", name="丢弃").click()
            await expect(dead.locator(".detail p.status")).to_have_text("已丢弃 bad-1")
            await expect(dead.locator("p.empty")).to_have_text("没有消息")
            await page.click("nav a[data-route=audit]")
            await expect(page.locator("section.page table")).to_contain_text("photo.override")
            await expect(page.locator("section.page table")).to_contain_text("school.update")

            assert await page.evaluate("window.__pwned") is None
            assert await page.locator("b, img[src=x], img[src=y], section.page script").count() == 0
            assert errors == []
