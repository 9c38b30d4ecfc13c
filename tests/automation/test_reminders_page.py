"""The admins' reminders page in a real browser (Debian Chromium driven by Playwright):
an admin creates a payment-due campaign for Telegram, previews it (the audience per
channel, the skipped, the samples — each sample's view audited), starts it and
watches its progress; the supervisor's reports show what followed. An operator gets
neither the link nor the page."""

from __future__ import annotations

import asyncio
import functools
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

import chromium
from abonent.db.models import AuditRecord
from abonent.operators.users import add_user
from automation import test_reminders as base
from automation.test_reminders import customers, reminders_to, run_sender, sender, tg_says
from chromium import expect
from fakes.telegram import FakeTelegram
from support import PASSWORD, Clock, LiveServer

if TYPE_CHECKING:
    from playwright.async_api import Browser, Page

server = base.server
tg = base.tg
wa = base.wa
clock = base.clock
new_page = functools.partial(chromium.new_page, width=1400, height=1000)


async def sign_in(page: Page, base_url: str, login: str, target: str) -> None:
    await page.goto(f"{base_url}{target}")
    await page.get_by_label("Логин").fill(login)
    await page.get_by_label("Пароль").fill(PASSWORD)
    await page.get_by_role("button", name="Войти").click()
    await expect(page).to_have_url(f"{base_url}{target}")


async def test_an_admin_creates_previews_and_starts_a_campaign(
    server: LiveServer, tg: FakeTelegram, wa: Any, clock: Clock, browser: Browser
) -> None:
    db = server.runtime.db
    server.call(add_user(db, "olga", PASSWORD, name="Ольга Админ", role="admin"))
    server.call(add_user(db, "anna", PASSWORD, name="Анна"))
    await asyncio.to_thread(customers, server, tg, wa, clock)
    await asyncio.to_thread(tg_says, server, tg, 1002, "стоп")

    page, errors = await new_page(browser)
    await sign_in(page, server.url, "anna", "/operator")
    await expect(page.get_by_role("link", name="Напоминания")).to_have_count(0)
    response = await page.goto(f"{server.url}/operator/reminders")
    assert response is not None and response.status == 403
    await page.context.close()

    page, errors = await new_page(browser)
    await sign_in(page, server.url, "olga", "/operator/templates")
    await page.get_by_role("link", name="Напоминания").click()
    await expect(page.locator("#reminders-page[data-state='ready']")).to_have_count(1)
    await expect(page.locator("#campaigns-status")).to_contain_text("Кампаний пока нет")

    await page.get_by_label("Название").fill("декабрь-долги")
    await page.get_by_label("Вид").select_option("payment_due")
    await page.get_by_label("Только канал").fill("telegram")
    await page.get_by_label("Долг больше, ₽").fill("100")
    await page.get_by_role("button", name="Создать черновик").click()
    row = page.locator("tr[data-campaign='декабрь-долги']")
    await expect(row).to_have_attribute("data-state", "draft")
    await expect(row).to_contain_text("Черновик")

    # A mistake is said in the form, and nothing is created.
    await page.get_by_label("Название").fill("ночная")
    await page.get_by_label("Тихие часы").fill("25:00-09:00")
    await page.get_by_role("button", name="Создать черновик").click()
    await expect(page.locator("#new-error")).to_contain_text("quiet hours")
    await expect(page.locator("#campaigns tbody tr")).to_have_count(1)

    await row.get_by_role("button", name="Предпросмотр").click()
    panel = page.locator("#preview-panel")
    await expect(panel).to_be_visible()
    # Ivan and Pyotr are on Telegram (1003 overpaid); Pyotr said «стоп».
    await expect(page.locator("#preview-summary")).to_have_text("Аудитория: 2, получат: 1.")
    await expect(page.locator("#preview-channels")).to_contain_text("tg (telegram, text)")
    await expect(page.locator("#preview-skipped")).to_contain_text("отказались от напоминаний")
    samples = page.locator(".rc-sample")
    await expect(samples).to_have_count(1)
    await expect(samples.first).to_contain_text("Иван Иванович")
    await expect(samples.first).to_contain_text("1\u00a0500,50\u00a0₽")

    async def audited() -> list[AuditRecord]:
        async with db.session() as session:
            return list(
                await session.scalars(
                    select(AuditRecord).where(AuditRecord.action == "reminders.preview")
                )
            )

    assert len(server.call(audited())) == 1

    await row.get_by_role("button", name="Запустить").click()
    await expect(row).to_have_attribute("data-state", "running")
    await asyncio.to_thread(run_sender, server, sender(server))
    assert len(reminders_to(tg, 1001)) == 1 and reminders_to(tg, 1002) == []
    # The list refreshes by itself: the progress of the campaign as it runs.
    await expect(row.locator(".rc-sent")).to_have_text("1")
    await expect(row.locator(".rc-skipped")).to_have_text("1")
    await expect(row.locator(".rc-remaining")).to_have_text("0")
    await expect(row).to_have_attribute("data-state", "done")
    errors.assert_none()

    # The reports show what followed.
    server.call(server.runtime.consumers.catch_up())
    await page.goto(f"{server.url}/operator/reports")
    section = page.locator("#rp-reminders")
    await expect(section).to_be_visible()
    stats = section.locator("tr[data-campaign='декабрь-долги']")
    await expect(stats.locator(".rp-rem-delivered")).to_have_text("1")
    await expect(stats.locator(".rp-rem-skipped")).to_have_text("1")
    await expect(stats.locator(".rp-rem-failed")).to_have_text("0")
    errors.assert_none()
