"""Files and the end of a chat, in real browsers (Debian Chromium through Playwright):
the customer attaches a meter photo in the widget, sees its preview and then the photo in
the chat; a file too large or of the wrong kind is refused in Russian before it leaves
the page; the operator sees the photo in the workspace and sends a PDF back; after the
close and the rating the customer has the menu again."""

from __future__ import annotations

import asyncio
import functools
import io
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from PIL import Image

import chromium
from abonent.db.session import Database
from abonent.operators.users import add_user
from chromium import expect
from support import PASSWORD, LiveServer, Operator, make_settings, on_server, seed_demo

if TYPE_CHECKING:
    from playwright.async_api import Browser, Page

widget_page = functools.partial(chromium.new_page, csp=False)
desk_page = functools.partial(chromium.new_page, width=1400, height=900)
PDF = b"%PDF-1.4\n1 0 obj<</Type/Catalog>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n"


def jpeg() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (320, 240), (30, 90, 200)).save(out, "JPEG")
    return out.getvalue()


@pytest.fixture
def server(fresh_database_url: str, tmp_path: Path) -> Iterator[LiveServer]:
    async def seed() -> None:
        db = Database(fresh_database_url)
        await add_user(db, "anna", PASSWORD, name="Анна Петрова")
        await db.dispose()

    seed_demo(fresh_database_url)
    asyncio.run(seed())
    srv = LiveServer(
        make_settings(fresh_database_url, attachments={"max_mb": 1, "dir": str(tmp_path / "files")})
    ).start()
    yield srv
    srv.stop()


def widget(page: Page) -> Any:
    return page.locator("abonent-widget")


def chip(page: Page, title: str) -> Any:
    return widget(page).locator(".ab-chips .ab-chip", has_text=title)


async def test_photo_to_the_operator_pdf_back_and_the_menu_after_rating(
    browser: Browser, server: LiveServer, tmp_path: Path
) -> None:
    page, errors = await widget_page(browser)
    await page.goto(server.url + "/")
    await widget(page).get_by_role("button", name="Помощь").click()
    await widget(page).get_by_role("button", name="Онлайн-чат").click()
    await chip(page, "Связаться с оператором").click()
    await expect(widget(page).locator(".ab-msg[data-author=bot]").last).to_be_visible()

    anna = Operator(server, "anna")
    await anna.login()
    await anna.online()

    picker = widget(page).locator("input[type=file]")
    # Too large and of the wrong kind: refused in the page, in Russian, nothing sent.
    big = tmp_path / "big.jpg"
    big.write_bytes(b"\xff\xd8\xff" + b"0" * (1024 * 1024 + 10))
    await picker.set_input_files(str(big))
    alert = widget(page).get_by_role("alert")
    await expect(alert).to_contain_text("Файл слишком большой: можно отправить до 1 МБ")
    word = tmp_path / "заявление.docx"
    word.write_bytes(b"PK\x03\x04 not a photo")
    await picker.set_input_files(str(word))
    await expect(alert).to_contain_text("Такой файл не подходит")
    # A file named like a photo that is not one: the server reads the content and says no.
    fake = tmp_path / "meter.jpg"
    fake.write_bytes(b"#!/bin/sh\necho not a photo\n")
    await picker.set_input_files(str(fake))
    await widget(page).get_by_role("textbox", name="Сообщение").press("Enter")
    refused = widget(page).locator(".ab-msg--pending .ab-status--error")
    await expect(refused).to_contain_text("Такой файл не подходит")
    await refused.get_by_role("button", name="Удалить").click()

    # The real photo: a preview above the box, then the photo in the chat.
    photo = tmp_path / "счётчик.jpg"
    photo.write_bytes(jpeg())
    await picker.set_input_files(str(photo))
    tray = widget(page).locator(".ab-tray")
    await expect(tray).to_contain_text("счётчик.jpg")
    await expect(tray.locator("img")).to_be_visible()
    box = widget(page).get_by_role("textbox", name="Сообщение")
    await box.fill("Показания на фото")
    await box.press("Enter")
    await expect(tray).to_be_hidden()
    sent = widget(page).locator(".ab-log .ab-msg[data-author=customer]").last
    await expect(sent.locator(".ab-text")).to_have_text("Показания на фото")
    thumb = sent.locator(".ab-thumb img")
    await expect(thumb).to_be_visible()
    await page.wait_for_function(
        "el => el.complete && el.naturalWidth === 320", arg=await thumb.element_handle()
    )

    # The operator sees it in the workspace and opens it (an audited view).
    desk, desk_errors = await desk_page(browser)
    await desk.goto(server.url + "/operator")
    await desk.get_by_label("Логин").fill("anna")
    await desk.get_by_label("Пароль").fill(PASSWORD)
    await desk.get_by_role("button", name="Войти").click()
    await desk.locator("#mine .conv-item .conv-open").first.click()
    seen = desk.locator("#log .msg-customer .msg-thumb").last
    await expect(seen).to_be_visible()
    await desk.wait_for_function(
        "el => el.complete && el.naturalWidth === 320", arg=await seen.element_handle()
    )

    # She answers with a PDF from the reply box; the customer gets a named link.
    await desk.get_by_role("textbox", name="Ответ клиенту").fill("Акт сверки во вложении")
    await desk.locator("#attach-input").set_input_files(
        files=[{"name": "Акт сверки.pdf", "mimeType": "application/pdf", "buffer": PDF}]
    )
    await expect(desk.locator("#log .msg-operator .msg-doc").last).to_contain_text("Акт сверки.pdf")
    doc = widget(page).locator(".ab-msg[data-author=operator] .ab-doc").last
    await expect(doc).to_contain_text("Акт сверки.pdf")
    async with page.expect_download() as download:
        await doc.click()
    saved = tmp_path / "got.pdf"
    await (await download.value).save_as(saved)
    assert saved.read_bytes() == PDF

    # The operator closes: the rating buttons, then after the rating the menu is back.
    conv_id = (await anna.get("/conversations")).json()["conversations"][0]["conversation_id"]
    closed = await anna.post(f"/conversations/{conv_id}/close", {"resolution": "Показания"})
    assert closed.status_code == 200, closed.text
    await chip(page, "5 — отлично").click()
    for title in ("Передать показания", "Узнать баланс", "Связаться с оператором"):
        await expect(chip(page, title)).to_be_visible()

    async def audited() -> int:
        from sqlalchemy import func, select

        from abonent.db.models import AuditRecord

        async with server.runtime.db.session() as session:
            query = select(func.count()).where(AuditRecord.action == "attachment.view")
            return int(await session.scalar(query) or 0)

    assert await on_server(server, audited()) >= 1
    errors.assert_none()
    desk_errors.assert_none()
