"""Statistics benchmark: a large utility's history as events, the rollups, every report.

The script makes a fresh migrated database (a SQLite file under /tmp or a scratch
PostgreSQL database), writes ``--days`` days of history at ``--messages-per-day`` into
the ``events`` table exactly as the product records it (the types and ``data`` fields
``analytics.rollup.StatsConsumer`` reads, and the messengers' ``message.delivered``),
then measures:

* the rebuild of the rollups from the whole log (``analytics.rebuild.rebuild``), and a
  partial one from a later day (``--rebuild-from-day``);
* every report of ``analytics.reports.Stats`` and the CSV/XLSX exports over the last 30
  days and the whole history (median of ``--runs`` after a warm-up; goal: 300 ms);
* the database's size, the tables' rows and sizes, the process's peak RSS;
* the rollups' figures against what was generated (a check of the rollups, and that
  a partial rebuild ends where a full one does);
* with ``--compare-load``: ``bench/load.py``'s web-chat throughput of this checkout
  against the same build with its event log switched off (``bench/no_events.py``; or
  ``--before COMMIT``), alternating runs.

    .venv/bin/python bench/stats.py --db sqlite
    .venv/bin/python bench/stats.py --db postgres
    .venv/bin/python bench/stats.py --db sqlite --load-only --compare-load

See bench/README.md for what each printed figure means. It prints figures; it asserts
nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import bisect
import functools
import json
import math
import os
import random
import resource
import shlex
import sqlite3
import statistics
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from datetime import time as dtime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg  # type: ignore[import-untyped]
from sqlalchemy import func, insert, make_url, select, text, update

from abonent.analytics.exports import XLSX_MAX_ROWS, stream_csv, table, to_xlsx
from abonent.analytics.rebuild import rebuild
from abonent.analytics.reports import CHANNEL_TYPES, Period, Scope, Stats
from abonent.analytics.rollup import StatsConsumer
from abonent.config import Settings
from abonent.core import events as ev
from abonent.core.bus import LocalBus
from abonent.core.eventlog import EventConsumers, read_after, record
from abonent.core.events import Event
from abonent.db.migrate import upgrade
from abonent.db.models import EventRecord, StatsDaily, User
from abonent.db.session import Database

REPO = Path(__file__).resolve().parent.parent
INTENTS_DIR = REPO / "src" / "abonent" / "kb" / "intents"
DEFAULT_PG_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
GOAL_MS = 300.0
BEFORE_EVENT_LOG = "a5cb5eb"  # the last commit without the event log
# --before NO_EVENTS: this checkout, its event log switched off by bench/no_events.py (the
# fair baseline once later commits sped the whole path up: only the events differ).
NO_EVENTS = "no-events"

# --------------------------------------------------------------------------- the world
# Channel ids equal their platform; shares of the conversations.
CHANNEL_SHARES = {
    "webchat": 0.30,
    "telegram": 0.30,
    "whatsapp": 0.16,
    "viber": 0.10,
    "vk": 0.09,
    "max": 0.05,
}
# Local hour → relative number of conversations started: little at night, a peak
# mid-morning, a second one in the evening; weekends start later.
# fmt: off
HOURLY_WEEKDAY = (
    0.6, 0.35, 0.25, 0.2, 0.2, 0.3, 0.8, 2.0, 3.8, 5.5, 6.5, 6.6,
    6.0, 5.6, 5.7, 5.6, 5.3, 5.0, 4.8, 5.0, 4.8, 3.8, 2.5, 1.3,
)
HOURLY_WEEKEND = (
    0.8, 0.5, 0.3, 0.25, 0.2, 0.25, 0.5, 1.0, 2.2, 3.8, 5.0, 5.8,
    6.0, 5.8, 5.5, 5.2, 5.0, 4.8, 4.8, 5.0, 4.8, 4.0, 2.8, 1.6,
)
# fmt: on
WEEKDAY_FACTOR = (1.12, 1.08, 1.04, 1.02, 0.98, 0.72, 0.62)
# Intents that start a flow or are small talk: never drawn as "a question".
NOT_FAQ = {
    "_out_of_scope",
    "greeting",
    "thanks_bye",
    "readings_submit",
    "balance",
    "appeal",
    "operator",
}
FAQ_WEIGHTS = {
    "tariffs": 10,
    "payment_methods": 9,
    "power_outage": 9,
    "readings_deadline": 8,
    "planned_outages": 6,
    "personal_cabinet": 6,
    "bill_receipt": 6,
    "payment_missing": 5,
    "recalculation": 5,
    "meter_replacement": 4,
    "meter_verification": 4,
    "disconnection_debt": 4,
    "contacts": 4,
    "account_number": 3,
    "meter_sealing": 3,
    "benefits": 3,
    "contract": 3,
}
SITE = "https://energosbyt-demo.example"
LINKS = {
    "tariffs": f"{SITE}/tariffs",
    "payment_methods": f"{SITE}/pay",
    "power_outage": f"{SITE}/outages",
    "planned_outages": f"{SITE}/outages/planned",
    "personal_cabinet": "https://lk.energosbyt-demo.example",
    "bill_receipt": "https://lk.energosbyt-demo.example/bills",
    "contacts": f"{SITE}/contacts",
    "meter_verification": f"{SITE}/meters",
    "meter_replacement": f"{SITE}/meters",
    "new_connection": f"{SITE}/connection",
    "vacancies": f"{SITE}/vacancies",
    "procurement": f"{SITE}/procurement",
    "benefits": f"{SITE}/benefits",
}
PLANS = ("single", "single", "two_zone", "three_zone")
RATINGS = (5, 4, 3, 2, 1)
RATING_WEIGHTS = (55, 20, 10, 6, 9)
MAX_CHATS = 3
HANDOFF_SHARE = 0.15
RECOGNISED_SHARE = 0.90
RETURNING_SHARE = 0.35

# What each generated event adds to the figures the 90-day summary shows (the check).
_TRUTH_BY_TYPE = {
    ev.MESSAGE_RECEIVED: "msg.customer",
    ev.TEXT_RECOGNISED: "bot.recognised",
    ev.TEXT_FALLBACK: "bot.fallback",
    ev.READINGS_SUBMITTED: "readings.submitted",
    ev.LINK_SENT: "link.sent",
    ev.PROFANITY_DETECTED: "profanity",
    ev.CSAT_ASKED: "csat.asked",
}

# An event as generated: (time, sequence, type, conversation id, data, extra figures
# with the moment each is credited to). Tuples sort by time, then generation order.
Generated = tuple[float, int, str, int | None, dict[str, Any], tuple[tuple[str, float], ...]]
# A fact of a bot turn: (type, data beyond the conversation, channel and message ids).
Fact = tuple[str, dict[str, Any]]


def intent_ids() -> list[str]:
    ids = []
    for path in sorted(INTENTS_DIR.glob("*.yaml")):
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.startswith("id:"):
                ids.append(line.split(":", 1)[1].strip())
                break
    return ids


@dataclass
class _Conv:
    id: int
    channel: str
    contact: int
    t: float
    started: bool = False  # the customer has written
    first_at: float = 0.0
    handed: bool = False
    closed: bool = False
    misses: int = 0
    base: dict[str, Any] = field(default_factory=dict)


class History:
    """Generates the chat centre's days as events, in time order, day by day."""

    def __init__(
        self,
        days: list[date],
        tz: ZoneInfo,
        messages_per_day: int,
        operators: int,
        seed: int,
        *,
        delivered: bool = True,
    ) -> None:
        self.rng = random.Random(seed)
        self.days = days
        self.tz = tz
        self.delivered = delivered
        self.ops = list(range(1, operators + 1))
        self.pending: list[Generated] = []
        self.seq = 0
        self.last_conv = 0
        self.last_msg = 0
        self.last_appeal = 0
        self.contacts: list[tuple[int, str]] = []  # (contact id, usual channel)
        self.accounts: dict[int, tuple[str, str]] = {}
        self.messages = 0  # customer + bot + operator + system messages made
        self.conversations = 0
        self.avg_messages = 6.0  # per conversation, learnt as days go
        ids = intent_ids()
        known = set(ids)
        self.faq = [i for i in ids if i not in NOT_FAQ]
        self.faq_weights = [FAQ_WEIGHTS.get(i, 1) for i in self.faq]
        self.links = {k: v for k, v in LINKS.items() if k in known}
        channels = list(CHANNEL_SHARES)
        self.channels, self.channel_weights = channels, [CHANNEL_SHARES[c] for c in channels]
        factors = [self._day_factor(d) for d in days]
        mean = sum(factors) / len(factors)
        self.targets = {d: messages_per_day * f / mean for d, f in zip(days, factors, strict=True)}
        # Operators: online intervals (for assignment) and their day's events.
        self.online: dict[int, list[tuple[float, float]]] = {op: [] for op in self.ops}
        self.operator_events: dict[date, list[tuple[float, str, dict[str, Any]]]] = {}
        for d in days:
            self.operator_events[d] = self._operators_day(d)
        self.online_starts = {op: [s for s, _ in iv] for op, iv in self.online.items()}
        self.busy: dict[int, list[tuple[float, float]]] = {op: [] for op in self.ops}

    # ------------------------------------------------------------------ helpers
    def midnight(self, d: date) -> float:
        return datetime.combine(d, dtime(), self.tz).timestamp()

    @staticmethod
    def _day_factor(d: date) -> float:
        dom = d.day
        if 20 <= dom <= 25:
            month = 1.45  # the readings window's last days
        elif 15 <= dom <= 19:
            month = 1.3
        elif dom in (26, 27):
            month = 1.1
        else:
            month = 0.9
        return WEEKDAY_FACTOR[d.weekday()] * month

    def lognormal(self, median: float, sigma: float, lo: float, hi: float) -> float:
        return min(max(self.rng.lognormvariate(math.log(median), sigma), lo), hi)

    def think(self) -> float:
        return self.lognormal(18.0, 0.7, 3.0, 600.0)

    def emit(
        self, t: float, kind: str, data: dict[str, Any], truth: tuple[tuple[str, float], ...] = ()
    ) -> None:
        self.seq += 1
        conv = data.get("conversation_id")
        self.pending.append((t, self.seq, kind, conv, data, truth))

    def take(self, before: float) -> list[Generated]:
        """The events before ``before``, in time order (later ones stay pending)."""
        self.pending.sort()
        cut = bisect.bisect_left(self.pending, (before,))
        out, self.pending = self.pending[:cut], self.pending[cut:]
        return out

    def token(self) -> str:
        return base64.urlsafe_b64encode(self.rng.randbytes(9)).decode()

    # ------------------------------------------------------------------ operators
    def _operators_day(self, d: date) -> list[tuple[float, str, dict[str, Any]]]:
        rng = self.rng
        day0 = self.midnight(d)
        n = len(self.ops)
        if d.weekday() < 5:
            half = max(1, n // 2)
            shifts = [
                (op, 8.0, 14.5) if i < half else (op, 13.5, 20.0) for i, op in enumerate(self.ops)
            ]
        else:
            duty = {self.ops[(d.toordinal() * 3 + k) % n] for k in range(min(3, n))}
            shifts = [(op, 9.0, 18.0) for op in sorted(duty)]
        out: list[tuple[float, str, dict[str, Any]]] = []
        for op, h1, h2 in shifts:
            if rng.random() < 0.05:
                continue  # a day off, sick
            s = day0 + h1 * 3600 + rng.uniform(-600, 300)
            e = day0 + h2 * 3600 + rng.uniform(-300, 900)
            length = e - s
            count = 3 if length > 7 * 3600 else 2
            breaks = []
            for k in range(count):
                at = s + length * (k + 1) / (count + 1) + rng.uniform(-900, 900)
                lunch = count == 3 and k == 1
                breaks.append((at, rng.uniform(1800, 2400) if lunch else rng.uniform(600, 900)))
            out.append((s - rng.uniform(60, 300), ev.OPERATOR_SIGNED_IN, {"user_id": op}))
            status = {"user_id": op, "previous": "offline", "status": "online", "auto": False}
            out.append((s, ev.OPERATOR_STATUS, status))
            begin = s
            for at, dur in breaks:
                self.online[op].append((begin, at))
                out.append(
                    (
                        at,
                        ev.OPERATOR_STATUS,
                        {"user_id": op, "previous": "online", "status": "break", "auto": False},
                    )
                )
                begin = at + dur
                out.append(
                    (
                        begin,
                        ev.OPERATOR_STATUS,
                        {"user_id": op, "previous": "break", "status": "online", "auto": False},
                    )
                )
            self.online[op].append((begin, e))
            auto = rng.random() < 0.05  # the page was closed: the desk set them offline
            out.append(
                (
                    e,
                    ev.OPERATOR_STATUS,
                    {"user_id": op, "previous": "online", "status": "offline", "auto": auto},
                )
            )
            if not auto:
                out.append((e + rng.uniform(5, 60), ev.OPERATOR_SIGNED_OUT, {"user_id": op}))
        return out

    def is_online(self, op: int, t: float) -> bool:
        i = bisect.bisect_right(self.online_starts[op], t) - 1
        return i >= 0 and t < self.online[op][i][1]

    def load(self, op: int, t: float) -> int:
        return sum(1 for s, e in self.busy[op] if s <= t < e)

    def assign(self, t: float, exclude: int | None = None) -> tuple[int, float] | None:
        """The operator the desk gives a conversation queued at ``t`` (the least loaded
        one online with room), and when; None if nobody within 20 hours."""
        limit = t + 20 * 3600
        while t < limit:
            best, best_load, anyone = None, MAX_CHATS, False
            for op in self.ops:
                if op == exclude or not self.is_online(op, t):
                    continue
                anyone = True
                n = self.load(op, t)
                if n < best_load or (
                    n == best_load and best is not None and self.rng.random() < 0.5
                ):
                    best, best_load = op, n
            if best is not None:
                return best, t
            if anyone:
                t += 20.0
                continue
            nxt = [
                starts[i]
                for op, starts in self.online_starts.items()
                if op != exclude and (i := bisect.bisect_right(starts, t)) < len(starts)
            ]
            if not nxt:
                return None
            t = min(nxt) + 1.0
        return None

    # ------------------------------------------------------------------ messages
    def customer(self, c: _Conv, kind: str = "text", wait: float | None = None) -> int:
        c.t += self.think() if wait is None else wait
        truth: tuple[tuple[str, float], ...] = ()
        if not c.started:
            if c.channel != "webchat":
                data = {"conversation_id": c.id, "contact_id": c.contact, "channel_id": c.channel}
                self.emit(c.t, ev.CONVERSATION_STARTED, data)
            c.started, c.first_at = True, c.t
            truth = (("conv.started", c.t),)
        self.last_msg += 1
        mid = self.last_msg
        data = {
            "message_id": mid,
            "conversation_id": c.id,
            "channel_id": c.channel,
            "contact_id": c.contact,
            "kind": kind,
        }
        self.emit(c.t, ev.MESSAGE_RECEIVED, data, truth)
        self.messages += 1
        return mid

    def reply(
        self,
        c: _Conv,
        reply_to: int | None,
        facts: Sequence[Fact] = (),
        *,
        author: str = "bot",
        author_id: int | None = None,
        delay: float | None = None,
    ) -> None:
        """A message to the customer, after the facts of the same turn."""
        c.t += self.rng.uniform(0.15, 0.9) if delay is None else delay
        for kind, extra in facts:
            data = {**c.base, **({"message_id": reply_to} if reply_to is not None else {}), **extra}
            self.emit(c.t, kind, data)
        self.last_msg += 1
        mid = self.last_msg
        data = {
            "message_id": mid,
            "conversation_id": c.id,
            "channel_id": c.channel,
            "author": author,
            "author_id": author_id,
        }
        if reply_to is not None:
            data["reply_to"] = reply_to
        if c.channel == "webchat":
            data["delivered"] = True  # the client reads the store: no delivered event
        self.emit(c.t, ev.MESSAGE_SENT, data, ((f"msg.{author}", c.t),))
        self.messages += 1
        if c.channel == "webchat":
            return
        # A messenger: the outbox sends it, the platform accepts it (or refuses).
        base = {"message_id": mid, "conversation_id": c.id, "channel_id": c.channel}
        if self.rng.random() < 0.004:
            self.emit(c.t + 0.4, ev.MESSAGE_FAILED, {**base, "error": "bot blocked by the user"})
        elif self.delivered:
            after = round(self.rng.uniform(0.08, 1.5), 3)
            self.emit(c.t + after, ev.MESSAGE_DELIVERED, {**base, "after_s": after})

    def free_text(
        self, c: _Conv, intent: str | None = None, *, flow: str | None = None
    ) -> tuple[bool, str]:
        """A question in the customer's words; (understood, fallback step)."""
        rng = self.rng
        mid = self.customer(c, "text")
        profane = rng.random() < 0.015
        understood = intent is not None or rng.random() < RECOGNISED_SHARE
        if profane and intent is None and rng.random() < 0.3:
            understood = False
        topic = intent or rng.choices(self.faq, self.faq_weights)[0]
        facts: list[Fact] = []
        if profane:
            facts.append((ev.PROFANITY_DETECTED, {}))
        links: list[tuple[str, str]] = []
        step = ""
        if understood:
            c.misses = 0
            if flow is not None:
                facts.append((ev.FLOW_STARTED, {"flow": flow}))
            url = self.links.get(topic)
            if url is not None and flow is None and rng.random() < 0.5:
                token = self.token()
                links.append((token, url))
                facts.append((ev.LINK_SENT, {"token": token, "url": url, "intent": topic}))
            confidence = round(rng.uniform(0.6, 0.99), 4)
            facts.append((ev.TEXT_RECOGNISED, {"intent": topic, "confidence": confidence}))
        else:
            c.misses += 1
            step = "profanity" if profane else ("give_up" if c.misses >= 2 else "rephrase")
            if c.misses >= 2:
                c.misses = 0
            confidence = round(rng.uniform(0.15, 0.55), 4)
            facts.append(
                (ev.TEXT_FALLBACK, {"intent": topic, "confidence": confidence, "step": step})
            )
        self.reply(c, mid, facts)
        sent = c.t
        for token, url in links:
            if rng.random() < 0.38:
                at = sent + self.lognormal(30.0, 1.3, 2.0, 3 * 86400)
                click = {
                    "token": token,
                    "conversation_id": c.id,
                    "intent": topic,
                    "channel_id": c.channel,
                    "url": url,
                }
                self.emit(at, ev.LINK_CLICKED, click, (("link.clicks", at), ("link.clicked", sent)))
                if rng.random() < 0.12:
                    again = at + self.lognormal(600.0, 1.5, 5.0, 7 * 86400)
                    self.emit(again, ev.LINK_CLICKED, dict(click), (("link.clicks", again),))
        return understood, step

    def button(self, c: _Conv, facts: Sequence[Fact] = ()) -> None:
        mid = self.customer(c, "button")
        self.reply(c, mid, facts)

    def typed(self, c: _Conv, facts: Sequence[Fact] = (), wait: float | None = None) -> None:
        """Typed input inside a flow (an account number, readings): no consultant."""
        mid = self.customer(c, "text", wait)
        self.reply(c, mid, facts)

    def account(self, contact: int) -> tuple[str, str]:
        known = self.accounts.get(contact)
        if known is None:
            known = (f"{7_000_000_000 + contact}", self.rng.choice(PLANS))
            self.accounts[contact] = known
        return known

    # ------------------------------------------------------------------ conversations
    def pick_contact(self) -> tuple[int, str, bool]:
        rng = self.rng
        if self.contacts and rng.random() < RETURNING_SHARE:
            # Recent customers come back more often than old ones.
            index = int(len(self.contacts) * (1 - rng.random() ** 2))
            contact, channel = self.contacts[min(index, len(self.contacts) - 1)]
            if rng.random() < 0.08:
                channel = rng.choices(self.channels, self.channel_weights)[0]
            return contact, channel, True
        channel = rng.choices(self.channels, self.channel_weights)[0]
        contact = len(self.contacts) + 1
        self.contacts.append((contact, channel))
        return contact, channel, False

    def conversation(self, t0: float) -> None:
        rng = self.rng
        self.last_conv += 1
        self.conversations += 1
        contact, channel, returning = self.pick_contact()
        c = _Conv(self.last_conv, channel, contact, t0)
        c.base = {"conversation_id": c.id, "channel_id": channel}
        if channel == "webchat":
            # The widget opens the chat: the conversation starts and the bot greets first.
            data = {"conversation_id": c.id, "contact_id": contact, "channel_id": channel}
            self.emit(c.t, ev.CONVERSATION_STARTED, data)
            self.reply(c, None, delay=0.05)
            if rng.random() < 0.08:
                self.idle_close(c)  # opened, never wrote
                return
        if rng.random() < HANDOFF_SHARE:
            self.handoff(c)
        else:
            if rng.random() < 0.12:
                self.free_text(c, "greeting")
            r = rng.random()
            if r < 0.44:
                self.questions(c)
            elif r < 0.70:
                self.readings(c, returning)
            elif r < 0.90:
                self.balance(c, returning)
            elif r < 0.94:
                self.appeal(c)
            else:
                self.button(c)  # pressed a menu button and left
            if rng.random() < 0.08:
                self.questions(c, 1)
            if rng.random() < 0.06:
                self.free_text(c, "thanks_bye")
        if not c.closed:
            self.idle_close(c)

    def idle_close(self, c: _Conv) -> None:
        at = c.t + 86400 + self.rng.uniform(0, 600)
        data = {"conversation_id": c.id, "channel_id": c.channel, "by": None, "idle": True}
        self.emit(at, ev.CONVERSATION_CLOSED, data)

    def questions(self, c: _Conv, count: int | None = None) -> None:
        rng = self.rng
        n = count or rng.choice((1, 1, 1, 1, 2, 2, 3))
        for _ in range(n):
            understood, _step = self.free_text(c)
            if not understood and rng.random() < 0.6:
                self.free_text(c)  # rephrased

    def entry(self, c: _Conv, flow: str, intent: str) -> None:
        """A flow started by its button or in words."""
        if self.rng.random() < 0.6:
            self.button(c, [(ev.FLOW_STARTED, {"flow": flow})])
        else:
            self.free_text(c, intent, flow=flow)

    def readings(self, c: _Conv, returning: bool) -> None:
        rng = self.rng
        self.entry(c, "readings", "readings_submit")
        number, plan = self.account(c.contact)
        if returning and rng.random() < 0.7:
            self.button(c)  # "for account …?" — yes
        else:
            self.typed(c, wait=self.lognormal(25.0, 0.6, 5.0, 600.0))  # the account number
            self.button(c)  # "is that your address?" — yes
        if rng.random() < 0.08:
            return  # went to read the meter and never came back
        consumption = rng.randint(50, 900)
        done = {
            "account": number,
            "plan": plan,
            "consumption": f"{consumption}.000",
            "cost": f"{consumption * 6.43:.2f}",
        }
        self.typed(c, [(ev.READINGS_SUBMITTED, done)], wait=self.lognormal(45.0, 0.8, 5.0, 1800.0))
        if rng.random() < 0.25:
            self.button(
                c, [(ev.FLOW_STARTED, {"flow": "balance"}), (ev.BALANCE_ASKED, {"account": number})]
            )

    def balance(self, c: _Conv, returning: bool) -> None:
        number, _plan = self.account(c.contact)
        if returning and self.rng.random() < 0.5:
            facts = [
                (ev.FLOW_STARTED, {"flow": "balance"}),
                (ev.BALANCE_ASKED, {"account": number}),
            ]
            self.button(c, facts)  # the chosen account: the balance at once
            return
        self.entry(c, "balance", "balance")
        self.typed(
            c, [(ev.BALANCE_ASKED, {"account": number})], wait=self.lognormal(25.0, 0.6, 5.0, 600.0)
        )

    def appeal(self, c: _Conv) -> None:
        rng = self.rng
        self.entry(c, "appeal", "appeal")
        for _ in range(2):  # name, then phone or e-mail
            if rng.random() < 0.1:
                return
            self.typed(c)
        self.last_appeal += 1
        number = f"А-{self.last_appeal:06d}"
        self.typed(
            c,
            [(ev.APPEAL_CREATED, {"number": number})],
            wait=self.lognormal(60.0, 0.7, 10.0, 1800.0),
        )

    # ------------------------------------------------------------------ operators' part
    def handoff(self, c: _Conv) -> None:
        rng = self.rng
        r = rng.random()
        if r < 0.35:
            self.questions(c, 1)
        elif r < 0.6:
            self.free_text(c)
        if rng.random() < 0.55:
            self.button(c, [(ev.FLOW_STARTED, {"flow": "operator"})])
        else:
            self.free_text(c, "operator", flow="operator")
        truth = () if c.handed else (("conv.to_operator", c.first_at), ("queue.queued", c.t))
        c.handed = True
        self.emit(
            c.t,
            ev.CONVERSATION_QUEUED,
            {"conversation_id": c.id, "channel_id": c.channel, "reason": "handoff"},
            truth,
        )
        queued = c.t
        found = self.assign(queued + self.lognormal(12.0, 1.0, 1.0, 300.0))
        p = rng.random()
        if p < 0.05:
            patience = rng.uniform(20.0, 180.0)  # changed their mind
        elif p < 0.45:
            patience = self.lognormal(600.0, 0.8, 60.0, 4 * 3600)
        else:
            patience = math.inf
        if found is None or found[1] - queued > patience:
            if patience == math.inf:
                patience = 6 * 3600.0  # no one came: they gave up in the end
            mid = self.customer(c, "text", wait=queued + patience - c.t)  # «меню»
            self.reply(c, mid)
            data = {"conversation_id": c.id, "channel_id": c.channel}
            self.emit(c.t, ev.CONVERSATION_LEFT_QUEUE, data, (("queue.abandoned", queued),))
            return
        op, at = found
        self.operator_chat(c, op, at)

    def op_delay(self, op: int, t: float, first: bool) -> float:
        """An operator's response delay: seconds to minutes, longer with more chats."""
        busy = 1 + 0.3 * self.load(op, t)
        if first:
            return self.lognormal(35.0 * busy, 1.0, 3.0, 1200.0)
        return self.lognormal(60.0 * busy, 1.1, 3.0, 3600.0)

    def operator_chat(self, c: _Conv, op: int, at: float) -> None:
        rng = self.rng
        c.t = at
        auto = rng.random() < 0.75
        data = {
            "conversation_id": c.id,
            "assignee_id": op,
            "by": None if auto else op,
            "how": "auto" if auto else "take",
        }
        self.emit(c.t, ev.CONVERSATION_ASSIGNED, data)
        self.reply(c, None, author="system", delay=0.05)  # «the operator joined»
        since = c.t
        if rng.random() < 0.02:
            c.t += rng.uniform(120.0, 900.0)  # closed without a word
            self.close(c, op, since)
            return
        self.reply(c, None, author="operator", author_id=op, delay=self.op_delay(op, c.t, True))
        exchanges = rng.choice((0, 1, 1, 1, 2, 2, 3))
        transfer_at = rng.randrange(exchanges) if exchanges and rng.random() < 0.09 else -1
        for i in range(exchanges):
            self.customer(c, "text", wait=self.lognormal(35.0, 0.8, 5.0, 900.0))
            if rng.random() < 0.2:
                self.customer(c, "text", wait=self.lognormal(8.0, 0.6, 1.0, 120.0))
            if i == transfer_at:
                c.t += rng.uniform(10.0, 60.0)
                other = self.assign(c.t, exclude=op)
                if other is not None and other[1] - c.t < 300:
                    to, c.t = other
                    moved = {"conversation_id": c.id, "from": op, "assignee_id": to, "group": None}
                    self.emit(c.t, ev.CONVERSATION_TRANSFERRED, moved)
                    self.reply(c, None, author="system", delay=0.05)
                    self.busy[op].append((since, c.t))
                    op, since = to, c.t
            self.reply(
                c, None, author="operator", author_id=op, delay=self.op_delay(op, c.t, False)
            )
        if rng.random() < 0.03:
            c.t += rng.uniform(10.0, 120.0)
            self.emit(c.t, ev.CONVERSATION_RETURNED_TO_BOT, {"conversation_id": c.id, "by": op})
            self.reply(c, None, delay=0.05)  # the menu again
            self.busy[op].append((since, c.t))
            return
        c.t += self.lognormal(60.0, 0.8, 5.0, 1800.0)
        self.close(c, op, since)

    def close(self, c: _Conv, op: int, since: float) -> None:
        rng = self.rng
        closed = {
            "conversation_id": c.id,
            "by": op,
            "assignee_id": op,
            "resolution": "Вопрос решён",
        }
        self.emit(c.t, ev.CONVERSATION_CLOSED, closed)
        asked = c.t
        self.emit(
            c.t, ev.CSAT_ASKED, {"conversation_id": c.id, "channel_id": c.channel, "user_id": op}
        )
        self.reply(c, None, author="system", delay=0.01)  # «the conversation is closed»
        self.reply(c, None, delay=0.01)  # the survey's buttons
        self.busy[op].append((since, c.t))
        c.closed = True
        if rng.random() < 0.45:
            rating = rng.choices(RATINGS, RATING_WEIGHTS)[0]
            mid = self.customer(c, "button", wait=self.lognormal(30.0, 1.0, 3.0, 3600.0))
            c.t += rng.uniform(0.15, 0.9)
            self.emit(
                c.t,
                ev.CSAT_RATED,
                {**c.base, "message_id": mid, "rating": rating},
                (("csat.rated", asked),),
            )
            self.reply(c, mid, delay=0.0)  # «thank you»

    # ------------------------------------------------------------------ a day
    def day(self, d: date) -> None:
        rng = self.rng
        day0 = self.midnight(d)
        for t, kind, data in self.operator_events.pop(d):
            self.emit(t, kind, data)
        for op in self.ops:  # chats that ended long ago no longer matter
            self.busy[op] = [(s, e) for s, e in self.busy[op] if e > day0 - 86400]
        weights = HOURLY_WEEKDAY if d.weekday() < 5 else HOURLY_WEEKEND
        target = self.targets[d]
        made = 0
        while made < target * 0.99:
            n = max(1, round((target - made) / self.avg_messages))
            hours = rng.choices(range(24), weights, k=n)
            starts = sorted(day0 + h * 3600 + rng.random() * 3600 for h in hours)
            before = self.messages
            for t0 in starts:
                self.conversation(t0)
            batch = self.messages - before
            made += batch
            self.avg_messages = 0.7 * self.avg_messages + 0.3 * (batch / n)


# --------------------------------------------------------------------------- writing
class Writer:
    """Bulk inserts into ``events``: executemany in a transaction on SQLite, COPY on
    PostgreSQL (whose server default fills ``tx``)."""

    def __init__(self, kind: str, target: str) -> None:
        self.kind = kind
        self.target = target
        self.sqlite: sqlite3.Connection | None = None
        self.pg: asyncpg.Connection | None = None
        self.seconds = 0.0

    async def open(self) -> None:
        if self.kind == "sqlite":
            self.sqlite = sqlite3.connect(self.target, isolation_level=None)
            self.sqlite.execute("PRAGMA synchronous=OFF")
            self.sqlite.execute("PRAGMA cache_size=-65536")
        else:
            self.pg = await asyncpg.connect(self.target)

    async def write(self, batch: list[Generated]) -> None:
        started = time.perf_counter()
        if self.sqlite is not None:
            rows = [
                (
                    0,
                    kind,
                    datetime.fromtimestamp(t, UTC).isoformat(" ", "microseconds")[:26],
                    conv,
                    json.dumps(data),
                )
                for t, _seq, kind, conv, data, _truth in batch
            ]
            self.sqlite.execute("BEGIN")
            self.sqlite.executemany(
                "INSERT INTO events (tx, type, occurred_at, conversation_id, data) "
                "VALUES (?, ?, ?, ?, ?)",
                rows,
            )
            self.sqlite.execute("COMMIT")
        else:
            assert self.pg is not None
            records = [
                (kind, datetime.fromtimestamp(t, UTC), conv, json.dumps(data))
                for t, _seq, kind, conv, data, _truth in batch
            ]
            async with self.pg.transaction():
                await self.pg.copy_records_to_table(
                    "events",
                    records=records,
                    columns=["type", "occurred_at", "conversation_id", "data"],
                )
        self.seconds += time.perf_counter() - started

    async def close(self) -> None:
        if self.sqlite is not None:
            self.sqlite.close()
        if self.pg is not None:
            await self.pg.close()


# --------------------------------------------------------------------------- the database
def plain_pg_dsn(url: str, database: str | None = None) -> str:
    u = make_url(url).set(drivername="postgresql")
    if database is not None:
        u = u.set(database=database)
    return u.render_as_string(hide_password=False)


def remove_sqlite(path: str) -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(path + suffix).unlink(missing_ok=True)


@dataclass
class Target:
    kind: str
    url: str  # SQLAlchemy URL for the product
    raw: str  # file path (SQLite) or asyncpg DSN (PostgreSQL)
    admin: str = ""  # PostgreSQL: the maintenance database's DSN
    name: str = ""

    async def create(self) -> None:
        if self.kind == "sqlite":
            remove_sqlite(self.raw)
            return
        conn = await asyncpg.connect(self.admin)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{self.name}"')
            await conn.execute(f'CREATE DATABASE "{self.name}"')
        finally:
            await conn.close()

    async def drop(self) -> None:
        if self.kind == "sqlite":
            remove_sqlite(self.raw)
            return
        conn = await asyncpg.connect(self.admin)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')
        finally:
            await conn.close()


def make_target(args: argparse.Namespace) -> Target:
    if args.db == "sqlite":
        path = str(Path(args.sqlite_path).resolve())
        return Target("sqlite", f"sqlite+aiosqlite:///{path}", path)
    name = args.pg_db
    url = make_url(args.pg_url).set(database=name).render_as_string(hide_password=False)
    return Target("postgres", url, plain_pg_dsn(args.pg_url, name), plain_pg_dsn(args.pg_url), name)


async def prepare(target: Target, operators: int, log_began: datetime) -> None:
    """Migrate, add the operators, and date the log's start before the history (an
    installation whose log has been running all along)."""
    db = Database(target.url)
    try:
        await upgrade(db.engine)
        async with db.write() as conn:
            await conn.execute(
                insert(User),
                [
                    {
                        "id": op,
                        "login": f"op{op:02d}",
                        "name": f"Оператор {op:02d}",
                        "role": "operator",
                        "password_hash": "bench-no-login",
                        "active": True,
                        "groups": ["general"],
                        "max_chats": MAX_CHATS,
                        "status": "offline",
                        "created_at": log_began,
                    }
                    for op in range(1, operators + 1)
                ],
            )
            await conn.execute(
                update(EventRecord)
                .where(EventRecord.type == ev.LOG_STARTED)
                .values(occurred_at=log_began)
            )
            if target.kind == "postgres":
                await conn.execute(
                    text("SELECT setval('users_id_seq', (SELECT max(id) FROM users))")
                )
    finally:
        await db.dispose()


# --------------------------------------------------------------------------- measuring
def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def say(message: str) -> None:
    print(message, flush=True)


def note(message: str) -> None:
    print(f"[stats-bench] {message}", file=sys.stderr, flush=True)


async def timed(work: Callable[[], Awaitable[Any]], runs: int) -> tuple[float, float, int, Any]:
    """Median wall and CPU (this process) milliseconds of ``runs`` after a warm-up (one
    run when the warm-up took longer than 5 s), the number of runs, the last result."""
    started = time.perf_counter()
    result = await work()
    warm = time.perf_counter() - started
    count = 1 if warm > 5 else runs
    walls, cpus = [], []
    for _ in range(count):
        started, cpu = time.perf_counter(), time.process_time()
        result = await work()
        walls.append(time.perf_counter() - started)
        cpus.append(time.process_time() - cpu)
    return statistics.median(walls) * 1000, statistics.median(cpus) * 1000, count, result


@dataclass
class Timing:
    name: str
    ms: dict[str, float] = field(default_factory=dict)
    cpu_ms: dict[str, float] = field(default_factory=dict)
    runs: dict[str, int] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)


async def time_reports(stats: Stats, periods: dict[str, Period], runs: int) -> list[Timing]:
    scope = Scope()

    async def export(kind: str, fmt: str, period: Period) -> str:
        """As the download route (web/stats_api.py) makes it: a CSV streamed whole, an
        XLSX built off the event loop, or refused beyond ``XLSX_MAX_ROWS`` rows."""
        if fmt == "csv":
            size = rows = 0
            async for piece in stream_csv(stats, kind, period, scope):
                size += len(piece)
                rows += piece.count(b"\n")
            return f"{rows - 1} rows, {size / 1e6:.1f} MB"
        columns, found = await table(stats, kind, period, scope, limit=XLSX_MAX_ROWS + 1)
        if len(found) > XLSX_MAX_ROWS:
            return f"refused: over {XLSX_MAX_ROWS:,} rows"
        data = await asyncio.to_thread(to_xlsx, columns, found, kind)
        return f"{len(found)} rows, {len(data) / 1e6:.1f} MB"

    async def conversations(period: Period, topic: str | None) -> str:
        found = await stats.conversations(period, topic=topic)
        return f"total {found['total']}"

    async def oplog(period: Period) -> str:
        found = await stats.operator_log(period)
        return f"total {found['total']}"

    async def series(period: Period, hourly: bool) -> str:
        return f"{len(await stats.series(period, hourly=hourly))} rows"

    cases: list[tuple[str, Callable[[Period], Awaitable[Any]]]] = [
        ("Stats.report", lambda p: stats.report(p)),
        ("Stats.summary", lambda p: stats.summary(p)),
        ("Stats.timeline", lambda p: stats.timeline(p)),
        ("Stats.operator_log (page 1)", oplog),
        ("Stats.conversations (page 1)", lambda p: conversations(p, None)),
        ("Stats.conversations topic=tariffs", lambda p: conversations(p, "tariffs")),
        ("Stats.series daily", lambda p: series(p, False)),
        ("Stats.series hourly", lambda p: series(p, True)),
        ("export daily CSV", lambda p: export("daily", "csv", p)),
        ("export daily XLSX", lambda p: export("daily", "xlsx", p)),
        ("export conversations CSV", lambda p: export("conversations", "csv", p)),
        ("export conversations XLSX", lambda p: export("conversations", "xlsx", p)),
    ]
    out = []
    for name, work in cases:
        timing = Timing(name)
        for label, period in periods.items():
            ms, cpu, count, result = await timed(functools.partial(work, period), runs)
            timing.ms[label], timing.cpu_ms[label], timing.runs[label] = ms, cpu, count
            if isinstance(result, str):
                timing.notes[label] = result
            note(f"{name} {label}: {ms:.0f} ms")
        out.append(timing)
    return out


def timings_text(timings: list[Timing], labels: list[str], runs: int) -> str:
    head = f"  {'':36}" + "".join(f"{label:>18}" for label in labels)
    lines = [
        head,
        f"  {'':36}" + f"{'wall ms (cpu ms)':>18}" * len(labels) + "   ! over the 300 ms goal",
    ]
    for t in timings:
        cells = []
        for label in labels:
            ms = t.ms[label]
            mark = "!" if ms > GOAL_MS else " "
            once = "¹" if t.runs[label] < runs else " "
            cells.append(f"{ms:>9.0f}{mark} ({t.cpu_ms[label]:>5.0f}){once}")
        notes = "; ".join(f"{label}: {t.notes[label]}" for label in labels if label in t.notes)
        lines.append(f"  {t.name:36}" + "".join(cells) + (f"   {notes}" if notes else ""))
    if any(r < runs for t in timings for r in t.runs.values()):
        lines.append("  ¹ one run after the warm-up (the warm-up took over 5 s)")
    return "\n".join(lines)


async def live_consumer(db: Database, settings: Settings, runs: int) -> list[str]:
    """What the servers' statistics consumer costs at this log's size: a pass that finds
    nothing (every ``poll`` seconds, and after each wake-up), and one that applies a
    customer message and its reply. On SQLite it runs on the server's event loop."""
    consumer = StatsConsumer(settings.company.tz, settings.company.working_hours)
    consumers = EventConsumers(db, LocalBus(), [consumer])
    async with db.read() as conn:
        last = int((await conn.execute(text("SELECT max(id) FROM events"))).scalar() or 0)
        conv = int(
            (await conn.execute(text("SELECT max(conversation_id) FROM events"))).scalar() or 0
        )
    lines = []
    try:
        idle, idle_cpu, _runs, _ = await timed(consumers.catch_up, runs)
        lines.append(
            f"  idle pass            {idle:.1f} ms (cpu {idle_cpu:.1f} ms), nothing new "
            f"(the servers poll every {consumers.poll:g} s)"
        )
        message = 0

        async def one_turn() -> int:
            nonlocal message
            message += 2
            base = {"conversation_id": conv + 1, "channel_id": "webchat"}
            facts = [
                Event(
                    ev.MESSAGE_RECEIVED,
                    {**base, "message_id": message, "contact_id": 1, "kind": "text"},
                ),
                Event(
                    ev.MESSAGE_SENT,
                    {**base, "message_id": message + 1, "author": "bot", "author_id": None},
                ),
            ]
            async with db.write() as conn:
                await record(conn, facts)
            return await consumers.catch_up()

        turn, turn_cpu, _runs, _ = await timed(one_turn, runs)
        lines.append(
            f"  pass with 2 events   {turn:.1f} ms (cpu {turn_cpu:.1f} ms; recording them included)"
        )

        async with db.read() as conn:
            row = (
                await conn.execute(
                    text("SELECT tx, last_id FROM event_cursors WHERE consumer = :c"),
                    {"c": consumer.name},
                )
            ).one()
        cursor = (int(row[0]), int(row[1]))

        async def read_tail() -> int:
            async with db.read() as conn:
                return len(await read_after(conn, *cursor, 1000))

        query, query_cpu, _runs, _ = await timed(read_tail, runs)
        lines.append(
            f"  read_after alone     {query:.1f} ms (cpu {query_cpu:.1f} ms): the query of a "
            f"pass, at the cursor (tx {cursor[0]}, id {cursor[1]:,}; the log's last id was "
            f"{last:,})"
        )
    finally:
        await consumers.stop()
    return lines


def load_average() -> str:
    one, five, _ = os.getloadavg()
    return f"load average {one:.1f} / {five:.1f} (1 / 5 min) on {os.cpu_count()} cores"


def sqlite_sizes(path: str) -> list[str]:
    files = {s: Path(path + s) for s in ("", "-wal", "-shm")}
    size = {s: (p.stat().st_size if p.exists() else 0) for s, p in files.items()}
    lines = [
        f"  database file        {sum(size.values()) / 1e6:.0f} MB "
        f"(main {size[''] / 1e6:.0f} MB, -wal {size['-wal'] / 1e6:.1f} MB, "
        f"-shm {size['-shm'] / 1e6:.1f} MB)"
    ]
    conn = sqlite3.connect(path)
    try:
        per: dict[str, int] = {}
        try:
            for name, pages in conn.execute("SELECT name, sum(pgsize) FROM dbstat GROUP BY name"):
                per[name] = int(pages)
        except sqlite3.Error:
            per = {}
        indexes: dict[str, list[str]] = {}
        for name, tbl in conn.execute(
            "SELECT name, tbl_name FROM sqlite_master WHERE type = 'index'"
        ):
            indexes.setdefault(tbl, []).append(name)
        tables = [
            r[0]
            for r in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' "
                "AND (name = 'events' OR name LIKE 'stats\\_%' ESCAPE '\\') ORDER BY name"
            )
        ]
        for name in tables:
            rows = conn.execute(f"SELECT count(*) FROM {name}").fetchone()[0]
            line = f"  {name:<24} {rows:>10,} rows"
            if per:
                total = per.get(name, 0) + sum(per.get(i, 0) for i in indexes.get(name, []))
                line += f"  {total / 1e6:>8.1f} MB (with indexes, dbstat)"
            lines.append(line)
    finally:
        conn.close()
    return lines


async def pg_sizes(dsn: str) -> list[str]:
    conn = await asyncpg.connect(dsn)
    try:
        total = await conn.fetchval("SELECT pg_database_size(current_database())")
        lines = [f"  database             {total / 1e6:.0f} MB (pg_database_size)"]
        tables = await conn.fetch(
            "SELECT tablename FROM pg_tables WHERE schemaname = current_schema() "
            "AND (tablename = 'events' OR tablename LIKE 'stats\\_%') ORDER BY tablename"
        )
        for (name,) in tables:
            rows = await conn.fetchval(f"SELECT count(*) FROM {name}")
            size = await conn.fetchval("SELECT pg_total_relation_size($1::regclass)", name)
            heap = await conn.fetchval("SELECT pg_relation_size($1::regclass)", name)
            lines.append(
                f"  {name:<24} {rows:>10,} rows  {size / 1e6:>8.1f} MB "
                f"(table {heap / 1e6:.1f} MB + indexes, toast)"
            )
    finally:
        await conn.close()
    return lines


def check_lines(truth: Counter[str], summary: dict[str, Any]) -> list[str]:
    """The rollups' 90-day figures against what the generator wrote."""
    msgs = summary["messages"]
    reported = {
        "customer messages": sum(c["customer"] for c in msgs.values()),
        "bot messages": sum(c["bot"] for c in msgs.values()),
        "operator messages": sum(c["operator"] for c in msgs.values()),
        "conversations": summary["conversations"]["total"],
        "to operators": summary["conversations"]["to_operator"],
        "recognised": summary["bot"]["recognised"],
        "fallback": summary["bot"]["fallback"],
        "readings": summary["readings"]["submitted"],
        "links sent": summary["links"]["sent"],
        "links clicked": summary["links"]["clicked"],
        "profanity": summary["profanity"],
        "queued": summary["queue"]["queued"],
        "left the queue": summary["queue"]["abandoned"],
        "csat asked": summary["csat"]["asked"],
        "csat answered": summary["csat"]["answered"],
    }
    generated = {
        "customer messages": truth["msg.customer"],
        "bot messages": truth["msg.bot"],
        "operator messages": truth["msg.operator"],
        "conversations": truth["conv.started"],
        "to operators": truth["conv.to_operator"],
        "recognised": truth["bot.recognised"],
        "fallback": truth["bot.fallback"],
        "readings": truth["readings.submitted"],
        "links sent": truth["link.sent"],
        "links clicked": truth["link.clicked"],
        "profanity": truth["profanity"],
        "queued": truth["queue.queued"],
        "left the queue": truth["queue.abandoned"],
        "csat asked": truth["csat.asked"],
        "csat answered": truth["csat.rated"],
    }
    lines = []
    bad = 0
    for name, want in generated.items():
        got = reported[name]
        ok = "ok" if got == want else f"DIFFERS by {got - want:+d}"
        bad += got != want
        lines.append(f"  {name:<20} generated {want:>10,}   report {got:>10,}   {ok}")
    lines.insert(
        0, f"  rollups vs generated (90 days): {'all equal' if not bad else f'{bad} differ'}"
    )
    return lines


def summary_diff(a: Any, b: Any, path: str = "") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for k in sorted(set(a) | set(b), key=str):
            out += summary_diff(a.get(k), b.get(k), f"{path}.{k}" if path else str(k))
        return out
    return [] if a == b else [f"{path}: {a!r} → {b!r}"]


# --------------------------------------------------------------------------- the run
async def run_stats(args: argparse.Namespace) -> None:
    settings = Settings()
    tz = settings.company.tz
    today = datetime.now(tz).date()
    days = [today - timedelta(days=args.days - i) for i in range(args.days)]
    target = make_target(args)
    if args.reuse:
        await reuse(args, target)
        return
    say(
        f"db={args.db} days={args.days} ({days[0]} – {days[-1]}, {tz}) "
        f"messages/day={args.messages_per_day} operators={args.operators} seed={args.seed}"
    )
    await target.create()
    try:
        await measure(args, target, settings, days)
    finally:
        if args.keep:
            say(f"  kept the database: {target.url}")
        else:
            await target.drop()


async def measure(
    args: argparse.Namespace, target: Target, settings: Settings, days: list[date]
) -> None:
    tz = settings.company.tz
    settings = Settings(database_url=target.url)
    history = History(
        days, tz, args.messages_per_day, args.operators, args.seed, delivered=not args.no_delivered
    )
    start_at = history.midnight(days[0])
    end_at = history.midnight(days[-1] + timedelta(days=1))
    await prepare(target, args.operators, datetime.fromtimestamp(start_at, UTC) - timedelta(days=1))

    # ---- generation
    writer = Writer(target.kind, target.raw)
    await writer.open()
    now = time.time()
    truth: Counter[str] = Counter()
    by_type: Counter[str] = Counter()
    written = dropped = 0
    began = time.perf_counter()

    def account(batch: list[Generated]) -> list[Generated]:
        kept = [e for e in batch if e[0] <= now]
        for t, _seq, kind, _conv, _data, extra in kept:
            by_type[kind] += 1
            if start_at <= t < end_at:
                metric = _TRUTH_BY_TYPE.get(kind)
                if metric is not None:
                    truth[metric] += 1
            for metric, credit in extra:
                if start_at <= credit < end_at:
                    truth[metric] += 1
        return kept

    try:
        for i, d in enumerate(days):
            history.day(d)
            batch = account(history.take(history.midnight(d + timedelta(days=1))))
            await writer.write(batch)
            written += len(batch)
            if (i + 1) % 10 == 0 or i + 1 == len(days):
                note(
                    f"day {i + 1}/{len(days)}: {written:,} events, "
                    f"{time.perf_counter() - began:.0f} s"
                )
        rest = history.take(math.inf)
        batch = account(rest)
        dropped = len(rest) - len(batch)
        await writer.write(batch)
        written += len(batch)
    finally:
        await writer.close()
    generation_s = time.perf_counter() - began
    rss: dict[str, float] = {"generation": rss_mb()}
    say(f"generation ({load_average()} at the end)")
    say(
        f"  events written       {written:,} in {generation_s:.1f} s → "
        f"{written / generation_s:,.0f} events/s (inserts alone {writer.seconds:.1f} s → "
        f"{written / max(writer.seconds, 1e-9):,.0f} events/s)"
    )
    messages = (
        truth["msg.customer"] + truth["msg.bot"] + truth["msg.operator"] + truth["msg.system"]
    )
    say(
        f"  history              {history.conversations:,} conversations, {messages:,} messages "
        f"({messages / len(days):,.0f}/day, {messages / max(history.conversations, 1):.1f} per "
        f"conversation), {len(history.contacts):,} contacts, "
        f"{truth['conv.to_operator']:,} handed to operators"
    )
    say(
        f"  messages by author   customer {truth['msg.customer']:,}, bot {truth['msg.bot']:,}, "
        f"operator {truth['msg.operator']:,}, system {truth['msg.system']:,}"
    )
    say(f"  events not written   {dropped:,} (later than now: still to happen)")
    say("  events by type       " + ", ".join(f"{k} {v:,}" for k, v in by_type.most_common()))
    del history, batch, rest

    db = Database(target.url)
    stats = Stats(db, tz, {c: c for c in CHANNEL_TYPES}, night_hours=settings.stats.night_hours)
    whole = Period(days[0], days[-1], tz)
    try:
        # ---- rebuild
        say(f"rebuild ({load_average()} before)")
        progress_at = time.perf_counter()

        def progress(message: str) -> None:
            if "events replayed" in message and not message.startswith("done"):
                count = int(message.split()[0])
                if count % 1_000_000:
                    return
            note(f"rebuild: {message} ({time.perf_counter() - progress_at:.0f} s)")

        started = time.perf_counter()
        full = await rebuild(db, settings, since=None, progress=progress)
        full_s = time.perf_counter() - started
        rss["full rebuild"] = rss_mb()
        say(
            f"  full rebuild         {full.events:,} events in {full_s:.1f} s → "
            f"{full.events / full_s:,.0f} events/s (backfilled {full.backfilled})"
        )
        if full.events != written:
            say(
                f"  WARNING              the rebuild replayed {full.events:,} of {written:,} "
                "events (on PostgreSQL a transaction open anywhere in the cluster holds the "
                "consumers back)"
            )
        if target.kind == "postgres":
            started = time.perf_counter()
            conn = await asyncpg.connect(target.raw)
            try:
                await conn.execute("VACUUM ANALYZE")
            finally:
                await conn.close()
            say(
                f"  VACUUM ANALYZE       {time.perf_counter() - started:.1f} s (what autovacuum "
                "would have done by now; the reports are timed after it)"
            )
        before = await stats.summary(whole)
        since = days[min(args.rebuild_from_day, len(days) - 1)]
        started = time.perf_counter()
        partial = await rebuild(db, settings, since=since, progress=progress)
        partial_s = time.perf_counter() - started
        say(
            f"  rebuild from {since} (day {days.index(since)}): {partial.events:,} events "
            f"replayed in {partial_s:.1f} s → {partial.events / partial_s:,.0f} events/s"
        )
        after = await stats.summary(whole)
        diff = summary_diff(before, after)
        say(
            "  partial == full      "
            + ("yes: the 90-day summary is the same" if not diff else f"NO, {len(diff)} differ:")
        )
        for line in diff[:20]:
            say(f"    {line}")
        for line in check_lines(truth, after):
            say(line)

        await reports_and_consumer(args, db, settings, stats, days, written, rss)
    finally:
        await db.dispose()
    await size_and_memory(target, rss)


async def reports_and_consumer(
    args: argparse.Namespace,
    db: Database,
    settings: Settings,
    stats: Stats,
    days: list[date],
    written: int,
    rss: dict[str, float],
) -> None:
    """Every report over the last 30 days and the whole history, then the live consumer."""
    tz = settings.company.tz
    whole = Period(days[0], days[-1], tz)
    last30 = Period(days[max(0, len(days) - 30)], days[-1], tz)
    short = f"{(last30.end - last30.start).days + 1} days"
    labels = {short: last30, f"{len(days)} days": whole}
    spans = "; ".join(f"{k}: {p.start} – {p.end}" for k, p in labels.items())
    say(f"reports ({spans}; {load_average()} before)")
    timings = await time_reports(stats, labels, args.runs)
    rss["reports and exports"] = rss_mb()
    say(timings_text(timings, list(labels), args.runs))
    if any(t.notes.get(k, "").startswith("refused") for t in timings for k in labels):
        say(
            f"  (an XLSX of over {XLSX_MAX_ROWS:,} rows is refused with a pointer to CSV; "
            "its time is that of finding out)"
        )

    # ---- the live consumer (last: it adds a few events of today)
    say(f"live statistics consumer at {written:,} events ({load_average()} before)")
    for line in await live_consumer(db, settings, args.runs):
        say(line)


async def reuse(args: argparse.Namespace, target: Target) -> None:
    """``--reuse``: the reports (and the live consumer) on a database a run with
    ``--keep`` left, migrated to this checkout's schema first; no generation, no
    rebuild. Its history's days are found in it (``--days`` of them from the first)."""
    settings = Settings(database_url=target.url)
    tz = settings.company.tz
    db = Database(target.url)
    rss: dict[str, float] = {}
    try:
        started = time.perf_counter()
        await upgrade(db.engine)
        migrated_s = time.perf_counter() - started
        async with db.read() as conn:
            first = (
                await conn.execute(
                    select(func.min(StatsDaily.day)).where(StatsDaily.metric == "conv.started")
                )
            ).scalar()
            written = int(
                (await conn.execute(select(func.count()).select_from(EventRecord))).scalar() or 0
            )
        if first is None:
            raise SystemExit(f"{target.url} holds no statistics: run with --keep first")
        days = [first + timedelta(days=i) for i in range(args.days)]
        say(
            f"db={args.db} reused {target.url}: {days[0]} – {days[-1]} ({tz}), "
            f"{written:,} events; migrated to head in {migrated_s:.1f} s "
            "(generation and rebuilds skipped)"
        )
        stats = Stats(db, tz, {c: c for c in CHANNEL_TYPES}, night_hours=settings.stats.night_hours)
        await reports_and_consumer(args, db, settings, stats, days, written, rss)
    finally:
        await db.dispose()
    await size_and_memory(target, rss)


async def size_and_memory(target: Target, rss: dict[str, float]) -> None:
    say("size")
    lines = sqlite_sizes(target.raw) if target.kind == "sqlite" else await pg_sizes(target.raw)
    for line in lines:
        say(line)
    steps = ", ".join(f"{k} {v:.0f} MB" for k, v in rss.items())
    say(
        f"memory                 peak RSS of this process {rss_mb():.0f} MB "
        f"(the peak so far after {steps})"
    )


# --------------------------------------------------------------------------- load A/B
def _worktree_cmd(rev: str, worktree: Path) -> tuple[list[str], str]:
    """A detached worktree of ``rev`` and the command that runs its ``abonent`` with this
    venv (only ``src/`` differs), checked to import from the worktree."""
    if worktree.exists():
        raise SystemExit(f"{worktree} exists: remove it or pass --worktree")
    subprocess.run(
        ["git", "-C", str(REPO), "worktree", "add", "--detach", str(worktree), rev],
        check=True,
        capture_output=True,
    )
    env_path = f"PYTHONPATH={worktree / 'src'}"
    probe = subprocess.run(
        ["env", env_path, sys.executable, "-c", "import abonent; print(abonent.__file__)"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    if not probe.startswith(str(worktree)):
        raise SystemExit(f"the worktree's abonent is not the one imported: {probe}")
    return ["--abonent-cmd", shlex.join(["env", env_path, sys.executable, "-m", "abonent"])], probe


def compare_load(args: argparse.Namespace) -> None:
    """bench/load.py against the servers of ``--after`` (this checkout by default) and
    of ``--before`` (git worktrees under /tmp run with this venv: only ``abonent``
    differs), alternating."""
    trees = [Path(args.worktree)] + ([Path(args.worktree + "-after")] if args.after else [])
    try:
        servers: dict[str, list[str]] = {}
        say(
            f"load comparison: bench/load.py --db {args.db} --customers {args.load_customers} "
            f"--duration {args.load_duration:g}, {args.load_rounds} rounds of before/after"
        )
        if args.before == NO_EVENTS:
            runner = [sys.executable, str(REPO / "bench" / "no_events.py")]
            servers["before"] = ["--abonent-cmd", shlex.join(runner)]
            say("  before = this checkout, eventlog.record inserting nothing (bench/no_events.py)")
        else:
            servers["before"], probe = _worktree_cmd(args.before, trees[0])
            say(f"  before = {args.before} (no event log), imported from {probe}")
        if args.after:
            servers["after"], probe = _worktree_cmd(args.after, trees[1])
            say(f"  after  = {args.after}, imported from {probe}")
        else:
            servers["after"] = []
            say(f"  after  = this checkout ({git_head()})")
        results: dict[str, list[dict[str, Any]]] = {"before": [], "after": []}
        for round_no in range(1, args.load_rounds + 1):
            for label in ("before", "after"):
                cmd = [
                    sys.executable,
                    str(REPO / "bench" / "load.py"),
                    "--db",
                    args.db,
                    "--customers",
                    str(args.load_customers),
                    "--duration",
                    str(args.load_duration),
                    "--pg-url",
                    args.pg_url,
                    "--json",
                ]
                cmd += servers[label]
                note(f"load round {round_no} {label}: {shlex.join(cmd)}")
                done = subprocess.run(cmd, capture_output=True, text=True, check=False)
                figures = None
                for line in reversed(done.stdout.splitlines()):
                    if line.startswith("{"):
                        figures = json.loads(line)
                        break
                if figures is None:
                    say(f"  round {round_no} {label}: FAILED (exit {done.returncode})")
                    say("    " + "\n    ".join((done.stdout + done.stderr).splitlines()[-15:]))
                    continue
                results[label].append(figures)
                say(
                    f"  round {round_no} {label:<6} {figures['msg_per_s']:7.1f} msg/s  "
                    f"p50 {figures['p50_ms']:5.1f} ms  p99 {figures['p99_ms']:6.1f} ms  "
                    f"server cpu {figures['server_cpu_ms_per_msg']:.2f} ms/msg  "
                    f"timeouts {figures['timeouts']}  log errors {figures['server_log_errors']}"
                )
        if results["before"] and results["after"]:

            def med(label: str, key: str) -> float:
                return statistics.median(float(f[key]) for f in results[label])

            rate_b, rate_a = med("before", "msg_per_s"), med("after", "msg_per_s")
            say(
                f"  median               before {rate_b:.1f} msg/s, after {rate_a:.1f} msg/s → "
                f"after/before {rate_a / rate_b:.3f} ({(rate_a / rate_b - 1) * 100:+.1f} %; "
                "goal: within -10 %)"
            )
            for key, name in (
                ("p50_ms", "p50"),
                ("p99_ms", "p99"),
                ("server_cpu_ms_per_msg", "server CPU/msg"),
            ):
                b, a = med("before", key), med("after", key)
                say(f"  {name:<20} before {b:.2f}, after {a:.2f} → after/before {a / b:.3f}")
    finally:
        for tree in trees:
            subprocess.run(
                ["git", "-C", str(REPO), "worktree", "remove", "--force", str(tree)],
                check=False,
                capture_output=True,
            )
        subprocess.run(["git", "-C", str(REPO), "worktree", "prune"], check=False)
        say(f"  worktrees removed: {not any(tree.exists() for tree in trees)}")


def git_head() -> str:
    done = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
        check=False,
    )
    return done.stdout.strip() or "?"


# --------------------------------------------------------------------------- main
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--db", choices=("sqlite", "postgres"), default="sqlite")
    p.add_argument("--days", type=int, default=90)
    p.add_argument("--messages-per-day", type=int, default=20_000)
    p.add_argument("--operators", type=int, default=20)
    p.add_argument("--seed", type=int, default=2026)
    p.add_argument("--keep", action="store_true", help="keep the database afterwards")
    p.add_argument(
        "--reuse",
        action="store_true",
        help="time the reports on the database --keep left (--sqlite-path, --pg-db): "
        "migrate it to this checkout, skip generation and rebuilds",
    )
    p.add_argument(
        "--sqlite-path", default="/tmp/abonent-bench-stats.db", help="the SQLite file (replaced)"
    )
    p.add_argument(
        "--pg-url",
        default=DEFAULT_PG_URL,
        help="maintenance database; the bench creates and drops --pg-db next to it",
    )
    p.add_argument("--pg-db", default="abonent_bench_stats", help="the scratch database (replaced)")
    p.add_argument("--runs", type=int, default=5, help="timed runs of each report after a warm-up")
    p.add_argument(
        "--rebuild-from-day", type=int, default=80, help="the partial rebuild's first day (index)"
    )
    p.add_argument(
        "--no-delivered",
        action="store_true",
        help="leave out message.delivered (the rollups do not read it; the messengers' "
        "replies have one each, web-chat replies none)",
    )
    p.add_argument(
        "--compare-load",
        action="store_true",
        help="also run bench/load.py against this checkout and --before, alternating",
    )
    p.add_argument("--load-only", action="store_true", help="only the load comparison")
    p.add_argument(
        "--before",
        default=NO_EVENTS,
        help=f"the commit to compare with, or {NO_EVENTS!r} (default): this checkout "
        "with the event log switched off",
    )
    p.add_argument(
        "--after", default=None, help="the commit to measure (default: this checkout as it is)"
    )
    p.add_argument("--worktree", default=f"/tmp/abonent-before-{os.getpid()}")
    p.add_argument("--load-rounds", type=int, default=2, help="before/after pairs")
    p.add_argument("--load-customers", type=int, default=20)
    p.add_argument("--load-duration", type=float, default=15)
    args = p.parse_args(argv)
    if args.days < 2 or args.messages_per_day < 10 or args.operators < 1:
        p.error("at least 2 days, 10 messages a day and 1 operator")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not args.load_only:
        asyncio.run(run_stats(args))
    if args.compare_load or args.load_only:
        compare_load(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
