"""Demo data for ``abonent demo``: accounts in the fictional town of Энск.

The accounts go through the same CSV import a supplier uses, so the demo also shows that
path working; re-seeding on every start is safe (an upsert, and readings submitted through the
demo chat are newer than the file's and are kept).
"""

from __future__ import annotations

import csv
from pathlib import Path

from abonent.billing.base import PLANS, AccountInfo
from abonent.billing.csv_import import import_accounts
from abonent.billing.local import account_info
from abonent.db.models import Account
from abonent.db.session import Database

DEMO_ACCOUNTS_CSV: Path = Path(__file__).with_name("accounts.csv")


def _first_of_each_plan() -> list[str]:
    firsts: dict[str, str] = {}
    with DEMO_ACCOUNTS_CSV.open(encoding="utf-8-sig", newline="") as handle:
        for row in csv.DictReader(handle):
            firsts.setdefault(row["plan"], row["account"])
    return [firsts[plan] for plan in PLANS if plan in firsts]


async def seed_demo_accounts(db: Database) -> list[AccountInfo]:
    """Load the demo accounts; return one of each plan for the start-up banner to suggest.

    Raises RuntimeError if the bundled file has a bad row: that is a bug in the package, and
    a demo with accounts silently missing would mislead whoever is trying it.
    """
    report = await import_accounts(db, DEMO_ACCOUNTS_CSV)
    if report.errors:
        raise RuntimeError(f"bad rows in {DEMO_ACCOUNTS_CSV}: {report.errors}")
    numbers = _first_of_each_plan()
    async with db.session() as session:
        rows = {number: await session.get(Account, number) for number in numbers}
    return [account_info(row) for row in rows.values() if row is not None]
