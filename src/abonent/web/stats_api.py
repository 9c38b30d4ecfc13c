"""The statistics over HTTP: JSON reports and CSV/XLSX exports.

The same endpoints are served twice: under ``/api/stats/v1`` for BI tools and scripts,
with the operator API token (``Authorization: Bearer …``), and under
``/api/workspace/v1/stats`` for the reports page, with a supervisor's session. Both
read the rollups through one ``Stats`` object, so the page, an export and a BI tool
always agree.

A period is ``period=today|yesterday|7d|30d|90d`` or ``from=YYYY-MM-DD&to=YYYY-MM-DD``
(local days, both included); filters are ``channel`` (a platform: ``telegram`` …) or
``channel_id``, ``operator`` (a user id) and ``group``.
"""

from __future__ import annotations

import asyncio
from datetime import date
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query
from fastapi.responses import Response, StreamingResponse

from abonent.analytics.definitions import FIGURES
from abonent.analytics.exports import KINDS, XLSX_MAX_ROWS, stream_csv, table, to_xlsx
from abonent.analytics.reports import Period, PeriodError, Scope, named_period
from abonent.clock import utcnow
from abonent.web.deps import MAX_ID, OperatorAccess, RuntimeDep, require_role
from abonent.web.errors import ApiError

token_router = APIRouter(prefix="/api/stats/v1", tags=["statistics"], dependencies=[OperatorAccess])
session_router = APIRouter(
    prefix="/api/workspace/v1/stats",
    tags=["statistics"],
    dependencies=[Depends(require_role("supervisor"))],
)

PeriodName = Literal["today", "yesterday", "7d", "30d", "90d"]
EVENT_TYPES = (
    "operator.signed_in",
    "operator.signed_out",
    "operator.status",
    "conversation.assigned",
    "conversation.transferred",
    "conversation.returned_to_bot",
    "conversation.closed",
)


async def period_of(
    runtime: RuntimeDep,
    period: Annotated[PeriodName | None, Query(description="A named period")] = None,
    start: Annotated[date | None, Query(alias="from", description="First day, YYYY-MM-DD")] = None,
    end: Annotated[date | None, Query(alias="to", description="Last day, included")] = None,
) -> Period:
    tz = runtime.settings.company.tz
    try:
        if start is not None or end is not None:
            if start is None or end is None:
                raise PeriodError("give both 'from' and 'to', or a named 'period'")
            return Period(start, end, tz)
        return named_period(period or "7d", utcnow().astimezone(tz).date(), tz)
    except PeriodError as exc:
        raise ApiError(422, "bad_period", str(exc)) from exc


async def scope_of(
    runtime: RuntimeDep,
    channel: Annotated[str | None, Query(max_length=32, description="A platform")] = None,
    channel_id: Annotated[str | None, Query(max_length=64)] = None,
    operator: Annotated[int | None, Query(ge=1, le=MAX_ID, description="A user id")] = None,
    group: Annotated[str | None, Query(max_length=64)] = None,
) -> Scope:
    try:
        return await runtime.stats.scope(
            channel_type=channel or None,
            channel_id=channel_id or None,
            user_id=operator,
            group=group or None,
        )
    except PeriodError as exc:
        raise ApiError(422, "bad_filter", str(exc)) from exc


def _known_types(types: list[str] | None) -> None:
    unknown = sorted(set(types or ()) - set(EVENT_TYPES))
    if unknown:
        raise ApiError(
            422, "bad_filter", f"unknown event type {unknown[0]!r}", known=list(EVENT_TYPES)
        )


PeriodDep = Annotated[Period, Depends(period_of)]
ScopeDep = Annotated[Scope, Depends(scope_of)]


async def definitions() -> dict[str, Any]:
    """What each figure counts: the label the page shows and its definition."""
    return {
        "figures": {
            key: {"label": f.label, "definition": f.ru, "definition_en": f.en}
            for key, f in FIGURES.items()
        }
    }


async def summary(runtime: RuntimeDep, period: PeriodDep) -> dict[str, Any]:
    """The figures of ``abonent stats summary`` (whole installation, no filters)."""
    return await runtime.stats.summary(period)


async def report(runtime: RuntimeDep, period: PeriodDep, scope: ScopeDep) -> dict[str, Any]:
    """Every section of the reports page: traffic, the bot, operators, queue, satisfaction."""
    return await runtime.stats.report(period, scope)


async def timeline(runtime: RuntimeDep, period: PeriodDep, scope: ScopeDep) -> dict[str, Any]:
    """Operators' online and break intervals per day."""
    return await runtime.stats.timeline(period, scope)


async def operator_events(
    runtime: RuntimeDep,
    period: PeriodDep,
    scope: ScopeDep,
    type: Annotated[list[str] | None, Query(description="Event types to keep")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
) -> dict[str, Any]:
    """The operators' events log (sign-in, sign-out, statuses, assignments, transfers …)."""
    _known_types(type)
    return await runtime.stats.operator_log(
        period, scope, types=type or (), limit=limit, offset=offset
    )


async def conversations(
    runtime: RuntimeDep,
    period: PeriodDep,
    scope: ScopeDep,
    topic: Annotated[str | None, Query(max_length=64)] = None,
    handed_over: bool | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
) -> dict[str, Any]:
    """Conversations started in the period, one row each: the drill-down behind a figure."""
    return await runtime.stats.conversations(
        period, scope, topic=topic or None, handed_over=handed_over, limit=limit, offset=offset
    )


async def series(
    runtime: RuntimeDep,
    period: PeriodDep,
    scope: ScopeDep,
    granularity: Literal["day", "hour"] = "day",
) -> dict[str, Any]:
    """The main counters, one row per day or per hour."""
    return {
        "period": period.as_dict(),
        "granularity": granularity,
        "rows": await runtime.stats.series(period, scope, hourly=granularity == "hour"),
    }


async def export(
    runtime: RuntimeDep,
    period: PeriodDep,
    scope: ScopeDep,
    kind: str,
    fmt: Literal["csv", "xlsx"],
    topic: Annotated[str | None, Query(max_length=64)] = None,
    handed_over: bool | None = None,
    type: Annotated[list[str] | None, Query(description="Event types (events)")] = None,
) -> Response:
    """One report as a file: daily, hourly, conversations, operators, timeline, events,
    topics, links, channels, slowest. ``topic``/``handed_over`` narrow the
    conversations as a drill-down does, ``type`` the events."""
    if kind not in KINDS:
        raise ApiError(404, "unknown_report", f"No report {kind!r}.", known=list(KINDS))
    _known_types(type)
    filters: dict[str, Any] = {
        "topic": topic or None,
        "handed_over": handed_over,
        "types": type or (),
    }
    name = f"abonent-{kind}-{period.start.isoformat()}-{period.end.isoformat()}.{fmt}"
    headers = {"Content-Disposition": f'attachment; filename="{name}"'}
    if fmt == "csv":
        # Streamed: the conversations of a quarter are hundreds of thousands of rows.
        pieces = stream_csv(runtime.stats, kind, period, scope, **filters)
        return StreamingResponse(pieces, media_type="text/csv; charset=utf-8", headers=headers)
    columns, rows = await table(
        runtime.stats, kind, period, scope, limit=XLSX_MAX_ROWS + 1, **filters
    )
    if len(rows) > XLSX_MAX_ROWS:
        raise ApiError(
            422,
            "too_large",
            f"More than {XLSX_MAX_ROWS} rows: download CSV, or choose a shorter period.",
            limit=XLSX_MAX_ROWS,
        )
    # Writing the workbook is CPU work: off the event loop, so other requests go on.
    workbook = await asyncio.to_thread(to_xlsx, columns, rows, kind)
    return Response(
        workbook,
        media_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        headers=headers,
    )


for _router in (token_router, session_router):
    _router.add_api_route("/definitions", definitions, methods=["GET"])
    _router.add_api_route("/summary", summary, methods=["GET"])
    _router.add_api_route("/report", report, methods=["GET"])
    _router.add_api_route("/timeline", timeline, methods=["GET"])
    _router.add_api_route("/events", operator_events, methods=["GET"])
    _router.add_api_route("/conversations", conversations, methods=["GET"])
    _router.add_api_route("/series", series, methods=["GET"])
    _router.add_api_route("/export/{kind}.{fmt}", export, methods=["GET"], response_class=Response)
