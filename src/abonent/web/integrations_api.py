"""The admins' view of the integrations: outgoing webhooks and Python hooks.

``/api/admin/v1/integrations`` answers what the page ``/operator/integrations`` draws
(static/integrations.js): every configured webhook with its state, backlog and recent
failures, the alerts for those disabled after failing, and the Python hooks the server
loaded. Admins only: the page shows receivers' addresses and failures of the company's
own systems, and re-enabling an endpoint resumes traffic to it.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Sequence
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi import Path as PathParam
from fastapi.encoders import jsonable_encoder
from fastapi.responses import HTMLResponse, Response

from abonent.app import Runtime
from abonent.automation import webhook_log
from abonent.config import WebhookSettings
from abonent.web import workspace_pages
from abonent.web.deps import MAX_ID, Admin, RuntimeDep
from abonent.web.errors import ApiError

log = logging.getLogger(__name__)

router = APIRouter(prefix="/api/admin/v1/integrations", tags=["admin"])
page_router = APIRouter(include_in_schema=False)

WebhookId = Annotated[str, PathParam(pattern=r"^[A-Za-z0-9_-]{1,64}$")]


def _endpoints(runtime: Runtime) -> list[WebhookSettings]:
    return list(runtime.settings.webhooks)


def _endpoint(runtime: Runtime, webhook_id: str) -> WebhookSettings:
    for ep in _endpoints(runtime):
        if ep.id == webhook_id:
            return ep
    raise ApiError(404, "not_found", f"No webhook {webhook_id!r} is configured.")


def _alerts(webhooks: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {"webhook": w["id"], "since": w["disabled_at"], "reason": w["disabled_reason"]}
        for w in webhooks
        if w["state"] == "disabled"
    ]


async def hooks_status(runtime: Runtime) -> dict[str, Any]:
    """The Python hooks' own report (automation/hook_runtime.py), when the server has
    them: a missing or failing report shows as "none loaded" / an error, never a 500."""
    hooks = getattr(runtime, "hooks", None) or runtime.extra.get("hooks")
    status = getattr(hooks, "status", None)
    if status is None:
        return {"available": False, "hooks": [], "error": None}
    try:
        report = status()
        if inspect.isawaitable(report):
            report = await report
        found = jsonable_encoder(list(report))
    except Exception:
        log.exception("the Python hooks could not report their status")
        return {"available": True, "hooks": [], "error": "the hooks could not report"}
    return {"available": True, "hooks": found, "error": None}


@router.get("")
async def integrations(runtime: RuntimeDep, user: Admin) -> dict[str, Any]:
    """Webhooks with their state and recent failures, alerts, and the Python hooks."""
    webhooks = await webhook_log.overview(runtime.db, _endpoints(runtime))
    return {"webhooks": webhooks, "alerts": _alerts(webhooks), "hooks": await hooks_status(runtime)}


@router.get("/alerts")
async def alerts(runtime: RuntimeDep, user: Admin) -> dict[str, Any]:
    """Only the alerts: what the navigation's badge asks on every workspace page."""
    webhooks = await webhook_log.overview(runtime.db, _endpoints(runtime))
    return {"alerts": _alerts(webhooks)}


@router.get("/webhooks/{webhook_id}/deliveries")
async def webhook_deliveries(
    runtime: RuntimeDep,
    user: Admin,
    webhook_id: WebhookId,
    status: Literal["pending", "delivering", "delivered", "failed"] | None = None,
    before: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> dict[str, Any]:
    """The endpoint's delivery log, newest first; ``before`` (an ``id``) pages back."""
    ep = _endpoint(runtime, webhook_id)
    rows = await webhook_log.deliveries(
        runtime.db, ep.id, status=status, before=before, limit=limit
    )
    return {"webhook": ep.id, "deliveries": rows}


@router.post("/webhooks/{webhook_id}/enable")
async def enable_webhook(runtime: RuntimeDep, user: Admin, webhook_id: WebhookId) -> dict[str, Any]:
    """Re-enable an endpoint disabled after failing: what waited is delivered now."""
    ep = _endpoint(runtime, webhook_id)
    if not ep.enabled:
        raise ApiError(
            409, "off_in_config", f"Webhook {ep.id!r} is switched off in the configuration."
        )
    resumed = await webhook_log.reenable(runtime.db, ep.id)
    log.info("webhook %s re-enabled by user %s; %d deliveries resume", ep.id, user.id, resumed)
    sender = getattr(runtime, "webhooks", None)
    if sender is not None:
        sender.wake()
    webhooks = await webhook_log.overview(runtime.db, [ep])
    return {"webhook": webhooks[0], "resumed": resumed}


@page_router.get("/operator/integrations", response_class=HTMLResponse)
async def integrations_page(request: Request, runtime: RuntimeDep) -> Response:
    """The page is a shell filled by static/integrations.js from the API above."""
    found = await workspace_pages._signed(request, runtime)
    if found is None:
        return workspace_pages._to_login(request)
    user, user_session = found
    context = workspace_pages._user_context(user, user_session, runtime)
    if not context["is_admin"]:
        context["message"] = "Эта страница доступна только администраторам."
        return workspace_pages._render(request, "operator_base.html", context, status_code=403)
    return workspace_pages._render(request, "operator_integrations.html", context)
