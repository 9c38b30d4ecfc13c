"""The admins' page for reminder campaigns, and the campaigns' figures for the reports.

``/api/admin/v1/reminders`` answers what ``/operator/reminders`` draws
(static/reminders.js): every campaign with its live progress, creating one with the
CLI's fields, its preview, and start / pause / resume. Admins only: a campaign writes
to thousands of customers at once. The figures of ``analytics.campaigns`` (delivered,
opted out, clicks, readings that followed) are read by supervisors on the reports
page from ``/api/workspace/v1/reminders/stats``. These routes change what the
reminders' loop reads (a campaign's row) and read what it writes; they send nothing.
"""

from __future__ import annotations

import logging
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Request
from fastapi import Path as PathParam
from fastapi.responses import HTMLResponse, Response
from pydantic import BaseModel, Field

from abonent.analytics.campaigns import campaign_stats
from abonent.app import Runtime
from abonent.automation.reminders import campaigns
from abonent.automation.reminders.audience import Audience
from abonent.automation.reminders.campaigns import OPEN, CampaignError
from abonent.automation.reminders.preview import preview
from abonent.db.models import ReminderCampaign
from abonent.operators.card import audit
from abonent.web import workspace_pages
from abonent.web.deps import MAX_ID, Admin, RuntimeDep, Supervisor
from abonent.web.errors import ApiError

log = logging.getLogger(__name__)

router = APIRouter(prefix="/api/admin/v1/reminders", tags=["admin"])
stats_router = APIRouter(prefix="/api/workspace/v1/reminders", tags=["statistics"])
page_router = APIRouter(include_in_schema=False)

CampaignId = Annotated[int, PathParam(ge=1, le=MAX_ID)]
AUDIT_PREVIEW = "reminders.preview"


class NewCampaign(BaseModel):
    """The fields of ``abonent reminders create``."""

    name: str = Field(min_length=1, max_length=100)
    kind: Literal["payment_due", "readings_window", "custom"] = "payment_due"
    text: str | None = Field(default=None, max_length=4000)
    # Company time, «YYYY-MM-DDTHH:MM»; none: as soon as it is started.
    start_at: datetime | None = None
    schedule: Literal["once", "monthly", "cron"] = "once"
    cron: str | None = Field(default=None, max_length=100)
    min_balance: Decimal | None = Field(default=None, ge=0, le=Decimal("1000000000"))
    due_within_days: int | None = Field(default=None, ge=0, le=3650)
    channel: str | None = Field(default=None, max_length=64)
    quiet_hours: str | None = Field(default=None, max_length=16)
    whatsapp_template: str | None = Field(default=None, max_length=512)


def _view(row: ReminderCampaign, counts: dict[str, int], runtime: Runtime) -> dict[str, Any]:
    tz = runtime.settings.company.tz
    return {
        "id": row.id,
        "name": row.name,
        "kind": row.kind,
        "state": row.state,
        "schedule": row.schedule,
        "cron": row.cron,
        "schedule_text": campaigns.describe_schedule(row),
        "start_at": row.start_at.astimezone(tz).isoformat(),
        "quiet_hours": row.quiet_hours,
        "channel": row.channel,
        "min_balance": None if row.min_balance is None else str(row.min_balance),
        "due_within_days": row.due_within_days,
        "text": row.text,
        "period": row.expanded_period,
        "progress": {
            "sent": counts.get("sent", 0),
            "skipped": counts.get("skipped", 0),
            "failed": counts.get("failed", 0) + counts.get("interrupted", 0),
            "remaining": sum(counts.get(s, 0) for s in OPEN),
        },
    }


async def _campaign(runtime: Runtime, campaign_id: int) -> ReminderCampaign:
    try:
        return await campaigns.by_id(runtime.db, campaign_id)
    except CampaignError as exc:
        raise ApiError(404, "not_found", str(exc)) from exc


@router.get("")
async def list_campaigns(runtime: RuntimeDep, user: Admin) -> dict[str, Any]:
    """Every campaign with its progress now (the page asks again every few seconds)."""
    rows = await campaigns.all_campaigns(runtime.db)
    counts = await campaigns.progress_all(runtime.db)
    return {
        "campaigns": [_view(r, counts.get(r.id, {}), runtime) for r in rows],
        "defaults": {
            "quiet_hours": runtime.settings.reminders.quiet_hours,
            "channels": sorted({c.type for c in runtime.channels.values()} - {"webchat"}),
        },
    }


@router.post("", status_code=201)
async def create_campaign(runtime: RuntimeDep, user: Admin, body: NewCampaign) -> dict[str, Any]:
    """A draft, as ``abonent reminders create`` makes it; it sends nothing until started."""
    start = body.start_at
    if start is not None and start.tzinfo is None:
        start = start.replace(tzinfo=runtime.settings.company.tz)
    try:
        row = await campaigns.create(
            runtime.db,
            name=body.name.strip(),
            kind=body.kind,
            text=body.text,
            start_at=start,
            schedule=body.schedule,
            cron=body.cron,
            min_balance=body.min_balance,
            due_within_days=body.due_within_days,
            channel=(body.channel or "").strip() or None,
            quiet_hours=(
                body.quiet_hours
                if body.quiet_hours is not None
                else runtime.settings.reminders.quiet_hours
            ),
            whatsapp_template=body.whatsapp_template,
        )
    except CampaignError as exc:
        raise ApiError(422, "invalid_campaign", str(exc)) from exc
    log.info("reminder campaign %s created by user %s", row.id, user.id)
    return {"campaign": _view(row, {}, runtime)}


@router.get("/{campaign_id}/preview")
async def preview_campaign(
    runtime: RuntimeDep, user: Admin, campaign_id: CampaignId
) -> dict[str, Any]:
    """The audience per channel, the skipped and why, three rendered samples: computed
    now by the code the sends use. The samples name customers: each view is audited."""
    row = await _campaign(runtime, campaign_id)
    audience = Audience(
        runtime.db,
        runtime.billing,
        {cid: ch.type for cid, ch in runtime.channels.items()},
        runtime.settings.reminders,
        runtime.settings.company.tz,
    )
    found = await preview(audience, row, runtime.settings.company.links.get("payment", ""))
    for contact_id in found.sample_contacts:
        await audit(runtime.db, user.id, AUDIT_PREVIEW, contact_id, None)
    return {"campaign": row.id, "preview": found.as_dict()}


@router.post("/{campaign_id}/{action}")
async def move_campaign(
    runtime: RuntimeDep,
    user: Admin,
    campaign_id: CampaignId,
    action: Literal["start", "pause", "resume"],
) -> dict[str, Any]:
    row = await _campaign(runtime, campaign_id)
    try:
        row = await campaigns.move(runtime.db, row.name, action)
    except CampaignError as exc:
        raise ApiError(409, "not_allowed", str(exc)) from exc
    log.info("reminder campaign %s: %s by user %s", row.id, action, user.id)
    reminders = getattr(runtime, "reminders", None)
    if reminders is not None:
        reminders.wake()
    counts = await campaigns.progress_all(runtime.db)
    return {"campaign": _view(row, counts.get(row.id, {}), runtime)}


@stats_router.get("/stats")
async def reminders_stats(runtime: RuntimeDep, user: Supervisor) -> dict[str, Any]:
    """Per campaign: sent, delivered, failed, skipped, remaining, opted out after it,
    link clicks and readings that followed within ``followup_days``."""
    found = await campaign_stats(runtime.db)
    return {
        "followup_days": runtime.settings.reminders.followup_days,
        "campaigns": [s.as_dict() for s in found],
    }


@page_router.get("/operator/reminders", response_class=HTMLResponse)
async def reminders_page(request: Request, runtime: RuntimeDep) -> Response:
    """A shell filled by static/reminders.js from the API above."""
    found = await workspace_pages._signed(request, runtime)
    if found is None:
        return workspace_pages._to_login(request)
    user, user_session = found
    context = workspace_pages._user_context(user, user_session, runtime)
    if not context["is_admin"]:
        context["message"] = "Эта страница доступна только администраторам."
        return workspace_pages._render(request, "operator_base.html", context, status_code=403)
    return workspace_pages._render(request, "operator_reminders.html", context)
