"""The Billing interface the bot and the operator card talk to.

A deployment plugs its own billing in behind this (the local tables fed by CSV import
today, an HTTP backend later); nothing above this module knows which one runs.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Literal, Protocol

# The namespace of ``submission_key``: any fixed UUID, never to change.
_SUBMISSIONS = uuid.UUID("6f1c3a52-4f0e-4b8e-9d43-0c1a7b5e2d19")

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
    # When the balance is due, if the billing says (the local tables do not know).
    due_date: date | None = None
    # Set when billing could not be asked and this is what it told at that moment (UTC):
    # the balance may have changed since, and the customer is told so.
    as_of: datetime | None = None

    @property
    def zones(self) -> tuple[str, ...]:
        return ZONES[self.plan]


@dataclass(frozen=True)
class ZoneResult:
    zone: str
    previous: Decimal
    current: Decimal
    consumption: Decimal
    # None when the company configured no price for the plan: the cost is then not told.
    tariff: Decimal | None
    cost: Decimal | None


@dataclass(frozen=True)
class PeriodSubmission:
    """Readings already submitted in the current billing period.

    A utility bills a period by one set of readings, the last one submitted in it, so a
    second submission replaces this one: it is checked and counted against ``base`` (the
    readings accepted before the period's first submission), not against the readings it
    replaces, and a customer correcting a typo may therefore give lower values.
    """

    taken_on: date
    values: tuple[Decimal, ...]
    base: tuple[Decimal, ...]
    base_date: date | None

    def as_base(self, account: AccountInfo) -> AccountInfo:
        """The account as a replacing submission is checked against."""
        return dataclasses.replace(account, last_readings=self.base, readings_date=self.base_date)


@dataclass(frozen=True)
class SubmissionResult:
    account: AccountInfo
    zones: tuple[ZoneResult, ...]
    previous_date: date | None
    total_consumption: Decimal
    # None when a zone has no configured price.
    total_cost: Decimal | None
    # The submission of the same period this one replaced, if any.
    replaced: PeriodSubmission | None = None
    # Billing could not be reached: the readings are stored in our queue and delivered
    # later; the figures are ours, from the readings billing last told (see billing.http).
    queued: bool = False


def submission_key(conversation_id: int | None, message_id: int | None) -> str:
    """Our id of a submission, the same each time one customer message is handled.

    A turn that fails after billing accepted the readings is handled again; with the same
    id billing answers the same instead of storing the readings twice.
    """
    if message_id is None:
        return str(uuid.uuid4())
    return str(uuid.uuid5(_SUBMISSIONS, f"{conversation_id}:{message_id}"))


class BillingError(Exception):
    """A billing backend could not answer (down, timed out); the bot apologises and offers help."""


class ReadingsRejected(Exception):
    """Readings a backend refuses to store (lower than the last accepted, wrong zone count)."""

    def __init__(self, reason: str, zone: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.zone = zone


class ReadingsAlreadySubmitted(Exception):
    """Readings were already submitted in this period and the caller did not ask to replace
    them: the bot asks the customer first (another member of the family may have sent them
    a minute ago)."""

    def __init__(self, earlier: PeriodSubmission) -> None:
        super().__init__(f"readings already submitted on {earlier.taken_on.isoformat()}")
        self.earlier = earlier


class Billing(Protocol):
    async def get_account(self, number: str) -> AccountInfo | None:
        """The account by its normalised number, or None when there is no such account."""
        ...

    async def find_accounts_by_phone(self, phone: str) -> list[AccountInfo]:
        """Accounts registered with this phone (``+7…``), for identity linking and the card."""
        ...

    async def period_submission(self, number: str, today: date) -> PeriodSubmission | None:
        """The readings submitted for this account in the billing period of ``today`` that a
        new submission would replace; None when there are none (or only the company's own,
        such as a controller's reading, which a customer does not replace)."""
        ...

    async def submit_readings(
        self,
        number: str,
        values: Sequence[Decimal],
        taken_on: date,
        *,
        source: str,
        conversation_id: int | None = None,
        replace: bool = False,
        submission_id: str | None = None,
    ) -> SubmissionResult:
        """Store readings (one per zone, in ZONES order) with history, return consumption and cost.

        When readings were already submitted in the period (``period_submission``), the new
        ones replace them if ``replace`` is true, and ReadingsAlreadySubmitted is raised
        otherwise. Raises ReadingsRejected when a value is below the last accepted one (the
        period's base, when replacing) or the count does not match the plan; the caller
        validates first, this is the last line of defence.

        ``submission_id`` (``submission_key``) makes a repeat of the same submission
        harmless where the backend is another system. A backend that cannot reach its
        store may accept the readings for later delivery: the result says ``queued``.
        """
        ...

    async def close(self) -> None:
        """Release connections (called once, at shutdown)."""
        ...
