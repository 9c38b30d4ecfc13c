"""Attachments over the client API and the workspace: what is accepted, where it is
kept, who may have it back, and that operators' views are audited."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image
from sqlalchemy import select

from abonent.db.models import Attachment, AuditRecord, EventRecord, Message
from support import (
    PDF,
    Customer,
    LiveServer,
    Operator,
    make_settings,
    on_server,
    picture,
    seed_users,
)


def jpeg(width: int = 64, height: int = 48) -> bytes:
    return picture((width, height), (200, 30, 30))


def png() -> bytes:
    return picture((10, 10), (0, 0, 255), "PNG")


def files_in(folder: Path) -> list[Path]:
    """Every file under ``folder`` (none when it was never created)."""
    return [p for p in folder.rglob("*") if p.is_file()] if folder.exists() else []


@pytest.fixture
def files_dir(tmp_path: Path) -> Path:
    return tmp_path / "files"


@pytest.fixture
def server(fresh_database_url: str, files_dir: Path) -> Iterator[LiveServer]:
    seed_users(fresh_database_url, {"anna": {"name": "Анна"}, "boris": {"name": "Борис"}})
    srv = LiveServer(
        make_settings(fresh_database_url, attachments={"max_mb": 0.5, "dir": str(files_dir)})
    ).start()
    yield srv
    srv.stop()


async def upload(
    me: Customer, data: bytes, name: str = "meter.jpg", text: str | None = None
) -> httpx.Response:
    form = {"text": text} if text is not None else {}
    return await me.client.post(
        f"{me.server.url}/api/client/v1/attachments",
        headers=me.headers,
        files={"file": (name, data, "application/octet-stream")},
        data=form,
    )


async def rows(server: LiveServer, model: Any) -> list[Any]:
    async def load() -> list[Any]:
        async with server.runtime.db.session() as session:
            return list((await session.scalars(select(model).order_by(model.id))).all())

    result: list[Any] = await on_server(server, load())
    return result


async def test_a_photo_becomes_a_customer_message_stored_under_a_random_name(
    server: LiveServer, http: httpx.AsyncClient, files_dir: Path
) -> None:
    me = Customer(server, http)
    await me.start()
    photo = jpeg()
    r = await upload(me, photo, name="../../etc/счётчик.JPG", text="Вот показания")
    assert r.status_code == 202, r.text
    body = r.json()
    assert body["attachment"]["kind"] == "image"
    assert body["attachment"]["mime"] == "image/jpeg"
    assert body["attachment"]["name"] == "счётчик.jpg"  # no folders, the real extension
    assert (body["attachment"]["width"], body["attachment"]["height"]) == (64, 48)
    await server.settle()

    # The history shows the message with its file, and the file comes back byte for byte.
    history = (
        await me.client.get(f"{server.url}/api/client/v1/messages", headers=me.headers)
    ).json()
    sent = next(m for m in history["messages"] if m["id"] == body["id"])
    assert sent["author"] == "customer" and sent["text"] == "Вот показания"
    assert [a["id"] for a in sent["attachments"]] == [body["attachment"]["id"]]
    got = await me.client.get(
        f"{server.url}/api/client/v1/attachments/{body['attachment']['id']}", headers=me.headers
    )
    assert got.status_code == 200 and got.content == photo
    assert got.headers["content-type"] == "image/jpeg"
    assert got.headers["x-content-type-options"] == "nosniff"

    # On disk: only under the configured directory, named by a random key, private.
    [row] = await rows(server, Attachment)
    assert row.storage_key and row.storage_key not in row.filename
    on_disk = files_in(files_dir)
    assert [p.name for p in on_disk] == [row.storage_key]
    assert on_disk[0].read_bytes() == photo
    assert on_disk[0].stat().st_mode & 0o077 == 0
    assert not [p for p in files_in(files_dir.parent) if "счётчик" in p.name]

    # The statistics see a message with an attachment (kinds and sizes, no names).
    events = [e for e in await rows(server, EventRecord) if e.type == "message.received"]
    assert events[-1].data["attachments"] == [
        {"kind": "image", "mime": "image/jpeg", "size": len(photo)}
    ]


async def test_a_photo_loses_its_exif_and_is_turned_upright(
    server: LiveServer, http: httpx.AsyncClient
) -> None:
    """A phone photo's GPS position and phone model never reach operators or disk."""
    exif = Image.Exif()
    exif[0x0110] = "Customer Phone X"  # Model
    exif[0x0112] = 6  # Orientation: rotate 90° to stand upright
    exif[0x8825] = {1: "N", 2: (55.0, 45.0, 21.0)}  # GPSInfo
    out = io.BytesIO()
    Image.new("RGB", (64, 48), (10, 200, 10)).save(out, "JPEG", exif=exif)
    me = Customer(server, http)
    await me.start()
    r = await upload(me, out.getvalue())
    assert r.status_code == 202, r.text
    assert (r.json()["attachment"]["width"], r.json()["attachment"]["height"]) == (48, 64)
    got = await me.client.get(
        f"{server.url}/api/client/v1/attachments/{r.json()['attachment']['id']}",
        headers=me.headers,
    )
    stored = Image.open(io.BytesIO(got.content))
    assert stored.size == (48, 64)
    assert not stored.getexif() and b"Customer Phone X" not in got.content


@pytest.mark.parametrize(
    ("data", "name", "status", "code"),
    [
        (b"MZ\x90\x00" + b"\x00" * 200, "receipt.pdf", 415, "unsupported_type"),
        (b"#!/bin/sh\nrm -rf /\n", "meter.jpg", 415, "unsupported_type"),
        (b"\xff\xd8\xff\xe0" + b"garbage" * 50, "meter.jpg", 415, "unsupported_type"),
        (b"", "empty.png", 422, "empty_file"),
    ],
)
async def test_the_type_is_read_from_the_content_not_the_name(
    server: LiveServer,
    http: httpx.AsyncClient,
    files_dir: Path,
    data: bytes,
    name: str,
    status: int,
    code: str,
) -> None:
    me = Customer(server, http)
    await me.start()
    r = await upload(me, data, name=name)
    assert r.status_code == status, r.text
    assert r.json()["error"]["code"] == code
    assert await rows(server, Attachment) == []
    assert files_in(files_dir) == []


async def test_png_webp_and_pdf_are_accepted_by_content(
    server: LiveServer, http: httpx.AsyncClient
) -> None:
    me = Customer(server, http)
    await me.start()
    webp = io.BytesIO()
    Image.new("RGB", (8, 8)).save(webp, "WEBP")
    for data, name, mime in (
        (png(), "scan", "image/png"),
        (webp.getvalue(), "photo.jpg", "image/webp"),
        (PDF, "квитанция.exe", "application/pdf"),
    ):
        r = await upload(me, data, name=name)
        assert r.status_code == 202, r.text
        assert r.json()["attachment"]["mime"] == mime
    names = [a.filename for a in await rows(server, Attachment)]
    assert names == ["scan.png", "photo.webp", "квитанция.pdf"]


async def test_too_large_is_refused_with_the_api_error(
    server: LiveServer, http: httpx.AsyncClient
) -> None:
    me = Customer(server, http)
    await me.start()
    big = b"%PDF-1.4\n" + b"0" * (600 * 1024)
    r = await upload(me, big, name="big.pdf")
    assert r.status_code == 413
    error = r.json()["error"]
    assert error["code"] == "file_too_large"
    assert error["details"]["limit"] == 512 * 1024
    assert await rows(server, Attachment) == []


async def test_without_a_file_or_a_token(server: LiveServer, http: httpx.AsyncClient) -> None:
    me = Customer(server, http)
    await me.start()
    r = await me.client.post(
        f"{server.url}/api/client/v1/attachments",
        headers=me.headers,
        data={"text": "x"},
        files={"other": ("a.txt", b"x", "text/plain")},
    )
    assert r.status_code == 422 and r.json()["error"]["code"] == "file_required"
    r = await me.client.post(
        f"{server.url}/api/client/v1/attachments", headers=me.headers, json={"file": "x"}
    )
    assert r.status_code == 415 and r.json()["error"]["code"] == "multipart_required"
    r = await http.post(
        f"{server.url}/api/client/v1/attachments", files={"file": ("a.png", png(), "image/png")}
    )
    assert r.status_code == 401 and r.json()["error"]["code"] == "missing_token"


async def test_another_visitor_cannot_fetch_the_file(
    server: LiveServer, http: httpx.AsyncClient
) -> None:
    me, other = Customer(server, http), Customer(server, http)
    await me.start()
    await other.start()
    r = await upload(me, png(), name="meter.png")
    att_id = r.json()["attachment"]["id"]
    mine = await me.client.get(
        f"{server.url}/api/client/v1/attachments/{att_id}", headers=me.headers
    )
    assert mine.status_code == 200
    theirs = await http.get(
        f"{server.url}/api/client/v1/attachments/{att_id}", headers=other.headers
    )
    assert theirs.status_code == 404 and theirs.json()["error"]["code"] == "not_found"
    for bad in ("0", "abc", "../../etc/passwd", str(2**64)):
        r = await http.get(f"{server.url}/api/client/v1/attachments/{bad}", headers=me.headers)
        assert r.status_code in (404, 422), (bad, r.status_code)
        assert "error" in r.json()
    anonymous = await http.get(f"{server.url}/api/client/v1/attachments/{att_id}")
    assert anonymous.status_code == 401
    # Nothing is served from a static directory either.
    assert (await http.get(f"{server.url}/static/{att_id}")).status_code == 404


async def test_operators_see_files_audited_and_send_their_own(
    server: LiveServer, http: httpx.AsyncClient
) -> None:
    me = Customer(server, http)
    await me.start()
    await me.press("operator")
    photo = jpeg()
    att_id = (await upload(me, photo, name="meter.jpg")).json()["attachment"]["id"]
    anna, boris = Operator(server, "anna"), Operator(server, "boris")
    await anna.login()
    await anna.online()
    conv_id = me.conversation_id
    view = (await anna.get(f"/conversations/{conv_id}")).json()
    shown = [m for m in view["messages"] if m.get("attachments")]
    assert shown and shown[-1]["attachments"][0]["id"] == att_id

    got = await anna.get(f"/attachments/{att_id}")
    assert got.status_code == 200 and got.content == photo
    audit = [a for a in await rows(server, AuditRecord) if a.action == "attachment.view"]
    assert [(a.user_id, a.conversation_id) for a in audit] == [(anna.id, conv_id)]

    # A colleague without this customer sees nothing, and nothing is audited for them.
    await boris.login()
    refused = await boris.get(f"/attachments/{att_id}")
    assert refused.status_code == 403
    assert len([a for a in await rows(server, AuditRecord) if a.action == "attachment.view"]) == 1
    assert (
        await http.get(f"{server.url}/api/workspace/v1/attachments/{att_id}")
    ).status_code == 401

    # The operator answers with a PDF; the customer gets it in the chat.
    sent = await anna.http.post(
        f"/api/workspace/v1/conversations/{conv_id}/attachments",
        headers={"X-CSRF-Token": anna.csrf},
        files={"file": ("Акт сверки.pdf", PDF, "application/pdf")},
        data={"text": "Акт сверки во вложении"},
    )
    assert sent.status_code == 201, sent.text
    await server.settle()
    replies = await me.replies()
    reply = next(m for m in replies if m["author"] == "operator")
    assert reply["text"] == "Акт сверки во вложении"
    [file] = reply["attachments"]
    assert file["name"] == "Акт сверки.pdf" and file["kind"] == "document"
    got = await me.client.get(
        f"{server.url}/api/client/v1/attachments/{file['id']}", headers=me.headers
    )
    assert got.status_code == 200 and got.content == PDF
    assert got.headers["content-disposition"].startswith("attachment;")

    # Without the CSRF header the upload is refused, and a wrong type too.
    no_csrf = await anna.http.post(
        f"/api/workspace/v1/conversations/{conv_id}/attachments",
        files={"file": ("a.pdf", PDF, "application/pdf")},
    )
    assert no_csrf.status_code == 403
    wrong = await anna.http.post(
        f"/api/workspace/v1/conversations/{conv_id}/attachments",
        headers={"X-CSRF-Token": anna.csrf},
        files={"file": ("a.pdf", b"just text", "application/pdf")},
    )
    assert wrong.status_code == 415 and wrong.json()["error"]["code"] == "unsupported_type"
    messages = [m for m in await rows(server, Message) if m.author == "operator"]
    assert len(messages) == 1


async def test_a_retried_upload_with_the_same_key_is_stored_once(
    server: LiveServer, http: httpx.AsyncClient
) -> None:
    me = Customer(server, http)
    await me.start()
    answers = []
    for _ in range(2):
        r = await me.client.post(
            f"{server.url}/api/client/v1/attachments",
            headers={**me.headers, "Idempotency-Key": "upload-1"},
            files={"file": ("meter.png", png(), "image/png")},
        )
        assert r.status_code == 202, r.text
        answers.append(r.json())
    assert answers[0] == answers[1]
    assert len(await rows(server, Attachment)) == 1
    customer = [m for m in await rows(server, Message) if m.author == "customer"]
    assert len(customer) == 1


async def test_a_caption_with_a_nul_is_refused(server: LiveServer, http: httpx.AsyncClient) -> None:
    """The caption is refused like any client-API text, on SQLite and PostgreSQL alike,
    and nothing is stored. (A lone surrogate cannot travel in multipart: invalid UTF-8
    there is read as Latin-1, storable text.)"""
    me = Customer(server, http)
    await me.start()
    r = await me.client.post(
        f"{server.url}/api/client/v1/attachments",
        headers=me.headers,
        files={
            "file": ("meter.jpg", jpeg(), "application/octet-stream"),
            "text": (None, "счётчик\x00".encode()),
        },
    )
    assert r.status_code == 422, r.text
    assert r.json()["error"]["code"] == "invalid_text"
    assert await rows(server, Attachment) == []
