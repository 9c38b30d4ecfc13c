"""The operator workspace in a real browser (Debian Chromium driven by Playwright).

The scenario is the one of issue 5, point 10, lived as a new operator would: sign in
through the form, go on the line, see a web-chat customer's request arrive without a
reload, take it, pick a canned answer with the keyboard, send it — and the customer
gets exactly that text through the client API; then hand the chat to a colleague with
a note, and check that nothing a customer types runs as code in an operator's page.

On PostgreSQL + Redis the second operator uses another server (its own app, bus
listener and event loop) over the same database: what the first server's customer and
operator do must reach the second operator's page through Redis.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest

import chromium
from abonent.db.models import Template
from abonent.db.session import Database
from abonent.operators.users import add_user
from chromium import expect
from support import PG_URL, REDIS_URL, LiveServer, ServeProcesses, make_settings, serve_env

if TYPE_CHECKING:
    from playwright.async_api import Browser, Page

PASSWORD = "correct horse battery"
TEMPLATE_TEXT = (
    "Здравствуйте, {name}! Показания можно передать здесь в чате, на сайте "
    "или по телефону до 25 числа."
)
CUSTOMER_NAME = "Мария"
PROCESS_CONFIG = """
[company]
name = "ЭнергоСбыт Тест"
working_hours = { "mon-sun" = "00:00-24:00" }
"""

# A page collecting uncaught exceptions and CSP violations: the workspace must cause none.
new_page = functools.partial(chromium.new_page, width=1400, height=900)


# --------------------------------------------------------------------------- servers
class Desk:
    """The server(s) the scenario talks to, by URL, and the seeded users."""

    def __init__(self, urls: list[str], users: dict[str, int]) -> None:
        self.urls = urls
        self.users = users

    @property
    def first(self) -> str:
        return self.urls[0]

    @property
    def second(self) -> str:
        return self.urls[-1]


@pytest.fixture
def desk(fresh_database_url: str, tmp_path: Path) -> Iterator[Desk]:
    async def seed() -> dict[str, int]:
        database = Database(fresh_database_url)
        try:
            anna = await add_user(database, "anna", PASSWORD, name="Анна Петрова")
            boris = await add_user(database, "boris", PASSWORD, name="Борис Иванов")
            chief = await add_user(
                database, "chief", PASSWORD, name="Светлана Главная", role="supervisor"
            )
            async with database.transaction() as session:
                session.add(
                    Template(
                        code="pokaz",
                        title="Как передать показания",
                        text=TEMPLATE_TEXT,
                        category="Показания",
                        owner_id=None,
                    )
                )
        finally:
            await database.dispose()
        return {"anna": anna.id, "boris": boris.id, "chief": chief.id}

    users = asyncio.run(seed())
    if REDIS_URL and PG_URL:
        # The bar: two real server processes on PostgreSQL + Redis.
        env = serve_env(fresh_database_url, REDIS_URL, PROCESS_CONFIG, tmp_path)
        processes = ServeProcesses(2, env, tmp_path)
        try:
            yield Desk(processes.wait_ready().urls, users)
        finally:
            processes.stop()
        return
    server = LiveServer(make_settings(fresh_database_url)).start()
    try:
        yield Desk([server.url], users)
    finally:
        server.stop()


# --------------------------------------------------------------------------- helpers
async def sign_in(page: Page, base: str, login: str) -> None:
    await page.goto(base + "/operator")
    # Not signed in: the desk sends us to the sign-in form.
    await expect(page).to_have_url(f"{base}/operator/login?next=%2Foperator")
    await page.get_by_label("Логин").fill(login)
    await page.get_by_label("Пароль").fill(PASSWORD)
    await page.get_by_role("button", name="Войти").click()
    await expect(page).to_have_url(f"{base}/operator")
    await expect(page.locator("#queue-count")).to_be_visible()


async def go_online(page: Page) -> None:
    button = page.locator("#status-switch").get_by_role("button", name="На линии")
    async with page.expect_response(lambda r: r.url.endswith("/api/workspace/v1/status")) as info:
        await button.click()
    assert (await info.value).ok, await (await info.value).text()
    await expect(button).to_have_attribute("aria-pressed", "true")


class WebCustomer:
    """A web-chat customer on the client API (what the site widget does)."""

    def __init__(self, client: httpx.AsyncClient, base: str) -> None:
        self.client = client
        self.base = base
        self.token = ""
        self.conversation_id = 0

    async def start(self, name: str) -> None:
        r = await self.client.post(f"{self.base}/api/client/v1/conversations", json={"name": name})
        assert r.status_code == 201, r.text
        self.token = r.json()["token"]
        self.conversation_id = r.json()["conversation_id"]

    async def say(self, text: str) -> None:
        r = await self.client.post(
            f"{self.base}/api/client/v1/messages",
            json={"text": text},
            headers={"Authorization": f"Bearer {self.token}"},
        )
        assert r.status_code == 202, r.text

    async def messages(self) -> list[dict[str, Any]]:
        r = await self.client.get(
            f"{self.base}/api/client/v1/messages",
            headers={"Authorization": f"Bearer {self.token}"},
        )
        assert r.status_code == 200, r.text
        messages: list[dict[str, Any]] = r.json()["messages"]
        return messages

    async def wait_for(self, author: str, text: str) -> list[dict[str, Any]]:
        """The messages of ``author`` with exactly ``text``, once there are any (10 s at most)."""
        deadline = time.monotonic() + 10
        while True:
            found = [
                m for m in await self.messages() if m["author"] == author and m["text"] == text
            ]
            if found or time.monotonic() > deadline:
                return found
            await asyncio.sleep(0.1)


def conv_item(page: Page, list_id: str, conversation_id: int) -> Any:
    return page.locator(f"#{list_id} .conv-item[data-id='{conversation_id}']")


# --------------------------------------------------------------------------- the scenario
async def test_queue_take_template_transfer_and_inert_text(browser: Browser, desk: Desk) -> None:
    a, b = desk.first, desk.second
    anna, anna_errors = await new_page(browser)
    await sign_in(anna, a, "anna")
    await expect(anna.locator("#me-name")).to_have_text("Анна Петрова")
    await go_online(anna)
    await anna.evaluate("window.__sameDocument = true")

    async with httpx.AsyncClient(timeout=10) as client:
        # The customer writes to the other process: Anna's page learns of it via Redis.
        customer = WebCustomer(client, b)
        await customer.start(CUSTOMER_NAME)
        conv = customer.conversation_id
        await customer.say("Соедините с оператором")

        # The chat arrives live: in the queue, or straight in «Мои диалоги» when the
        # automatic assignment gave it to Anna (she is the only one on the line).
        either = anna.locator(
            f"#queue .conv-item[data-id='{conv}'], #mine .conv-item[data-id='{conv}']"
        )
        await expect(either).to_be_visible()
        await expect(either).to_contain_text(CUSTOMER_NAME)
        queued = conv_item(anna, "queue", conv)
        if await queued.count():
            take = queued.get_by_role("button", name="Взять")
            if await take.count():
                await take.click()
        mine = conv_item(anna, "mine", conv)
        await expect(mine).to_be_visible()
        assert await anna.evaluate("window.__sameDocument") is True, "the page was reloaded"

        await mine.locator(".conv-open").click()
        await expect(anna.locator("#chat-title")).to_have_text(CUSTOMER_NAME)
        log = anna.locator("#log")
        await expect(log.locator(".msg-customer .msg-text").last).to_have_text(
            "Соедините с оператором"
        )
        await expect(log.locator(".msg-bot").first).to_be_visible()
        composer = anna.get_by_role("textbox", name="Ответ клиенту")
        await expect(composer).to_be_enabled()

        # "/pok" → the shared template, picked with the keyboard, placeholders filled.
        await composer.click()
        await composer.press_sequentially("/pok", delay=30)
        option = anna.locator("#suggest [role=option]", has_text="/pokaz")
        await expect(option).to_be_visible()
        for _ in range(10):
            if await option.get_attribute("aria-selected") == "true":
                break
            await composer.press("ArrowDown")
        await expect(option).to_have_attribute("aria-selected", "true")
        await composer.press("Enter")
        await expect(anna.locator("#suggest")).to_be_hidden()
        expected = TEMPLATE_TEXT.replace("{name}", CUSTOMER_NAME)
        await expect(composer).to_have_value(expected)

        await composer.press("Control+Enter")
        await expect(composer).to_have_value("")
        await expect(log.locator(".msg-operator .msg-text").last).to_have_text(expected)
        received = await customer.wait_for("operator", expected)
        assert len(received) == 1, await customer.messages()

        # A colleague signs in (on the second server when there are two).
        boris, boris_errors = await new_page(browser)
        await sign_in(boris, b, "boris")
        await go_online(boris)
        await boris.evaluate("window.__sameDocument = true")

        # Anna transfers the chat to Boris with a note.
        note = "Клиентка Мария: подсказала про показания, уточнит номер счёта."
        await anna.locator("#chat-actions").get_by_role("button", name="Передать").click()
        dialog = anna.locator("#transfer-dialog")
        await expect(dialog).to_be_visible()
        await expect(
            dialog.locator(f"#transfer-user option[value='{desk.users['boris']}']")
        ).to_have_count(1)
        await dialog.locator("#transfer-user").select_option(str(desk.users["boris"]))
        await dialog.get_by_label("Заметка для следующего оператора").fill(note)
        await dialog.get_by_role("button", name="Передать").click()
        await expect(dialog).to_be_hidden()
        await expect(conv_item(anna, "mine", conv)).to_have_count(0)

        # Boris sees it arrive in «Мои диалоги» without a reload, and the note in it.
        boris_item = conv_item(boris, "mine", conv)
        await expect(boris_item).to_be_visible()
        assert await boris.evaluate("window.__sameDocument") is True
        await boris_item.locator(".conv-open").click()
        blog = boris.locator("#log")
        await expect(blog.locator(".msg-note")).to_contain_text(note)
        # The whole history is there: Boris need not ask again.
        await expect(blog.locator(".msg-operator .msg-text")).to_contain_text([expected])
        await expect(boris.get_by_role("textbox", name="Ответ клиенту")).to_be_enabled()
        # The customer never sees the note.
        assert not [m for m in await customer.messages() if note in m["text"]]

        # XSS: the customer's markup arrives live and stays text.
        img = '<img src=x onerror="window.__xss=1">'
        script = "<script>window.__xss=2</script>"
        await customer.say(img)
        await customer.say(script)
        customer_texts = blog.locator(".msg-customer .msg-text")
        await expect(customer_texts.nth(-2)).to_have_text(img)
        await expect(customer_texts.last).to_have_text(script)
        await asyncio.sleep(0.3)  # give a payload, were it inserted as markup, time to fire
        for page in (anna, boris):
            assert await page.evaluate("typeof window.__xss") == "undefined"
            assert await page.locator("#log img, #log script, #queue img, #mine img").count() == 0
        # The list shows the last message as text too.
        await expect(boris_item.locator(".conv-last")).to_have_text(script)

    anna_errors.assert_none()
    boris_errors.assert_none()


async def test_sign_in_errors_and_roles(browser: Browser, desk: Desk) -> None:
    base = desk.first
    page, errors = await new_page(browser)
    await page.goto(base + "/operator/supervisor")
    await expect(page).to_have_url(f"{base}/operator/login?next=%2Foperator%2Fsupervisor")
    await page.get_by_label("Логин").fill("anna")
    await page.get_by_label("Пароль").fill("wrong password")
    await page.get_by_role("button", name="Войти").click()
    await expect(page.get_by_role("alert")).to_have_text("Неверный логин или пароль.")

    await page.get_by_label("Пароль").fill(PASSWORD)
    await page.get_by_role("button", name="Войти").click()
    # An operator may not see the supervisor page.
    await expect(page).to_have_url(f"{base}/operator/supervisor")
    await expect(page.locator("main")).to_contain_text("только старшим операторам")

    # The header's «Выйти» signs out for real: the desk asks to sign in again.
    await page.goto(base + "/operator")
    await page.get_by_role("link", name="Выйти").click()
    await expect(page).to_have_url(f"{base}/operator/login")
    await page.goto(base + "/operator")
    await expect(page).to_have_url(f"{base}/operator/login?next=%2Foperator")
    errors.assert_none()


async def test_supervisor_sees_queue_and_reassigns(browser: Browser, desk: Desk) -> None:
    base = desk.first
    async with httpx.AsyncClient(timeout=10) as client:
        customer = WebCustomer(client, base)
        await customer.start("Пётр")
        await customer.say("Соедините с оператором")

        chief, errors = await new_page(browser)
        await chief.goto(base + "/operator/login")
        await chief.get_by_label("Логин").fill("chief")
        await chief.get_by_label("Пароль").fill(PASSWORD)
        await chief.get_by_role("button", name="Войти").click()
        await expect(chief).to_have_url(f"{base}/operator")
        await chief.get_by_role("link", name="Смена").click()
        await expect(chief).to_have_url(f"{base}/operator/supervisor")

        # Nobody is on the line: the chat waits in the queue.
        row = chief.locator(f"#sv-conversations tr[data-id='{customer.conversation_id}']")
        await expect(row).to_contain_text("Пётр")
        await expect(row).to_contain_text("в очереди")
        await expect(chief.locator("#sv-queue-length")).to_have_text("1")
        await expect(chief.locator("#sv-operators")).to_contain_text("Анна Петрова")

        # Anna comes online (through the API): the page updates live.
        anna, anna_errors = await new_page(browser)
        await sign_in(anna, base, "anna")
        await go_online(anna)
        anna_row = chief.locator(f"#sv-operators tr[data-user-id='{desk.users['anna']}']")
        await expect(anna_row).to_contain_text("На линии")
        # She gets the waiting chat automatically, or the supervisor gives it to Boris,
        # who can be picked only once he is on the line.
        await row.get_by_role("button", name="Открыть").click()
        await expect(chief.locator("#sv-log .msg-customer").last).to_contain_text(
            "Соедините с оператором"
        )
        boris_option = chief.locator(f"#sv-assignee option[value='{desk.users['boris']}']")
        await expect(boris_option).to_be_disabled()
        boris, boris_errors = await new_page(browser)
        await sign_in(boris, base, "boris")
        await go_online(boris)
        await expect(boris_option).to_be_enabled()
        await chief.locator("#sv-assignee").select_option(str(desk.users["boris"]))
        await chief.get_by_role("button", name="Переназначить").click()
        await expect(row).to_contain_text("Борис Иванов")
        await expect(chief.locator("#sv-view-sub")).to_contain_text("Борис Иванов")
        errors.assert_none()
        anna_errors.assert_none()
        boris_errors.assert_none()
