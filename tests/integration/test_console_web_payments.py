"""The payments page and the page-fetched downloads in headless chromium, on the real gateway, database,
broker and WeChat sandbox: a stale-order payment refunded once though its button is clicked twice, the
refunds and the reconciliation shown, the CSV downloaded by the page; a delivery download that the
server refuses shows the server's reason. Writes docs/console/payments.png.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from playwright.async_api import expect

from services.gateway.console.operators import Operators, Role
from tests.integration.test_console_delivery import SCHOOL, approved, row
from tests.integration.test_console_web import sign_in
from tests.integration.test_orders_money import confirmed, left_open_earlier_order, order, wait_until
from tests.support.browser import chromium, screenshot_dir
from tests.support.console import PASSWORD, operator
from tests.support.system import ROSTER_ROW, SECOND_ROW, running_system

pytestmark = pytest.mark.slow
expect.set_options(timeout=20_000)
DOCS = screenshot_dir("console")


async def test_payments_page_refunds_a_stale_order_once(env):
    async with running_system(env, roster=[ROSTER_ROW, SECOND_ROW]) as system:
        db = system.gateway.database.db
        student = await confirmed(system, "o-console-web-pay")
        _, current = await order(student)
        earlier = await left_open_earlier_order(system, student)
        assert (await system.sandbox_call("POST", f"pay/{current['out_trade_no']}", {}))[0] == 200
        await student.wait_for_state("paid")
        # The stale order is paid while WeChat Pay fails the automatic refund: it waits for an operator.
        await system.sandbox_call(
            "POST", "faults", {"pay_status": 500, "pay_code": "SYSTEM_ERROR", "count": 1}
        )
        assert (await system.sandbox_call("POST", f"pay/{earlier}", {}))[0] == 200
        anomaly = await wait_until(lambda: db["payment_anomalies"].find_one({"kind": "stale_order_paid"}))
        await Operators(system.gateway.database).create("cash@example.com", PASSWORD, Role.SUPPORT, ["10487"])

        async with chromium() as browser:
            context = await browser.new_context(base_url=system.base_url, accept_downloads=True)
            page = await context.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            await page.set_viewport_size({"width": 1280, "height": 1200})
            await sign_in(page, system.base_url, "cash@example.com")
            await expect(page.locator("nav a.active")).to_be_visible()
            await page.click("nav a[data-route=payments]")
            card = page.locator(f'article.card[data-anomaly-id="{anomaly["_id"]}"]')
            await expect(card).to_have_attribute("data-action", "refund")
            button = card.get_by_role("button", name="退款给付款人")
            # Two clicks as fast as the driver can send them.
            await button.dblclick()
            await expect(card.locator("p.status.ok")).to_contain_text("退款已提交")
            _, refunds = await system.sandbox_call("GET", "refunds")
            assert [r["out_trade_no"] for r in refunds["refunds"]] == [earlier]
            audited = await db["audit_log"].count_documents(
                {"action": "payment.refund", "target.anomaly_id": anomaly["_id"]}
            )
            assert audited in (1, 2)  # a second click that reached the server replays; never a second refund

            # The refund settles; the page shows it in the refunds and the reconciliation.
            async def settled() -> bool:
                return [r["status"] for r in (await student.status())["refunds"]] == ["success"]

            await wait_until(settled)
            await page.click("nav a[data-route=dashboard]")
            await page.click("nav a[data-route=payments]")
            await expect(page.locator("section.page")).to_contain_text("已退款")
            await expect(page.locator("section.page table").last).to_contain_text("合计")
            _, refunds = await system.sandbox_call("GET", "refunds")
            assert len(refunds["refunds"]) == 1

            # The CSV is fetched by the page and handed to the browser as a file.
            async with page.expect_download() as fetched:
                await page.get_by_role("button", name="下载 CSV").click()
            download = await fetched.value
            saved = await asyncio.to_thread(Path(await download.path()).read_bytes)
            assert download.suggested_filename.endswith(".csv")
            assert saved.startswith(b"\xef\xbb\xbf") and "净收入(元)".encode() in saved
            await page.screenshot(path=str(DOCS / "payments.png"), full_page=True)
            assert errors == []


async def test_downloads_show_progress_and_the_servers_refusal(env):
    rows = [row(f"21102160{i:02d}", f"学生{i:02d}") for i in range(1, 4)]
    async with running_system(env, with_codec=False, roster=rows) as system:
        support = await operator(system, "support@example.com", Role.SUPPORT, [SCHOOL])
        for item in rows:
            await approved(system, item["student_number"])
        status, batch = await support.request(
            "POST", f"/console/api/v1/schools/{SCHOOL}/delivery/batches", json={}
        )
        assert status == 201, batch
        await Operators(system.gateway.database).create("desk@example.com", PASSWORD, Role.SUPPORT, [SCHOOL])
        async with chromium() as browser:
            context = await browser.new_context(base_url=system.base_url, accept_downloads=True)
            page = await context.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            await sign_in(page, system.base_url, "desk@example.com")
            await expect(page.locator("nav a.active")).to_be_visible()
            await page.click("nav a[data-route=delivery]")
            await page.locator(".detail table button.link").first.click()
            box = page.locator(".batch p.status.download, .batch p.status.ok, .batch p.status.error").first
            # A good download: fetched by the page, the bytes counted, handed over as the server named it.
            async with page.expect_download() as fetched:
                await page.locator("button[data-file='chsi.zip']").click()
            download = await fetched.value
            data = await asyncio.to_thread(Path(await download.path()).read_bytes)
            assert data.startswith(b"PK") and len(data) > 3 * 1000
            await expect(page.locator(".batch p.status[data-done]")).to_have_attribute(
                "data-received", str(len(data))
            )
            # A photo erased since: the server refuses, and the page says why, listing the application.
            db = system.gateway.database.db
            stored = await db["applications"].find_one({"delivery.batch_id": batch["batch_id"]})
            await system.gateway.blobs.delete(
                stored["photos"][stored["submission"]["photo_id"]]["standardized_blob_id"]
            )
            await page.locator("button[data-file='chsi.zip']").click()
            refused = page.locator(".batch p.status.error")
            await expect(refused).to_have_attribute("data-code", "delivery_photo_invalid")
            await expect(refused).to_contain_text("photo_missing")
            await expect(refused).to_contain_text(stored["_id"])
            assert box is not None and errors == []
