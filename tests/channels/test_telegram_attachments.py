"""Telegram files both ways: a customer's photo or PDF is fetched with getFile into the
store; an operator's file goes out as a multipart sendPhoto / sendDocument through the
outbox, retried without being sent twice."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from abonent.db.models import Attachment, EventRecord
from channels.conftest import (
    StartFiles,
    eventually,
    messages,
    operator_chat,
    operator_deliveries,
    platform_fixture,
    send_file,
    settle,
    stored,
    telegram_config,
)
from fakes.telegram import TOKEN, USER_ID, FakeTelegram, error
from support import PDF, LiveServer, Operator, picture


def jpeg(color: tuple[int, int, int] = (10, 120, 30)) -> bytes:
    return picture((40, 30), color)


fake = platform_fixture(FakeTelegram)


@pytest.fixture
def server(files_server: StartFiles, fake: FakeTelegram) -> LiveServer:
    return files_server(telegram_config(fake))


def hook(server: LiveServer) -> str:
    return f"{server.url}/webhooks/tg"


async def _with_operator(server: LiveServer, fake: FakeTelegram) -> tuple[Operator, int]:
    """The customer asks for an operator; Анна comes on the line and gets the chat."""
    fake.deliver_update(hook(server), fake.text_update("/start"))
    fake.deliver_update(hook(server), fake.button_update("operator"))
    await server.settle()
    return await operator_chat(server, "tg")


def fetched(server: LiveServer, count: int) -> list[Attachment]:
    def done() -> bool:
        rows = stored(server)
        return len(rows) >= count and all(r.status != "pending" for r in rows)

    eventually(done)
    return stored(server)


def test_a_customers_photo_and_pdf_are_fetched_into_the_store(
    server: LiveServer, fake: FakeTelegram
) -> None:
    photo = jpeg()
    assert fake.deliver_update(hook(server), fake.photo_update(caption="Счётчик", data=photo))
    doc = fake.document_update(PDF, "Квитанция за ноябрь.pdf", "application/pdf")
    assert fake.deliver_update(hook(server), doc).status_code == 200
    # A Word file is noted for the operator but not fetched: it could not be shown.
    word = fake.document_update(b"PK\x03\x04word", "заявление.docx", "application/msword")
    assert fake.deliver_update(hook(server), word).status_code == 200
    settle(server)

    image, pdf = fetched(server, 2)
    assert (image.status, image.kind, image.mime) == ("stored", "image", "image/jpeg")
    assert (image.width, image.height, image.size) == (40, 30, len(photo))
    assert (pdf.status, pdf.kind, pdf.filename) == ("stored", "document", "Квитанция за ноябрь.pdf")
    assert server.runtime.files.path(image.storage_key or "").read_bytes() == photo
    assert server.runtime.files.path(pdf.storage_key or "").read_bytes() == PDF
    # Fetched as Telegram serves bots: getFile, then the file under /file/bot<token>/.
    asked = [r.json()["file_id"] for r in fake.calls("/getFile")]
    assert len(asked) == 2
    assert len(fake.calls(f"/file/bot{TOKEN}/photos/file_1.jpg")) == 1

    customer = [m for m in messages(server, "tg") if m.author == "customer"]
    assert customer[0].text == "Счётчик"
    assert [f["id"] for f in (customer[0].meta or {})["files"]] == [image.id]
    assert "files" not in (customer[2].meta or {})

    async def facts() -> list[EventRecord]:
        async with server.runtime.db.session() as session:
            return list((await session.scalars(select(EventRecord))).all())

    log: list[EventRecord] = server.call(facts())
    assert sorted(e.data["kind"] for e in log if e.type == "attachment.stored") == [
        "document",
        "image",
    ]
    received = [e for e in log if e.type == "message.received" and e.data.get("attachments")]
    assert [e.data["attachments"][0]["kind"] for e in received] == ["image", "document"]


def test_a_failed_download_is_retried_and_a_waiting_operator_fetches_at_once(
    server: LiveServer, fake: FakeTelegram
) -> None:
    fake.fail_next("/getFile", error(502, "Bad Gateway"))
    photo = jpeg((1, 2, 3))
    fake.deliver_update(hook(server), fake.photo_update(data=photo))
    settle(server)
    eventually(lambda: bool(stored(server)) and stored(server)[0].attempts >= 1)
    [row] = stored(server)
    assert row.status == "pending" and row.error is not None and "502" in row.error
    got = server.call(server.runtime.fetcher.fetch(row.id))
    assert got is not None and got.status == "stored"
    assert server.runtime.files.path(got.storage_key or "").read_bytes() == photo


async def test_operators_files_go_out_as_sendphoto_and_senddocument(
    server: LiveServer, fake: FakeTelegram
) -> None:
    anna, conv_id = await _with_operator(server, fake)

    photo = jpeg()
    # The first attempt meets a Telegram hiccup: the outbox retries, the customer gets one.
    fake.fail_next("/sendPhoto", error(429, "Too Many Requests: retry after 0", retry_after=0))
    await send_file(anna, conv_id, "образец.jpg", photo, "Вот так должен выглядеть снимок счётчика")
    eventually(lambda: len(fake.files_sent) == 1)
    [sent] = fake.files_sent
    assert sent.kind == "photo" and sent.chat_id == str(USER_ID)
    assert sent.data == photo and sent.filename == "образец.jpg"
    assert sent.caption == "Вот так должен выглядеть снимок счётчика"
    assert len(fake.calls("/sendPhoto")) == 2  # the refused try and the delivered one

    await send_file(anna, conv_id, "Акт.pdf", PDF)
    eventually(lambda: len(fake.files_sent) == 2)
    doc = fake.files_sent[1]
    assert (doc.kind, doc.data, doc.filename, doc.caption) == ("document", PDF, "Акт.pdf", None)
    fake.assert_no_more("/sendDocument", 1, wait=0.5)

    assert await operator_deliveries(server) == ["sent", "sent"]


async def test_after_the_close_and_the_rating_the_keyboard_is_the_menu(
    server: LiveServer, fake: FakeTelegram
) -> None:
    """The same end of a chat as in the widget, in Telegram's inline keyboards."""
    anna, conv_id = await _with_operator(server, fake)
    r = await anna.post(f"/conversations/{conv_id}/close", {"resolution": "Решено"})
    assert r.status_code == 200, r.text
    await server.settle()
    eventually(lambda: any("csat:5" in s.payloads for s in fake.sent))
    fake.deliver_update(hook(server), fake.button_update("csat:5"))
    await server.settle()
    eventually(lambda: fake.sent[-1].payloads == ["readings", "balance", "operator"])
