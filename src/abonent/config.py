"""Settings: environment variables ``ABONENT_*`` over an optional TOML file (README).

Everything is validated once at start, so a typo in a deployment's TOML fails loudly
instead of surfacing as a wrong tariff in a customer's reply.
"""

from __future__ import annotations

import fnmatch
import os
import re
from datetime import datetime, time
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, Field, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from abonent.core.events import DURABLE, LOG_STARTED
from abonent.crm.base import CrmSettings

DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
DAY_NAMES_RU = ("пн", "вт", "ср", "чт", "пт", "сб", "вс")
_HOURS_RE = re.compile(r"^(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})$")


class MessengerLink(BaseModel):
    """A messenger the site widget lists: what the customer sees and where the link goes."""

    type: str
    title: str
    url: str


class WorkingHours(BaseModel):
    """Operators' hours per weekday; a day missing from ``days`` is a day off."""

    days: dict[int, tuple[time, time]] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _parse(cls, value: Any) -> Any:
        """Accept ``{"mon-fri": "08:00-20:00", "sat": "09:00-15:00"}`` as an editor writes it."""
        if not isinstance(value, dict) or "days" in value:
            return value
        days: dict[int, tuple[time, time]] = {}
        for spec, hours in value.items():
            match = _HOURS_RE.match(str(hours).strip())
            if not match:
                raise ValueError(f"working hours {hours!r} must look like 08:00-20:00")
            h1, m1, h2, m2 = (int(g) for g in match.groups())
            start = time(h1, m1)
            end = time(23, 59, 59) if (h2, m2) == (24, 0) else time(h2, m2)
            for day in _expand_days(str(spec)):
                days[day] = (start, end)
        return {"days": days}

    def is_open(self, moment: datetime) -> bool:
        span = self.days.get(moment.weekday())
        return span is not None and span[0] <= moment.time() < span[1]

    def describe(self) -> str:
        """Russian text such as «пн–пт 08:00–20:00»; consecutive days with equal hours merge."""
        parts: list[str] = []
        day = 0
        while day < 7:
            span = self.days.get(day)
            if span is None:
                day += 1
                continue
            last = day
            while last + 1 < 7 and self.days.get(last + 1) == span:
                last += 1
            names = (
                DAY_NAMES_RU[day] if last == day else f"{DAY_NAMES_RU[day]}–{DAY_NAMES_RU[last]}"
            )
            parts.append(f"{names} {span[0]:%H:%M}–{span[1]:%H:%M}")
            day = last + 1
        return ", ".join(parts) if parts else "по будням"


def _expand_days(spec: str) -> list[int]:
    result: list[int] = []
    for chunk in spec.lower().replace(" ", "").split(","):
        if "-" in chunk:
            first, last = chunk.split("-", 1)
            a, b = DAY_NAMES.index(first), DAY_NAMES.index(last)
            result.extend(range(a, b + 1))
        elif chunk:
            result.append(DAY_NAMES.index(chunk))
    return result


class CompanySettings(BaseModel):
    name: str = "ЭнергоСбыт"
    emergency_phone: str = "112"
    call_center_phone: str = "8 800 000-00-00"
    timezone: str = "Europe/Moscow"
    working_hours: WorkingHours = Field(
        default_factory=lambda: WorkingHours.model_validate({"mon-fri": "08:00-20:00"})
    )
    links: dict[str, str] = Field(default_factory=dict)
    messengers: list[MessengerLink] = Field(default_factory=list)

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(
                f"unknown time zone {value!r}; use an IANA name such as Europe/Moscow"
            ) from exc
        return value

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


def _zone_hours(value: dict[str, str], zones: tuple[str, ...]) -> dict[str, str]:
    """Hours of each zone as an editor writes them, ``"07:00-10:00, 17:00-21:00"``: checked
    here so that a typo fails at start, not in the middle of a customer's answer."""
    for zone, hours in value.items():
        if zone not in zones:
            raise ValueError(f"tariff hours for unknown zone {zone!r}; zones: {', '.join(zones)}")
        for span in hours.split(","):
            match = _HOURS_RE.match(span.strip())
            h1, m1, h2, m2 = (int(g) for g in match.groups()) if match else (99, 0, 0, 0)
            if max(h1, h2) > 24 or max(m1, m2) > 59:
                raise ValueError(f"tariff hours {hours!r} must look like 07:00-10:00, 17:00-21:00")
    return {zone: ", ".join(s.strip() for s in hours.split(",")) for zone, hours in value.items()}


class TwoZone(BaseModel):
    day: Decimal = Field(gt=0)
    night: Decimal = Field(gt=0)
    # Optional: the zones' local hours, told to customers with the prices.
    hours: dict[str, str] = Field(default_factory=dict)

    @field_validator("hours")
    @classmethod
    def _hours(cls, value: dict[str, str]) -> dict[str, str]:
        return _zone_hours(value, ("day", "night"))


class ThreeZone(BaseModel):
    peak: Decimal = Field(gt=0)
    half_peak: Decimal = Field(gt=0)
    night: Decimal = Field(gt=0)
    hours: dict[str, str] = Field(default_factory=dict)

    @field_validator("hours")
    @classmethod
    def _hours(cls, value: dict[str, str]) -> dict[str, str]:
        return _zone_hours(value, ("peak", "half_peak", "night"))


class TariffSettings(BaseModel):
    """Rubles per kWh for each plan and zone.

    No defaults: a price the company did not configure is never stated to a customer, in
    the answer about tariffs or as the cost of submitted readings (those then show the
    consumption alone).
    """

    single: Decimal | None = Field(default=None, gt=0)
    two_zone: TwoZone | None = None
    three_zone: ThreeZone | None = None


class ReadingsSettings(BaseModel):
    """The monthly submission window and the plausibility bound for a jump."""

    first_day: int = Field(default=15, ge=1, le=31)
    last_day: int = Field(default=25, ge=1, le=31)
    max_daily_kwh: Decimal = Decimal("60")

    @model_validator(mode="after")
    def _ordered(self) -> ReadingsSettings:
        if self.first_day > self.last_day:
            raise ValueError("readings.first_day must not be after readings.last_day")
        return self


class BillingSettings(BaseModel):
    """``[billing]``: our own tables (``type = "local"``) or the utility's billing over the
    HTTP contract of docs/billing-http-api.md (``type = "http"``)."""

    type: Literal["local", "http"] = "local"
    account_length: int = Field(default=10, ge=4, le=20)
    url: str = ""
    token: str = ""
    # Seconds per read request; a customer waits this long at most per try.
    timeout: float = Field(default=3.0, gt=0, le=30)
    # Extra tries of a read after a connection error, a timeout, 5xx or 429.
    retries: int = Field(default=2, ge=0, le=5)
    # The first pause between tries, doubled each time (a Retry-After wins when sent).
    retry_backoff: float = Field(default=0.3, ge=0, le=10)
    # Seconds the customer's submission may take before it is queued instead.
    submit_timeout: float = Field(default=3.0, gt=0, le=30)
    # Consecutive failures that open the circuit, and how long it stays open (seconds):
    # meanwhile calls fail at once instead of making every customer wait for a timeout.
    breaker_failures: int = Field(default=5, ge=1, le=100)
    breaker_open_seconds: float = Field(default=30.0, gt=0, le=3600)
    # Seconds an account read from billing is reused within a conversation's steps.
    cache_seconds: float = Field(default=30.0, ge=0, le=3600)
    # The first pause before a queued submission is tried again; it doubles up to 10 min.
    queue_retry_seconds: float = Field(default=5.0, gt=0, le=600)

    @model_validator(mode="before")
    @classmethod
    def _old_backend_key(cls, value: Any) -> Any:
        """Configs written before ``type`` existed say ``backend = "local"``."""
        if isinstance(value, dict) and "backend" in value:
            value = dict(value)
            backend = value.pop("backend")
            value.setdefault("type", backend)
        return value

    @model_validator(mode="after")
    def _http_needs_url(self) -> BillingSettings:
        if self.type == "http" and not self.url.startswith(("http://", "https://")):
            raise ValueError(
                "billing.url must be an http(s):// address when billing.type is 'http'"
            )
        return self

    @property
    def backend(self) -> str:
        """The old name of ``type``, for code written against it."""
        return self.type


class ChannelSettings(BaseModel):
    """One ``[[channels]]`` entry; platform-specific fields stay in ``extra``."""

    model_config = {"extra": "allow"}

    # Part of the webhook URL (``/webhooks/{id}``), hence the narrow alphabet.
    id: str = Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")
    type: Literal["telegram", "whatsapp", "viber", "vk", "max", "webchat"]
    token: str = ""
    secret: str = ""
    api_base: str = ""


class WebhookSettings(BaseModel):
    """One ``[[webhooks]]`` entry: an endpoint of the company's own systems that is told
    about events (automation/webhooks.py; docs/webhooks.md)."""

    # Shown to admins and in metrics' labels, hence the narrow alphabet.
    id: str = Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")
    url: str
    # The HMAC key of the signature; the receiver holds the same.
    secret: str = Field(min_length=1)
    # Event types (core/events.py) or globs of them: "readings.*", "*".
    events: list[str] = Field(min_length=1)
    # False: no deliveries are queued for it (those already queued wait).
    enabled: bool = True
    # Seconds for one delivery attempt, connecting included.
    timeout: float = Field(default=10, gt=0, le=120)

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        parsed = urlsplit(value.strip())
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise ValueError(f"webhook url {value!r} must be an http:// or https:// address")
        return value.strip()

    @field_validator("secret")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("webhook secret must not be blank")
        return value

    @field_validator("events")
    @classmethod
    def _known_events(cls, value: list[str]) -> list[str]:
        known = sorted(DURABLE - {LOG_STARTED})
        for pattern in value:
            if not fnmatch.filter(known, pattern):
                raise ValueError(
                    f"webhook event {pattern!r} matches no event type; known: {', '.join(known)}"
                )
        return value

    def wants(self, event_type: str) -> bool:
        return any(fnmatch.fnmatchcase(event_type, p) for p in self.events)


class OperatorSettings(BaseModel):
    """The bearer token of the operator and statistics HTTP APIs (for scripts and BI
    tools; people sign in to the workspace), and the satisfaction survey."""

    api_token: str = ""
    # When an operator closes a conversation the customer is asked to rate it 1–5.
    satisfaction_survey: bool = True


class ConversationSettings(BaseModel):
    """A conversation with the bot that has been silent this long is closed (0: never):
    the customer's next message starts a new one, so conversations count visits."""

    idle_close_hours: float = Field(default=24, ge=0)


class AttachmentSettings(BaseModel):
    """Files customers and operators send (photos of meters, receipts, PDFs)."""

    # The largest file accepted, in megabytes (a phone's photo is 2–6 MB).
    max_mb: float = Field(default=10, gt=0, le=100)
    # Where the files are kept; empty: ``attachments/`` next to the SQLite database
    # (the working directory with PostgreSQL). Never inside a static directory.
    dir: str = ""
    # How long a link to a file sent to a messenger that takes files by URL works.
    link_hours: float = Field(default=72, gt=0)

    @property
    def max_bytes(self) -> int:
        return int(self.max_mb * 1024 * 1024)


class StatsSettings(BaseModel):
    """The statistics: how long raw events are kept (the rollups always are), and which
    local hours count as night."""

    events_retention_days: int = Field(default=180, ge=0)  # 0: keep every event
    night: str = "23:00-07:00"

    @field_validator("night")
    @classmethod
    def _whole_hours(cls, value: str) -> str:
        match = _HOURS_RE.match(value.strip())
        if not match or match.group(2) != "00" or match.group(4) != "00":
            raise ValueError(f"stats.night {value!r} must be whole hours such as 23:00-07:00")
        if int(match.group(1)) > 23 or int(match.group(3)) > 24:
            raise ValueError(f"stats.night {value!r} has an hour beyond 24")
        return value.strip()

    @property
    def night_hours(self) -> frozenset[int]:
        """Local hours (0–23) that count as night: 23:00-07:00 → {23, 0, 1, … 6}."""
        match = _HOURS_RE.match(self.night)
        assert match is not None
        start, end = int(match.group(1)), int(match.group(3)) % 24
        if start == end:
            return frozenset()
        hours = range(start, end) if start < end else [*range(start, 24), *range(0, end)]
        return frozenset(hours)


class HooksSettings(BaseModel):
    """``[hooks]``: the company's own Python hooks (automation/hooks.py; docs/hooks.md)."""

    # Modules to import, each exposing ``hooks = HookSet(...)``; "module:attribute" names
    # another attribute.
    modules: list[str] = Field(default_factory=list)
    # Folders put on ``sys.path`` before importing them (a package not pip-installed).
    paths: list[str] = Field(default_factory=list)
    # Also load what installed packages declare in the entry-point group ``abonent.hooks``.
    entry_points: bool = True
    # Seconds one handler may run; it is then cancelled and the run counts as failed.
    timeout: float = Field(default=10.0, gt=0, le=600)
    # Seconds a readings check may take (the customer waits): then it is ignored.
    check_timeout: float = Field(default=3.0, gt=0, le=30)
    # Tries of a failing run before it is given up.
    attempts: int = Field(default=5, ge=1, le=50)
    # Events older than this when the hooks reach them (a long outage) are not run.
    max_event_age_hours: float = Field(default=24.0, gt=0)
    # True: a module that cannot be loaded stops ``abonent serve``; False: it is logged
    # and shown on the integrations page while everything else runs.
    strict: bool = False


class RemindersSettings(BaseModel):
    """``[reminders]``: payment and readings reminders (automation/reminders;
    docs/reminders.md)."""

    # Run the campaigns' scheduler and sender in this server (several servers share them).
    enabled: bool = True
    # The default quiet hours of a new campaign, in the company timezone: nobody is
    # written to then; a reminder due meanwhile waits until they end.
    quiet_hours: str = "21:00-09:00"
    # Reminders per second per channel type, kept under each platform's own limit so the
    # live replies of the outbox still fit (Telegram ~30/s, VK 20/s, MAX 30/s, WhatsApp
    # 80/s per number).
    rates: dict[str, float] = Field(
        default_factory=lambda: {
            "telegram": 20.0,
            "vk": 15.0,
            "max": 20.0,
            "viber": 20.0,
            "whatsapp": 50.0,
        }
    )
    # While the outbox holds this many unsent replies for a channel, reminders to it
    # wait: live conversations come first.
    outbox_backlog: int = Field(default=50, ge=1)
    # WhatsApp outside the 24-hour window: an approved template («name» or
    # «name:language»), its body parameters in this order; "" skips those customers.
    whatsapp_template: str = ""
    whatsapp_language: str = "ru"
    whatsapp_parameters: list[str] = Field(
        default_factory=lambda: ["name", "account", "amount", "due_date"]
    )
    # The template was approved with a quick-reply button first («Отписаться»): its
    # press turns reminders off. Meta refuses a button parameter the template lacks.
    whatsapp_unsubscribe_button: bool = False
    # True: only accounts the platform proved the contact's own (a vouched phone);
    # False: also accounts the contact named to the bot.
    confirmed_accounts_only: bool = False
    # Seconds a process's claim on reminders outlives it: after a crash, its reminders
    # not yet sent wait this long before another process takes them over.
    lease_seconds: float = Field(default=30.0, ge=1.0, le=600.0)
    # The statistics count readings submitted for the reminded account, and opt-outs,
    # this many days after a reminder as its outcome.
    followup_days: int = Field(default=7, ge=1, le=90)
    # Telegram's 1 message a second to one chat; other platforms' own per-chat limits.
    per_chat_interval: float = Field(default=1.0, ge=0.0, le=60.0)
    # With ``redis_url`` set, the rates above hold across every server process together
    # (a shared one-second window in Redis); false: each process keeps its own.
    shared_throttle: bool = True

    @field_validator("quiet_hours")
    @classmethod
    def _quiet(cls, value: str) -> str:
        if value.strip() and not _HOURS_RE.match(value.strip()):
            raise ValueError(f"reminders.quiet_hours {value!r} must look like 21:00-09:00")
        return value.strip()


class NluSettings(BaseModel):
    """``[nlu]``: the editors' review page and retraining (nlu/retrain.py;
    docs/kb-editing.md)."""

    # How often each server process asks the database whether a newer model was accepted.
    poll_seconds: float = Field(default=10.0, ge=0.5, le=3600.0)
    # A retrained model replaces the running one only if its held-out accuracy is at
    # most this much below the current one's (on the knowledge base's held-out fold and
    # on the editors' examples alike).
    retrain_tolerance: float = Field(default=0.01, ge=0.0, le=0.5)
    # Customer messages of this many days are re-answered to show what changed.
    changed_days: int = Field(default=7, ge=1, le=90)


# --- [rate_limits] (issue 15: hardening; web/ratelimit.py, docs/hardening.md) ---------
_RATE_RE = re.compile(r"^\s*(\d+)\s*/\s*(\d*)\s*(second|minute|hour|day)s?\s*$")
_PERIODS = {"second": 1, "minute": 60, "hour": 3600, "day": 86400}


def parse_rate(value: str) -> tuple[int, int]:
    """«20/minute», «5/10 seconds», «0/minute» (off) → (requests, seconds)."""
    found = _RATE_RE.match(value.lower())
    if not found:
        raise ValueError(f"{value!r} is not a rate like '20/minute' or '5/10 seconds'")
    count, times, period = found.groups()
    return int(count), int(times or 1) * _PERIODS[period]


class RateLimitSettings(BaseModel):
    """``[rate_limits]``: requests to the public endpoints, counted per client address
    and per conversation in fixed windows, shared through Redis when ``redis_url`` is
    set; over the limit the answer is 429 with ``Retry-After``. "0/minute" turns one off."""

    enabled: bool = True
    # Proxies (addresses or networks) whose X-Forwarded-For is believed: the client's
    # address is then the last one in that header not itself a trusted proxy. Behind a
    # reverse proxy on the same machine, list it here ("127.0.0.1"), or every customer
    # arrives from the proxy's (exempt) address.
    trusted_proxies: list[str] = Field(default_factory=list)
    # Client addresses never limited: by default the machine itself (health checks,
    # benchmarks, the test suite). "[]" limits loopback too.
    exempt: list[str] = Field(default_factory=lambda: ["127.0.0.0/8", "::1/128"])
    conversations: str = "10/minute"  # new web-chat conversations per address
    messages_per_address: str = "60/minute"  # client-API messages per address
    messages_per_conversation: str = "30/minute"  # … and per conversation
    links: str = "120/minute"  # /r/<token> redirects per address
    sign_in: str = "10/minute"  # workspace sign-in attempts per address

    @field_validator(
        "conversations", "messages_per_address", "messages_per_conversation", "links", "sign_in"
    )
    @classmethod
    def _rate(cls, value: str) -> str:
        parse_rate(value)
        return value

    @field_validator("trusted_proxies", "exempt")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        import ipaddress

        for item in value:
            ipaddress.ip_network(item.strip(), strict=False)
        return [item.strip() for item in value]


# --- end [rate_limits] ------------------------------------------------------------------


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="ABONENT_",
        env_nested_delimiter="__",
        extra="ignore",
    )

    database_url: str = "sqlite+aiosqlite:///abonent.db"
    redis_url: str = ""
    public_url: str = ""
    log_level: str = "INFO"
    company: CompanySettings = Field(default_factory=CompanySettings)
    tariffs: TariffSettings = Field(default_factory=TariffSettings)
    readings: ReadingsSettings = Field(default_factory=ReadingsSettings)
    billing: BillingSettings = Field(default_factory=BillingSettings)
    operators: OperatorSettings = Field(default_factory=OperatorSettings)
    conversations: ConversationSettings = Field(default_factory=ConversationSettings)
    stats: StatsSettings = Field(default_factory=StatsSettings)
    attachments: AttachmentSettings = Field(default_factory=AttachmentSettings)
    channels: list[ChannelSettings] = Field(default_factory=list)
    webhooks: list[WebhookSettings] = Field(default_factory=list)
    crm: CrmSettings = Field(default_factory=CrmSettings)
    hooks: HooksSettings = Field(default_factory=HooksSettings)
    reminders: RemindersSettings = Field(default_factory=RemindersSettings)
    rate_limits: RateLimitSettings = Field(default_factory=RateLimitSettings)  # issue 15
    nlu: NluSettings = Field(default_factory=NluSettings)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        path = os.environ.get("ABONENT_CONFIG")
        if path:
            if not Path(path).is_file():
                raise FileNotFoundError(f"ABONENT_CONFIG points to a missing file: {path}")
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=path))
        return tuple(sources)

    @field_validator("webhooks")
    @classmethod
    def _unique_webhooks(cls, value: list[WebhookSettings]) -> list[WebhookSettings]:
        ids = [w.id for w in value]
        doubled = sorted({i for i in ids if ids.count(i) > 1})
        if doubled:
            raise ValueError(f"webhook ids must be unique: {', '.join(doubled)}")
        return value

    @field_validator("database_url")
    @classmethod
    def _async_driver(cls, value: str) -> str:
        """Accept the plain URLs admins paste and pick the async driver for them."""
        if value.startswith("postgresql://") or value.startswith("postgres://"):
            return "postgresql+asyncpg://" + value.split("://", 1)[1]
        if value.startswith("sqlite:///"):
            return "sqlite+aiosqlite:///" + value.removeprefix("sqlite:///")
        return value

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
