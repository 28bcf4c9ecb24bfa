"""The review page with nothing to review (headless chromium): the decision buttons are disabled, not live
buttons that do nothing (seen in the smoke run: after the last approval 通过/不通过/跳过 stayed
clickable under 「暂无待审核的照片」); a case arriving (N) enables them, deciding the last one disables
them again."""

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

DECISIONS = ("button.approve", "div.actions button.reject", "button.skip")


async def test_decision_buttons_only_with_a_case(env):
    async with running_system(env, with_codec=False, roster=ROSTER) as system:
        await Operators(system.gateway.database).create("rev@example.com", PASSWORD, Role.REVIEWER, ["10487"])
        async with chromium() as browser:
            page = await (await browser.new_context(base_url=system.base_url)).new_page()
            await sign_in(page, system.base_url, "rev@example.com")
            review = page.locator("section.page[data-page=review]")
            await expect(review).to_have_attribute("data-ready", "1")
            await expect(page.locator("section.case p.empty")).to_contain_text("暂无待审核的照片")
            for selector in DECISIONS:
                await expect(page.locator(selector).first).to_be_disabled()
            await expect(page.locator("button", has_text="快捷键 (?)")).to_be_enabled()

            case = await waiting_case(system, "2110216001")
            await page.keyboard.press("n")
            await expect(review).to_have_attribute("data-case-id", case)
            for selector in DECISIONS:
                await expect(page.locator(selector).first).to_be_enabled()

            await page.keyboard.press("a")
            await expect(page.locator("p.status")).to_contain_text("已通过")
            await expect(page.locator("section.case p.empty")).to_be_visible()
            for selector in DECISIONS:
                await expect(page.locator(selector).first).to_be_disabled()
            stored = await system.gateway.database.db["applications"].find_one({"_id": case})
            assert stored is not None and stored["state"] == "approved"
