"""MAX files both ways: a customer's photo or PDF is fetched from its CDN URL; an
operator's file is uploaded (``/uploads`` → upload URL → token) and attached to the
message, and a file MAX is still processing is sent again after a pause."""

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
from fakes.max import BOT_USERNAME, SECRET, TOKEN, FakeMax
from support import PASSWORD, LiveServer, Operator

PDF = b"%PDF-1.4\n1 0 obj<</Type/Catalog>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n"
USER = 123456789


def jpeg() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (16, 16), (90, 0, 90)).save(out, "JPEG")
    return out.getvalue()


@pytest.fixture
def fake() -> Iterator[FakeMax]:
    with FakeMax() as platform:
        yield platform  # type: ignore[misc]


@pytest.fixture
def server(
    channel_server: StartServer, fake: FakeMax, fresh_database_url: str, tmp_path: Path
) -> LiveServer:
    async def seed() -> None:
        db = Database(fresh_database_url)
        await add_user(db, "anna", PASSWORD, name="Анна")
        await db.dispose()

    asyncio.run(seed())
    channel = {
        "id": "max",
        "type": "max",
        "token": TOKEN,
        "secret": SECRET,
        "username": BOT_USERNAME,
        "api_base": fake.url,
    }
    return channel_server([channel], attachments={"dir": str(tmp_path / "files")})


def hook(server: LiveServer) -> str:
    return f"{server.url}/webhooks/max"


def stored(server: LiveServer) -> list[Attachment]:
    async def load() -> list[Attachment]:
        async with server.runtime.db.session() as session:
            return list((await session.scalars(select(Attachment).order_by(Attachment.id))).all())

    result: list[Attachment] = server.call(load())
    return result


def test_a_customers_photo_and_pdf_are_fetched(server: LiveServer, fake: FakeMax) -> None:
    photo = jpeg()
    update = fake.message_update(
        USER,
        "Фото счётчика и квитанция",
        attachments=[fake.photo_attachment(photo), fake.file_attachment(PDF, "Квитанция.pdf")],
    )
    assert fake.deliver_update(hook(server), update).status_code == 200
    settle(server)
    eventually(
        lambda: len(stored(server)) == 2 and all(r.status == "stored" for r in stored(server))
    )
    image, doc = stored(server)
    assert (image.kind, image.mime) == ("image", "image/jpeg")
    assert server.runtime.files.path(image.storage_key or "").read_bytes() == photo
    assert (doc.kind, doc.filename, doc.size) == ("document", "Квитанция.pdf", len(PDF))
    [customer] = [m for m in messages(server, "max") if m.author == "customer"]
    assert [f["id"] for f in (customer.meta or {})["files"]] == [image.id, doc.id]


async def test_operators_files_are_uploaded_and_attached(server: LiveServer, fake: FakeMax) -> None:
    fake.deliver_update(hook(server), fake.message_update(USER, "Позовите оператора"))
    await server.settle()
    anna = Operator(server, "anna")
    await anna.login()
    await anna.online()
    conv_id = next(m.conversation_id for m in messages(server, "max"))

    def files_sent() -> list[Any]:
        """Messages with a file: the «operator joined» notice may come in between."""
        return [
            m
            for m in fake.sent
            if any(a.get("type") in ("image", "file") for a in m.body.get("attachments") or [])
        ]

    fake.not_ready = 1  # MAX is still processing the first upload when it is attached
    photo = jpeg()
    r = await anna.http.post(
        f"/api/workspace/v1/conversations/{conv_id}/attachments",
        headers={"X-CSRF-Token": anna.csrf},
        files={"file": ("снимок.jpg", photo, "image/jpeg")},
        data={"text": "Так выглядит правильный снимок"},
    )
    assert r.status_code == 201, r.text
    await server.settle()
    eventually(lambda: len(files_sent()) == 1, timeout=15)
    sent = files_sent()[-1]
    assert sent.user_id == str(USER) and sent.text == "Так выглядит правильный снимок"
    [attachment] = sent.body["attachments"]
    assert attachment["type"] == "image"
    upload = fake.uploaded[attachment["payload"]["token"]]
    assert (upload["data"], upload["name"]) == (photo, "снимок.jpg")
    assert fake.not_ready == 0  # the refused attempt happened, then the send went through

    r = await anna.http.post(
        f"/api/workspace/v1/conversations/{conv_id}/attachments",
        headers={"X-CSRF-Token": anna.csrf},
        files={"file": ("Акт.pdf", PDF, "application/pdf")},
    )
    assert r.status_code == 201, r.text
    await server.settle()
    eventually(lambda: len(files_sent()) == 2)
    [doc] = files_sent()[-1].body["attachments"]
    assert doc["type"] == "file"
    assert fake.uploaded[doc["payload"]["token"]]["data"] == PDF
