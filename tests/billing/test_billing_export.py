"""``abonent billing export-readings``: customers' readings as CSV for a billing fed by files,
each row once however often the job runs."""

from __future__ import annotations

import asyncio
import csv
import io
from collections.abc import Iterator
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
from typer.testing import CliRunner

from abonent.billing.cli import billing_app
from abonent.billing.csv_import import HEADER, import_accounts
from abonent.billing.local import LocalBilling
from abonent.config import TariffSettings, get_settings
from abonent.db.session import Database

ACCOUNTS = "\n".join(
    [
        ",".join(HEADER),
        "1000000001,Иванов Иван,г. Энск,two_zone,12500,5300,,2026-10-25,0,",
        "1000000002,Петрова Анна,г. Энск,single,8500,,,2026-10-25,0,",
    ]
)


@pytest.fixture
def configured(
    fresh_database_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[str]:
    monkeypatch.setenv("ABONENT_DATABASE_URL", fresh_database_url)
    monkeypatch.delenv("ABONENT_CONFIG", raising=False)
    get_settings.cache_clear()
    path = tmp_path / "accounts.csv"
    path.write_text(ACCOUNTS, encoding="utf-8")

    async def seed() -> None:
        db = Database(fresh_database_url)
        await import_accounts(db, path)
        billing = LocalBilling(db, TariffSettings())
        await billing.submit_readings(
            "1000000001", [Decimal("12650.5"), Decimal("5360")], date(2026, 11, 20), source="bot"
        )
        await billing.submit_readings(
            "1000000002", [Decimal("8600")], date(2026, 12, 2), source="operator"
        )
        await db.dispose()

    asyncio.run(seed())
    yield fresh_database_url
    get_settings.cache_clear()


def rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def test_export_writes_each_submission_once(configured: str, tmp_path: Path) -> None:
    out = tmp_path / "readings.csv"
    first = CliRunner().invoke(billing_app, ["export-readings", "--output", str(out)])
    assert first.exit_code == 0, first.output
    assert "Exported 2 readings" in first.stderr
    text = out.read_text(encoding="utf-8")
    assert text.splitlines()[0] == "id,account,plan,t1,t2,t3,taken_on,source,submitted_at"
    found = rows(text)
    # The import's own rows are the billing's, never sent back.
    assert [
        (r["account"], r["plan"], r["t1"], r["t2"], r["t3"], r["taken_on"], r["source"])
        for r in found
    ] == [
        ("1000000001", "two_zone", "12650.5", "5360", "", "2026-11-20", "bot"),
        ("1000000002", "single", "8600", "", "", "2026-12-02", "operator"),
    ]
    again = CliRunner().invoke(billing_app, ["export-readings", "--output", str(out)])
    assert again.exit_code == 0
    assert "Exported 0 readings" in again.stderr
    assert rows(out.read_text(encoding="utf-8")) == []
    assert not (tmp_path / "readings.csv.part").exists()


def test_export_since_a_day_and_again(configured: str) -> None:
    since = CliRunner().invoke(billing_app, ["export-readings", "--since", "2026-12-01"])
    assert since.exit_code == 0, since.output
    assert [r["account"] for r in rows(since.stdout)] == ["1000000002"]
    rest = CliRunner().invoke(billing_app, ["export-readings"])
    assert [r["account"] for r in rows(rest.stdout)] == ["1000000001"]
    assert rows(CliRunner().invoke(billing_app, ["export-readings"]).stdout) == []
    lost = CliRunner().invoke(billing_app, ["export-readings", "--again", "--since", "2026-11-01"])
    assert [r["account"] for r in rows(lost.stdout)] == ["1000000001", "1000000002"]


def test_a_wrong_date_is_refused(configured: str) -> None:
    result = CliRunner().invoke(billing_app, ["export-readings", "--since", "01.12.2026"])
    assert result.exit_code == 2
    assert "YYYY-MM-DD" in result.output
