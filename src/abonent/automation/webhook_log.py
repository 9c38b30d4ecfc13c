"""What admins see of the outgoing webhooks, and the one thing they do: re-enable.

Read from the tables the sender keeps (automation/webhooks.py), so every process shows
the same figures; nothing here is kept in memory. A URL is shown by its host only: the
path or query of a receiver's address may carry a token of its own.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import case, func, select, update

from abonent.automation.webhooks import DELIVERED, DELIVERING, FAILED, PENDING, WAITING
from abonent.clock import utcnow
from abonent.config import WebhookSettings
from abonent.db.models import WebhookDelivery, WebhookEndpointState
from abonent.db.session import Database

RECENT_FAILURES = 10


def host_of(url: str) -> str:
    parts = urlsplit(url)
    host = parts.hostname or "?"
    return f"{host}:{parts.port}" if parts.port else host


def _at(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def delivery_view(row: WebhookDelivery) -> dict[str, Any]:
    return {
        "delivery_id": row.delivery_id,
        "event_type": row.event_type,
        "event_id": row.event_id,
        "status": row.status,
        "attempts": row.attempts,
        "created_at": _at(row.created_at),
        "last_attempt_at": _at(row.last_attempt_at),
        "next_attempt_at": _at(row.next_attempt_at) if row.status in WAITING else None,
        "delivered_at": _at(row.delivered_at),
        "last_status_code": row.last_status_code,
        "last_error": row.last_error,
        "last_failure_at": _at(row.last_failure_at),
    }


async def overview(db: Database, endpoints: Sequence[WebhookSettings]) -> list[dict[str, Any]]:
    """Each configured endpoint: its state, backlog, last success and recent failures."""
    if not endpoints:
        return []
    ids = [e.id for e in endpoints]
    day_ago = utcnow() - timedelta(hours=24)
    async with db.session() as session:
        states = {
            s.endpoint_id: s
            for s in await session.scalars(
                select(WebhookEndpointState).where(WebhookEndpointState.endpoint_id.in_(ids))
            )
        }
        d = WebhookDelivery
        counts = {
            r[0]: r[1:]
            for r in await session.execute(
                select(
                    d.endpoint_id,
                    func.sum(case((d.status.in_(WAITING), 1), else_=0)),
                    func.sum(case((d.status == FAILED, 1), else_=0)),
                    func.sum(
                        case(((d.status == DELIVERED) & (d.delivered_at >= day_ago), 1), else_=0)
                    ),
                )
                .where(d.endpoint_id.in_(ids))
                .group_by(d.endpoint_id)
            )
        }
        failures: dict[str, list[dict[str, Any]]] = {}
        for endpoint_id in ids:
            rows = await session.scalars(
                select(d)
                .where(d.endpoint_id == endpoint_id, d.last_failure_at.is_not(None))
                .order_by(d.last_failure_at.desc(), d.id.desc())
                .limit(RECENT_FAILURES)
            )
            failures[endpoint_id] = [delivery_view(r) for r in rows]
    result = []
    for ep in endpoints:
        state = states.get(ep.id)
        waiting, failed, delivered = counts.get(ep.id, (0, 0, 0))
        disabled = state is not None and state.disabled_at is not None
        result.append(
            {
                "id": ep.id,
                "host": host_of(ep.url),
                "events": list(ep.events),
                # off: switched off in the configuration; disabled: by failing (an
                # admin re-enables it here); active: delivering.
                "state": "off" if not ep.enabled else "disabled" if disabled else "active",
                "enabled_in_config": ep.enabled,
                "disabled_at": _at(state.disabled_at) if state else None,
                "disabled_reason": state.disabled_reason if state else None,
                "consecutive_failures": state.consecutive_failures if state else 0,
                "failing_since": _at(state.failing_since) if state else None,
                "last_success_at": _at(state.last_success_at) if state else None,
                "last_failure_at": _at(state.last_failure_at) if state else None,
                "backlog": int(waiting or 0),
                "failed": int(failed or 0),
                "delivered_24h": int(delivered or 0),
                "recent_failures": failures.get(ep.id, []),
            }
        )
    return result


async def deliveries(
    db: Database,
    endpoint_id: str,
    *,
    status: str | None = None,
    before: int | None = None,
    limit: int = 50,
) -> list[dict[str, Any]]:
    """The endpoint's delivery log, newest first (``before``: a page further back)."""
    d = WebhookDelivery
    query = select(d).where(d.endpoint_id == endpoint_id)
    if status is not None:
        query = query.where(d.status == status)
    if before is not None:
        query = query.where(d.id < before)
    async with db.session() as session:
        rows = await session.scalars(query.order_by(d.id.desc()).limit(limit))
        return [{"id": r.id, **delivery_view(r)} for r in rows]


async def reenable(db: Database, endpoint_id: str) -> int:
    """Lift a disabling: the failure streak starts afresh and every waiting delivery is
    due at once, with a new retry window (the time it waited is not held against it).
    Returns how many deliveries were waiting."""
    now = utcnow()
    d = WebhookDelivery
    async with db.write() as conn:
        await conn.execute(
            update(WebhookEndpointState)
            .where(WebhookEndpointState.endpoint_id == endpoint_id)
            .values(
                disabled_at=None,
                disabled_reason=None,
                consecutive_failures=0,
                failing_since=None,
                updated_at=now,
            )
        )
        # A row left "delivering" by a process that died meanwhile is waiting too.
        resumed = await conn.execute(
            update(d)
            .where(
                d.endpoint_id == endpoint_id,
                (d.status == PENDING) | ((d.status == DELIVERING) & (d.locked_until < now)),
            )
            .values(status=PENDING, next_attempt_at=now, first_attempt_at=None)
        )
    return int(resumed.rowcount or 0)
