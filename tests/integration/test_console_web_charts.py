"""The dashboard's charts in headless chromium (Debian's, driven by playwright) against the real broker's
management API and the real database: after a short burst of events the charts are drawn with data
points (a non-empty canvas), a review decision shows in the per-minute throughput, and a refresh
updates the charts in place (the page does not reflow). Writes docs/console/dashboard.png.
"""

from __future__ import annotations

import asyncio

import aio_pika
import pytest
from playwright.async_api import expect

from services.gateway.console.operators import Role
from tests.integration.test_console_web import ROSTER, SCHOOL, sign_in, waiting_case
from tests.support.browser import chromium, screenshot_dir
from tests.support.console import operator
from tests.support.system import running_system

pytestmark = pytest.mark.slow
expect.set_options(timeout=20_000)
DOCS = screenshot_dir("console")

# Pixels of a canvas that are drawn on (not transparent): a chart with lines or bars has many.
DRAWN_PIXELS = """canvas => {
  const data = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
  let n = 0;
  for (let i = 3; i < data.length; i += 4) if (data[i] > 0) n += 1;
  return n;
}"""


async def burst(amqp_url: str, queue: str, count: int) -> None:
    """`count` messages straight into a queue nobody consumes in this test (imaging: no worker runs)."""
    connection = await aio_pika.connect(amqp_url)
    try:
        channel = await connection.channel()
        for i in range(count):
            message = aio_pika.Message(b"{}", message_id=f"burst-{i}", type="photo.submitted.v1")
            await channel.default_exchange.publish(message, routing_key=queue)
    finally:
        await connection.close()


async def test_dashboard_charts_draw_the_last_hour(env):
    async with running_system(env, with_codec=False, roster=ROSTER, console_dashboard_cache_s=0) as system:
        admin = await operator(system, "admin@example.com", Role.ADMIN, [])
        case = await waiting_case(system, "2110216001")
        status, _ = await admin.request(
            "POST", f"/console/api/v1/reviews/{case}/decision", json={"decision": "approved"}
        )
        assert status == 200
        await burst(env["AMQP_URL"], "imaging", 25)

        # The API: the broker's history for every queue on one grid; the decision in this minute. A new
        # vhost's queues have no statistics until the broker's first collection (every 5 s): wait for it.
        for _ in range(120):
            status, view = await admin.request("GET", "/console/api/v1/dashboard")
            assert status == 200
            history = view["history"]
            # Lengths and counters are sampled separately: wait until both have reached the listing.
            if history and any(v is not None for q in history["queues"] for v in q["depth"] + q["publish"]):
                break
            await asyncio.sleep(0.5)
        history = view["history"]
        assert history["step_s"] == 60 and len(history["timestamps"]) == 61
        assert {q["name"] for q in history["queues"]} >= {"imaging", "matching", "notify", "gateway"}
        for series in history["queues"]:
            for name in ("depth", "publish", "deliver", "ack"):
                assert len(series[name]) == 61
        assert sum(view["throughput"]["decided"]) == 1
        assert {q["consumer"] for q in view["dead_letters"]["by_queue"]} >= {"imaging", "notify"}

        async with chromium() as browser:
            page = await (await browser.new_context(base_url=system.base_url)).new_page()
            page.set_default_timeout(20_000)
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
            await page.set_viewport_size({"width": 1280, "height": 1700})
            await sign_in(page, system.base_url, "admin@example.com")
            await expect(page.locator("nav a.active")).to_be_visible()
            await page.click("nav a[data-route=dashboard]")

            # Each chart is drawn: a canvas with points behind it and pixels on it.
            for name in ("queue-depth", "publish-rate", "deliver-rate", "ack-rate", "throughput", "outbox"):
                chart = page.locator(f'figure.chart[data-chart="{name}"]')
                await expect(chart.locator("canvas")).to_have_count(1)
                await expect(chart).not_to_have_attribute("data-points", "0")
                assert await chart.locator("canvas").evaluate(DRAWN_PIXELS) > 500, name
            # The burst is in the queue table once the broker's statistics catch up (every 5 s).
            imaging = page.locator('section.page tr[data-key="imaging"] td').nth(1)
            await expect(imaging).to_have_text("25", timeout=30_000)
            await expect(page.locator(f'[data-funnel="{SCHOOL}:approved"]')).to_have_text("1")
            await expect(page.locator('ol.bars[data-bars="dead-letters"] li')).not_to_have_count(0)

            # A refresh replaces the data in place: the same canvas element, the page no taller.
            marker = await page.evaluate(
                """() => { const c = document.querySelector('figure[data-chart="queue-depth"] canvas');
                           c.dataset.marker = "kept"; return document.body.scrollHeight; }"""
            )
            refreshed = await page.locator("section.page").get_attribute("data-refreshed-at")
            await expect(page.locator("section.page")).not_to_have_attribute(
                "data-refreshed-at", refreshed or ""
            )
            depth = page.locator('figure[data-chart="queue-depth"] canvas')
            assert await depth.get_attribute("data-marker") == "kept"
            assert await page.evaluate("document.body.scrollHeight") == marker
            first_chart = await page.evaluate(
                "performance.getEntriesByName('console.first-chart').map(e => e.startTime)"
            )
            assert len(first_chart) == 1 and first_chart[0] > 0
            DOCS.mkdir(exist_ok=True)
            await page.screenshot(path=str(DOCS / "dashboard.png"), full_page=True)
            assert [e for e in errors if "401" not in e] == [], errors
