"""The school settings form in headless chromium on the real gateway and database: the page refuses an
invalid value before sending anything, the server refuses what only it can judge (and the page shows
which field), a valid change is shown as a diff and saved only once confirmed; non-admins read only."""

from __future__ import annotations

import pytest
from playwright.async_api import expect

from services.gateway.console.operators import Operators, Role
from services.gateway.schools import demo_school
from tests.integration.test_console_web import sign_in
from tests.support.browser import chromium
from tests.support.console import PASSWORD
from tests.support.system import running_system

pytestmark = pytest.mark.slow
expect.set_options(timeout=20_000)
SCHOOL = demo_school().school_code


async def test_settings_form_refuses_invalid_values_and_saves_a_valid_one(env):
    async with running_system(env, with_codec=False) as system:
        operators = Operators(system.gateway.database)
        await operators.create("admin@example.com", PASSWORD, Role.ADMIN, [])
        await operators.create("support@example.com", PASSWORD, Role.SUPPORT, [SCHOOL])
        schools = system.gateway.database.db["schools"]
        before = await schools.find_one({"_id": SCHOOL})
        async with chromium() as browser:
            page = await (await browser.new_context(base_url=system.base_url)).new_page()
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            requests: list[str] = []
            page.on("request", lambda r: requests.append(r.method) if "/schools/" in r.url else None)
            await sign_in(page, system.base_url, "admin@example.com")
            await expect(page.locator("nav a.active")).to_be_visible()
            await page.click("nav a[data-route=schools]")
            form = page.locator(f'section.settings[data-school="{SCHOOL}"]')
            pass_mark = form.locator("input[name=pass_mark]")
            await expect(pass_mark).to_have_value(str(before["pass_mark"]).removesuffix(".0"))
            # Each field has its label and help text.
            fee = form.locator('[data-path="fee_fen"]')
            await expect(fee.locator(".label")).to_have_text("采集费用（分）")
            await expect(fee.locator(".help")).to_contain_text("3500 即 35.00 元")

            # Refused in the page: out of range, not an integer, a file name without the student number.
            await pass_mark.fill("150")
            await expect(form.locator('[data-path="pass_mark"] .field-error')).to_have_text("不能大于 100")
            await form.locator("input[name=fee_fen]").fill("35.5")
            await form.locator("input[name=chsi_file_name]").fill("{name}.jpg")
            await form.get_by_role("button", name="检查改动").click()
            await expect(form.locator("p.status").first).to_have_text("有填写不正确的项，请按提示修改")
            await expect(form.locator('[data-path="fee_fen"] .field-error')).to_have_text("请填写整数")
            await expect(form.locator('[data-path="chsi_file_name"] .field-error')).to_contain_text(
                "{student_number}"
            )
            assert "PUT" not in requests and await schools.find_one({"_id": SCHOOL}) == before

            # Refused by the server: a field the page cannot judge (an unknown template field).
            await pass_mark.fill(str(before["pass_mark"]))
            await form.locator("input[name=fee_fen]").fill(str(before["fee_fen"]))
            await form.locator("input[name=chsi_file_name]").fill("{student_number}-{nope}.jpg")
            await form.get_by_role("button", name="检查改动").click()
            await form.get_by_role("button", name="确认保存").click()
            await expect(form.locator("p.status").first).to_contain_text("invalid_request")
            await expect(form.locator('[data-path="chsi_file_name"] .field-error')).to_contain_text("服务器")
            assert await schools.find_one({"_id": SCHOOL}) == before

            # A valid change: the diff first, saved only on confirmation.
            await form.locator("input[name=chsi_file_name]").fill(before["chsi_file_name"])
            await form.locator("input[name=fee_fen]").fill("4000")
            await form.locator("input[name=pass_mark]").fill("72.5")
            await form.get_by_role("button", name="检查改动").click()
            diff = form.locator(".diff table")
            await expect(diff.locator("tbody tr")).to_have_count(2)
            await expect(diff).to_contain_text("采集费用（分）")
            await expect(diff).to_contain_text("4000")
            assert (await schools.find_one({"_id": SCHOOL}))["fee_fen"] == before["fee_fen"]
            await form.get_by_role("button", name="确认保存").click()
            # The typed value is in the field already: wait for the server's answer, not for the field.
            await expect(form.locator("p.status").first).to_contain_text("配置已保存")
            await expect(page.locator("section.settings input[name=fee_fen]")).to_have_value("4000")
            stored = await schools.find_one({"_id": SCHOOL})
            assert stored["fee_fen"] == 4000 and stored["pass_mark"] == 72.5
            assert {k: v for k, v in stored.items() if k not in ("fee_fen", "pass_mark")} == {
                k: v for k, v in before.items() if k not in ("fee_fen", "pass_mark")
            }
            audit = await system.gateway.database.db["audit_log"].find_one({"action": "school.update"})
            assert sorted(audit["target"]["changed"]) == ["fee_fen", "pass_mark"]

            # Support reads the form, cannot save, and has no raw JSON view.
            other = await (await browser.new_context(base_url=system.base_url)).new_page()
            await sign_in(other, system.base_url, "support@example.com")
            await expect(other.locator("nav a.active")).to_be_visible()
            await other.click("nav a[data-route=schools]")
            await expect(other.locator("section.settings input[name=fee_fen]")).to_have_attribute(
                "readonly", "readonly"
            )
            await expect(other.get_by_role("button", name="检查改动")).to_be_hidden()
            await expect(other.locator("details.advanced")).to_be_hidden()
            assert errors == []
