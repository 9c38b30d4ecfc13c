"""VK files both ways: a customer's photo (the largest size) or PDF is fetched from its
URL; an operator's photo goes through photos.getMessagesUploadServer → upload →
photos.saveMessagesPhoto, a PDF through docs.getMessagesUploadServer → upload →
docs.save, and then messages.send carries the attachment."""

from __future__ import annotations

import asyncio
import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from sqlalchemy import select

from abonent.db.models import Attachment
from abonent.db.session import Database
from abonent.operators.users import add_user
from channels.conftest import StartServer, eventually, messages, settle
from fakes.vk import CONFIRMATION, GROUP_ID, SECRET, TOKEN, FakeVk
from support import PASSWORD, LiveServer, Operator

PDF = b"%PDF-1.4\n1 0 obj<</Type/Catalog>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n"
PEER = 510000001


def jpeg() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (60, 45), (10, 10, 200)).save(out, "JPEG")
    return out.getvalue()


@pytest.fixture
def fake() -> Iterator[FakeVk]:
    platform = FakeVk()
    platform.start()
    yield platform
    platform.stop()


@pytest.fixture
def server(
    channel_server: StartServer, fake: FakeVk, fresh_database_url: str, tmp_path: Path
) -> LiveServer:
    async def seed() -> None:
        db = Database(fresh_database_url)
        await add_user(db, "anna", PASSWORD, name="Анна")
        await db.dispose()

    asyncio.run(seed())
    channel = {
        "id": "vk",
        "type": "vk",
        "token": TOKEN,
        "secret": SECRET,
        "confirmation": CONFIRMATION,
        "group_id": GROUP_ID,
        "api_base": fake.url,
    }
    return channel_server([channel], attachments={"dir": str(tmp_path / "files")})


def hook(server: LiveServer) -> str:
    return f"{server.url}/webhooks/vk"


def stored(server: LiveServer) -> list[Attachment]:
    async def load() -> list[Attachment]:
        async with server.runtime.db.session() as session:
            return list((await session.scalars(select(Attachment).order_by(Attachment.id))).all())

    result: list[Attachment] = server.call(load())
    return result


def test_a_customers_photo_and_pdf_are_fetched(server: LiveServer, fake: FakeVk) -> None:
    photo = jpeg()
    event = fake.message_new(
        PEER,
        "Вот счётчик и квитанция",
        attachments=[
            fake.photo_attachment(photo),
            fake.doc_attachment(PDF, "Квитанция", "pdf"),
            fake.doc_attachment(b"PK..", "Таблица", "xlsx"),
        ],
    )
    assert fake.send_event(hook(server), event).text == "ok"
    settle(server)
    eventually(
        lambda: len(stored(server)) == 2 and all(r.status == "stored" for r in stored(server))
    )
    image, doc = stored(server)
    assert server.runtime.files.path(image.storage_key or "").read_bytes() == photo
    assert (image.width, image.height) == (60, 45)  # the largest size, not the thumbnail
    assert (doc.kind, doc.filename) == ("document", "Квитанция.pdf")
    [customer] = [m for m in messages(server, "vk") if m.author == "customer"]
    assert len((customer.meta or {})["files"]) == 2


async def test_operators_files_are_uploaded_and_attached(server: LiveServer, fake: FakeVk) -> None:
    fake.send_event(hook(server), fake.message_new(PEER, "Позовите оператора"))
    await server.settle()
    anna = Operator(server, "anna")
    await anna.login()
    await anna.online()
    conv_id = next(m.conversation_id for m in messages(server, "vk"))

    def files_sent() -> list[dict[str, Any]]:
        """Messages with an attachment: the «operator joined» notice may come in between."""
        return [m for m in fake.sent if m["attachment"]]

    async def send(name: str, data: bytes, text: str = "") -> None:
        r = await anna.http.post(
            f"/api/workspace/v1/conversations/{conv_id}/attachments",
            headers={"X-CSRF-Token": anna.csrf},
            files={"file": (name, data, "application/octet-stream")},
            data={"text": text},
        )
        assert r.status_code == 201, r.text
        await server.settle()

    photo = jpeg()
    await send("снимок.jpg", photo, "Пример снимка")
    eventually(lambda: len(files_sent()) == 1)
    sent = files_sent()[-1]
    assert sent["message"] == "Пример снимка" and sent["peer_id"] == PEER
    assert sent["attachment"].startswith(f"photo-{GROUP_ID}_")
    assert fake.saved[sent["attachment"]][1] == photo

    await send("Акт.pdf", PDF)
    eventually(lambda: len(files_sent()) == 2)
    doc = files_sent()[-1]
    assert doc["attachment"].startswith(f"doc-{GROUP_ID}_") and doc["message"] == ""
    assert fake.saved[doc["attachment"]] == ("Акт.pdf", PDF)
