"""A second submission in one billing period, as a web-chat customer meets it.

The bot says readings were already sent (when, which), asks whether to replace them, and
replaces them; the consumption is counted from last month's readings, with the right days.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import httpx
import pytest

from bot.conftest import StartBot
from support import (
    Clock,
    Customer,
    LiveServer,
    account_history,
    moscow,
    payloads,
    texts,
    to_values,
    web_chat,
)

# ruff: noqa: E501  (the CSV rows are kept whole, as a billing export writes them)

ACCOUNTS_CSV = """account,holder,address,plan,t1,t2,t3,readings_date,balance,phone
1000000001,Иванов Иван Иванович,"г. Энск, ул. Ленина, д. 15, кв. 7",two_zone,12345,5210,,2026-10-25,0,
1000000002,Петрова Анна Сергеевна,"г. Энск, ул. Мира, д. 3, кв. 12",single,8500,,,2026-11-23,0,
"""
TWO, CONTROLLED_TODAY = "1000000001", "1000000002"


def plain(text: str) -> str:
    return text.replace("\u00a0", " ")


@pytest.fixture
def now() -> Clock:
    # Monday 23 November 2026, 12:00 in Moscow.
    return Clock(moscow(2026, 11, 23, 12, 0))


@pytest.fixture
def server(accounts_server: StartBot, now: Clock) -> LiveServer:
    return accounts_server(ACCOUNTS_CSV, now=now)


async def _submit(me: Customer, number: str, values: str) -> list[dict[str, Any]]:
    await to_values(me, number)
    return await me.say(values)


async def test_second_submission_asks_to_replace_and_replaces(
    server: LiveServer, now: Clock
) -> None:
    async with web_chat(server) as me:
        first = plain(texts(await _submit(me, TWO, "12800 5300")))
        assert "Показания приняты" in first

        now.advance(5 * 60)  # minutes later, a typo noticed: 12800 should be 12480
        asked = await to_values(me, TWO)
        assert len(asked) == 1
        assert plain(asked[0]["text"]) == (
            "Показания за этот период уже были переданы 23.11.2026: "
            "день 12 800, ночь 5 300 кВт·ч. Заменить?"
        )
        assert payloads(asked) == ["yes", "no", "cancel"]
        assert [b["title"] for b in asked[0]["buttons"]][:2] == ["Заменить", "Оставить прежние"]

        prompt = plain(texts(await me.press("yes")))
        # Checked against last month's readings, not against the ones being replaced.
        assert "Предыдущие показания: день 12 345, ночь 5 210 кВт·ч от 25.10.2026" in prompt
        assert "Новые показания заменят переданные 23.11.2026" in prompt

        done = plain(texts(await me.say("12480 5300")))
        assert done.startswith("Показания заменены")
        assert "Показания приняты" not in done
        assert "День: 12 480 кВт·ч, расход 135 кВт·ч с 25.10.2026; 135 × 7,36 ₽ = 993,60 ₽" in done
        assert "Итого расход 225 кВт·ч на сумму 1 334,70 ₽" in done

    account, history = await account_history(server.settings.database_url, TWO)
    assert (account.t1, account.t2) == (Decimal("12480"), Decimal("5300"))
    assert [(r.source, r.t1, r.consumption) for r in history] == [
        ("import", Decimal("12345"), None),
        ("bot", Decimal("12800"), {"day": "455", "night": "90"}),
        ("bot", Decimal("12480"), {"day": "135", "night": "90"}),
    ]


async def test_keeping_the_earlier_readings_writes_nothing(server: LiveServer) -> None:
    async with web_chat(server) as me:
        await _submit(me, TWO, "12400 5250")
        await to_values(me, TWO)
        kept = plain(texts(await me.press("no")))
        assert kept == (
            "Хорошо, оставляем показания, переданные 23.11.2026: день 12 400, ночь 5 250 кВт·ч."
        )
    _, history = await account_history(server.settings.database_url, TWO)
    assert len(history) == 2


async def test_typing_new_readings_at_the_question_replaces(server: LiveServer) -> None:
    async with web_chat(server) as me:
        await _submit(me, TWO, "12400 5250")
        await to_values(me, TWO)
        done = plain(texts(await me.say("12390 5250")))
        assert done.startswith("Показания заменены")
    account, _ = await account_history(server.settings.database_url, TWO)
    assert account.t1 == Decimal("12390")


async def test_a_too_high_replacement_counts_the_days_since_last_month(
    server: LiveServer,
) -> None:
    """The issue's case: a second submission said "200 кВт·ч за 1 дн." — it was 0 days."""
    async with web_chat(server) as me:
        await _submit(me, TWO, "12400 5250")
        await to_values(me, TWO)
        await me.press("yes")
        jump = plain(texts(await me.say("14600 5250")))
        assert "расход 2 295 кВт·ч за 29 дней" in jump
        assert "1 дн" not in jump


async def test_readings_taken_today_give_no_per_day_figure(server: LiveServer) -> None:
    """Readings accepted today (a controller's, from the company's export): 0 days."""
    async with web_chat(server) as me:
        jump = plain(texts(await _submit(me, CONTROLLED_TODAY, "8700")))
        assert "расход 200 кВт·ч по сравнению с показаниями, принятыми сегодня" in jump
        assert "дн." not in jump and "за 0" not in jump and "за 1 " not in jump
        done = plain(texts(await me.press("yes")))
        assert "Показания приняты" in done
        assert "расход 200 кВт·ч с 23.11.2026" in done


async def test_the_same_period_from_another_conversation_is_asked_about(
    server: LiveServer,
) -> None:
    """Two family members: the second one is told, in their own chat, that readings were
    already sent today, even if they started before the first one finished."""
    async with httpx.AsyncClient(timeout=30) as http:
        wife, husband = Customer(server, http), Customer(server, http)
        await wife.start()
        await husband.start()
        await to_values(husband, TWO)  # at the values step, nothing sent yet
        assert "Показания приняты" in texts(await _submit(wife, TWO, "12400 5250"))
        # Lower than hers, above last month's: asked about, not refused as too low.
        asked = plain(texts(await husband.say("12390 5240")))
        assert "Показания за этот период уже были переданы 23.11.2026" in asked
        assert "день 12 400, ночь 5 250 кВт·ч. Заменить?" in asked
        assert "меньше" not in asked
        done = plain(texts(await husband.press("yes")))
        assert done.startswith("Показания заменены")
    account, history = await account_history(server.settings.database_url, TWO)
    assert (account.t1, account.t2) == (Decimal("12390"), Decimal("5240"))
    assert len(history) == 3
