"""Settings from TOML and environment, validated at start."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

from abonent.config import Settings, WorkingHours

TOML = """
database_url = "sqlite:///from-file.db"
[company]
name = "Из файла"
timezone = "Asia/Yekaterinburg"
working_hours = { "mon-fri" = "08:00-20:00", "sat" = "09:00-15:00" }
[tariffs]
single = 5.5
two_zone = { day = 6.1, night = 3.2 }
[readings]
first_day = 20
last_day = 25
[[channels]]
id = "tg-main"
type = "telegram"
token = "123:abc"
"""


def test_toml_file_and_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "abonent.toml"
    path.write_text(TOML, encoding="utf-8")
    monkeypatch.setenv("ABONENT_CONFIG", str(path))
    monkeypatch.setenv("ABONENT_COMPANY__NAME", "Из окружения")
    monkeypatch.delenv("ABONENT_DATABASE_URL", raising=False)
    settings = Settings()
    assert settings.company.name == "Из окружения"  # the environment wins
    assert settings.database_url == "sqlite+aiosqlite:///from-file.db"
    assert settings.tariffs.single == Decimal("5.5")
    assert settings.tariffs.two_zone.night == Decimal("3.2")
    assert (settings.readings.first_day, settings.readings.last_day) == (20, 25)
    assert settings.channels[0].id == "tg-main" and settings.channels[0].token == "123:abc"
    monkeypatch.setenv("ABONENT_DATABASE_URL", "postgresql://u@db/x")
    assert Settings().database_url == "postgresql+asyncpg://u@db/x"


def test_a_missing_config_file_fails_loudly(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ABONENT_CONFIG", "/nonexistent/abonent.toml")
    with pytest.raises(FileNotFoundError, match="missing file"):
        Settings()


@pytest.mark.parametrize(
    "values",
    [
        {"readings": {"first_day": 26, "last_day": 25}},
        {"company": {"timezone": "Mars/Olympus"}},
        {"company": {"working_hours": {"mon-fri": "8 to 20"}}},
    ],
)
def test_invalid_settings_are_refused(values: dict[str, object]) -> None:
    with pytest.raises((ValidationError, ValueError)):
        Settings(**values)  # type: ignore[arg-type]


def test_working_hours() -> None:
    hours = WorkingHours.model_validate({"mon-fri": "08:00-20:00", "sat": "09:00-15:00"})
    assert hours.describe() == "пн–пт 08:00–20:00, сб 09:00–15:00"
    msk = ZoneInfo("Europe/Moscow")
    assert hours.is_open(datetime(2026, 11, 23, 8, 0, tzinfo=msk))  # Monday
    assert not hours.is_open(datetime(2026, 11, 23, 20, 0, tzinfo=msk))
    assert hours.is_open(datetime(2026, 11, 28, 14, 59, tzinfo=msk))  # Saturday
    assert not hours.is_open(datetime(2026, 11, 29, 12, 0, tzinfo=msk))  # Sunday
    always = WorkingHours.model_validate({"mon-sun": "00:00-24:00"})
    assert always.is_open(datetime(2026, 11, 29, 23, 59, tzinfo=msk))
