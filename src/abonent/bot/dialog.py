"""The per-turn dialog context handed to flow handlers.

State lives in the conversation row as ``{"flow", "step", "data", "misses"}``;
handlers read and change it through this object and add replies to it. A handler is
a small function of one step; which step follows which is data in each flow module,
and so is what an answer to each waiting step looks like (``Expect``): the engine
uses it to tell an attempt at the step from a question asked in the middle of it.

Everything said in one turn is one reply made of parts (a topic's answer, the offer
to go on, a step's prompt): ``compose`` makes it show each button once, and the links
of one turn are tracked once per address (``links``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from typing import TYPE_CHECKING, Any, Literal

from abonent.billing.base import Billing
from abonent.bot.texts import P_MENU
from abonent.clock import utcnow
from abonent.config import Settings
from abonent.core.contacts import ContactDirectory
from abonent.core.events import Event
from abonent.core.pipeline import Turn
from abonent.core.types import Button, Reply
from abonent.db.session import Database
from abonent.nlu.base import Understander
from abonent.nlu.kb import KnowledgeBase

if TYPE_CHECKING:
    from abonent.automation.hook_checks import ReadingsChecks

# How a free-text message relates to the step waiting for input:
# "attempt" — it is the step's input (right or wrong: a wrong one counts as a failure);
# "maybe"   — it could be either (a name, a word or two): a question the consultant is
#             sure of is answered, anything else goes to the step;
# "aside"   — clearly not the step's input: the consultant answers, the step waits.
Shape = Literal["attempt", "maybe", "aside"]


@dataclass(frozen=True)
class Expect:
    """What an answer to one waiting step looks like, declared beside the step.

    ``shape`` judges the text alone (cheap, no model); ``hint`` ends the sentence that
    offers to go on after a question was answered («…, введите номер лицевого счёта»)."""

    shape: Callable[[str, Settings], Shape]  # bot.attempts.Judge
    hint: str


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
    # The company's own readings checks (automation.hooks): a message vetoes a submission.
    readings_checks: ReadingsChecks | None = None


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
    # Links already tracked in this turn: address → the tracked address sent instead.
    links: dict[str, str] = field(default_factory=dict)

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
        self.replies.append(Reply(text=text, buttons=unique_buttons(buttons)))

    def add_to_last(self, text: str, *buttons: Button) -> None:
        """Continue the last bubble (a topic's answer, then the offer to go on): one
        message, so clients that show only the last message's buttons show them all."""
        if not self.replies:
            self.say(text, *buttons)
            return
        last = self.replies[-1]
        self.replies[-1] = replace(
            last,
            text=f"{last.text}\n\n{text}" if last.text else text,
            buttons=unique_buttons((*last.buttons, *buttons)),
        )

    def goto(self, flow: str, step: str) -> None:
        self.flow, self.step = flow, step

    def end(self) -> None:
        self.flow, self.step, self.data = None, None, {}

    def fmt(self, template: str, **values: Any) -> str:
        """Fill a text with the company's details and the given values."""
        company = self.settings.company
        return template.format(
            company=company.name,
            # Spelt out only where a text names the hours (it was 1 % of the server's CPU).
            hours=company.working_hours.describe() if "{hours" in template else "",
            emergency=company.emergency_phone,
            call_center=company.call_center_phone,
            length=self.settings.billing.account_length,
            **values,
        )


def unique_buttons(buttons: Iterable[Button]) -> tuple[Button, ...]:
    """Each payload once, where it first appears; «Меню» (the way out) always last."""
    seen: dict[str, Button] = {}
    for button in buttons:
        seen.setdefault(button.payload, button)
    menu = seen.pop(P_MENU, None)
    return (*seen.values(), menu) if menu is not None else tuple(seen.values())


def compose(replies: list[Reply]) -> list[Reply]:
    """The turn's bubbles as one reply: a button offered again in a later bubble is
    dropped from the earlier one (the latest offer, nearest the input, stays)."""
    later: set[str] = set()
    composed: list[Reply] = []
    for reply in reversed(replies):
        kept = tuple(b for b in unique_buttons(reply.buttons) if b.payload not in later)
        later.update(b.payload for b in kept)
        composed.append(reply if kept == reply.buttons else replace(reply, buttons=kept))
    composed.reverse()
    return composed
