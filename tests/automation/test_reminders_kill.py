"""A reminder campaign shared by two real ``abonent serve`` processes on PostgreSQL, one
of them killed with SIGKILL in the middle: the other finishes the campaign and nobody
gets a reminder twice."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from abonent.automation.reminders import campaigns
from abonent.billing.csv_import import import_accounts
from abonent.core.contacts import ContactDirectory
from abonent.db.models import ChannelIdentity
from abonent.db.session import Database
from conftest import require_postgres, require_redis
from fakes import telegram as telegram_api
from fakes.telegram import FakeTelegram
from support import ServeProcesses, serve_env

pytestmark = pytest.mark.services

CUSTOMERS = 40
HEADER = "account,holder,address,plan,t1,t2,t3,readings_date,balance,phone\n"


def config(fake: FakeTelegram) -> str:
    return f"""
[company]
name = "ЭнергоСбыт Тест"
timezone = "Europe/Moscow"
[company.links]
payment = "https://pay.example/energo"
[operators]
api_token = "t"
[reminders]
lease_seconds = 3
rates = {{ telegram = 8 }}
[[channels]]
id = "tg"
type = "telegram"
token = "{telegram_api.TOKEN}"
secret = "{telegram_api.SECRET}"
username = "@energo_test_bot"
api_base = "{fake.url}"
"""


@pytest.fixture
def tg() -> Iterator[FakeTelegram]:
    fake = FakeTelegram()
    fake.start()
    yield fake
    fake.stop()


def reminders(fake: FakeTelegram) -> Counter[str]:
    return Counter(str(s.chat_id) for s in fake.sent if "задолженность" in s.text)


async def _prepare(url: str, folder: Path) -> None:
    db = Database(url)
    try:
        path = folder / "accounts.csv"
        path.write_text(
            HEADER
            + "".join(
                f"30000000{i:02d},Клиент Номер Тест,адрес,single,1,,,2026-11-01,{500 + i},\n"
                for i in range(CUSTOMERS)
            ),
            encoding="utf-8",
        )
        assert not (await import_accounts(db, path)).errors
        async with db.session() as session:
            ids = dict(
                (
                    await session.execute(
                        select(ChannelIdentity.external_id, ChannelIdentity.contact_id)
                    )
                ).all()
            )
        for i in range(CUSTOMERS):
            await ContactDirectory(db).link_account(ids[str(3000 + i)], f"30000000{i:02d}")
        await campaigns.create(db, name="kill", kind="payment_due", text=None, quiet_hours="")
        await campaigns.move(db, "kill", "start")
    finally:
        await db.dispose()


async def _progress(url: str) -> dict[str, object]:
    db = Database(url)
    try:
        return (await campaigns.progress(db, "kill")).as_dict()
    finally:
        await db.dispose()


def test_a_server_killed_mid_campaign_leaves_the_rest_to_the_other_and_no_doubles(
    fresh_database_url: str, tmp_path: Path, tg: FakeTelegram
) -> None:
    require_postgres()
    env = serve_env(
        fresh_database_url, require_redis(), config(tg), tmp_path, ABONENT_LOG_LEVEL="WARNING"
    )
    servers = ServeProcesses(2, env, tmp_path).wait_ready()
    try:
        for i in range(CUSTOMERS):
            update = tg.text_update("/start", chat_id=3000 + i)
            assert tg.deliver_update(f"{servers.urls[1]}/webhooks/tg", update).status_code == 200
        tg.wait_sent(CUSTOMERS, timeout=60)  # every customer was greeted: they exist
        asyncio.run(_prepare(fresh_database_url, tmp_path))

        deadline = time.monotonic() + 60
        while sum(reminders(tg).values()) < 8:
            assert time.monotonic() < deadline, "the campaign did not start"
            time.sleep(0.05)
        servers.kill(0)  # mid-campaign, whatever it had in flight is cut off

        deadline = time.monotonic() + 90
        while (status := asyncio.run(_progress(fresh_database_url)))["remaining"]:
            assert time.monotonic() < deadline, f"the campaign did not finish: {status}"
            time.sleep(0.5)
    finally:
        servers.stop()

    got = reminders(tg)
    assert max(got.values()) == 1  # nobody twice
    sent, failed = int(str(status["sent"])), int(str(status["failed"]))
    # Everyone is accounted for: sent, or interrupted mid-send by the kill (not repeated).
    assert sent + failed == CUSTOMERS
    assert failed <= 4  # at most the sends the killed process had on the wire (IN_FLIGHT)
    # What the platform got: every recorded send, plus any the kill cut off after the call.
    assert sent <= sum(got.values()) <= sent + failed
