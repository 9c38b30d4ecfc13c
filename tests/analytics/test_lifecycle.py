"""The parts of a conversation's life the statistics depend on: the satisfaction
question after an operator closes (native buttons, a typed digit, switched off), and
conversations with the bot that go quiet being closed, so the next visit is a new one."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy import select

from abonent import clock
from abonent.db.models import EventRecord
from abonent.db.session import Database
from abonent.operators.users import add_user
from analytics.test_scenario import _channels, _settle, _telegram
from fakes.telegram import USER_ID, FakeTelegram
from support import (
    PASSWORD,
    Clock,
    Customer,
    LiveServer,
    Operator,
    conversation,
    make_settings,
    moscow,
    on_server,
)


async def _start(
    url: str, fake: FakeTelegram, *, seed: bool = True, **overrides: Any
) -> LiveServer:
    if seed:
        db = Database(url)
        await add_user(db, "anna", PASSWORD, name="Анна")
        await db.dispose()
    server = LiveServer(make_settings(url, channels=_channels(fake), **overrides))
    return await asyncio.to_thread(server.start)


async def _events(server: LiveServer, kind: str) -> list[EventRecord]:
    async def load() -> list[EventRecord]:
        async with server.runtime.db.session() as session:
            rows = await session.scalars(
                select(EventRecord).where(EventRecord.type == kind).order_by(EventRecord.id)
            )
            return list(rows)

    result: list[EventRecord] = await on_server(server, load())
    return result


async def _handed_over_and_closed(
    server: LiveServer, fake: FakeTelegram, chat: int = USER_ID
) -> int:
    """A Telegram customer handed to Anna, who answers and closes; the conversation id."""
    await _telegram(server, fake, fake.text_update("/start", chat_id=chat))
    await _telegram(server, fake, fake.button_update("operator", chat_id=chat))
    anna = Operator(server, "anna")
    await anna.login()
    await anna.online()
    queue = await _events(server, "conversation.assigned")
    conv_id = int(queue[-1].data["conversation_id"])
    await anna.post(f"/conversations/{conv_id}/messages", {"text": "Добрый день"})
    closed = await anna.post(f"/conversations/{conv_id}/close", {"resolution": "готово"})
    assert closed.status_code == 200, closed.text
    await _settle(server)
    return conv_id


async def test_the_rating_question_uses_telegram_buttons_and_a_press_lands_in_the_closed_chat(
    fresh_database_url: str, fake: FakeTelegram
) -> None:
    server = await _start(fresh_database_url, fake)
    try:
        conv_id = await _handed_over_and_closed(server, fake)
        question = fake.sent[-1]
        assert "Оцените" in question.text
        assert question.payloads == [f"csat:{n}" for n in range(1, 6)]
        assert question.titles[0] == "1 — плохо" and question.titles[-1] == "5 — отлично"

        await _telegram(server, fake, fake.button_update("csat:2"))
        assert "Жаль, что помочь не удалось" in fake.sent[-1].text
        [rated] = await _events(server, "csat.rated")
        assert rated.conversation_id == conv_id and rated.data["rating"] == 2
        [asked] = await _events(server, "csat.asked")
        assert (
            asked.data["user_id"]
            == (await _events(server, "conversation.assigned"))[-1].data["assignee_id"]
        )

        # The question had its answer: the customer's next words start a new conversation.
        await _telegram(server, fake, fake.text_update("5"))
        assert len(await _events(server, "csat.rated")) == 1
        started = await _events(server, "conversation.started")
        assert started[-1].conversation_id != conv_id
        await on_server(server, server.runtime.consumers.catch_up())
        summary = await on_server(
            server, server.runtime.stats.summary(server.runtime.stats.period(*_today(server)))
        )
        assert summary["csat"] == {"asked": 1, "answered": 1, "average": 2.0}
    finally:
        server.stop()


async def test_a_rating_typed_as_a_digit_counts_and_the_survey_can_be_switched_off(
    fresh_database_url: str, fake: FakeTelegram
) -> None:
    server = await _start(fresh_database_url, fake)
    try:
        conv_id = await _handed_over_and_closed(server, fake)
        await _telegram(server, fake, fake.text_update(" 4 "))
        [rated] = await _events(server, "csat.rated")
        assert (rated.conversation_id, rated.data["rating"]) == (conv_id, 4)
        assert "Спасибо за оценку" in fake.sent[-1].text
    finally:
        server.stop()

    server = await _start(
        fresh_database_url,
        fake,
        seed=False,
        operators={"api_token": "t", "satisfaction_survey": False},
    )
    try:
        before = len(await _events(server, "csat.asked"))
        await _handed_over_and_closed(server, fake, chat=USER_ID + 1)
        assert "Диалог завершён" in fake.sent[-1].text
        assert len(await _events(server, "csat.asked")) == before
    finally:
        server.stop()


def _today(server: LiveServer) -> tuple[Any, Any]:
    today = clock.utcnow().astimezone(server.settings.company.tz).date()
    return today, today


async def test_a_quiet_chat_with_the_bot_is_closed_and_the_next_visit_is_a_new_conversation(
    fresh_database_url: str, fake: FakeTelegram
) -> None:
    now = Clock(moscow(2026, 12, 1, 9, 0))
    clock.set_clock(now)
    server = await _start(fresh_database_url, fake, conversations={"idle_close_hours": 24})
    try:
        async with httpx.AsyncClient(timeout=30) as http:
            me = Customer(server, http)
            await me.start()
            await me.say("как оплатить свет без комиссии")
            first = me.conversation_id
            now.advance(23 * 3600)
            await on_server(server, _close_idle(server))
            assert (await conversation(server, first)).status == "bot"  # not yet a day
            now.advance(2 * 3600)
            await on_server(server, _close_idle(server))
            conv = await conversation(server, first)
            assert conv.status == "closed" and conv.resolution == "bot"
            [closed] = await _events(server, "conversation.closed")
            assert closed.conversation_id == first and closed.data["idle"] is True

            await me.say("а тарифы какие?")  # the next day: a new conversation
            started = await _events(server, "conversation.started")
            assert len(started) == 2 and started[-1].conversation_id != first
            await _settle(server)
            await on_server(server, server.runtime.consumers.catch_up())
            stats = server.runtime.stats
            summary = await on_server(server, stats.summary(stats.period(*_two_days())))
        assert summary["conversations"]["total"] == 2
        assert summary["customers"] == {"unique": 1, "returning": 1}
    finally:
        server.stop()


def _two_days() -> tuple[Any, Any]:
    first = moscow(2026, 12, 1, 9, 0).date()
    return first, first + timedelta(days=1)


async def _close_idle(server: LiveServer) -> int:
    from abonent.core.conversations import close_idle

    runtime = server.runtime
    limit = clock.utcnow() - timedelta(hours=24)
    return await close_idle(runtime.db, runtime.bus, limit)
