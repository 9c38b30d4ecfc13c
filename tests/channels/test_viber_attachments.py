"""Viber files both ways: a customer's picture or PDF is fetched from its media URL; an
operator's file is sent as a URL Viber downloads itself (``/files/<token>``): a photo as
``picture``, a PDF as ``file``; the link stops working when it expires."""

from __future__ import annotations

import asyncio
import io
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from PIL import Image
from sqlalchemy import select, update

from abonent.clock import utcnow
from abonent.db.models import Attachment
from abonent.db.session import Database
from abonent.operators.users import add_user
from channels.conftest import StartServer, eventually, messages, settle
from fakes.viber import FakeViber
from support import PASSWORD, LiveServer, Operator, on_server

PUBLIC = "https://cc.example.ru"
PDF = b"%PDF-1.4\n1 0 obj<</Type/Catalog>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n"
USER = "01234567890A="


def png() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (30, 30), (0, 160, 80)).save(out, "PNG")
    return out.getvalue()


@pytest.fixture
def fake() -> Iterator[FakeViber]:
    with FakeViber() as platform:
        yield platform  # type: ignore[misc]


@pytest.fixture
def server(
    channel_server: StartServer, fake: FakeViber, fresh_database_url: str, tmp_path: Path
) -> LiveServer:
    async def seed() -> None:
        db = Database(fresh_database_url)
        await add_user(db, "anna", PASSWORD, name="Анна")
        await db.dispose()

    asyncio.run(seed())
    channel = {
        "id": "viber",
        "type": "viber",
        "token": fake.token,
        "name": "ЭнергоСбыт",
        "uri": "energosbyt_test",
        "api_base": f"{fake.url}/pa",
    }
    srv = channel_server([channel], attachments={"dir": str(tmp_path / "files")})
    fake.routes[PUBLIC] = srv.url  # the product's public address, as Viber reaches it
    return srv


def hook(server: LiveServer) -> str:
    return f"{server.url}/webhooks/viber"


def stored(server: LiveServer) -> list[Attachment]:
    async def load() -> list[Attachment]:
        async with server.runtime.db.session() as session:
            return list((await session.scalars(select(Attachment).order_by(Attachment.id))).all())

    result: list[Attachment] = server.call(load())
    return result


def test_a_customers_picture_and_pdf_are_fetched(server: LiveServer, fake: FakeViber) -> None:
    photo = png()
    assert fake.deliver_event(hook(server), fake.picture_update(USER, photo, "Счётчик"))
    assert fake.deliver_event(hook(server), fake.file_update(USER, PDF, "Счёт.pdf"))
    # A spreadsheet is kept as a note for the operator, not fetched.
    assert fake.deliver_event(hook(server), fake.file_update(USER, b"PK..", "расчёт.xlsx"))
    settle(server)
    eventually(
        lambda: len(stored(server)) == 2 and all(r.status == "stored" for r in stored(server))
    )
    image, doc = stored(server)
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
    anna = Operator(server, "anna")
    await anna.login()
    await anna.online()
    conv_id = next(m.conversation_id for m in messages(server, "viber"))

    async def send(name: str, data: bytes, text: str = "") -> None:
        r = await anna.http.post(
            f"/api/workspace/v1/conversations/{conv_id}/attachments",
            headers={"X-CSRF-Token": anna.csrf},
            files={"file": (name, data, "application/octet-stream")},
            data={"text": text},
        )
        assert r.status_code == 201, r.text
        await server.settle()

    photo = png()
    await send("образец.png", photo, "Пример снимка")
    await send("Акт.pdf", PDF)
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
