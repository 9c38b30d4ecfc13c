"""The built-in billing backend: the ``accounts`` and ``readings_history`` tables fed by CSV import.

It is what a supplier without a billing API runs on (a nightly CSV export is enough), and what
the demo shows.

A billing period (a calendar month) is billed by one set of readings, the last one submitted
in it. A second submission in the period therefore replaces the first: the account takes the
new readings, which are checked and priced against the readings accepted before the period
(so a customer may correct a reading that was too high), and the earlier submission stays in
``readings_history`` as what was sent when. Of an account's rows in one period, the latest is
the one in force; an earlier ``bot``/``operator``/``api`` row followed by a later row of the
same period is a replaced one. No column marks it: the order of the rows does, which needs no
schema change and cannot disagree with the rows themselves. Imported rows (the company's own
readings, a controller's) are never replaced by a customer: a submission after one counts from
it.
"""

from __future__ import annotations

import contextlib
import re
from collections import namedtuple
from collections.abc import AsyncIterator, Sequence
from datetime import date
from decimal import Decimal
from typing import Protocol, cast

from sqlalchemy import bindparam, or_, select
from sqlalchemy.exc import OperationalError
from sqlalchemy.exc import TimeoutError as SQLAlchemyTimeoutError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from abonent.billing.accounts import normalise_account_number, normalise_phone
from abonent.billing.base import (
    PLANS,
    ZONE_TITLES,
    ZONES,
    AccountInfo,
    BillingError,
    PeriodSubmission,
    Plan,
    ReadingsAlreadySubmitted,
    ReadingsRejected,
    SubmissionResult,
)
from abonent.billing.csv_import import HISTORY_SOURCE as IMPORTED
from abonent.billing.readings import (
    KOPECK,
    WATT_HOUR,
    compute_zones,
    format_kwh,
    period_start,
    plain_decimal,
    total_consumption,
    total_cost,
)
from abonent.config import TariffSettings
from abonent.db.models import Account, ReadingsRecord
from abonent.db.session import Database, HotStatement

# ReadingsRejected.reason is shown to the customer inside a sentence
# ("Не удалось сохранить показания: {reason}."), so it is a lower-case Russian fragment.
REJECT_UNKNOWN_ACCOUNT = "лицевой счёт не найден"
REJECT_WRONG_COUNT = "для тарифа нужно показаний: {need}, передано: {given}"
REJECT_NEGATIVE = "показание {zone} не может быть отрицательным"
REJECT_LOWER = "показание {zone} ({given}) меньше последнего принятого ({previous})"


@contextlib.asynccontextmanager
async def _unavailable() -> AsyncIterator[None]:
    """A database that cannot be reached is a billing that is down: the bot apologises for it.

    Other database errors are bugs and stay as they are.
    """
    try:
        yield
    except (OperationalError, SQLAlchemyTimeoutError, OSError, TimeoutError) as exc:
        raise BillingError(f"accounts database unavailable: {exc.__class__.__name__}") from exc


def _squash(text: str) -> str:
    """One space where an empty zone title left two (the single plan names no zone)."""
    return re.sub(" {2,}", " ", text)


def kwh(value: Decimal) -> Decimal:
    """A reading as stored, without the float artefacts SQLite's Numeric can bring back."""
    return Decimal(value).quantize(WATT_HOUR)


def rubles(value: Decimal | None) -> Decimal:
    return Decimal(0 if value is None else value).quantize(KOPECK)


class AccountRow(Protocol):
    """An ``accounts`` row, as the ORM or a Core select returns it."""

    number: str
    holder: str
    address: str
    plan: str
    t1: Decimal | None
    t2: Decimal | None
    t3: Decimal | None
    readings_date: date | None
    balance: Decimal
    phone: str | None


# Read on every step of the bot's flows: built once, a Core select (no ORM identity map).
_BY_NUMBER = HotStatement(
    select(Account.__table__).where(Account.__table__.c.number == bindparam("number"))
)
# Its rows, with the columns by name (``AccountRow``).
_AccountTuple = namedtuple("_AccountTuple", [c.key for c in Account.__table__.c])  # type: ignore[misc]


def account_info(row: AccountRow) -> AccountInfo:
    """The row as the bot sees it; an account that never had readings shows zeros and no date."""
    # The import admits only known plans; a hand-edited row must not crash the bot.
    plan: Plan = row.plan if row.plan in PLANS else "single"
    stored = (row.t1, row.t2, row.t3)[: len(ZONES[plan])]
    readings = tuple(Decimal("0.000") if value is None else kwh(value) for value in stored)
    return AccountInfo(
        number=row.number,
        holder=row.holder,
        address=row.address,
        plan=plan,
        last_readings=readings,
        readings_date=row.readings_date,
        balance=rubles(row.balance),
        phone=row.phone,
    )


class _RecordRow(Protocol):
    """The columns of a ``readings_history`` row that a replacement looks at."""

    id: int
    source: str
    taken_on: date
    t1: Decimal | None
    t2: Decimal | None
    t3: Decimal | None
    consumption: dict[str, str] | None


# Core selects (no ORM objects to build): read on every step of the readings flow.
_RECORD_COLUMNS = (
    ReadingsRecord.id,
    ReadingsRecord.source,
    ReadingsRecord.taken_on,
    ReadingsRecord.t1,
    ReadingsRecord.t2,
    ReadingsRecord.t3,
    ReadingsRecord.consumption,
)
_RecordTuple = namedtuple("_RecordTuple", [c.key for c in _RECORD_COLUMNS])  # type: ignore[misc]
_LATEST_RECORD = HotStatement(
    select(*_RECORD_COLUMNS)
    .where(ReadingsRecord.account_number == bindparam("number"))
    .order_by(ReadingsRecord.id.desc())
    .limit(1)
)
_BASE_RECORD = HotStatement(
    select(*_RECORD_COLUMNS)
    .where(
        ReadingsRecord.account_number == bindparam("number"),
        ReadingsRecord.id < bindparam("before"),
        or_(ReadingsRecord.source == IMPORTED, ReadingsRecord.taken_on < bindparam("start")),
    )
    .order_by(ReadingsRecord.id.desc())
    .limit(1)
)


def _values(record: _RecordRow, count: int) -> tuple[Decimal, ...] | None:
    stored = (record.t1, record.t2, record.t3)
    if any(v is None for v in stored[:count]):
        return None
    return tuple(kwh(v) for v in stored[:count] if v is not None)


async def _period_submission(
    session: AsyncSession | AsyncConnection, account: AccountInfo, today: date
) -> PeriodSubmission | None:
    """The submission of ``today``'s period that a new one replaces, and what it counted from."""
    conn = session if isinstance(session, AsyncConnection) else await session.connection()
    found = (await _LATEST_RECORD.run(conn, {"number": account.number})).first()
    latest = cast(_RecordRow, _RecordTuple(*found)) if found is not None else None
    start = period_start(today)
    if latest is None or latest.source == IMPORTED or not start <= latest.taken_on <= today:
        return None
    count = len(account.zones)
    values = _values(latest, count)
    if values is None:  # the plan changed since: nothing comparable to replace
        return None
    found = (
        await _BASE_RECORD.run(
            conn, {"number": account.number, "before": latest.id, "start": start}
        )
    ).first()
    base_row = cast(_RecordRow, _RecordTuple(*found)) if found is not None else None
    base = _values(base_row, count) if base_row is not None else None
    if base_row is not None and base is not None:
        return PeriodSubmission(latest.taken_on, values, base, base_row.taken_on)
    # No earlier row (an account loaded without history): the replaced row's consumption
    # tells what it was counted from; the date of those readings is not known.
    used = latest.consumption or {}
    if not all(zone in used for zone in account.zones):
        return None
    base = tuple(kwh(v - Decimal(used[z])) for z, v in zip(account.zones, values, strict=True))
    return PeriodSubmission(latest.taken_on, values, base, None)


class LocalBilling:
    """``Billing`` over the local tables."""

    def __init__(self, db: Database, tariffs: TariffSettings) -> None:
        self.db = db
        self.tariffs = tariffs

    async def close(self) -> None:
        """The tables live in the application's database, which the runtime disposes of."""
        return None

    async def get_account(self, number: str) -> AccountInfo | None:
        key = normalise_account_number(number)
        async with _unavailable(), self.db.read() as conn:
            row = (await _BY_NUMBER.run(conn, {"number": key})).first()
            return account_info(cast(AccountRow, _AccountTuple(*row))) if row is not None else None

    async def find_accounts_by_phone(self, phone: str) -> list[AccountInfo]:
        normalised = normalise_phone(phone)
        if normalised is None:
            return []
        async with _unavailable(), self.db.session() as session:
            rows = await session.scalars(
                select(Account).where(Account.phone == normalised).order_by(Account.number)
            )
            return [account_info(row) for row in rows]

    async def period_submission(self, number: str, today: date) -> PeriodSubmission | None:
        key = normalise_account_number(number)
        async with _unavailable(), self.db.read() as conn:
            row = (await _BY_NUMBER.run(conn, {"number": key})).first()
            if row is None:
                return None
            account = account_info(cast(AccountRow, _AccountTuple(*row)))
            return await _period_submission(conn, account, today)

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
        """Store readings and their history in one transaction, on the freshly locked row.

        The bot checked the values against what it read a moment (or a conversation) ago; the
        row is read again under lock so that two submissions for one account (two family
        members, or the bot and an operator) cannot both pass against the same old readings,
        nor both be the period's first without either of them being asked about the other.
        """
        key = normalise_account_number(number)
        given = tuple(Decimal(v).quantize(WATT_HOUR) for v in values)
        async with _unavailable(), self.db.transaction() as session:
            query = select(Account).where(Account.number == key)
            if not self.db.is_sqlite:  # SQLite: Database serialises writers already
                query = query.with_for_update()
            row = await session.scalar(query)
            if row is None:
                raise ReadingsRejected(REJECT_UNKNOWN_ACCOUNT)
            account = account_info(row)
            earlier = await _period_submission(session, account, taken_on)
            if earlier is not None:
                if not replace:
                    raise ReadingsAlreadySubmitted(earlier)
                account = earlier.as_base(account)
            if len(given) != len(account.zones):
                reason = REJECT_WRONG_COUNT.format(need=len(account.zones), given=len(given))
                raise ReadingsRejected(reason)
            for zone, previous, value in zip(
                account.zones, account.last_readings, given, strict=True
            ):
                title = f"«{ZONE_TITLES[zone]}»" if account.plan != "single" else ""
                if value < 0:
                    raise ReadingsRejected(_squash(REJECT_NEGATIVE.format(zone=title)), zone)
                if value < previous:
                    reason = REJECT_LOWER.format(
                        zone=title, given=format_kwh(value), previous=format_kwh(previous)
                    )
                    raise ReadingsRejected(_squash(reason), zone)
            zones = compute_zones(account, given, self.tariffs)
            cost = total_cost(zones)
            padded = [*given, None, None][:3]
            row.t1, row.t2, row.t3 = padded
            row.readings_date = taken_on
            session.add(
                ReadingsRecord(
                    account_number=key,
                    t1=padded[0],
                    t2=padded[1],
                    t3=padded[2],
                    taken_on=taken_on,
                    source=source,
                    consumption={z.zone: plain_decimal(z.consumption) for z in zones},
                    cost=cost,
                    conversation_id=conversation_id,
                )
            )
            await session.flush()
            updated = account_info(row)
        return SubmissionResult(
            account=updated,
            zones=zones,
            previous_date=account.readings_date,
            total_consumption=total_consumption(zones),
            total_cost=cost,
            replaced=earlier,
        )
