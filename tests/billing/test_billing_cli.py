"""``abonent billing import`` as an admin's script runs it: output, stderr, exit codes."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from abonent.billing.cli import billing_app
from abonent.billing.csv_import import HEADER
from abonent.config import get_settings
from abonent.db.models import Account
from abonent.db.session import Database

HEAD = ",".join(HEADER)
GOOD_AND_BAD = "\n".join(
    [
        HEAD,
        "1000000001,Иванов Иван,г. Энск,single,12500,,,2026-10-25,10,",
        "1000000002,Петров Пётр,г. Энск,two_zone,1,,,2026-10-25,0,",
        "1000000003,Сидоров Алексей,г. Энск,dual,1,,,2026-10-25,0,",
        "1000000004,Козлов Андрей,г. Энск,three_zone,1,2,3,2026-10-25,0,",
    ]
)


def use_database(monkeypatch: pytest.MonkeyPatch, url: str) -> Iterator[str]:
    monkeypatch.setenv("ABONENT_DATABASE_URL", url)
    monkeypatch.delenv("ABONENT_CONFIG", raising=False)
    get_settings.cache_clear()
    yield url
    get_settings.cache_clear()


@pytest.fixture
def sqlite_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A database file that does not exist yet: the command must create and migrate it."""
    yield from use_database(monkeypatch, f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}")


@pytest.fixture
def configured(fresh_database_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The suite's database: PostgreSQL when the suite runs on it."""
    yield from use_database(monkeypatch, fresh_database_url)


def numbers_in(url: str) -> list[str]:
    async def read() -> list[str]:
        db = Database(url)
        try:
            async with db.session() as session:
                return list(await session.scalars(select(Account.number).order_by(Account.number)))
        finally:
            await db.dispose()

    return asyncio.run(read())


def test_import_reports_bad_rows_and_loads_good_ones(tmp_path: Path, sqlite_file: str) -> None:
    path = tmp_path / "accounts.csv"
    path.write_text(GOOD_AND_BAD, encoding="utf-8")
    result = CliRunner().invoke(billing_app, ["import", str(path)])
    assert result.exit_code == 0, result.output
    assert "Loaded 2 accounts." in result.stdout
    assert "Skipped 2 bad rows" in result.stdout
    database = Path(sqlite_file.split(":///", 1)[1]).resolve()
    assert result.stderr.splitlines() == [
        f"Database: SQLite file {database}",
        "line 3: t2 is required for two_zone",
        'line 4: plan must be single, two_zone or three_zone, got "dual"',
    ]
    assert numbers_in(get_settings().database_url) == ["1000000001", "1000000004"]


def test_import_into_configured_database(tmp_path: Path, configured: str) -> None:
    path = tmp_path / "accounts.csv"
    path.write_text(GOOD_AND_BAD, encoding="utf-8")
    first = CliRunner().invoke(billing_app, ["import", str(path)])
    again = CliRunner().invoke(billing_app, ["import", str(path)])
    assert first.exit_code == again.exit_code == 0
    assert "Loaded 2 accounts." in again.stdout
    assert numbers_in(configured) == ["1000000001", "1000000004"]


def test_missing_file_exits_1(tmp_path: Path, sqlite_file: str) -> None:
    result = CliRunner().invoke(billing_app, ["import", str(tmp_path / "nope.csv")])
    assert result.exit_code == 1
    assert "nope.csv is not a readable file" in result.stderr


def test_wrong_header_exits_1_and_loads_nothing(tmp_path: Path, sqlite_file: str) -> None:
    path = tmp_path / "accounts.csv"
    path.write_text("account,holder\n1000000001,Иванов\n", encoding="utf-8")
    result = CliRunner().invoke(billing_app, ["import", str(path)])
    assert result.exit_code == 1
    assert "missing column(s): address, plan" in result.stderr
    assert "Nothing was imported." in result.stderr
    assert numbers_in(get_settings().database_url) == []


def test_help_lists_import() -> None:
    result = CliRunner().invoke(billing_app, ["--help"])
    assert result.exit_code == 0
    assert "import" in result.stdout
