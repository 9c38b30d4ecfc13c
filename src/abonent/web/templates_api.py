"""Canned answers over HTTP for the workspace: CRUD, suggestions while typing, and the
admin page that manages them (server-rendered; its script talks to this API)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import HTMLResponse
from pydantic import Field

from abonent.nlu.kb import values_from_settings
from abonent.operators import templates as service
from abonent.operators.templates import (
    TemplateError,
    TemplateForbidden,
    TemplateNotFound,
    TemplateView,
)
from abonent.web import workspace_pages
from abonent.web.deps import MAX_ID, CurrentUser, IdPath, RuntimeDep, Signed
from abonent.web.errors import ApiError
from abonent.web.fields import ApiModel

router = APIRouter(prefix="/api/workspace/v1/templates", tags=["workspace"])

# Generous bounds against absurd bodies; the service gives the precise, readable limits.
_LONG = 20_000


class TemplateIn(ApiModel):
    code: str = Field(max_length=200)
    title: str = Field(max_length=2_000)
    text: str = Field(max_length=_LONG)
    category: str | None = Field(default=None, max_length=2_000)
    shared: bool = False


class TemplatePatch(ApiModel):
    """Fields to change; absent ones stay; an empty ``category`` clears it."""

    code: str | None = Field(default=None, max_length=200)
    title: str | None = Field(default=None, max_length=2_000)
    text: str | None = Field(default=None, max_length=_LONG)
    category: str | None = Field(default=None, max_length=2_000)


def _error(exc: Exception) -> ApiError:
    if isinstance(exc, TemplateForbidden):
        return ApiError(403, "forbidden", str(exc))
    if isinstance(exc, TemplateNotFound):
        return ApiError(404, "not_found", str(exc))
    return ApiError(400, "invalid_template", str(exc))


def _out(template: TemplateView, user: Signed) -> dict[str, Any]:
    body = template.to_dict()
    body["can_edit"] = user.user.role == "admin" if template.shared else True
    return body


@router.get("")
async def list_templates(runtime: RuntimeDep, user: CurrentUser) -> dict[str, Any]:
    """The templates this user sees (shared and their own) and the categories in use."""
    found = await service.visible(runtime.db, user.id)
    categories = sorted({t.category for t in found if t.category}, key=str.lower)
    return {"templates": [_out(t, user) for t in found], "categories": categories}


@router.post("", status_code=201)
async def create_template(
    body: TemplateIn, runtime: RuntimeDep, user: CurrentUser
) -> dict[str, Any]:
    try:
        created = await service.create(
            runtime.db,
            user.user,
            code=body.code,
            title=body.title,
            text=body.text,
            category=body.category,
            shared=body.shared,
        )
    except (TemplateError, TemplateForbidden) as exc:
        raise _error(exc) from None
    return {"template": _out(created, user)}


@router.get("/suggest")
async def suggest(
    runtime: RuntimeDep,
    user: CurrentUser,
    q: Annotated[str, Query(max_length=500)] = "",
    conversation_id: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
    limit: Annotated[int, Query(ge=1, le=service.LIST_ALL)] = 5,
) -> dict[str, Any]:
    """Templates matching what the operator is typing ("/" for all, ``/code`` or words),
    their text filled for ``conversation_id``; what is unknown stays a blank like
    ``[имя]``, listed in ``blanks``, and the workspace will not send it as it is."""
    found = await service.suggest(runtime.db, user.id, q, limit)
    try:
        values = await service.conversation_values(
            runtime.db, conversation_id, user.user, values_from_settings(runtime.settings)
        )
    except TemplateNotFound as exc:
        raise _error(exc) from None
    suggestions = []
    for t in found:
        text = service.fill(t.text, values)
        suggestions.append(
            {
                "id": t.id,
                "code": t.code,
                "title": t.title,
                "category": t.category,
                "text": text,
                "blanks": service.unfilled(text),
                "shared": t.shared,
            }
        )
    return {"suggestions": suggestions}


@router.put("/{template_id}")
async def update_template(
    template_id: IdPath, body: TemplatePatch, runtime: RuntimeDep, user: CurrentUser
) -> dict[str, Any]:
    try:
        updated = await service.update(
            runtime.db,
            user.user,
            template_id,
            code=body.code,
            title=body.title,
            text=body.text,
            category=body.category,
        )
    except (TemplateError, TemplateForbidden, TemplateNotFound) as exc:
        raise _error(exc) from None
    return {"template": _out(updated, user)}


@router.delete("/{template_id}", status_code=204)
async def delete_template(template_id: IdPath, runtime: RuntimeDep, user: CurrentUser) -> Response:
    try:
        await service.delete(runtime.db, user.user, template_id)
    except (TemplateForbidden, TemplateNotFound) as exc:
        raise _error(exc) from None
    return Response(status_code=204)


def render_templates_page(request: Request, user: Signed) -> HTMLResponse:
    """The template page in the workspace's frame and under its CSP (the caller checks
    the sign-in): everyone manages their own templates, admins the shared ones too."""
    runtime = request.app.state.runtime
    context = workspace_pages._user_context(user.user, user.session, runtime)
    return workspace_pages._render(request, "operator_templates.html", context)
