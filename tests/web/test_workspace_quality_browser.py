"""The workspace as an operator and a supervisor meet it, in a real browser (issue 10).

Templates: "/" lists them, Russian codes and words find them, a blank the template could
not fill is marked in the reply box and keeps «Отправить» shut until it is replaced, and
{account} is the number the customer gave in this chat. The card and the history speak
Russian. Handing a chat on (to a colleague, back to the bot) leaves a calm pane and no
refused request behind. And the supervisor's pages fit a phone.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Iterator
from datetime import date
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import httpx
import pytest

import chromium
from abonent.db.models import Account, Template
from abonent.db.session import Database
from abonent.demo import DEMO_TEMPLATES
from abonent.operators.users import add_user
from chromium import expect
from support import TEST_COMPANY, LiveServer, make_settings

if TYPE_CHECKING:
    from playwright.async_api import Browser, Page, Response

PASSWORD = "correct horse battery"
ACCOUNT = "1000999990"
new_page = functools.partial(chromium.new_page, width=1400, height=900)


@pytest.fixture
def server(fresh_database_url: str) -> Iterator[LiveServer]:
    async def seed() -> None:
        db = Database(fresh_database_url)
        try:
            await add_user(db, "anna", PASSWORD, name="Анна Петрова")
            await add_user(db, "boris", PASSWORD, name="Борис Иванов")
            await add_user(db, "chief", PASSWORD, name="Светлана Старшая", role="supervisor")
            async with db.transaction() as session:
                session.add_all(
                    Template(code=code, title=title, category=category, text=text)
                    for code, title, category, text in DEMO_TEMPLATES
                )
                session.add(
                    Account(
                        number=ACCOUNT,
                        holder="Сидорова Мария Ивановна",
                        address="г. Энск, ул. Садовая, д. 3, кв. 12",
                        plan="three_zone",
                        t1=Decimal("4210.5"),
                        t2=Decimal("6150"),
                        t3=Decimal("5300"),
                        readings_date=date(2026, 12, 3),
                        balance=Decimal("-350.00"),
                    )
                )
        finally:
            await db.dispose()

    asyncio.run(seed())
    always_open = {**TEST_COMPANY, "working_hours": {"mon-sun": "00:00-24:00"}}
    live = LiveServer(make_settings(fresh_database_url, company=always_open)).start()
    try:
        yield live
    finally:
        live.stop()


class Refusals:
    """Every response of the workspace API that was not a success (a 403 shows in the
    browser's console as an error, whatever the page then does with it)."""

    def __init__(self, page: Page) -> None:
        self.seen: list[str] = []
        page.on("response", self._check)

    def _check(self, response: Response) -> None:
        if "/api/" in response.url and response.status >= 400:
            self.seen.append(f"{response.status} {response.request.method} {response.url}")


async def sign_in(page: Page, base: str, login: str) -> None:
    await page.goto(base + "/operator/login")
    await page.get_by_label("Логин").fill(login)
    await page.get_by_label("Пароль").fill(PASSWORD)
    await page.get_by_role("button", name="Войти").click()
    await expect(page).to_have_url(f"{base}/operator")


async def go_online(page: Page) -> None:
    button = page.locator("#status-switch").get_by_role("button", name="На линии")
    await button.click()
    await expect(button).to_have_attribute("aria-pressed", "true")


class Visitor:
    """A web-chat visitor who gives no name (as most do) and names an account."""

    def __init__(self, http: httpx.AsyncClient, base: str) -> None:
        self.http = http
        self.base = base
        self.headers: dict[str, str] = {}
        self.conversation_id = 0

    async def start(self) -> None:
        r = await self.http.post(f"{self.base}/api/client/v1/conversations", json={})
        assert r.status_code == 201, r.text
        self.headers = {"Authorization": f"Bearer {r.json()['token']}"}
        self.conversation_id = r.json()["conversation_id"]

    async def send(self, **body: str) -> None:
        r = await self.http.post(
            f"{self.base}/api/client/v1/messages", json=body, headers=self.headers
        )
        assert r.status_code == 202, r.text
        await asyncio.sleep(0.3)  # the bot answers each in turn

    async def texts(self, author: str) -> list[str]:
        r = await self.http.get(f"{self.base}/api/client/v1/messages", headers=self.headers)
        return [m["text"] for m in r.json()["messages"] if m["author"] == author]

    async def wait_for(self, author: str, text: str) -> None:
        deadline = time.monotonic() + 10
        while text not in await self.texts(author):
            assert time.monotonic() < deadline, await self.texts(author)
            await asyncio.sleep(0.1)


async def type_in(composer: Any, text: str) -> None:
    await composer.fill("")
    await composer.press_sequentially(text, delay=20)


async def test_templates_blanks_card_and_handing_on(browser: Browser, server: LiveServer) -> None:
    base = server.url
    anna, anna_errors = await new_page(browser)
    anna_refused = Refusals(anna)
    native: list[str] = []
    anna.on("dialog", lambda d: (native.append(d.message), asyncio.ensure_future(d.dismiss())))
    await sign_in(anna, base, "anna")
    await go_online(anna)

    async with httpx.AsyncClient(timeout=10) as http:
        visitor = Visitor(http, base)
        await visitor.start()
        await visitor.send(text="фывапролдж")
        await visitor.send(payload="balance")
        await visitor.send(text=ACCOUNT)
        await visitor.send(payload="operator")

        item = anna.locator(f"#mine .conv-item[data-id='{visitor.conversation_id}']")
        await item.locator(".conv-open").click()
        log = anna.locator("#log")
        await expect(log.locator(".msg-customer").first).to_be_visible()

        # ---- the card and the history in Russian words
        card = anna.locator("#card-body")
        account = card.locator(f".card-account[data-account='{ACCOUNT}']")
        await expect(account).to_contain_text("трёхзонный (пик, полупик, ночь)")
        await expect(account).to_contain_text("переплата 350,00\u00a0₽")
        await expect(account).to_contain_text("3 декабря 2026")
        await expect(account).to_contain_text("пик: 4210,5 кВт·ч")
        for raw in ("three_zone", "-350", "2026-12-03"):
            assert raw not in await card.inner_text(), raw
        await expect(log.locator(".msg-intent").first).to_have_text("не распознано")
        assert "fallback" not in await log.inner_text()

        # ---- "/" lists every template; Russian codes and words find them
        composer = anna.get_by_role("textbox", name="Ответ клиенту")
        send = anna.locator("#btn-send")
        options = anna.locator("#suggest [role=option]")
        await type_in(composer, "/")
        await expect(options).to_have_count(len(DEMO_TEMPLATES))
        await type_in(composer, "оплат")
        await expect(options.first).to_contain_text("/оплата")
        await type_in(composer, "/долг")
        await expect(options.first).to_contain_text("/долг")
        await composer.press("Enter")
        # {account} is the number this customer gave in this chat
        await expect(composer).to_have_value(
            "По лицевому счёту " + ACCOUNT + " есть задолженность. Чтобы избежать пеней и "
            "ограничения подачи электроэнергии, оплатите её, пожалуйста, по ссылке "
            "https://pay.example/energo."
        )
        await expect(send).to_be_enabled()

        # ---- a blank the template could not fill: marked, and «Отправить» is shut
        await type_in(composer, "/привет")
        await expect(options.first).to_contain_text("/привет")
        await composer.press("Enter")
        await expect(composer).to_have_value(
            "Здравствуйте, [имя]! Меня зовут Анна Петрова, я помогу вам. "
            "Опишите, пожалуйста, ваш вопрос."
        )
        await expect(anna.locator("#composer-mirror mark")).to_have_text(["[имя]"])
        await expect(anna.locator("#composer-blanks")).to_contain_text("[имя]")
        await expect(send).to_be_disabled()
        await composer.press("Control+Enter")
        await expect(anna.locator("#composer-error")).to_contain_text("пропуски шаблона")
        await asyncio.sleep(0.3)
        assert not [t for t in await visitor.texts("operator") if "[имя]" in t]
        # the blank is selected: typing the name replaces it
        await composer.press_sequentially("Мария")
        await expect(anna.locator("#composer-mirror mark")).to_have_count(0)
        await expect(anna.locator("#composer-blanks")).to_be_hidden()
        await expect(send).to_be_enabled()
        await send.click()
        greeting = (
            "Здравствуйте, Мария! Меня зовут Анна Петрова, я помогу вам. "
            "Опишите, пожалуйста, ваш вопрос."
        )
        await visitor.wait_for("operator", greeting)

        # ---- the note marker is drawn, not an emoji
        await anna.locator("#composer").fill("")
        boris, boris_errors = await new_page(browser)
        boris_refused = Refusals(boris)
        boris.on("dialog", lambda d: (native.append(d.message), asyncio.ensure_future(d.dismiss())))
        await sign_in(boris, base, "boris")

        # ---- a colleague who is not on the line cannot be given the chat
        await anna.locator("#chat-actions").get_by_role("button", name="Передать").click()
        dialog = anna.locator("#transfer-dialog")
        boris_option = dialog.locator("#transfer-user option", has_text="Борис Иванов")
        await expect(boris_option).to_be_disabled()
        await expect(boris_option).to_contain_text("передать нельзя")
        await dialog.get_by_role("button", name="Отмена").click()

        await go_online(boris)
        await anna.locator("#chat-actions").get_by_role("button", name="Передать").click()
        await expect(boris_option).to_be_enabled()
        await dialog.locator("#transfer-user").select_option(label=await boris_option.inner_text())
        await dialog.get_by_label("Заметка для следующего оператора").fill(
            "Переплата, вопрос о возврате"
        )
        await dialog.get_by_role("button", name="Передать").click()
        await expect(dialog).to_be_hidden()
        placeholder = anna.locator("#chat-placeholder")
        await expect(placeholder).to_be_visible()
        await expect(placeholder).to_contain_text("Диалог передан: Борис Иванов.")
        await expect(anna.locator("#chat-body")).to_be_hidden()
        await expect(anna.locator("#log .msg")).to_have_count(0)
        await expect(card).to_have_text("Откройте диалог, чтобы увидеть карточку.")
        await visitor.wait_for("system", "К диалогу подключился оператор Борис Иванов.")

        # ---- Boris gives it back to the bot: asked in the page, then a calm pane
        mine = boris.locator(f"#mine .conv-item[data-id='{visitor.conversation_id}']")
        await mine.locator(".conv-open").click()
        note = boris.locator("#log .msg-note .msg-author")
        await expect(note).to_contain_text("Заметка")
        marker = await note.evaluate(
            "n => { const s = getComputedStyle(n, '::before');"
            " return [s.content, s.backgroundImage]; }"
        )
        assert marker[0] in ('""', "none") or "🔒" not in marker[0], marker
        assert "svg" in marker[1], marker
        await boris.locator("#chat-actions").get_by_role("button", name="Вернуть боту").click()
        confirm = boris.locator("dialog.confirm-dialog")
        await expect(confirm).to_contain_text("Вернуть диалог боту?")
        await confirm.get_by_role("button", name="Вернуть боту").click()
        await expect(boris.locator("#chat-placeholder")).to_contain_text("Диалог возвращён боту.")
        await expect(boris.locator("#log .msg")).to_have_count(0)
        await expect(mine).to_have_count(0)
        await asyncio.sleep(0.5)  # late events must not bring the old chat back

    assert native == [], "a page used the browser's own dialogs"
    assert anna_refused.seen == [], anna_refused.seen
    assert boris_refused.seen == [], boris_refused.seen
    await expect(anna.locator("#chat-body")).to_be_hidden()
    anna_errors.assert_none()
    boris_errors.assert_none()


@pytest.mark.parametrize(
    "path",
    ["/operator", "/operator/supervisor", "/operator/reports", "/operator/templates"],
)
async def test_the_pages_fit_a_phone(browser: Browser, server: LiveServer, path: str) -> None:
    page, errors = await chromium.new_page(browser, width=360, height=740)
    await sign_in(page, server.url, "chief")
    await page.goto(server.url + path)
    await page.wait_for_load_state("networkidle")
    if path == "/operator":
        # the status switch works on a phone
        await go_online(page)
        await expect(
            page.locator("#status-switch").get_by_role("button", name="Перерыв")
        ).to_be_in_viewport()
    await expect(page.locator(".topbar")).to_be_visible()
    wide = await page.evaluate(
        "() => [document.documentElement.scrollWidth, document.body.scrollWidth, window.innerWidth]"
    )
    assert max(wide[:2]) <= wide[2], (path, wide)
    errors.assert_none()
