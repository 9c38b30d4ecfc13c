"""Files over HTTP: the customer's upload and download (client API), the operators'
(workspace, each view audited), and ``/files/<token>`` for messengers that fetch a
file by URL.

Who may have a file: the customer whose chat it belongs to (their bearer token names
the channel identity it was sent from or to); an operator who may read one of that
customer's open conversations, or a supervisor; a platform holding an unexpired link.
Anyone else is told the file does not exist, so ids reveal nothing.
"""

from __future__ import annotations

import logging
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Header, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel
from sqlalchemy import delete, exists, or_, select
from starlette.datastructures import UploadFile

from abonent.app import Runtime
from abonent.channels.webchat import WEBCHAT_ID
from abonent.clock import utcnow
from abonent.core import attachments
from abonent.core.attachments import AttachmentRejected, too_large
from abonent.core.text import problem
from abonent.core.types import Attachment as Kind
from abonent.core.types import InboundMessage
from abonent.db.models import Attachment, ChannelIdentity, Conversation, Message
from abonent.operators.card import audit
from abonent.operators.desk import Actor, DeskError
from abonent.web.client_api import MAX_TEXT, FileOut, bearer_identity
from abonent.web.deps import BearerDep, CurrentUser, IdPath, RuntimeDep
from abonent.web.errors import ApiError

log = logging.getLogger(__name__)

client_router = APIRouter(prefix="/api/client/v1", tags=["client"])
workspace_router = APIRouter(prefix="/api/workspace/v1", tags=["workspace"])
public_router = APIRouter(tags=["files"])

AUDIT_ACTION = "attachment.view"
# What a multipart envelope adds to the file itself (boundaries, the text field).
_ENVELOPE = 64 * 1024


class Uploaded(BaseModel):
    id: int
    attachment: FileOut


def _rejected(exc: AttachmentRejected) -> ApiError:
    return ApiError(exc.status, exc.code, exc.message, **exc.details)


async def _read_upload(request: Request, runtime: Runtime) -> tuple[bytes, str | None, str]:
    """The file part (at most the configured size), its name, and the optional text.

    A declared body over the limit is refused before it is read; a body that lies
    about its length is cut off at the limit while reading."""
    limit = runtime.settings.attachments.max_bytes
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit + _ENVELOPE:
        raise _rejected(too_large(int(declared), limit))
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        raise ApiError(
            415, "multipart_required", "Send the file as multipart/form-data in the 'file' field."
        )
    try:
        form = await request.form(max_files=1, max_fields=4)
    except Exception as exc:  # Starlette's parser errors are not one class
        raise ApiError(400, "malformed_multipart", f"The upload cannot be read: {exc}") from exc
    try:
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise ApiError(422, "file_required", "Send the file in the 'file' field.")
        data = await upload.read(limit + 1)
        if len(data) > limit:
            raise _rejected(too_large(upload.size or len(data), limit))
        text = form.get("text")
        text = text.strip() if isinstance(text, str) else ""
        wrong = problem(text)
        if wrong is not None:
            raise ApiError(422, "invalid_text", f"The text {wrong}.", field="text")
        if len(text) > MAX_TEXT:
            raise ApiError(
                422, "message_too_long", f"A message may have at most {MAX_TEXT} characters."
            )
        return data, upload.filename, text
    finally:
        await form.close()


async def _store_upload(
    request: Request,
    runtime: Runtime,
    *,
    identity_id: int,
    conversation_id: int | None,
    author: str,
    user_id: int | None = None,
) -> tuple[Attachment, str]:
    """The uploaded file, checked by its content and stored (not yet on a message), and
    the text sent with it: the customer's and the operator's uploads are refused alike."""
    data, filename, text = await _read_upload(request, runtime)
    try:
        checked = attachments.check(data, runtime.settings.attachments.max_bytes)
    except AttachmentRejected as exc:
        raise _rejected(exc) from exc
    async with runtime.db.write() as conn:
        row = await attachments.create(
            conn,
            runtime.files,
            checked,
            filename=filename,
            identity_id=identity_id,
            conversation_id=conversation_id,
            author=author,
            user_id=user_id,
        )
    return row, text


async def _discard_unsent(runtime: Runtime, attachment_id: int) -> None:
    """A stored file that no message took: nobody will ever ask for it."""
    async with runtime.db.write() as conn:
        await conn.execute(
            delete(Attachment).where(
                Attachment.id == attachment_id, Attachment.message_id.is_(None)
            )
        )


def _file_response(row: Attachment, data: bytes) -> Response:
    """The file with headers that keep a browser from running anything in it: its
    real type only (no sniffing), no scripts, PDFs downloaded rather than shown."""
    disposition = "inline" if row.kind == "image" else "attachment"
    return Response(
        data,
        media_type=row.mime,
        headers={
            "Content-Disposition": f"{disposition}; filename*=UTF-8''{quote(row.filename)}",
            "X-Content-Type-Options": "nosniff",
            "Content-Security-Policy": "default-src 'none'; sandbox",
            "Cache-Control": "private, max-age=3600",
        },
    )


async def _stored(runtime: Runtime, row: Attachment) -> Attachment:
    """The row once its file is here: a messenger's file not fetched yet is fetched now."""
    if row.status == "pending":
        fetched = await runtime.fetcher.fetch(row.id)
        row = fetched or row
    if row.status != "stored" or row.storage_key is None:
        if row.status == "pending":
            raise ApiError(503, "not_fetched_yet", "The file is still being fetched; try again.")
        raise ApiError(410, "file_unavailable", "The file could not be fetched from the messenger.")
    return row


# --------------------------------------------------------------------------- client API
@client_router.post("/attachments", status_code=202, response_model=Uploaded)
async def upload(
    request: Request,
    runtime: RuntimeDep,
    credentials: BearerDep,
    idempotency_key: Annotated[str | None, Header(max_length=64)] = None,
) -> JSONResponse:
    """A photo (JPEG, PNG, WebP, HEIC) or a PDF from the customer, as multipart/form-data:
    ``file`` and an optional ``text``. It becomes a customer message, like ``POST
    /messages``; the answer is that message's id and the stored file."""
    identity_id = await bearer_identity(request, credentials)
    external_id = f"{identity_id}:{idempotency_key}" if idempotency_key else None
    if external_id is not None:
        earlier = await _uploaded_before(runtime, external_id)
        if earlier is not None:  # a retry of an upload that went through: nothing new
            return JSONResponse(earlier, status_code=202)
    row, text = await _store_upload(
        request, runtime, identity_id=identity_id, conversation_id=None, author="customer"
    )
    received = await runtime.pipeline.accept(
        InboundMessage(
            channel_id=WEBCHAT_ID,
            external_user_id="",
            identity_id=identity_id,
            text=text,
            # What the bot is told of it (it reads text only, and says so to a photo).
            attachments=(Kind("photo" if row.kind == "image" else "file", name=row.filename),),
            uploads=(row.id,),
            external_id=external_id,
        )
    )
    if received.duplicate and external_id is not None:
        # Two copies of one upload raced: the first one's message and file stand.
        await _discard_unsent(runtime, row.id)
        earlier = await _uploaded_before(runtime, external_id)
        if earlier is not None:
            return JSONResponse(earlier, status_code=202)
    return JSONResponse(
        {"id": received.message_id, "attachment": attachments.describe(row)}, status_code=202
    )


async def _uploaded_before(runtime: Runtime, external_id: str) -> dict[str, Any] | None:
    """The answer given to an earlier upload with the same idempotency key."""
    async with runtime.db.session() as session:
        message = await session.scalar(
            select(Message).where(
                Message.channel_id == WEBCHAT_ID, Message.external_id == external_id
            )
        )
    files = (message.meta or {}).get("files") if message is not None else None
    if message is None or not files:
        return None
    return {"id": message.id, "attachment": files[0]}


@client_router.get("/attachments/{attachment_id}", response_class=Response)
async def download(
    attachment_id: IdPath, request: Request, runtime: RuntimeDep, credentials: BearerDep
) -> Response:
    """A file of the customer's own chat (sent by them or to them)."""
    identity_id = await bearer_identity(request, credentials)
    row = await attachments.get(runtime.db, attachment_id)
    if row is None or row.identity_id != identity_id or row.message_id is None:
        raise ApiError(404, "not_found", "No such file.")
    row = await _stored(runtime, row)
    assert row.storage_key is not None
    return _file_response(row, await runtime.files.read(row.storage_key))


# --------------------------------------------------------------------------- public links
@public_router.get("/files/{token}", response_class=Response, include_in_schema=False)
async def by_link(token: str, runtime: RuntimeDep) -> Response:
    """A file sent to a messenger that fetches it by URL; the random token is the key."""
    if not 20 <= len(token) <= 64:
        raise ApiError(404, "not_found", "No such file.")
    async with runtime.db.session() as session:
        row = await session.scalar(select(Attachment).where(Attachment.link_token == token))
    if (
        row is None
        or row.storage_key is None
        or row.link_expires_at is None
        or row.link_expires_at < utcnow()
    ):
        raise ApiError(404, "not_found", "No such file, or the link has expired.")
    return _file_response(row, await runtime.files.read(row.storage_key))


# --------------------------------------------------------------------------- workspace
async def _contact_of(runtime: Runtime, row: Attachment) -> int:
    async with runtime.db.session() as session:
        contact = await session.scalar(
            select(ChannelIdentity.contact_id).where(ChannelIdentity.id == row.identity_id)
        )
    if contact is None:
        raise ApiError(404, "not_found", "No such file.")
    return int(contact)


async def _may_see(runtime: Runtime, user: Any, contact_id: int) -> bool:
    """The rule of the conversation view: waiting conversations and one's own (the
    history there is the contact's whole history), any for supervisors."""
    if user.can("supervisor"):
        return True
    async with runtime.db.session() as session:
        found = await session.scalar(
            select(
                exists().where(
                    Conversation.contact_id == contact_id,
                    or_(
                        Conversation.status == "queued",
                        (Conversation.status == "assigned") & (Conversation.assignee_id == user.id),
                    ),
                )
            )
        )
    return bool(found)


@workspace_router.get(
    "/attachments/{attachment_id}", response_class=Response, summary="A file (audit-logged)"
)
async def operator_download(
    attachment_id: IdPath, user: CurrentUser, runtime: RuntimeDep
) -> Response:
    """A customer's photo may show their address or meter: every view is audited."""
    row = await attachments.get(runtime.db, attachment_id)
    if row is None or row.message_id is None:
        raise ApiError(404, "not_found", "No such file.")
    contact_id = await _contact_of(runtime, row)
    if not await _may_see(runtime, user, contact_id):
        raise ApiError(403, "forbidden", "This customer is with another operator.")
    row = await _stored(runtime, row)
    assert row.storage_key is not None
    data = await runtime.files.read(row.storage_key)
    await audit(runtime.db, user.id, AUDIT_ACTION, contact_id, row.conversation_id)
    return _file_response(row, data)


@workspace_router.post(
    "/conversations/{conv_id}/attachments", status_code=201, response_model=Uploaded
)
async def operator_upload(
    conv_id: IdPath, request: Request, user: CurrentUser, runtime: RuntimeDep
) -> dict[str, Any]:
    """A file to the customer (multipart: ``file``, optional ``text``), through the
    outbox like every answer: each messenger gets it its own way."""
    async with runtime.db.session() as session:
        conv = await session.get(Conversation, conv_id)
    if conv is None:
        raise ApiError(404, "not_found", "No such conversation.")
    if conv.status != "assigned" or (conv.assignee_id != user.id and not user.can("supervisor")):
        raise ApiError(409, "not_yours", "The conversation is not assigned to you.")
    row, text = await _store_upload(
        request,
        runtime,
        identity_id=conv.identity_id,
        conversation_id=conv.id,
        author="operator",
        user_id=user.id,
    )
    actor = Actor(user.user.id, user.user.name, user.user.role)
    try:
        written = await runtime.desk.send(actor, conv_id, text, (row.id,))
    except DeskError as exc:
        await _discard_unsent(runtime, row.id)  # never sent
        raise ApiError(exc.status, exc.code, exc.message) from exc
    return {"id": written["id"], "attachment": attachments.describe(row)}
