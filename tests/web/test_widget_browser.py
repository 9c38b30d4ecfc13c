"""The site widget in a real browser (Debian Chromium driven by Playwright).

What is asserted is what the customer sees: Playwright's CSS and role locators
pierce the widget's open shadow root.
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

import chromium
from chromium import expect

if TYPE_CHECKING:
    from playwright.async_api import Browser, Page

# A page collecting uncaught exceptions (the widget must raise none), 1280×800 unless told.
new_page = functools.partial(chromium.new_page, csp=False)


def widget(page: Page) -> Any:
    return page.locator("abonent-widget")


def launcher(page: Page) -> Any:
    return widget(page).get_by_role("button", name="Помощь")


def chat_log(page: Page) -> Any:
    return widget(page).get_by_role("log")


def message_texts(page: Page, author: str | None = None) -> Any:
    who = f"[data-author={author}]" if author else ""
    return widget(page).locator(f".ab-log .ab-msg{who} .ab-text")


def bot_reply_after_customer(page: Page) -> Any:
    """A bot message that follows a customer message in the log."""
    return (
        widget(page)
        .locator(".ab-log .ab-msg[data-author=customer] ~ .ab-msg[data-author=bot]")
        .first
    )


async def open_chat(page: Page) -> None:
    await launcher(page).click()
    await widget(page).get_by_role("button", name="Онлайн-чат").click()
    await expect(widget(page).get_by_role("textbox", name="Сообщение")).to_be_visible()


async def send(page: Page, text: str) -> None:
    box = widget(page).get_by_role("textbox", name="Сообщение")
    await box.fill(text)
    await box.press("Enter")


async def test_launcher_menu_and_greeting(browser: Browser, live_server: Any) -> None:
    page, errors = await new_page(browser)
    await page.goto(live_server.url + "/")

    button = launcher(page)
    await expect(button).to_be_visible()
    box = await button.bounding_box()
    assert box is not None
    # Bottom-right corner: within 40 px of the viewport's right and bottom edges.
    assert 1280 - (box["x"] + box["width"]) <= 40, box
    assert 800 - (box["y"] + box["height"]) <= 40, box
    assert box["x"] > 1280 / 2 and box["y"] > 800 / 2, box

    await button.click()
    panel = widget(page).get_by_role("dialog")
    await expect(panel).to_be_visible()
    async with httpx.AsyncClient(timeout=10) as client:
        config = (await client.get(f"{live_server.url}/api/client/v1/widget")).json()
    await expect(panel).to_contain_text(config["company"]["name"])
    assert config["messengers"], "the test company lists messengers"
    for messenger in config["messengers"]:
        link = panel.get_by_role("link", name=messenger["title"])
        await expect(link).to_be_visible()
        await expect(link).to_have_attribute("href", messenger["url"])
        await expect(link).to_have_attribute("target", "_blank")
        await expect(link).to_have_attribute("rel", re.compile(r"\bnoopener\b"))

    await panel.get_by_role("button", name="Онлайн-чат").click()
    await expect(message_texts(page, "bot").first).to_be_visible()
    await expect(widget(page).locator(".ab-chip", has_text="Передать показания")).to_be_visible()

    # Esc closes the panel; the launcher stays.
    await page.keyboard.press("Escape")
    await expect(panel).to_be_hidden()
    await expect(button).to_be_visible()
    errors.assert_none()


async def test_balance_and_history_survive_reload(browser: Browser, live_server: Any) -> None:
    page, errors = await new_page(browser)
    await page.goto(live_server.url + "/")
    await open_chat(page)

    balance = widget(page).locator(".ab-chip", has_text="Узнать баланс")
    await balance.click()
    # The pressed button shows as the customer's message, exactly once.
    await expect(message_texts(page, "customer")).to_have_text(["Узнать баланс"])
    await expect(widget(page).locator(".ab-msg--pending")).to_have_count(0)

    account = next(iter(live_server.accounts.values()))
    await send(page, account)
    await expect(message_texts(page, "customer")).to_have_text(["Узнать баланс", account])
    await expect(message_texts(page, "bot").last).to_contain_text("₽")

    before = await message_texts(page).all_inner_texts()
    assert any("₽" in t for t in before)

    await page.reload()
    # The chat reopens by itself, with the same history.
    await expect(widget(page).get_by_role("dialog")).to_be_visible()
    texts = message_texts(page)
    for i, text in enumerate(before):
        await expect(texts.nth(i)).to_have_text(text)
    await expect(message_texts(page, "customer")).to_have_text(["Узнать баланс", account])
    # No message is rendered twice.
    ids = (
        await widget(page)
        .locator(".ab-log .ab-msg")
        .evaluate_all("nodes => nodes.map(n => n.getAttribute('data-id'))")
    )
    assert len(ids) == len(set(ids)), ids
    errors.assert_none()


async def test_message_text_is_inert(browser: Browser, live_server: Any) -> None:
    page, errors = await new_page(browser)
    await page.goto(live_server.url + "/")
    await open_chat(page)

    img = '<img src=x onerror="window.__xss=1">'
    script = "<script>window.__xss=2</script>"
    await send(page, img)
    await expect(message_texts(page, "customer").last).to_have_text(img)
    await send(page, script)
    await expect(message_texts(page, "customer").last).to_have_text(script)
    await expect(message_texts(page, "customer")).to_have_text([img, script])

    assert await page.evaluate("typeof window.__xss") == "undefined"
    assert await widget(page).locator(".ab-log img, .ab-log script").count() == 0
    errors.assert_none()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextlib.contextmanager
def static_site(root: Path) -> Iterator[str]:
    """A second origin: a plain HTTP server for a directory, in a thread."""
    handler = functools.partial(_QuietHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


async def test_widget_on_another_origin(browser: Browser, live_server: Any, tmp_path: Path) -> None:
    (tmp_path / "index.html").write_text(
        "<!doctype html><html lang='ru'><head><meta charset='utf-8'><title>Партнёр</title>"
        "<style>div,button{display:block;font-size:40px;color:red}</style></head>"
        "<body><h1>Сайт партнёра</h1>"
        f'<script src="{live_server.url}/widget.js" async></script></body></html>',
        encoding="utf-8",
    )
    with static_site(tmp_path) as site:
        assert site != live_server.url
        page, errors = await new_page(browser)
        await page.goto(site + "/")
        assert await page.evaluate("location.origin") == site

        await expect(launcher(page)).to_be_visible()
        assert await page.evaluate("window.AbonentWidget.apiBase") == live_server.url
        await open_chat(page)
        await expect(widget(page).locator(".ab-chip").first).to_be_visible()

        await send(page, "Как узнать баланс?")
        await expect(message_texts(page, "customer")).to_have_text(["Как узнать баланс?"])
        # A bot message after the customer's one: the reply came back across origins.
        await expect(bot_reply_after_customer(page)).to_be_visible()
        errors.assert_none()


async def test_long_poll_fallback_and_send_retry(browser: Browser, live_server: Any) -> None:
    page, errors = await new_page(browser)

    # No WebSocket for this page: every attempt is closed at once.
    async def refuse(ws: Any) -> None:
        await ws.close(code=1011, reason="blocked by the test")

    await page.route_web_socket(re.compile(r"/api/client/v1/ws"), refuse)

    # The first send fails on the network; later ones go through.
    posted: list[dict[str, Any]] = []

    async def flaky(route: Any) -> None:
        if route.request.method == "POST":
            posted.append(route.request.post_data_json)
            if len(posted) == 1:
                await route.abort("internetdisconnected")
                return
        await route.continue_()

    await page.route("**/api/client/v1/messages", flaky)  # no query: long polls pass untouched

    await page.goto(live_server.url + "/")
    await open_chat(page)
    await expect(widget(page).locator(".ab-chip", has_text="Передать показания")).to_be_visible()

    await send(page, "Проверка связи")
    failed = widget(page).locator(".ab-msg--pending")
    await expect(failed).to_contain_text("Не отправлено")
    await failed.get_by_role("button", name="Повторить").click()

    await expect(message_texts(page, "customer")).to_have_text(["Проверка связи"])
    await expect(widget(page).locator(".ab-msg--pending")).to_have_count(0)
    # The reply came by long poll (the socket never worked).
    await expect(bot_reply_after_customer(page)).to_be_visible()
    assert len(posted) == 2
    assert posted[0]["client_message_id"], posted
    assert posted[0]["client_message_id"] == posted[1]["client_message_id"]
    errors.assert_none()


async def test_unread_badge_and_mobile_fullscreen(browser: Browser, live_server: Any) -> None:
    page, errors = await new_page(browser, width=390, height=780)
    await page.goto(live_server.url + "/")
    await open_chat(page)
    panel = widget(page).get_by_role("dialog")
    box = await panel.bounding_box()
    assert box is not None
    assert (box["x"], box["y"], box["width"], box["height"]) == (0, 0, 390, 780), box
    await expect(widget(page).locator(".ab-chip").first).to_be_visible()

    await widget(page).get_by_role("button", name="Закрыть").click()
    await expect(panel).to_be_hidden()
    badge = widget(page).locator(".ab-badge")
    await expect(badge).to_be_hidden()

    # The same customer writes from elsewhere (e.g. another tab): the bot's reply
    # arrives while the panel is closed.
    token = await page.evaluate(
        """() => Object.keys(localStorage).filter(k => k.startsWith('abonent:'))
                 .map(k => JSON.parse(localStorage.getItem(k)).token)[0]"""
    )
    async with httpx.AsyncClient(base_url=live_server.url, timeout=10) as client:
        resp = await client.post(
            "/api/client/v1/messages",
            json={"text": "Узнать баланс"},
            headers={"Authorization": f"Bearer {token}"},
        )
        assert resp.status_code == 202, resp.text
    await expect(badge).to_be_visible()
    await expect(badge).to_have_text(re.compile(r"^[1-9]"))
    await expect(launcher(page)).to_have_attribute("aria-label", re.compile("нов"))

    await launcher(page).click()
    await expect(message_texts(page, "customer")).to_have_text(["Узнать баланс"])
    await expect(badge).to_be_hidden()
    errors.assert_none()
