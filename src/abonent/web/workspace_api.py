"""The operator workspace's JSON API and WebSocket (cookie session + CSRF header).

The pages (web/workspace_pages.py) are thin; everything an operator does goes through
here, so the same calls serve tests, the browser and any other client.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from fastapi import APIRouter, Query, Request, Response, WebSocket, WebSocketDisconnect
from pydantic import Field
from sqlalchemy import or_, select

from abonent.db.models import Conversation, User
from abonent.operators import views
from abonent.operators.auth import (
    SESSION_COOKIE,
    SESSION_TTL,
    LoginThrottled,
    authenticate,
    session_user,
    sign_out,
)
from abonent.operators.card import ContactNotFound, audit, customer_card
from abonent.operators.desk import Actor, DeskError
from abonent.operators.live import Subscriber
from abonent.web.deps import MAX_ID, CurrentUser, IdPath, RuntimeDep, Signed, Supervisor
from abonent.web.errors import ApiError
from abonent.web.fields import ApiModel

log = logging.getLogger(__name__)

router = APIRouter(prefix="/api/workspace/v1", tags=["workspace"])


def _actor(user: Signed) -> Actor:
    return Actor(user.user.id, user.user.name, user.user.role)


def _user_out(u: User) -> dict[str, Any]:
    return {
        "id": u.id,
        "login": u.login,
        "name": u.name,
        "role": u.role,
        "status": u.status,
        "groups": list(u.groups or []),
        "max_chats": u.max_chats,
    }


def _with_channel_types(runtime: Any, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Add the platform of each item's channel (``telegram``…) for icons and labels."""
    for item in items:
        channel = runtime.channels.get(item["channel_id"])
        item["channel_type"] = channel.type if channel is not None else None
    return items


async def _desk_call(coro: Any) -> Any:
    try:
        return await coro
    except DeskError as exc:
        raise ApiError(exc.status, exc.code, exc.message, **exc.details) from exc


def _secure(request: Request) -> bool:
    """Secure cookies behind TLS: the request came over HTTPS, or a proxy says it did."""
    return request.url.scheme == "https" or request.headers.get("x-forwarded-proto") == "https"


# --------------------------------------------------------------------------- sign-in
class Credentials(ApiModel):
    login: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=256)


@router.post("/login", summary="Sign in; sets the session cookie, returns the CSRF token")
async def login(
    body: Credentials, request: Request, response: Response, runtime: RuntimeDep
) -> dict[str, Any]:
    ip = request.client.host if request.client else None
    try:
        signed = await authenticate(runtime.db, body.login, body.password, ip)
    except LoginThrottled as exc:
        raise ApiError(
            429, "throttled", "Слишком много неудачных попыток входа. Подождите 15 минут."
        ) from exc
    if signed is None:
        raise ApiError(401, "bad_credentials", "Неверный логин или пароль.")
    response.set_cookie(
        SESSION_COOKIE,
        signed.token,
        max_age=int(SESSION_TTL.total_seconds()),
        httponly=True,
        samesite="lax",
        secure=_secure(request),
        path="/",
    )
    await runtime.bus.publish_many(list(signed.events))
    return {"user": _user_out(signed.user), "csrf_token": signed.csrf_token}


@router.post("/logout")
async def logout(
    user: CurrentUser, request: Request, response: Response, runtime: RuntimeDep
) -> dict[str, Any]:
    await runtime.desk.set_status(user.id, "offline")
    await runtime.bus.publish_many(
        await sign_out(runtime.db, request.cookies.get(SESSION_COOKIE, ""))
    )
    response.delete_cookie(SESSION_COOKIE, path="/")
    return {"ok": True}


@router.get("/me")
async def me(user: CurrentUser) -> dict[str, Any]:
    return {**_user_out(user.user), "csrf_token": user.session.csrf_token}


class StatusIn(ApiModel):
    status: Literal["online", "break", "offline"]


@router.post("/status")
async def set_status(body: StatusIn, user: CurrentUser, runtime: RuntimeDep) -> dict[str, Any]:
    await _desk_call(runtime.desk.set_status(user.id, body.status))
    return {"status": body.status}


# --------------------------------------------------------------------------- lists
def _may_read(user: Signed, status: str, assignee_id: int | None) -> bool:
    """An operator reads waiting conversations and their own; supervisors any."""
    return status == "queued" or assignee_id == user.id or user.can("supervisor")


@router.get("/queue")
async def queue(user: CurrentUser, runtime: RuntimeDep) -> dict[str, Any]:
    view = await views.queue_view(runtime.db)
    _with_channel_types(runtime, view["conversations"])
    return view


@router.get("/conversations")
async def conversations(
    user: CurrentUser, runtime: RuntimeDep, mine: bool = True
) -> dict[str, Any]:
    """Mine (assigned to me), or — for supervisors — every open one."""
    if not mine and not user.can("supervisor"):
        raise ApiError(403, "forbidden", "Only supervisors see every conversation.")
    items = await views.conversation_list(
        runtime.db, statuses=("queued", "assigned"), assignee_id=user.id if mine else None
    )
    return {"conversations": _with_channel_types(runtime, items)}


@router.get("/conversations/{conv_id}")
async def conversation(conv_id: IdPath, user: CurrentUser, runtime: RuntimeDep) -> dict[str, Any]:
    view = await views.conversation_view(runtime.db, conv_id, runtime.stats.title)
    if view is None:
        raise ApiError(404, "not_found", "No such conversation.")
    conv = view["conversation"]
    assignee_id = conv["assignee"]["id"] if conv["assignee"] is not None else None
    if not _may_read(user, conv["status"], assignee_id):
        raise ApiError(403, "forbidden", "This conversation is with another operator.")
    _with_channel_types(runtime, [conv, *view["messages"]])
    view["read_only"] = assignee_id != user.id
    await audit(runtime.db, user.id, "conversation.view", conv["contact_id"], conv_id)
    return view


@router.get("/operators")
async def operators(user: Supervisor, runtime: RuntimeDep) -> dict[str, Any]:
    length, longest = await views.queue_stats(runtime.db)
    return {
        "operators": await views.team_view(runtime.db),
        "queue_length": length,
        "longest_wait_seconds": longest,
    }


@router.get("/colleagues", summary="Who a conversation can be transferred to")
async def colleagues(user: CurrentUser, runtime: RuntimeDep) -> dict[str, Any]:
    """Everyone else, with ``available``: only a colleague on the line can be given a
    conversation (the customer is told they joined); groups take it into their queue."""
    team = await views.team_view(runtime.db)
    groups = sorted({g for member in team for g in member["groups"]})
    return {
        "operators": [
            {
                "id": m["id"],
                "name": m["name"],
                "status": m["status"],
                "available": m["status"] == "online",
                "load": m["load"],
                "max_chats": m["max_chats"],
                "groups": m["groups"],
            }
            for m in team
            if m["id"] != user.id
        ],
        "groups": groups,
    }


@router.get("/contacts/{contact_id}/card", summary="The customer card (audit-logged)")
async def card(
    contact_id: IdPath,
    user: CurrentUser,
    runtime: RuntimeDep,
    conversation_id: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
) -> dict[str, Any]:
    """Whose conversations the user may read, their customers' cards too; the
    ``conversation_id`` the audit log records must be one of the contact's."""
    async with runtime.db.session() as session:
        if conversation_id is not None:
            conv = await session.get(Conversation, conversation_id)
            if conv is None or conv.contact_id != contact_id:
                raise ApiError(404, "not_found", "No such conversation of this contact.")
            allowed = _may_read(user, conv.status, conv.assignee_id)
        else:
            allowed = user.can("supervisor") or (
                await session.scalar(
                    select(Conversation.id)
                    .where(
                        Conversation.contact_id == contact_id,
                        or_(Conversation.status == "queued", Conversation.assignee_id == user.id),
                    )
                    .limit(1)
                )
                is not None
            )
    if not allowed:
        raise ApiError(403, "forbidden", "This customer is with another operator.")
    try:
        return await customer_card(
            runtime.db,
            runtime.billing,
            runtime.crm,
            contact_id,
            user.id,
            conversation_id,
            channel_types={cid: c.type for cid, c in runtime.channels.items()},
        )
    except ContactNotFound as exc:
        raise ApiError(404, "not_found", "No such contact.") from exc


# --------------------------------------------------------------------------- actions
class TextIn(ApiModel):
    text: str = Field(min_length=1, max_length=4000)


class TransferIn(ApiModel):
    to_user_id: int | None = Field(default=None, ge=1, le=MAX_ID)
    group: str | None = Field(default=None, max_length=64)
    note: str = Field(min_length=1, max_length=2000)


class CloseIn(ApiModel):
    resolution: str = Field(min_length=1, max_length=200)


class AssignIn(ApiModel):
    user_id: int = Field(ge=1, le=MAX_ID)


@router.post("/conversations/{conv_id}/take")
async def take(conv_id: IdPath, user: CurrentUser, runtime: RuntimeDep) -> dict[str, Any]:
    await _desk_call(runtime.desk.take(_actor(user), conv_id))
    return {"ok": True}


@router.post("/conversations/{conv_id}/messages", status_code=201)
async def send(
    conv_id: IdPath, body: TextIn, user: CurrentUser, runtime: RuntimeDep
) -> dict[str, Any]:
    row = await _desk_call(runtime.desk.send(_actor(user), conv_id, body.text))
    return {"id": row["id"]}


@router.post("/conversations/{conv_id}/notes", status_code=201)
async def note(
    conv_id: IdPath, body: TextIn, user: CurrentUser, runtime: RuntimeDep
) -> dict[str, Any]:
    await _desk_call(runtime.desk.note(_actor(user), conv_id, body.text))
    return {"ok": True}


@router.post("/conversations/{conv_id}/transfer")
async def transfer(
    conv_id: IdPath, body: TransferIn, user: CurrentUser, runtime: RuntimeDep
) -> dict[str, Any]:
    await _desk_call(
        runtime.desk.transfer(
            _actor(user), conv_id, to_user_id=body.to_user_id, group=body.group, note=body.note
        )
    )
    return {"ok": True}


@router.post("/conversations/{conv_id}/return")
async def return_to_bot(conv_id: IdPath, user: CurrentUser, runtime: RuntimeDep) -> dict[str, Any]:
    await _desk_call(runtime.desk.return_to_bot(_actor(user), conv_id))
    return {"ok": True}


@router.post("/conversations/{conv_id}/close")
async def close(
    conv_id: IdPath, body: CloseIn, user: CurrentUser, runtime: RuntimeDep
) -> dict[str, Any]:
    await _desk_call(runtime.desk.close(_actor(user), conv_id, body.resolution))
    return {"ok": True}


@router.post("/conversations/{conv_id}/assign")
async def assign(
    conv_id: IdPath, body: AssignIn, user: Supervisor, runtime: RuntimeDep
) -> dict[str, Any]:
    await _desk_call(runtime.desk.assign(_actor(user), conv_id, body.user_id))
    return {"ok": True}


# --------------------------------------------------------------------------- live
@router.websocket("/ws")
async def live(ws: WebSocket) -> None:
    """Events for an open workspace page; the page's pings keep its operator "seen"."""
    runtime = ws.app.state.runtime
    if not _same_origin(ws, runtime.settings.public_url):
        # The cookie alone would let another site's page listen to customers' messages.
        await ws.close(code=4403)
        return
    token = ws.cookies.get(SESSION_COOKIE, "")
    found = await session_user(runtime.db, token)
    if found is None:
        await ws.close(code=4401)
        return
    user, _ = found
    await ws.accept()
    sub = Subscriber(user.id, user.role in ("supervisor", "admin"))
    runtime.live.subscribers.add(sub)
    reader = asyncio.create_task(_read_pings(ws, runtime, user.id, token))
    try:
        while not reader.done():
            getter = asyncio.ensure_future(sub.queue.get())
            done, _ = await asyncio.wait({getter, reader}, return_when=asyncio.FIRST_COMPLETED)
            if getter not in done:
                getter.cancel()
                break
            await ws.send_text(json.dumps(getter.result(), ensure_ascii=False, default=str))
    except (WebSocketDisconnect, RuntimeError):
        pass
    finally:
        runtime.live.subscribers.discard(sub)
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError, WebSocketDisconnect, RuntimeError):
            await reader


def _same_origin(ws: WebSocket, public_url: str) -> bool:
    """A browser's handshake comes from a page of this server (as addressed directly, via
    a proxy, or at ``public_url``); clients that send no Origin are not browsers."""
    origin = ws.headers.get("origin")
    if origin is None:
        return True
    ours = {ws.headers.get("host"), ws.headers.get("x-forwarded-host"), urlsplit(public_url).netloc}
    return urlsplit(origin).netloc in ours - {None, ""}


async def _read_pings(ws: WebSocket, runtime: Any, user_id: int, token: str) -> None:
    """Pings keep the operator "seen"; a session ended meanwhile (sign-out elsewhere, new
    password, user disabled) ends the socket too."""
    with contextlib.suppress(WebSocketDisconnect, RuntimeError):
        while True:
            raw = await ws.receive_text()
            try:
                kind = json.loads(raw).get("type")
            except (ValueError, AttributeError):
                continue
            if kind == "ping":
                if await session_user(runtime.db, token) is None:
                    await ws.close(code=4401)
                    return
                await runtime.desk.seen(user_id)
                await ws.send_text('{"type":"pong","data":{}}')
