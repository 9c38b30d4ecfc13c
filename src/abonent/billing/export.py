"""``abonent billing export-readings``: accepted readings as CSV, for a billing fed by files.

A supplier without a billing API imports our readings the way we import its accounts: a
file a night. Each run writes the customers' readings (the bot's, operators') that no
earlier run wrote, and marks them ``exported_at`` in the same transaction, so a cron job
that runs twice, or again after a failure, never hands the billing the same row twice —
and a run that fails before its commit leaves the rows for the next one.

A billing period is billed by its last readings: of the rows a run writes, the billing
takes, per account and month, the one with the highest ``id`` (a later submission replaces
an earlier one, even one an earlier file carried).
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import TextIO

from sqlalchemy import select, update

from abonent.billing.csv_import import HISTORY_SOURCE as IMPORTED
from abonent.billing.readings import WATT_HOUR, plain_decimal
from abonent.clock import utcnow
from abonent.db.models import Account, ReadingsRecord
from abonent.db.session import Database

# The CSV's header; t1..t3 are the zones in the order of the accounts import.
EXPORT_HEADER: tuple[str, ...] = (
    "id",
    "account",
    "plan",
    "t1",
    "t2",
    "t3",
    "taken_on",
    "source",
    "submitted_at",
)


@dataclass(frozen=True)
class ExportReport:
    written: int
    first_id: int | None
    last_id: int | None


async def export_readings(
    db: Database, out: TextIO, *, since: date | None = None, again: bool = False
) -> ExportReport:
    """Write the rows not exported yet (``since``: taken on that day or later; ``again``:
    those already exported too) and mark them exported."""
    async with db.transaction() as session:
        query = (
            select(ReadingsRecord, Account.plan)
            .join(Account, Account.number == ReadingsRecord.account_number)
            .where(ReadingsRecord.source != IMPORTED)
            .order_by(ReadingsRecord.id)
        )
        if since is not None:
            query = query.where(ReadingsRecord.taken_on >= since)
        if not again:
            query = query.where(ReadingsRecord.exported_at.is_(None))
        if not db.is_sqlite:
            query = query.with_for_update(of=ReadingsRecord, skip_locked=True)
        rows = (await session.execute(query)).all()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(EXPORT_HEADER)
        for record, plan in rows:
            writer.writerow(_line(record, plan))
        out.flush()
        ids: Sequence[int] = [record.id for record, _ in rows]
        if ids:
            await session.execute(
                update(ReadingsRecord)
                .where(ReadingsRecord.id.in_(ids))
                .values(exported_at=utcnow())
            )
    return ExportReport(len(ids), ids[0] if ids else None, ids[-1] if ids else None)


def _kwh(value: Decimal | None) -> str:
    """As stored, without the float artefacts SQLite's Numeric can bring back."""
    return "" if value is None else plain_decimal(Decimal(value).quantize(WATT_HOUR))


def _line(record: ReadingsRecord, plan: str) -> list[str]:
    kwh = _kwh
    return [
        str(record.id),
        record.account_number,
        plan,
        kwh(record.t1),
        kwh(record.t2),
        kwh(record.t3),
        record.taken_on.isoformat(),
        record.source,
        record.created_at.isoformat(timespec="seconds"),
    ]
