"""The bar of the statistics issue: a scripted day in the web chat and Telegram, with an
injected clock, and the figures ``abonent stats summary --json`` gives for it.

Bot-only conversations, a readings submission in Telegram, a followed link, a customer
who leaves the queue, and one handed to an operator who signs in, goes online, gets the
conversation, answers after a known delay, goes on break after transferring it to a
colleague, who answers the customer's next message and closes; the customer rates 5.
Counts are checked against what happened (the messages written), delays to the
second, and the CLI, the token API and the supervisor's API agree.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from abonent import clock
from abonent.db.models import Account, Message, OutboxItem
from abonent.db.session import Database
from abonent.operators.users import add_user
from fakes.telegram import SECRET, TOKEN, FakeTelegram
from support import (
    PASSWORD,
    Clock,
    Customer,
    LiveServer,
    Operator,
    make_settings,
    moscow,
    on_server,
    seed_demo,
    texts,
)

DAY = "2026-12-02"  # a Wednesday: inside working hours from 08:00


def _channels(fake: FakeTelegram) -> list[dict[str, Any]]:
    return [
        {
            "id": "tg",
            "type": "telegram",
            "token": TOKEN,
            "secret": SECRET,
            "username": "energo_test_bot",
            "api_base": fake.url,
        }
    ]


@pytest.fixture
def world(fresh_database_url: str, fake: FakeTelegram) -> Iterator[tuple[LiveServer, Clock]]:
    accounts = seed_demo(fresh_database_url)

    async def seed() -> None:
        db = Database(fresh_database_url)
        await add_user(db, "anna", PASSWORD, name="Анна")
        await add_user(db, "boris", PASSWORD, name="Борис")
        await add_user(db, "sveta", PASSWORD, name="Светлана", role="supervisor")
        await db.dispose()

    asyncio.run(seed())
    now = Clock(moscow(2026, 12, 2, 10, 0))
    clock.set_clock(now)
    settings = make_settings(
        fresh_database_url, channels=_channels(fake), public_url="https://cc.example.ru"
    )
    server = LiveServer(settings)
    server.accounts = accounts
    server.start()
    yield server, now
    server.stop()


async def _settle(server: LiveServer) -> None:
    """Every bot turn and every due send done (sends are retried right away here)."""

    async def in_flight() -> int:
        async with server.runtime.db.session() as session:
            return int(
                await session.scalar(
                    select(func.count())
                    .select_from(OutboxItem)
                    .where(OutboxItem.status.in_(("pending", "sending")))
                )
                or 0
            )

    for _ in range(200):
        await server.settle()
        if not await on_server(server, in_flight()):
            return
        await asyncio.sleep(0.02)
    raise AssertionError("sends still in flight")


async def _telegram(server: LiveServer, fake: FakeTelegram, update: dict[str, Any]) -> None:
    response = await asyncio.to_thread(fake.deliver_update, f"{server.url}/webhooks/tg", update)
    assert response.status_code == 200, response.text
    await _settle(server)


async def _ground_truth(server: LiveServer) -> dict[str, dict[str, int]]:
    """Messages per channel type and author, straight from the messages table."""

    async def count() -> dict[str, dict[str, int]]:
        async with server.runtime.db.session() as session:
            rows = await session.execute(
                select(Message.channel_id, Message.author, func.count()).group_by(
                    Message.channel_id, Message.author
                )
            )
            out: dict[str, dict[str, int]] = {}
            for channel, author, n in rows:
                kind = "telegram" if channel == "tg" else channel
                out.setdefault(kind, {"customer": 0, "bot": 0, "operator": 0})
                if author in out[kind]:
                    out[kind][author] += int(n)
            return out

    result: dict[str, dict[str, int]] = await on_server(server, count())
    return result


async def test_a_scripted_day_gives_exactly_the_figures_that_happened(
    world: tuple[LiveServer, Clock], fake: FakeTelegram, tmp_path: Path
) -> None:
    server, now = world
    async with httpx.AsyncClient(timeout=30) as http:
        # A: a question answered from the knowledge base, and one of its links followed.
        a = Customer(server, http)
        await a.start()
        answer = texts(await a.say("как оплатить свет без комиссии"))
        links = [w for w in answer.split() if w.startswith("https://cc.example.ru/r/")]
        assert links, answer
        token = links[0].rsplit("/", 1)[1]
        followed = await http.get(f"{server.url}/r/{token}", follow_redirects=False)
        assert followed.status_code == 302

        # B, in Telegram: /start, then readings submitted zone by zone.
        single = server.accounts["single"]

        async def last_readings() -> Account | None:
            async with server.runtime.db.session() as session:
                return await session.get(Account, single)

        account = await on_server(server, last_readings())
        assert account is not None and account.t1 is not None
        await _telegram(server, fake, fake.text_update("/start"))
        await _telegram(server, fake, fake.button_update("readings"))
        await _telegram(server, fake, fake.text_update(single))
        await _telegram(server, fake, fake.button_update("yes"))
        await _telegram(server, fake, fake.text_update(str(int(account.t1) + 150)))
        assert "Показания приняты" in fake.sent[-1].text

        # D: hands over, then leaves the queue before anyone is on the line.
        d = Customer(server, http)
        await d.start()
        await d.press("operator")
        now.advance(6)
        assert "вышли из очереди" in texts(await d.say("отмена"))

        # C: not understood, then asks for an operator at T0.
        c = Customer(server, http)
        await c.start()
        assert "Переформулируйте" in texts(await c.say("фывапролдж олдж"))
        await c.press("operator")
        queued_at = now.now

        anna, boris = Operator(server, "anna"), Operator(server, "boris")
        now.advance(10)
        assert (await anna.login()).status_code == 200
        now.advance(10)
        await anna.online()  # T0 + 20 s: C is assigned to her

        async def ping() -> None:
            for op in (anna, boris):
                if op.id:
                    await on_server(server, server.runtime.desk.seen(op.id))

        now.advance(10)
        assert (await boris.login()).status_code == 200
        await boris.online()  # T0 + 30 s
        now.advance(65)
        await ping()
        # T0 + 95 s: Anna's first answer.
        sent = await anna.post(
            f"/conversations/{c.conversation_id}/messages", {"text": "Здравствуйте!"}
        )
        assert sent.status_code == 201, sent.text
        await _settle(server)
        now.advance(5)
        await c.say("у меня ещё вопрос про счёт")  # T0 + 100 s
        now.advance(10)
        await ping()
        moved = await anna.post(
            f"/conversations/{c.conversation_id}/transfer",
            {"to_user_id": boris.id, "note": "вопрос про счёт"},
        )
        assert moved.status_code == 200, moved.text
        now.advance(5)
        assert (await anna.post("/status", {"status": "break"})).status_code == 200  # T0 + 115
        now.advance(25)
        await ping()
        # T0 + 140 s: Boris answers the message waiting since T0 + 100 s.
        sent = await boris.post(f"/conversations/{c.conversation_id}/messages", {"text": "Отвечаю"})
        assert sent.status_code == 201
        now.advance(10)
        closed = await boris.post(
            f"/conversations/{c.conversation_id}/close", {"resolution": "ответили"}
        )
        assert closed.status_code == 200, closed.text
        survey = await c.replies()
        assert any("Оцените" in m["text"] for m in survey)
        assert "csat:5" in [b["payload"] for m in survey for b in m["buttons"]]
        thanks = await c.press("csat:5")
        assert "Спасибо за оценку" in texts(thanks)
        now.advance(5)
        await anna.post("/logout")  # T0 + 155 s
        await boris.post("/logout")
        await _settle(server)
        await on_server(server, server.runtime.consumers.catch_up())

        expected_messages = await _ground_truth(server)
        api = await http.get(
            f"{server.url}/api/stats/v1/summary",
            params={"from": DAY, "to": DAY},
            headers={"Authorization": "Bearer test-operator-token"},
        )
        assert api.status_code == 200, api.text
        sveta = Operator(server, "sveta")
        await sveta.login()
        page_api = await sveta.get(f"/stats/summary?from={DAY}&to={DAY}")
        assert page_api.status_code == 200
    summary = api.json()
    assert page_api.json() == summary
    assert queued_at == moscow(2026, 12, 2, 10, 0) + timedelta(seconds=6)

    assert summary["period"] == {"from": DAY, "to": DAY, "timezone": "Europe/Moscow"}
    assert summary["messages"] == expected_messages
    assert expected_messages["webchat"]["operator"] == 2
    assert expected_messages["telegram"]["customer"] == 5
    assert summary["conversations"] == {
        "total": 4,
        "bot_only": 2,
        "to_operator": 2,
        "by_channel": {"telegram": 1, "webchat": 3},
    }
    assert summary["customers"] == {"unique": 4, "returning": 0}
    assert summary["bot"] == {
        "free_text": 2,
        "recognised": 1,
        "fallback": 1,
        "topics": {"payment_methods": 1},
    }
    assert summary["links"] == {"sent": len(links), "clicked": 1}
    assert summary["readings"] == {"submitted": 1, "by_channel": {"telegram": 1}}
    assert summary["profanity"] == 0
    assert summary["queue"] == {
        "queued": 2,
        "abandoned": 1,
        "wait_s": {"median": 20.0, "p90": 20.0},
    }
    assert summary["operators"] == {
        "anna": {
            "conversations": 1,
            "replies": 1,
            "transfers": 1,
            "first_response_s": {"median": 95.0, "p90": 95.0, "max": 95.0},
            "online_s": 95,
            "break_s": 40,
        },
        "boris": {
            "conversations": 1,
            "replies": 1,
            "transfers": 0,
            # Boris gave no first answer: he answered a later message (see the report).
            "first_response_s": {"median": None, "p90": None, "max": None},
            "online_s": 125,
            "break_s": 0,
        },
    }
    assert summary["csat"] == {"asked": 1, "answered": 1, "average": 5.0}

    # The full report has the later answer, in and out of working hours, and its link.
    async with httpx.AsyncClient(timeout=30) as http:
        report = (
            await http.get(
                f"{server.url}/api/stats/v1/report",
                params={"from": DAY, "to": DAY},
                headers={"Authorization": "Bearer test-operator-token"},
            )
        ).json()
    rows = {r["login"]: r for r in report["operators"]["operators"]}
    assert rows["boris"]["response_s"]["median"] == 40.0
    assert rows["boris"]["response_work_s"]["median"] == 40.0
    assert rows["boris"]["csat"] == {"asked": 1, "answered": 1, "average": 5.0}
    assert rows["boris"]["handle_s"] == pytest.approx(130.0)  # from Anna's assignment
    slowest = report["operators"]["slowest"]
    assert [(s["login"], s["kind"], s["seconds"]) for s in slowest] == [
        ("anna", "first", 95.0),
        ("boris", "next", 40.0),
    ]
    assert slowest[0]["conversation_id"] == c.conversation_id
    assert report["bot"]["links"]["click_through"] == round(1 / len(links), 4)
    assert report["bot"]["flows"]["readings"] == {"started": 1, "completed": 1}

    # Anna's day on the timeline, and how many were on the line at ten o'clock.
    async with httpx.AsyncClient(timeout=30) as http:
        timeline = (
            await http.get(
                f"{server.url}/api/stats/v1/timeline",
                params={"from": DAY, "to": DAY},
                headers={"Authorization": "Bearer test-operator-token"},
            )
        ).json()
    days = {op["login"]: op["days"][0] for op in timeline["operators"]}
    assert [
        (i["status"], i["start"][11:19], i["end"][11:19]) for i in days["anna"]["intervals"]
    ] == [
        ("online", "10:00:26", "10:02:01"),
        ("break", "10:02:01", "10:02:41"),
    ]
    assert (days["anna"]["online_s"], days["anna"]["break_s"]) == (95, 40)
    assert timeline["staffing"][10] == {"hour": 10, "online": round(220 / 3600, 2), "break": 0.01}

    # The command line reads the same rollups and prints exactly the same object.
    config = tmp_path / "abonent.toml"
    config.write_text(
        '[[channels]]\nid = "tg"\ntype = "telegram"\n'
        f'token = "{TOKEN}"\nsecret = "{SECRET}"\napi_base = "{fake.url}"\n',
        encoding="utf-8",
    )
    env = {
        "ABONENT_DATABASE_URL": server.settings.database_url,
        "ABONENT_CONFIG": str(config),
        "PATH": str(Path(sys.executable).parent),
        "HOME": str(tmp_path),
    }
    cli = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "abonent", "stats", "summary", "--from", DAY, "--to", DAY, "--json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert cli.returncode == 0, cli.stderr
    assert json.loads(cli.stdout) == summary
