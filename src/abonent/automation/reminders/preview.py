"""``abonent reminders preview``: the audience the campaign would reach, without sending.

It runs the same audience code as the sends, at this moment: who gets it in which
channel and how (text or WhatsApp template), who is skipped and why, and the first
rendered texts."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime

from abonent.automation.reminders.audience import Audience, Recipient
from abonent.automation.reminders.sender import render
from abonent.clock import utcnow
from abonent.db.models import ReminderCampaign
from abonent.logs import mask_pii

SAMPLES = 3


@dataclass
class Preview:
    total: int = 0
    channels: Counter[str] = field(default_factory=Counter)
    skipped: Counter[str] = field(default_factory=Counter)
    samples: list[tuple[str, str, str]] = field(default_factory=list)  # channel, mode, text
    # Whose texts the samples are: the workspace audits that an admin saw them.
    sample_contacts: list[int] = field(default_factory=list)

    @property
    def reached(self) -> int:
        return sum(self.channels.values())

    def as_dict(self) -> dict[str, object]:
        return {
            "audience": self.total,
            "reached": self.reached,
            "channels": dict(self.channels),
            "skipped": dict(self.skipped),
            "samples": [{"channel": c, "mode": m, "text": t} for c, m, t in self.samples],
        }


async def preview(
    audience: Audience, campaign: ReminderCampaign, payment_link: str, now: datetime | None = None
) -> Preview:
    found = Preview()
    async for page in audience.pages(campaign, now or utcnow()):
        for r in page:
            found.total += 1
            if r.skip:
                found.skipped[r.skip] += 1
                continue
            assert r.identity is not None
            found.channels[f"{r.identity.channel_id} ({r.channel_type}, {r.mode})"] += 1
            if len(found.samples) < SAMPLES:
                found.samples.append(_sample(campaign, r, payment_link))
                found.sample_contacts.append(r.contact_id)
    return found


def _sample(campaign: ReminderCampaign, r: Recipient, link: str) -> tuple[str, str, str]:
    assert r.identity is not None
    text = render(campaign.text, {**r.values, "link": link})
    # Samples are printed on an admin's terminal: account numbers and phones masked.
    return r.identity.channel_id, r.mode or "", mask_pii(text)
