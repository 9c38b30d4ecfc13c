"""WhatsApp files both ways: a customer's image or PDF is fetched by its media id (the
media URL, then the bytes, both with the bearer token); an operator's file is uploaded
to ``/media`` and sent as an image or a document by that media id."""

from __future__ import annotations

import asyncio
import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from sqlalchemy import select

from abonent.db.models import Attachment, Message
from abonent.db.session import Database
from abonent.operators.users import add_user
from channels.conftest import StartServer, eventually, messages, settle
from fakes.whatsapp import (
    APP_SECRET,
    CUSTOMER,
    PHONE_NUMBER_ID,
    TOKEN,
    VERIFY_TOKEN,
    FakeWhatsApp,
    graph_error,
)
from support import PASSWORD, LiveServer, Operator, on_server

PDF = b"%PDF-1.4\n1 0 obj<</Type/Catalog>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n"


def image(kind: str = "JPEG") -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (50, 20), (250, 200, 0)).save(out, kind)
    return out.getvalue()


@pytest.fixture
def fake() -> Iterator[FakeWhatsApp]:
    with FakeWhatsApp() as platform:
        yield platform  # type: ignore[misc]


@pytest.fixture
def server(
    channel_server: StartServer, fake: FakeWhatsApp, fresh_database_url: str, tmp_path: Path
) -> LiveServer:
    async def seed() -> None:
        db = Database(fresh_database_url)
        await add_user(db, "anna", PASSWORD, name="Анна")
        await db.dispose()

    asyncio.run(seed())
    channel = {
        "id": "wa",
        "type": "whatsapp",
        "token": TOKEN,
        "secret": APP_SECRET,
        "verify_token": VERIFY_TOKEN,
        "phone_number_id": PHONE_NUMBER_ID,
        "api_base": fake.url,
    }
    return channel_server([channel], attachments={"dir": str(tmp_path / "files")})


def hook(server: LiveServer) -> str:
    return f"{server.url}/webhooks/wa"


def stored(server: LiveServer) -> list[Attachment]:
    async def load() -> list[Attachment]:
        async with server.runtime.db.session() as session:
            return list((await session.scalars(select(Attachment).order_by(Attachment.id))).all())

    result: list[Attachment] = server.call(load())
    return result


def test_a_customers_image_and_pdf_are_fetched_by_media_id(
    server: LiveServer, fake: FakeWhatsApp
) -> None:
    photo = image()
    assert fake.post_event(hook(server), fake.media_event(photo, "image/jpeg", caption="Счётчик"))
    receipt = fake.media_event(PDF, "application/pdf", filename="Квитанция.pdf")
    assert fake.post_event(hook(server), receipt).status_code == 200
    settle(server)
    eventually(
        lambda: len(stored(server)) == 2 and all(r.status == "stored" for r in stored(server))
    )
    first, second = stored(server)
    assert (first.kind, first.mime, first.size) == ("image", "image/jpeg", len(photo))
    assert (second.kind, second.filename) == ("document", "Квитанция.pdf")
    assert server.runtime.files.path(first.storage_key or "").read_bytes() == photo
    assert server.runtime.files.path(second.storage_key or "").read_bytes() == PDF
    # Both steps carried the token: the media lookup and the download itself.
    downloads = fake.calls("/whatsapp_business/attachments/" + str(first.remote["media_id"]))  # type: ignore[index]
    assert [d.headers["authorization"] for d in downloads] == [f"Bearer {TOKEN}"]
    customer = [m for m in messages(server, "wa") if m.author == "customer"]
    assert customer[0].text == "Счётчик"
    assert (customer[0].meta or {})["files"][0]["id"] == first.id


def test_an_expired_media_id_fails_for_good(server: LiveServer, fake: FakeWhatsApp) -> None:
    event = fake.media_event(image(), "image/jpeg")
    media_id = event["entry"][0]["changes"][0]["value"]["messages"][0]["image"]["id"]
    fake.media.pop(media_id)  # Meta keeps customers' media for a limited time
    fake.post_event(hook(server), event)
    settle(server)
    eventually(lambda: bool(stored(server)) and stored(server)[0].status == "failed")
    assert stored(server)[0].storage_key is None


async def test_operators_files_are_uploaded_and_sent_by_media_id(
    server: LiveServer, fake: FakeWhatsApp
) -> None:
    fake.post_event(hook(server), fake.text_event("Позовите оператора"))
    fake.post_event(hook(server), fake.button_reply_event("operator", "Оператор"))
    await server.settle()
    anna = Operator(server, "anna")
    await anna.login()
    await anna.online()
    conv_id = next(m.conversation_id for m in messages(server, "wa"))

    async def send(name: str, data: bytes, text: str = "") -> None:
        r = await anna.http.post(
            f"/api/workspace/v1/conversations/{conv_id}/attachments",
            headers={"X-CSRF-Token": anna.csrf},
            files={"file": (name, data, "application/octet-stream")},
            data={"text": text},
        )
        assert r.status_code == 201, r.text
        await server.settle()

    def files_sent() -> list[Any]:
        """Media messages only: the «operator joined» notice may still be on its way."""
        return [m for m in fake.sent if m.type in ("image", "document")]

    photo = image("PNG")
    fake.fail_next("/media", graph_error(500, 131000, "(#131000) Something went wrong"))
    await send("пример.png", photo, "Снимите так, чтобы цифры были видны")
    eventually(lambda: len(files_sent()) == 1, timeout=15)
    sent = files_sent()[-1]
    assert sent.type == "image" and sent.to == CUSTOMER
    assert sent.body["image"]["caption"] == "Снимите так, чтобы цифры были видны"
    [upload] = fake.uploads
    assert sent.body["image"]["id"] == upload["id"]
    assert (upload["mime"], upload["data"], upload["filename"]) == (
        "image/png",
        photo,
        "пример.png",
    )

    await send("Акт.pdf", PDF, "")
    eventually(lambda: len(files_sent()) == 2)
    doc = files_sent()[-1]
    assert doc.type == "document" and doc.body["document"]["filename"] == "Акт.pdf"
    assert fake.media[doc.body["document"]["id"]] == ("application/pdf", PDF)
    # WebP is a sticker on WhatsApp: an operator's WebP goes as a document.
    webp = image("WEBP")
    await send("фото.webp", webp)
    eventually(lambda: len(files_sent()) == 3)
    assert files_sent()[-1].type == "document"

    async def delivery() -> list[Any]:
        async with server.runtime.db.session() as session:
            rows = await session.scalars(select(Message).where(Message.author == "operator"))
            return [m.delivery for m in rows]

    assert await on_server(server, delivery()) == ["sent", "sent", "sent"]
