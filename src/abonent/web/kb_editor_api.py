"""The editors' review page: what the consultant did not understand, and the fixes.

``/operator/kb`` (static/kb_editor.js) draws what ``/api/kb/v1`` answers: customer
messages of a period the consultant fell back on or was unsure of, grouped by meaning
with counts and the topics they resemble; actions that store an edit (examples for a
topic, out of scope, a new topic with its answer, a topic's answer) with who and when;
a preview of an answer as each channel shows it; the stored edits as a YAML diff; and
retraining in a separate process with its progress and verdict.

Editors and admins edit; supervisors may look (they already read every chat). Every
response that carries customer messages is written to the audit log first.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, PlainTextResponse, Response
from pydantic import Field
from sqlalchemy import select

from abonent.app import Runtime
from abonent.channels import max as max_channel
from abonent.channels import telegram, viber, vk, whatsapp
from abonent.channels.base import numbered_text, split_text
from abonent.clock import utcnow
from abonent.core.types import Button
from abonent.db.models import AuditRecord, Message
from abonent.nlu import edits as kb_edits
from abonent.nlu import retrain
from abonent.nlu.kb import (
    DEFAULT_KB_DIR,
    Answer,
    KnowledgeBase,
    render_answer,
    values_from_settings,
)
from abonent.nlu.profanity import mask_profanity
from abonent.nlu.review import group_indices, stored_misses
from abonent.operators.auth import KB_EDITORS, RANK
from abonent.web import workspace_pages
from abonent.web.deps import CurrentUser, RuntimeDep, Signed
from abonent.web.errors import ApiError
from abonent.web.fields import ApiModel

log = logging.getLogger(__name__)

router = APIRouter(prefix="/api/kb/v1", tags=["knowledge base"])
page_router = APIRouter(include_in_schema=False)

MENU_TITLE = "Меню"


def may_view(user: Signed) -> bool:
    return user.user.role in KB_EDITORS or RANK.get(user.user.role, 0) >= RANK["supervisor"]


def may_edit(user: Signed) -> bool:
    return user.user.role in KB_EDITORS


async def viewer(user: CurrentUser) -> Signed:
    if not may_view(user):
        raise ApiError(403, "forbidden", "The knowledge base is for editors and supervisors.")
    return user


async def editor(user: CurrentUser) -> Signed:
    if not may_edit(user):
        raise ApiError(403, "forbidden", "Only editors and admins change the knowledge base.")
    return user


Viewer = Annotated[Signed, Depends(viewer)]
Editor = Annotated[Signed, Depends(editor)]


# --------------------------------------------------------------------------- helpers
def _engine(runtime: Runtime) -> Any:
    understander = runtime.understander
    if hasattr(understander, "proba"):
        return understander
    return getattr(understander, "engine", None)


def kb_dir(runtime: Runtime) -> Path:
    found = getattr(runtime.understander, "kb_dir", None)
    return Path(found) if found is not None else DEFAULT_KB_DIR


def _cache_dir(runtime: Runtime) -> Path | None:
    engine = _engine(runtime)
    found = getattr(engine, "cache_dir", None) or getattr(runtime.understander, "cache_dir", None)
    return Path(found) if found is not None else None


async def _current_kb(runtime: Runtime) -> tuple[KnowledgeBase, KnowledgeBase, list[Any]]:
    """(YAML knowledge base, with every stored edit applied, the edits)."""
    base = await asyncio.to_thread(KnowledgeBase.load, kb_dir(runtime))
    stored = await kb_edits.load_edits(runtime.db)
    return base, kb_edits.apply_edits(base, stored), stored


async def _audit(runtime: Runtime, user: Signed, action: str, data: dict[str, Any]) -> None:
    async with runtime.db.transaction() as session:
        session.add(AuditRecord(user_id=user.id, action=action, data=data))


def _day(value: date | None, default: date) -> datetime:
    return datetime.combine(value or default, time.min, tzinfo=UTC)


# --------------------------------------------------------------------------- review
@router.get("/review")
async def review(
    runtime: RuntimeDep,
    user: Viewer,
    since: date | None = None,
    until: date | None = None,
    below: Annotated[float, Query(gt=0, le=1)] = 0.6,
) -> dict[str, Any]:
    """Misses and unsure answers of [since, until] (days, UTC; the last 30 by default),
    grouped by meaning; texts already filed by an edit are left out."""
    today = utcnow().date()
    start = _day(since, today - timedelta(days=29))
    end = _day(until, today) + timedelta(days=1)
    if end <= start:
        raise ApiError(422, "bad_period", "The period ends before it starts.")
    _base, current, stored = await _current_kb(runtime)
    filed = {" ".join(t.split()).lower() for e in stored for t in e.texts}
    items = [
        m
        for m in await stored_misses(runtime.db, start, end, below)
        if " ".join(m["text"].split()).lower() not in filed
    ]
    await _audit(
        runtime,
        user,
        "kb_review",
        {
            "since": start.date().isoformat(),
            "until": (end.date() - timedelta(days=1)).isoformat(),
            "messages": sum(m["count"] for m in items),
        },
    )
    engine = _engine(runtime)
    groups: list[dict[str, Any]] = []
    if items:
        if engine is None:
            raise ApiError(
                503, "no_model", "The consultant's model is still loading; try again in a minute."
            )
        found = await asyncio.to_thread(group_indices, [m["text"] for m in items], engine)
        for indices, intents in found:
            members = [items[i] for i in indices]
            for m in members:
                m["text"] = mask_profanity(m["text"])
            groups.append(
                {
                    "size": sum(m["count"] for m in members),
                    "messages": members,
                    "intents": [
                        {"intent": i, "title": current.title(i), "score": round(s, 4)}
                        for i, s in intents
                    ],
                }
            )
        groups.sort(key=lambda g: -g["size"])
    return {
        "since": start.date().isoformat(),
        "until": (end.date() - timedelta(days=1)).isoformat(),
        "messages": sum(m["count"] for m in items),
        "groups": groups,
        "topics": _topics(current),
        "can_edit": may_edit(user),
    }


def _topics(kb: KnowledgeBase) -> list[dict[str, Any]]:
    return [
        {
            "id": i.id,
            "title": i.title or i.id,
            "kind": i.kind,
            "examples": len(i.examples),
            "answer": i.answer.model_dump() if i.answer is not None else None,
        }
        for i in kb.intents.values()
    ]


@router.get("/topics")
async def topics(runtime: RuntimeDep, user: Viewer) -> dict[str, Any]:
    """The topics as the next build will have them (YAML plus every stored edit)."""
    _base, current, _stored = await _current_kb(runtime)
    return {"topics": _topics(current), "warnings": current.warnings, "can_edit": may_edit(user)}


# --------------------------------------------------------------------------- edits
class AnswerIn(ApiModel):
    text: str = Field(default="", max_length=8000)
    buttons: list[dict[str, str]] = Field(default_factory=list, max_length=30)
    links: list[dict[str, str]] = Field(default_factory=list, max_length=30)


class EditIn(ApiModel):
    kind: Literal["examples", "out_of_scope", "new_topic", "answer"]
    intent: str | None = Field(default=None, max_length=64)
    message_ids: list[int] = Field(default_factory=list, max_length=kb_edits.MAX_TEXTS)
    texts: list[str] = Field(default_factory=list, max_length=kb_edits.MAX_TEXTS)
    title: str | None = Field(default=None, max_length=100)
    answer: AnswerIn | None = None


async def _message_texts(runtime: Runtime, ids: list[int]) -> list[str]:
    """The customers' own words of the chosen messages (as written, not as masked)."""
    if not ids:
        return []
    async with runtime.db.session() as session:
        rows = await session.execute(
            select(Message.id, Message.text).where(
                Message.id.in_(ids), Message.author == "customer"
            )
        )
        found = {mid: text for mid, text in rows}
    missing = [i for i in ids if i not in found]
    if missing:
        raise ApiError(404, "not_found", f"No customer message {missing[0]}.")
    return [found[i] for i in ids]


@router.post("/edits")
async def add_edit(runtime: RuntimeDep, user: Editor, body: EditIn) -> dict[str, Any]:
    texts = await _message_texts(runtime, body.message_ids) + list(body.texts)
    base = await asyncio.to_thread(KnowledgeBase.load, kb_dir(runtime))
    try:
        edit = await kb_edits.add_edit(
            runtime.db,
            base,
            kind=body.kind,
            intent=body.intent,
            texts=texts,
            title=body.title,
            answer=body.answer.model_dump() if body.answer is not None else None,
            author_id=user.id,
            author_login=user.user.login,
        )
    except kb_edits.EditError as exc:
        raise ApiError(422, "invalid_edit", str(exc)) from exc
    log.info("kb edit %d (%s %s) by user %s", edit.id, edit.kind, edit.intent, user.id)
    return {"edit": edit.to_dict()}


@router.get("/edits")
async def list_edits(runtime: RuntimeDep, user: Viewer) -> dict[str, Any]:
    """The stored edits (their texts are customers' words: audited) and their diff."""
    stored = await kb_edits.load_edits(runtime.db)
    await _audit(runtime, user, "kb_edits", {"edits": len(stored)})
    patch = await asyncio.to_thread(kb_edits.diff, kb_dir(runtime), stored)
    applied = await retrain.latest_accepted(runtime.db)
    return {
        "edits": [e.to_dict() for e in stored],
        "diff": patch,
        "in_use_upto": applied.edits_upto if applied is not None else 0,
    }


@router.get("/diff", response_class=PlainTextResponse)
async def edits_diff(runtime: RuntimeDep, user: Viewer) -> Response:
    stored = await kb_edits.load_edits(runtime.db)
    await _audit(runtime, user, "kb_edits", {"edits": len(stored)})
    patch = await asyncio.to_thread(kb_edits.diff, kb_dir(runtime), stored)
    return PlainTextResponse(patch, media_type="text/x-diff; charset=utf-8")


# --------------------------------------------------------------------------- preview
def channel_previews(text: str, buttons: list[Button]) -> list[dict[str, Any]]:
    """How each channel shows a reply, by the channels' own rendering rules (limits,
    buttons that fit or degrade to a numbered list, long texts split)."""
    pressed = tuple(buttons)
    out: list[dict[str, Any]] = []

    def entry(name: str, parts: list[str], shown: list[str] | None, note: str = "") -> None:
        out.append({"channel": name, "parts": parts, "buttons": shown, "note": note})

    entry("webchat", [text], [b.title for b in pressed])
    tg_text, keyboard = telegram.render(text, pressed)
    entry(
        "telegram",
        split_text(tg_text, telegram.TEXT_LIMIT),
        [c["text"] for row in keyboard["inline_keyboard"] for c in row] if keyboard else None,
        "" if keyboard or not pressed else "кнопки не помещаются: нумерованный список",
    )
    wa = whatsapp.render(text, pressed)
    wa_parts = [b["text"]["body"] for b in wa if b["type"] == "text"]
    wa_buttons: list[str] | None = None
    wa_note = ""
    for body in wa:
        if body["type"] == "interactive":
            inter = body["interactive"]
            wa_parts.append(inter["body"]["text"])
            if inter["type"] == "button":
                wa_buttons = [b["reply"]["title"] for b in inter["action"]["buttons"]]
            else:
                rows = inter["action"]["sections"][0]["rows"]
                wa_buttons = [r["title"] for r in rows]
                wa_note = "кнопок больше трёх: список"
    if pressed and wa_buttons is None:
        wa_note = "кнопки не помещаются: нумерованный список"
    entry("whatsapp", wa_parts, wa_buttons, wa_note)
    vk_keyboard = vk.inline_keyboard(pressed)
    vk_text = text if vk_keyboard or not pressed else numbered_text(text, pressed)
    entry(
        "vk",
        split_text(vk_text, vk.TEXT_LIMIT),
        [b.title[: vk.LABEL_LIMIT] for b in pressed] if vk_keyboard else None,
        "" if vk_keyboard or not pressed else "кнопки не помещаются: нумерованный список",
    )
    fits = len(pressed) <= viber.MAX_BUTTONS and all(
        0 < len(b.title) <= viber.BUTTON_TEXT_LIMIT for b in pressed
    )
    entry(
        "viber",
        split_text(text if fits else numbered_text(text, pressed), viber.TEXT_LIMIT),
        [b.title for b in pressed] if fits and pressed else None,
        "" if fits or not pressed else "кнопки не помещаются: нумерованный список",
    )
    max_fits = len(pressed) <= max_channel.MAX_BUTTONS and all(
        1 <= len(b.title) <= max_channel.BUTTON_TEXT_LIMIT for b in pressed
    )
    entry(
        "max",
        split_text(text if max_fits else numbered_text(text, pressed), max_channel.TEXT_LIMIT),
        [b.title for b in pressed] if max_fits and pressed else None,
        "" if max_fits or not pressed else "кнопки не помещаются: нумерованный список",
    )
    return out


@router.post("/preview")
async def preview(runtime: RuntimeDep, user: Viewer, body: AnswerIn) -> dict[str, Any]:
    """The answer as the bot would send it (placeholders filled, links listed under
    the text, the menu button after the answer's own), channel by channel."""
    try:
        answer = Answer.model_validate(body.model_dump())
    except ValueError as exc:
        raise ApiError(422, "invalid_answer", str(exc)) from exc
    rendered = render_answer(answer, values_from_settings(runtime.settings))
    lines = [rendered.text]
    if rendered.links:
        lines.append("")
        lines.extend(f"{link.title}: {link.url}" for link in rendered.links)
    text = "\n".join(lines).strip()
    buttons = [Button(b.title, b.payload) for b in rendered.buttons]
    buttons.append(Button(MENU_TITLE, "menu"))
    return {"text": text, "length": len(text), "channels": channel_previews(text, buttons)}


# --------------------------------------------------------------------------- training
@router.post("/train", status_code=202)
async def train(runtime: RuntimeDep, user: Editor) -> dict[str, Any]:
    """Start retraining in a child process; 409 while another run holds the lease."""
    try:
        row = await retrain.start_training(runtime.db, user.id)
    except retrain.Busy as busy:
        raise ApiError(409, "training", f"Retraining {busy.training_id} is under way.") from None
    engine = _engine(runtime)
    process = retrain.spawn(
        row.id,
        runtime.settings.database_url,
        kb_dir(runtime),
        _cache_dir(runtime),
        getattr(engine, "config", None),
    )
    log.info("retraining %d started by user %s (pid %d)", row.id, user.id, process.pid)
    follower = runtime.extra.get("nlu_follower")

    async def reap() -> None:
        # Polled rather than waited on in a thread, so a server stopping meanwhile does
        # not wait for the child (which finishes on its own).
        while process.poll() is None:  # noqa: ASYNC110
            await asyncio.sleep(1.0)
        if follower is not None:
            follower.wake()  # this process swaps at once; the others on their next poll

    children: set[asyncio.Task[None]] = runtime.extra.setdefault("nlu_children", set())
    task = asyncio.create_task(reap())
    children.add(task)
    task.add_done_callback(children.discard)
    found = await retrain.training(runtime.db, row.id)
    return {"training": found}


@router.get("/train")
async def training_status(runtime: RuntimeDep, user: Viewer) -> dict[str, Any]:
    """The newest run: progress while it runs, then before/after accuracy and the recent
    messages whose answer changes (customers' words: audited)."""
    found = await retrain.training(runtime.db)
    if found is not None and found["report"] and found["report"].get("changed"):
        await _audit(runtime, user, "kb_training_report", {"training": found["id"]})
        for change in found["report"]["changed"]:
            change["text"] = mask_profanity(change["text"])
    follower = runtime.extra.get("nlu_follower")
    return {
        "training": found,
        "in_use": getattr(follower, "applied", None),
        "stage": getattr(runtime.understander, "stage", "model"),
    }


# --------------------------------------------------------------------------- page
@page_router.get("/operator/kb", response_class=HTMLResponse)
async def kb_page(request: Request, runtime: RuntimeDep) -> Response:
    """The page is a shell filled by static/kb_editor.js from the API above."""
    found = await workspace_pages._signed(request, runtime)
    if found is None:
        return workspace_pages._to_login(request)
    user, user_session = found
    context = workspace_pages._user_context(user, user_session, runtime)
    if not may_view(Signed(user, user_session)):
        context["message"] = "Эта страница доступна редакторам базы знаний и старшим операторам."
        return workspace_pages._render(request, "operator_base.html", context, status_code=403)
    context["can_edit"] = user.role in KB_EDITORS
    return workspace_pages._render(request, "operator_kb.html", context)
