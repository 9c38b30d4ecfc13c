"""Reminder campaigns' statistics: what followed each reminder, from the event log.

A durable consumer (core.eventlog) like the statistics rollup, so each fact counts
exactly once whatever crashes and however many processes run. It keeps one row per
reminder handed to a platform (``reminder_outcomes``) and marks on it what the
customer did next:

* ``reminder.sent`` / ``reminder.failed``: the platform accepted it (delivered) or
  refused it for good (or the process died during the call);
* ``link.clicked`` of a link with the topic ``reminder:<campaign id>``: a click on that
  campaign's payment link in the same conversation;
* ``reminder.opted_out`` within ``followup_days`` after a reminder: the customer turned
  reminders off because of it;
* ``readings.submitted`` for the reminded account within ``followup_days``: the
  reminder was followed. Billing publishes no payments (the balance is only read when
  asked), so submitted readings are the outcome the log can show.

Skipped and remaining reminders are not events: they are read from ``reminder_sends``,
the campaign's own table, when the figures are asked for.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import case, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from abonent.core import events as ev
from abonent.core.eventlog import StoredEvent
from abonent.db.models import ReminderCampaign, ReminderOutcome, ReminderSend
from abonent.db.session import Database

CONSUMER = "reminder_stats"
LINK_TOPIC = "reminder:"
_OPEN = ("queued", "claimed", "sending")


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


class ReminderStatsConsumer:
    name = CONSUMER
    # Reports may be a few seconds behind; larger batches cost less per event.
    every = 5.0

    def __init__(self, followup_days: int = 7) -> None:
        self.window = timedelta(days=followup_days)

    async def apply(self, conn: AsyncConnection, events: list[StoredEvent]) -> None:
        outcomes = [e for e in events if e.type in (ev.REMINDER_SENT, ev.REMINDER_FAILED)]
        if outcomes:
            await self._outcomes(conn, outcomes)
        # The rest in log order: each only marks rows the reminders above wrote first.
        for e in events:
            if e.type == ev.LINK_CLICKED:
                await self._clicked(conn, e)
            elif e.type == ev.REMINDER_OPTED_OUT:
                await self._opted_out(conn, e)
            elif e.type == ev.READINGS_SUBMITTED:
                await self._followed(conn, e)

    async def _outcomes(self, conn: AsyncConnection, found: list[StoredEvent]) -> None:
        send_ids = [i for e in found if (i := _int(e.data.get("send_id"))) is not None]
        if not send_ids:
            return
        # The reminded account is the send's (events carry ids, not account numbers).
        accounts = dict(
            (
                await conn.execute(
                    select(ReminderSend.id, ReminderSend.account_number).where(
                        ReminderSend.id.in_(send_ids)
                    )
                )
            ).all()
        )
        rows: dict[int, dict[str, Any]] = {}
        for e in found:
            send_id = _int(e.data.get("send_id"))
            campaign_id = _int(e.data.get("campaign_id"))
            contact_id = _int(e.data.get("contact_id"))
            if send_id is None or campaign_id is None or contact_id is None:
                continue
            rows[send_id] = {
                "send_id": send_id,
                "campaign_id": campaign_id,
                "contact_id": contact_id,
                "account_number": accounts.get(send_id),
                "conversation_id": _int(e.data.get("conversation_id")),
                "status": "delivered" if e.type == ev.REMINDER_SENT else "failed",
                "at": e.occurred_at,
                "clicks": 0,
            }
        if not rows:
            return
        campaigns = set(
            (
                await conn.scalars(
                    select(ReminderCampaign.id).where(
                        ReminderCampaign.id.in_({r["campaign_id"] for r in rows.values()})
                    )
                )
            ).all()
        )
        kept = [r for r in rows.values() if r["campaign_id"] in campaigns]  # not deleted
        if not kept:
            return
        insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
        stmt = insert(ReminderOutcome).on_conflict_do_nothing(index_elements=["send_id"])
        await conn.execute(stmt, kept)

    async def _clicked(self, conn: AsyncConnection, e: StoredEvent) -> None:
        topic = str(e.data.get("intent") or "")
        conversation_id = _int(e.data.get("conversation_id")) or e.conversation_id
        if not topic.startswith(LINK_TOPIC) or conversation_id is None:
            return
        try:
            campaign_id = int(topic[len(LINK_TOPIC) :])
        except ValueError:
            return
        latest = (
            select(ReminderOutcome.send_id)
            .where(
                ReminderOutcome.campaign_id == campaign_id,
                ReminderOutcome.conversation_id == conversation_id,
                ReminderOutcome.status == "delivered",
                ReminderOutcome.at <= e.occurred_at,
            )
            .order_by(ReminderOutcome.at.desc())
            .limit(1)
            .scalar_subquery()
        )
        await conn.execute(
            update(ReminderOutcome)
            .where(ReminderOutcome.send_id == latest)
            .values(
                clicks=ReminderOutcome.clicks + 1,
                clicked_at=func.coalesce(ReminderOutcome.clicked_at, e.occurred_at),
            )
        )

    async def _opted_out(self, conn: AsyncConnection, e: StoredEvent) -> None:
        contact_id = _int(e.data.get("contact_id"))
        if contact_id is None:
            return
        await conn.execute(
            update(ReminderOutcome)
            .where(
                ReminderOutcome.contact_id == contact_id,
                ReminderOutcome.status == "delivered",
                ReminderOutcome.at <= e.occurred_at,
                ReminderOutcome.at >= e.occurred_at - self.window,
                ReminderOutcome.opted_out_at.is_(None),
            )
            .values(opted_out_at=e.occurred_at)
        )

    async def _followed(self, conn: AsyncConnection, e: StoredEvent) -> None:
        account = str(e.data.get("account") or "")
        if not account:
            return
        await conn.execute(
            update(ReminderOutcome)
            .where(
                ReminderOutcome.account_number == account,
                ReminderOutcome.status == "delivered",
                ReminderOutcome.at <= e.occurred_at,
                ReminderOutcome.at >= e.occurred_at - self.window,
                ReminderOutcome.followed_at.is_(None),
            )
            .values(followed_at=e.occurred_at)
        )


@dataclass(frozen=True)
class CampaignStats:
    campaign_id: int
    name: str
    kind: str
    state: str
    sent: int  # handed to the platform: delivered + failed
    delivered: int  # the platform accepted it
    failed: int
    skipped: int
    remaining: int
    opted_out: int
    link_clicks: int
    clicked: int  # recipients who clicked at least once
    followed: int  # readings submitted for the reminded account within the window

    def as_dict(self) -> dict[str, Any]:
        return {
            "campaign_id": self.campaign_id,
            "campaign": self.name,
            "kind": self.kind,
            "state": self.state,
            "sent": self.sent,
            "delivered": self.delivered,
            "failed": self.failed,
            "skipped": self.skipped,
            "remaining": self.remaining,
            "opted_out": self.opted_out,
            "link_clicks": self.link_clicks,
            "clicked": self.clicked,
            "followed": self.followed,
        }


async def campaign_stats(db: Database, names: list[str] | None = None) -> list[CampaignStats]:
    """Every campaign's figures (or those named), oldest first: a few grouped reads
    over the indexed outcome and send tables, whatever the campaigns' size."""
    query = select(
        ReminderCampaign.id, ReminderCampaign.name, ReminderCampaign.kind, ReminderCampaign.state
    ).order_by(ReminderCampaign.id)
    if names is not None:
        query = query.where(ReminderCampaign.name.in_(names))
    delivered = ReminderOutcome.status == "delivered"
    async with db.session() as session:
        found = (await session.execute(query)).all()
        ids = [r[0] for r in found]
        if not ids:
            return []
        outcome = {
            r[0]: r[1:]
            for r in (
                await session.execute(
                    select(
                        ReminderOutcome.campaign_id,
                        func.count(),
                        func.sum(case((delivered, 1), else_=0)),
                        func.sum(ReminderOutcome.clicks),
                        func.count(ReminderOutcome.clicked_at),
                        func.count(ReminderOutcome.opted_out_at),
                        func.count(ReminderOutcome.followed_at),
                    )
                    .where(ReminderOutcome.campaign_id.in_(ids))
                    .group_by(ReminderOutcome.campaign_id)
                )
            ).all()
        }
        sends: dict[int, dict[str, int]] = {}
        for campaign_id, status, n in (
            await session.execute(
                select(ReminderSend.campaign_id, ReminderSend.status, func.count())
                .where(
                    ReminderSend.campaign_id.in_(ids),
                    ReminderSend.status.in_(("skipped", *_OPEN)),
                )
                .group_by(ReminderSend.campaign_id, ReminderSend.status)
            )
        ).all():
            sends.setdefault(campaign_id, {})[status] = int(n)
    out: list[CampaignStats] = []
    for campaign_id, name, kind, state in found:
        total, ok, clicks, clicked, opted, followed = outcome.get(campaign_id, (0,) * 6)
        counts = sends.get(campaign_id, {})
        out.append(
            CampaignStats(
                campaign_id=campaign_id,
                name=name,
                kind=kind,
                state=state,
                sent=int(total or 0),
                delivered=int(ok or 0),
                failed=int(total or 0) - int(ok or 0),
                skipped=counts.get("skipped", 0),
                remaining=sum(counts.get(s, 0) for s in _OPEN),
                opted_out=int(opted or 0),
                link_clicks=int(clicks or 0),
                clicked=int(clicked or 0),
                followed=int(followed or 0),
            )
        )
    return out
