"""Imaging's advisory flags (a failed measure that did not refuse the photo) and the score band, shown to
the reviewer in headless chromium: the flag first and marked, the band beside the score."""

from __future__ import annotations

import pytest
from playwright.async_api import expect

from services.gateway.console.operators import Operators, Role
from tests.integration.test_console_web import ROSTER, sign_in, waiting_case
from tests.support.browser import chromium
from tests.support.console import PASSWORD
from tests.support.system import running_system

pytestmark = pytest.mark.slow
expect.set_options(timeout=20_000)


async def test_reviewer_sees_advisory_flags_and_the_band(env):
    async with running_system(env, with_codec=False, roster=ROSTER) as system:
        await Operators(system.gateway.database).create("rev@example.com", PASSWORD, Role.REVIEWER, ["10487"])
        case = await waiting_case(system, "2110216001")
        applications = system.gateway.database.db["applications"]
        stored = await applications.find_one({"_id": case})
        photo_id = stored["submission"]["photo_id"]
        measures = [
            {"code": "face_count", "raw": 1.0, "score": 100.0, "passed": True},
            {
                "code": "background_residue",
                "raw": 0.2,
                "score": 40.0,
                "passed": False,
                "advisory": True,
                "reason": "background_residue",
                "message": "背景可能有残留",
            },
        ]
        await applications.update_one(
            {"_id": case},
            {"$set": {f"photos.{photo_id}.measures": measures, "match.band": "borderline"}},
        )
        async with chromium() as browser:
            page = await (await browser.new_context(base_url=system.base_url)).new_page()
            await sign_in(page, system.base_url, "rev@example.com")
            review = page.locator("section.page[data-page=review]")
            await expect(review).to_have_attribute("data-case-id", case)
            await expect(page.locator("p.flags")).to_have_attribute("data-flags", "background_residue")
            await expect(page.locator("p.flags")).to_contain_text("需人工核对：无背景残留")
            await expect(page.locator("ul.measures li.flag")).to_contain_text("需人工核对")
            await expect(page.locator("ul.measures li.ok")).to_have_count(1)
            await expect(page.locator(".score")).to_have_attribute("data-band", "borderline")
            await expect(page.locator(".score .band")).to_have_text("临界分数，请重点核对")
