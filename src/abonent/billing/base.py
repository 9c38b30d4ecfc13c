"""The Billing interface the bot and the operator card talk to.

A deployment plugs its own billing in behind this (the local tables fed by CSV import
today, an HTTP backend later); nothing above this module knows which one runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Literal, Protocol

Plan = Literal["single", "two_zone", "three_zone"]
PLANS: tuple[Plan, ...] = ("single", "two_zone", "three_zone")

# Zone keys per plan, in the order of the CSV columns t1..t3 and of what customers type.
ZONES: dict[str, tuple[str, ...]] = {
    "single": ("single",),
    "two_zone": ("day", "night"),
    "three_zone": ("peak", "half_peak", "night"),
}
ZONE_TITLES: dict[str, str] = {
    "single": "показание",
    "day": "день",
    "night": "ночь",
    "peak": "пик",
    "half_peak": "полупик",
}


@dataclass(frozen=True)
class AccountInfo:
    number: str
    holder: str
    address: str
    plan: Plan
    # The last accepted readings, one per zone of the plan, in ZONES order.
    last_readings: tuple[Decimal, ...]
    readings_date: date | None
    # Positive: the customer owes; negative: overpaid.
    balance: Decimal
    phone: str | None = None

    @property
    def zones(self) -> tuple[str, ...]:
        return ZONES[self.plan]


@dataclass(frozen=True)
class ZoneResult:
    zone: str
    previous: Decimal
    current: Decimal
    consumption: Decimal
    tariff: Decimal
    cost: Decimal


@dataclass(frozen=True)
class SubmissionResult:
    account: AccountInfo
    zones: tuple[ZoneResult, ...]
    previous_date: date | None
    total_consumption: Decimal
    total_cost: Decimal


class BillingError(Exception):
    """A billing backend could not answer (down, timed out); the bot apologises and offers help."""


class ReadingsRejected(Exception):
    """Readings a backend refuses to store (lower than the last accepted, wrong zone count)."""

    def __init__(self, reason: str, zone: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.zone = zone


class Billing(Protocol):
    async def get_account(self, number: str) -> AccountInfo | None:
        """The account by its normalised number, or None when there is no such account."""
        ...

    async def find_accounts_by_phone(self, phone: str) -> list[AccountInfo]:
        """Accounts registered with this phone (``+7…``), for identity linking and the card."""
        ...

    async def submit_readings(
        self,
        number: str,
        values: Sequence[Decimal],
        taken_on: date,
        *,
        source: str,
        conversation_id: int | None = None,
    ) -> SubmissionResult:
        """Store readings (one per zone, in ZONES order) with history, return consumption and cost.

        Raises ReadingsRejected when a value is below the last accepted one or the count
        does not match the plan; the caller validates first, this is the last line of defence.
        """
        ...
