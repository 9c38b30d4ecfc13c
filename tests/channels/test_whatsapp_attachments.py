"""WhatsApp files both ways: a customer's image or PDF is fetched by its media id (the
media URL, then the bytes, both with the bearer token); an operator's file is uploaded
to ``/media`` and sent as an image or a document by that media id."""

from __future__ import annotations

from typing import Any

import pytest

from channels.conftest import (
    StartFiles,
    all_stored,
    eventually,
    messages,
    operator_chat,
    operator_deliveries,
    platform_fixture,
    send_file,
    settle,
    stored,
    whatsapp_config,
)
from fakes.whatsapp import CUSTOMER, TOKEN, FakeWhatsApp, graph_error
from support import PDF, LiveServer, picture


def image(kind: str = "JPEG") -> bytes:
    return picture((50, 20), (250, 200, 0), kind)


fake = platform_fixture(FakeWhatsApp)


@pytest.fixture
def server(files_server: StartFiles, fake: FakeWhatsApp) -> LiveServer:
    return files_server(whatsapp_config(fake))


def hook(server: LiveServer) -> str:
    return f"{server.url}/webhooks/wa"


def test_a_customers_image_and_pdf_are_fetched_by_media_id(
    server: LiveServer, fake: FakeWhatsApp
) -> None:
    photo = image()
    assert fake.post_event(hook(server), fake.media_event(photo, "image/jpeg", caption="Счётчик"))
    receipt = fake.media_event(PDF, "application/pdf", filename="Квитанция.pdf")
    assert fake.post_event(hook(server), receipt).status_code == 200
    settle(server)
    first, second = all_stored(server, 2)
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
    anna, conv_id = await operator_chat(server, "wa")

    def files_sent() -> list[Any]:
        """Media messages only: the «operator joined» notice may still be on its way."""
        return [m for m in fake.sent if m.type in ("image", "document")]

    photo = image("PNG")
    fake.fail_next("/media", graph_error(500, 131000, "(#131000) Something went wrong"))
    await send_file(anna, conv_id, "пример.png", photo, "Снимите так, чтобы цифры были видны")
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

    await send_file(anna, conv_id, "Акт.pdf", PDF, "")
    eventually(lambda: len(files_sent()) == 2)
    doc = files_sent()[-1]
    assert doc.type == "document" and doc.body["document"]["filename"] == "Акт.pdf"
    assert fake.media[doc.body["document"]["id"]] == ("application/pdf", PDF)
    # WebP is a sticker on WhatsApp: an operator's WebP goes as a document.
    webp = image("WEBP")
    await send_file(anna, conv_id, "фото.webp", webp)
    eventually(lambda: len(files_sent()) == 3)
    assert files_sent()[-1].type == "document"

    assert await operator_deliveries(server) == ["sent", "sent", "sent"]
