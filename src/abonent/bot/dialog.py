"""The per-turn dialog context handed to flow handlers.

State lives in the conversation row as ``{"flow", "step", "data", "misses"}``;
handlers read and change it through this object and add replies to it. A handler is
a small function of one step; which step follows which is data in each flow module.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from abonent.billing.base import Billing
from abonent.clock import utcnow
from abonent.config import Settings
from abonent.core.contacts import ContactDirectory
from abonent.core.events import Event
from abonent.core.pipeline import Turn
from abonent.core.types import Button, Reply
from abonent.db.session import Database
from abonent.nlu.base import Understander
from abonent.nlu.kb import KnowledgeBase


@dataclass
class Services:
    settings: Settings
    billing: Billing
    understander: Understander
    contacts: ContactDirectory
    db: Database
    # The knowledge base in use now (it is swapped when editors change it), if any.
    kb: Callable[[], KnowledgeBase | None] = lambda: None
    # Placeholder values for answers, from the company profile.
    placeholders: dict[str, str] = field(default_factory=dict)


@dataclass
class Dialog:
    turn: Turn
    services: Services
    flow: str | None = None
    step: str | None = None
    data: dict[str, Any] = field(default_factory=dict)
    misses: int = 0
    replies: list[Reply] = field(default_factory=list)
    handoff: bool = False
    meta: dict[str, Any] = field(default_factory=dict)
    events: list[Event] = field(default_factory=list)

    @classmethod
    def from_turn(cls, turn: Turn, services: Services) -> Dialog:
        state = turn.state or {}
        return cls(
            turn=turn,
            services=services,
            flow=state.get("flow"),
            step=state.get("step"),
            data=dict(state.get("data") or {}),
            misses=int(state.get("misses") or 0),
        )

    def state(self) -> dict[str, Any]:
        if self.flow is None:
            return {"misses": self.misses} if self.misses else {}
        return {"flow": self.flow, "step": self.step, "data": self.data, "misses": self.misses}

    @property
    def settings(self) -> Settings:
        return self.services.settings

    def now(self) -> datetime:
        return utcnow().astimezone(self.settings.company.tz)

    def today(self) -> date:
        return self.now().date()

    def record(self, kind: str, **data: Any) -> None:
        """A fact of this turn (core.events), written in the turn's transaction."""
        base: dict[str, Any] = {
            "conversation_id": self.turn.conversation_id,
            "channel_id": self.turn.channel_id,
        }
        if self.turn.message_id is not None:
            base["message_id"] = self.turn.message_id
        self.events.append(Event(kind, {**base, **data}))

    def say(self, text: str, *buttons: Button) -> None:
        self.replies.append(Reply(text=text, buttons=tuple(buttons)))

    def goto(self, flow: str, step: str) -> None:
        self.flow, self.step = flow, step

    def end(self) -> None:
        self.flow, self.step, self.data = None, None, {}

    def fmt(self, template: str, **values: Any) -> str:
        """Fill a text with the company's details and the given values."""
        company = self.settings.company
        return template.format(
            company=company.name,
            hours=company.working_hours.describe(),
            emergency=company.emergency_phone,
            call_center=company.call_center_phone,
            length=self.settings.billing.account_length,
            **values,
        )
