"""VK files both ways: a customer's photo (the largest size) or PDF is fetched from its
URL; an operator's photo goes through photos.getMessagesUploadServer → upload →
photos.saveMessagesPhoto, a PDF through docs.getMessagesUploadServer → upload →
docs.save, and then messages.send carries the attachment."""

from __future__ import annotations

from typing import Any

import pytest

from channels.conftest import (
    StartFiles,
    all_stored,
    eventually,
    messages,
    operator_chat,
    platform_fixture,
    send_file,
    settle,
    vk_config,
)
from fakes.vk import GROUP_ID, FakeVk
from support import PDF, LiveServer, picture

PEER = 510000001


def jpeg() -> bytes:
    return picture((60, 45), (10, 10, 200))


fake = platform_fixture(FakeVk)


@pytest.fixture
def server(files_server: StartFiles, fake: FakeVk) -> LiveServer:
    return files_server(vk_config(fake))


def hook(server: LiveServer) -> str:
    return f"{server.url}/webhooks/vk"


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
    image, doc = all_stored(server, 2)
    assert server.runtime.files.path(image.storage_key or "").read_bytes() == photo
    assert (image.width, image.height) == (60, 45)  # the largest size, not the thumbnail
    assert (doc.kind, doc.filename) == ("document", "Квитанция.pdf")
    [customer] = [m for m in messages(server, "vk") if m.author == "customer"]
    assert len((customer.meta or {})["files"]) == 2


async def test_operators_files_are_uploaded_and_attached(server: LiveServer, fake: FakeVk) -> None:
    fake.send_event(hook(server), fake.message_new(PEER, "Позовите оператора"))
    await server.settle()
    anna, conv_id = await operator_chat(server, "vk")

    def files_sent() -> list[dict[str, Any]]:
        """Messages with an attachment: the «operator joined» notice may come in between."""
        return [m for m in fake.sent if m["attachment"]]

    photo = jpeg()
    await send_file(anna, conv_id, "снимок.jpg", photo, "Пример снимка")
    eventually(lambda: len(files_sent()) == 1)
    sent = files_sent()[-1]
    assert sent["message"] == "Пример снимка" and sent["peer_id"] == PEER
    assert sent["attachment"].startswith(f"photo-{GROUP_ID}_")
    assert fake.saved[sent["attachment"]][1] == photo

    await send_file(anna, conv_id, "Акт.pdf", PDF)
    eventually(lambda: len(files_sent()) == 2)
    doc = files_sent()[-1]
    assert doc["attachment"].startswith(f"doc-{GROUP_ID}_") and doc["message"] == ""
    assert fake.saved[doc["attachment"]] == ("Акт.pdf", PDF)
