"""Settings: environment variables ``ABONENT_*`` over an optional TOML file (README).

Everything is validated once at start, so a typo in a deployment's TOML fails loudly
instead of surfacing as a wrong tariff in a customer's reply.
"""

from __future__ import annotations

import os
import re
from datetime import datetime, time
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, Field, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

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
    backend: Literal["local"] = "local"
    account_length: int = Field(default=10, ge=4, le=20)


class ChannelSettings(BaseModel):
    """One ``[[channels]]`` entry; platform-specific fields stay in ``extra``."""

    model_config = {"extra": "allow"}

    # Part of the webhook URL (``/webhooks/{id}``), hence the narrow alphabet.
    id: str = Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")
    type: Literal["telegram", "whatsapp", "viber", "vk", "max", "webchat"]
    token: str = ""
    secret: str = ""
    api_base: str = ""


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
    crm: CrmSettings = Field(default_factory=CrmSettings)

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
