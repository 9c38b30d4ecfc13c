"""Viber files both ways: a customer's picture or PDF is fetched from its media URL; an
operator's file is sent as a URL Viber downloads itself (``/files/<token>``): a photo as
``picture``, a PDF as ``file``; the link stops working when it expires."""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest
from sqlalchemy import update

from abonent.clock import utcnow
from abonent.db.models import Attachment
from channels.conftest import (
    StartFiles,
    all_stored,
    eventually,
    messages,
    operator_chat,
    platform_fixture,
    send_file,
    settle,
    viber_config,
)
from fakes.viber import FakeViber
from support import PDF, LiveServer, on_server, picture

PUBLIC = "https://cc.example.ru"
USER = "01234567890A="


def png() -> bytes:
    return picture((30, 30), (0, 160, 80), "PNG")


fake = platform_fixture(FakeViber)


@pytest.fixture
def server(files_server: StartFiles, fake: FakeViber) -> LiveServer:
    srv = files_server(viber_config(fake))
    fake.routes[PUBLIC] = srv.url  # the product's public address, as Viber reaches it
    return srv


def hook(server: LiveServer) -> str:
    return f"{server.url}/webhooks/viber"


def test_a_customers_picture_and_pdf_are_fetched(server: LiveServer, fake: FakeViber) -> None:
    photo = png()
    assert fake.deliver_event(hook(server), fake.picture_update(USER, photo, "Счётчик"))
    assert fake.deliver_event(hook(server), fake.file_update(USER, PDF, "Счёт.pdf"))
    # A spreadsheet is kept as a note for the operator, not fetched.
    assert fake.deliver_event(hook(server), fake.file_update(USER, b"PK..", "расчёт.xlsx"))
    settle(server)
    image, doc = all_stored(server, 2)
    assert (image.kind, image.mime) == ("image", "image/png")
    assert image.filename.endswith(".png")  # Viber called it .jpg; the content decides
    assert server.runtime.files.path(image.storage_key or "").read_bytes() == photo
    assert (doc.kind, doc.filename) == ("document", "Счёт.pdf")
    texts = [m.text for m in messages(server, "viber") if m.author == "customer"]
    assert texts[0] == "Счётчик"


async def test_operators_files_go_by_url_and_the_link_expires(
    server: LiveServer, fake: FakeViber
) -> None:
    fake.deliver_event(hook(server), fake.text_update(USER, "Позовите оператора"))
    await server.settle()
    anna, conv_id = await operator_chat(server, "viber")

    photo = png()
    await send_file(anna, conv_id, "образец.png", photo, "Пример снимка")
    await send_file(anna, conv_id, "Акт.pdf", PDF)
    eventually(lambda: sum(b["type"] in ("picture", "file") for b in fake.sent) == 2)
    text, picture, file = [
        b for b in fake.sent if b["type"] != "text" or b["text"] == "Пример снимка"
    ][-3:]
    assert text["text"] == "Пример снимка"
    assert picture["type"] == "picture" and picture["media"].startswith(f"{PUBLIC}/files/")
    assert fake.downloaded[picture["media"]] == photo
    assert (file["type"], file["file_name"], file["size"]) == ("file", "Акт.pdf", len(PDF))
    assert fake.downloaded[file["media"]] == PDF

    # The link is the only key, and only for a while.
    link = picture["media"].replace(PUBLIC, server.url)
    async with httpx.AsyncClient() as http:
        assert (await http.get(link)).content == photo
        assert (await http.get(server.url + "/files/" + "x" * 43)).status_code == 404

        async def expire() -> None:
            async with server.runtime.db.write() as conn:
                await conn.execute(
                    update(Attachment).values(link_expires_at=utcnow() - timedelta(seconds=1))
                )

        await on_server(server, expire())
        gone = await http.get(link)
        assert gone.status_code == 404 and gone.json()["error"]["code"] == "not_found"
