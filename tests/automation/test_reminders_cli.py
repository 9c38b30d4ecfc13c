"""``abonent reminders …`` as an admin types it: output, JSON, exit codes."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from typer.testing import CliRunner

from abonent.cli import app
from abonent.config import get_settings


@pytest.fixture
def configured(fresh_database_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setenv("ABONENT_DATABASE_URL", fresh_database_url)
    monkeypatch.delenv("ABONENT_CONFIG", raising=False)
    get_settings.cache_clear()
    yield fresh_database_url
    get_settings.cache_clear()


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, ["reminders", *args])
    return result.exit_code, result.stdout, result.stderr


def test_a_campaign_is_created_previewed_started_paused_and_watched(configured: str) -> None:
    code, out, _ = run(
        "create", "debts", "--kind", "payment_due", "--min-balance", "100,50",
        "--at", "2026-12-10 10:00", "--quiet", "22:00-08:00",
    )  # fmt: skip
    assert code == 0 and "created (draft)" in out

    code, out, _ = run("list")
    assert code == 0
    assert "debts\tpayment_due\tdraft\tonce from 2026-12-10 10:00\tquiet 22:00-08:00" in out

    code, out, _ = run("preview", "debts", "--json")
    assert code == 0
    assert json.loads(out) == {
        "audience": 0, "reached": 0, "channels": {}, "skipped": {}, "samples": [],
    }  # fmt: skip

    assert run("start", "debts")[:2] == (0, "Campaign 'debts' is running.\n")
    assert run("pause", "debts")[:2] == (0, "Campaign 'debts' is paused.\n")
    code, _, err = run("pause", "debts")
    assert code == 1 and "is paused: cannot pause it" in err
    assert run("resume", "debts")[:2] == (0, "Campaign 'debts' is running.\n")

    code, out, _ = run("status", "debts", "--json")
    assert code == 0
    status = json.loads(out)
    assert (status["state"], status["sent"], status["remaining"]) == ("running", 0, 0)


def test_mistakes_are_said_plainly(configured: str) -> None:
    code, _, err = run("status", "nothing")
    assert code == 1 and "no campaign named 'nothing'" in err
    code, _, err = run("create", "bad", "--kind", "spam")
    assert code == 1 and "kind must be one of" in err
    code, _, err = run("create", "custom-without-text", "--kind", "custom")
    assert code == 1 and "needs its text" in err
    code, _, err = run("create", "late", "--quiet", "25:00-09:00")
    assert code == 1 and "quiet hours" in err
    assert run("create", "twice")[0] == 0
    code, _, err = run("create", "twice")
    assert code == 1 and "exists already" in err
