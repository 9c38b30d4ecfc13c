"""MAX files both ways: a customer's photo or PDF is fetched from its CDN URL; an
operator's file is uploaded (``/uploads`` → upload URL → token) and attached to the
message, and a file MAX is still processing is sent again after a pause."""

from __future__ import annotations

from typing import Any

import pytest

from channels.conftest import (
    StartFiles,
    all_stored,
    eventually,
    max_config,
    messages,
    operator_chat,
    platform_fixture,
    send_file,
    settle,
)
from fakes.max import FakeMax
from support import PDF, LiveServer, picture

USER = 123456789


def jpeg() -> bytes:
    return picture((16, 16), (90, 0, 90))


fake = platform_fixture(FakeMax)


@pytest.fixture
def server(files_server: StartFiles, fake: FakeMax) -> LiveServer:
    return files_server(max_config(fake))


def hook(server: LiveServer) -> str:
    return f"{server.url}/webhooks/max"


def test_a_customers_photo_and_pdf_are_fetched(server: LiveServer, fake: FakeMax) -> None:
    photo = jpeg()
    update = fake.message_update(
        USER,
        "Фото счётчика и квитанция",
        attachments=[fake.photo_attachment(photo), fake.file_attachment(PDF, "Квитанция.pdf")],
    )
    assert fake.deliver_update(hook(server), update).status_code == 200
    settle(server)
    image, doc = all_stored(server, 2)
    assert (image.kind, image.mime) == ("image", "image/jpeg")
    assert server.runtime.files.path(image.storage_key or "").read_bytes() == photo
    assert (doc.kind, doc.filename, doc.size) == ("document", "Квитанция.pdf", len(PDF))
    [customer] = [m for m in messages(server, "max") if m.author == "customer"]
    assert [f["id"] for f in (customer.meta or {})["files"]] == [image.id, doc.id]


async def test_operators_files_are_uploaded_and_attached(server: LiveServer, fake: FakeMax) -> None:
    fake.deliver_update(hook(server), fake.message_update(USER, "Позовите оператора"))
    await server.settle()
    anna, conv_id = await operator_chat(server, "max")

    def files_sent() -> list[Any]:
        """Messages with a file: the «operator joined» notice may come in between."""
        return [
            m
            for m in fake.sent
            if any(a.get("type") in ("image", "file") for a in m.body.get("attachments") or [])
        ]

    fake.not_ready = 1  # MAX is still processing the first upload when it is attached
    photo = jpeg()
    await send_file(
        anna, conv_id, "снимок.jpg", photo, "Так выглядит правильный снимок", mime="image/jpeg"
    )
    eventually(lambda: len(files_sent()) == 1, timeout=15)
    sent = files_sent()[-1]
    assert sent.user_id == str(USER) and sent.text == "Так выглядит правильный снимок"
    [attachment] = sent.body["attachments"]
    assert attachment["type"] == "image"
    upload = fake.uploaded[attachment["payload"]["token"]]
    assert (upload["data"], upload["name"]) == (photo, "снимок.jpg")
    assert fake.not_ready == 0  # the refused attempt happened, then the send went through

    await send_file(anna, conv_id, "Акт.pdf", PDF, mime="application/pdf")
    eventually(lambda: len(files_sent()) == 2)
    [doc] = files_sent()[-1].body["attachments"]
    assert doc["type"] == "file"
    assert fake.uploaded[doc["payload"]["token"]]["data"] == PDF
