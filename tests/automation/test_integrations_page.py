"""The admins' integrations page in a real browser (Debian Chromium driven by Playwright).

A receiver answers 410 to the first ``readings.submitted``: the endpoint is disabled and
the next submission waits. The admin sees the alert as a badge in the navigation of any
workspace page, opens «Интеграции», finds the endpoint with its reason, backlog and the
410 among its failures, re-enables it with the button, and the receiver gets both
deliveries. An operator gets neither the link nor the page.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

import chromium
from automation.test_webhooks import (
    FIRST,
    SECOND,
    World,
    kick,
    start_world,
    stored,
    submit,
)
from chromium import expect
from fakes.base import Reply
from fakes.webhook_receiver import FakeWebhookReceiver
from support import PASSWORD, Clock, moscow

if TYPE_CHECKING:
    from playwright.async_api import Browser, Page

new_page = functools.partial(chromium.new_page, width=1400, height=900)


class StubHooks:
    """Stands in for the Python hooks' runtime: only the ``status()`` the page reads."""

    async def status(self) -> list[dict[str, Any]]:
        return [
            {
                "name": "crm_phone",
                "module": "company_hooks",
                "kind": "event",
                "event_types": ["conversation.started"],
                "handled": 12,
                "errors": 1,
                "waiting": 0,
                "recent_errors": [
                    {
                        "at": "2026-11-23T09:00:00+00:00",
                        "event_type": "conversation.started",
                        "error": "TimeoutError: CRM did not answer",
                    }
                ],
                "load_error": None,
            }
        ]


@pytest.fixture
def world(fresh_database_url: str, tmp_path: Path) -> Iterator[World]:
    receiver = FakeWebhookReceiver().start()
    now = Clock(moscow(2026, 11, 23, 12, 0))
    server = start_world(fresh_database_url, tmp_path, receiver, now)
    yield World(server, receiver, now)
    server.stop()
    receiver.stop()


async def sign_in(page: Page, base: str, login: str, target: str) -> None:
    await page.goto(f"{base}{target}")
    await page.get_by_label("Логин").fill(login)
    await page.get_by_label("Пароль").fill(PASSWORD)
    await page.get_by_role("button", name="Войти").click()
    await expect(page).to_have_url(f"{base}{target}")


async def test_admin_sees_the_disabled_webhook_and_re_enables_it(
    world: World, browser: Browser
) -> None:
    server, receiver = world.server, world.receiver
    base = server.url
    receiver.answer_next(Reply(410, {"error": "gone"}))
    await submit(server, FIRST, "8600")
    await kick(server)
    await submit(server, SECOND, "4300")
    await kick(server)
    assert len(receiver.posts) == 1
    assert [r.status for r in await stored(server)] == ["pending", "pending"]

    # An operator: no link in the navigation, and the page says it is for admins.
    page, errors = await new_page(browser)
    await sign_in(page, base, "anna", "/operator")
    await expect(page.get_by_role("link", name="Шаблоны")).to_be_visible()
    await expect(page.get_by_role("link", name="Интеграции")).to_have_count(0)
    response = await page.goto(f"{base}/operator/integrations")
    assert response is not None and response.status == 403
    await expect(page.get_by_text("только администраторам")).to_be_visible()
    errors.assert_none()
    await page.context.close()

    page, errors = await new_page(browser)
    await sign_in(page, base, "olga", "/operator/templates")
    # Any workspace page shows the alert on the navigation link.
    badge = page.locator("#nav-integrations .count")
    await expect(badge).to_have_text("1")
    await page.get_by_role("link", name="Интеграции").click()
    await expect(page).to_have_url(f"{base}/operator/integrations")
    await expect(page.locator("#integrations-page[data-state='ready']")).to_have_count(1)

    row = page.locator("tr[data-webhook='crm']")
    await expect(row).to_have_attribute("data-state", "disabled")
    await expect(row).to_contain_text(f"127.0.0.1:{receiver.port}")
    await expect(row).not_to_contain_text("/hooks/abonent")  # the host only
    await expect(row).to_contain_text("readings.*")
    await expect(row).to_contain_text("Отключён")
    await expect(row).to_contain_text("the receiver answered 410 Gone")
    await expect(row.locator(".webhook-backlog")).to_have_text("2")
    await expect(row.locator(".webhook-failures")).to_contain_text("HTTP 410 Gone")
    alert = page.locator("#int-alerts")
    await expect(alert).to_be_visible()
    await expect(alert).to_contain_text("Вебхук «crm» отключён")
    await expect(page.locator("#hooks-status")).to_have_text("Python-хуки не загружены.")

    await row.get_by_role("button", name="Включить снова").click()
    await expect(page.locator("#webhooks-status")).to_contain_text("возобновлено: 2")
    await expect(row).to_have_attribute("data-state", "active")
    await expect(alert).to_be_hidden()
    await expect(badge).to_have_count(0)
    await kick(server)
    assert len(receiver.wait_posts(3)) == 3
    assert [r.status for r in await stored(server)] == ["delivered", "delivered"]

    await page.reload()
    await expect(page.locator("#integrations-page[data-state='ready']")).to_have_count(1)
    await expect(row.locator(".webhook-backlog")).to_have_text("0")
    await row.get_by_role("button", name="Журнал").click()
    log = page.locator("#deliveries tbody tr")
    await expect(log).to_have_count(2)
    await expect(page.locator("#deliveries tbody tr[data-status='delivered']")).to_have_count(2)
    errors.assert_none()


async def test_the_python_hooks_section_shows_what_the_hooks_report(
    world: World, browser: Browser
) -> None:
    server = world.server
    runtime = server.runtime
    had = runtime.__dict__.get("hooks")
    runtime.hooks = StubHooks()  # type: ignore[assignment]
    try:
        page, errors = await new_page(browser)
        await sign_in(page, server.url, "olga", "/operator/integrations")
        hook = page.locator("#hooks tr[data-hook='crm_phone']")
        await expect(hook).to_contain_text("company_hooks")
        await expect(hook).to_contain_text("conversation.started")
        await expect(hook).to_contain_text("12")
        await expect(hook).to_contain_text("TimeoutError: CRM did not answer")
        await expect(page.locator("#hooks-status")).to_have_text("")
        row = page.locator("tr[data-webhook='crm']")
        await expect(row).to_have_attribute("data-state", "active")
        await expect(page.locator("#int-alerts")).to_be_hidden()
        errors.assert_none()
    finally:
        if had is None:
            del runtime.__dict__["hooks"]
        else:
            runtime.hooks = had
