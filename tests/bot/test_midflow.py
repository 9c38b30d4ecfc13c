"""Questions typed in the middle of a flow: answered, then the step goes on (issue 10.1).

Each waiting step knows what an attempt at it looks like; anything else is the
consultant's. Only attempts count towards the three strikes at the account step.
Everything here goes through the real server and the client API, as the widget does.
"""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from abonent.db.models import Appeal, Conversation, Message
from abonent.db.session import Database
from bot.conftest import StartBot
from support import ALWAYS_OPEN, LiveServer, payloads, texts, to_values, web_chat

ACCOUNTS_CSV = (
    "account,holder,address,plan,t1,t2,t3,readings_date,balance,phone\n"
    '1000000001,Иванов Иван Иванович,"г. Энск, ул. Ленина, д. 15, кв. 7",two_zone,'
    "12345,5210,,2026-10-25,1234.56,\n"
    '1000000002,Петрова Анна Сергеевна,"г. Энск, ул. Мира, д. 3, кв. 12",single,'
    "8500.5,,,2026-10-25,-200,\n"
)
NOT_DIGITS = "состоит только из цифр"
GIVE_UP = "Не получается найти лицевой счёт"
RESUME_ACCOUNT = "Чтобы продолжить передачу показаний, введите номер лицевого счёта (10 цифр)."


@pytest.fixture
def server(accounts_server: StartBot) -> LiveServer:
    return accounts_server(ACCOUNTS_CSV, company=ALWAYS_OPEN, own_public_url=True)


async def _customer_messages(url: str, conversation_id: int) -> list[Message]:
    db = Database(url)
    async with db.session() as session:
        rows = list(
            await session.scalars(
                select(Message)
                .where(Message.conversation_id == conversation_id, Message.author == "customer")
                .order_by(Message.id)
            )
        )
    await db.dispose()
    return rows


def _unique(reply: list[dict[str, Any]]) -> None:
    for message in reply:
        shown = [b["payload"] for b in message["buttons"]]
        assert len(shown) == len(set(shown)), shown


async def test_questions_at_the_account_and_readings_steps_are_answered_then_the_flow_goes_on(
    server: LiveServer,
) -> None:
    async with web_chat(server) as me:
        await me.press("readings")

        card = await me.say("а как оплатить картой?")
        assert "Оплатить электроэнергию можно" in texts(card)
        assert RESUME_ACCOUNT in texts(card)
        assert NOT_DIGITS not in texts(card)
        # answer and offer in one bubble: its buttons are the ones a widget shows
        assert len(card) == 1
        assert payloads(card)[-2:] == ["resume", "menu"]
        assert card[0]["buttons"][-2]["title"] == "Продолжить передачу показаний"
        _unique(card)

        deadline = await me.say("до какого числа передавать показания")
        assert "Показания принимаются с 1 по 31 число" in texts(deadline)
        assert RESUME_ACCOUNT in texts(deadline)

        thanks = await me.say("спасибо")
        assert "Пожалуйста!" in texts(thanks) and RESUME_ACCOUNT in texts(thanks)

        complaint = await me.say(
            "Вы вообще работаете? Я уже третий раз пишу, свет отключили, квитанция пришла "
            "огромная, никто ничего не объясняет, безобразие"
        )
        assert NOT_DIGITS not in texts(complaint) and GIVE_UP not in texts(complaint)
        assert RESUME_ACCOUNT in texts(complaint)

        # «Продолжить» asks for the step again; four asides later, no strike was counted
        again = await me.press("resume")
        assert "Введите номер лицевого счёта — 10 цифр" in texts(again)
        confirm = await me.say("1000000001")
        assert "Ив**** И. И." in texts(confirm) and GIVE_UP not in texts(confirm)
        values = await me.press("yes")
        assert "«день», «ночь»" in texts(values)

        price = await me.say("сколько стоит киловатт")
        assert "Не вижу в сообщении показаний" not in texts(price)
        assert "Чтобы продолжить передачу показаний, введите показания счётчика." in texts(price)
        done = await me.say("12500 5300")
        assert "Показания приняты" in texts(done)

        asked = await _customer_messages(server.settings.database_url, me.conversation_id)
        by_text = {m.text: m.meta or {} for m in asked}
        assert by_text["а как оплатить картой?"]["intent"] == "payment_methods"
        assert by_text["а как оплатить картой?"]["aside"] == "account"
        assert by_text["до какого числа передавать показания"]["intent"] == "readings_deadline"
        assert by_text["спасибо"]["intent"] == "thanks_bye"
        assert by_text["сколько стоит киловатт"]["intent"] == "tariffs"
        assert by_text["сколько стоит киловатт"]["aside"] == "values"
        assert by_text["1000000001"]["account"] == "1000000001"
        assert "aside" not in by_text["12500 5300"]


async def test_the_three_strikes_come_after_three_real_attempts_only(server: LiveServer) -> None:
    async with web_chat(server) as me:
        await me.press("balance")
        seen: list[str] = []
        for text in (
            "12345",  # attempt 1: too short
            "спасибо",
            "а где его найти?",
            "1000-000-ab",  # attempt 2: letters in it
            "фывапролдж",
            "как оплатить картой",
        ):
            seen.append(texts(await me.say(text)))
        assert not any(GIVE_UP in s for s in seen), seen
        assert "должно быть 10 цифр, а в вашем — 5" in seen[0]
        assert NOT_DIGITS in seen[3]
        assert "Чтобы продолжить проверку баланса" in seen[1]
        third = await me.say("9999999999")
        assert "не найден" in texts(third) and GIVE_UP in texts(third)
        assert "operator" in payloads(third)
        # and after the strikes, the right number still works
        assert "К оплате: 1" in texts(await me.say("1000000001"))


async def test_another_task_or_a_human_asked_mid_flow_is_honoured(server: LiveServer) -> None:
    async with web_chat(server) as me:
        await me.press("balance")
        switched = await me.say("хочу передать показания")
        assert "Введите номер лицевого счёта — 10 цифр" in texts(switched)
        assert "Чтобы продолжить" not in texts(switched)
        # the same task again: the step is asked once, not offered on top of itself
        same = await me.say("хочу передать показания счетчика")
        assert texts(same).count("номер лицевого счёта") == 1
        await me.say("1000000002")
        human = await me.say("соедините с оператором")
        assert "Вы 1-й в очереди" in texts(human)
        assert "Чтобы продолжить" not in texts(human)
        db = Database(server.settings.database_url)
        async with db.session() as session:
            conv = await session.get(Conversation, me.conversation_id)
        await db.dispose()
        assert conv is not None and conv.status == "queued" and conv.bot_state == {}


async def test_a_miss_mid_flow_offers_real_topics_and_the_step(server: LiveServer) -> None:
    async with web_chat(server) as me:
        await to_values(me, "1000000002")
        miss = await me.say("фывапролдж")
        assert "Переформулируйте" in texts(miss)
        assert not {"intent:greeting", "intent:thanks_bye"} & set(payloads(miss))
        assert "Чтобы продолжить передачу показаний, введите показания счётчика." in texts(miss)
        assert payloads(miss)[-2:] == ["resume", "menu"]
        # a topic button pressed mid-flow answers it and keeps the step
        topic = await me.press("intent:readings_deadline")
        assert "Показания принимаются" in texts(topic)
        assert "введите показания счётчика" in texts(topic)
        done = await me.say("8600")
        assert "Показания приняты" in texts(done)


async def test_the_appeal_takes_its_answers_and_answers_questions_aside(
    server: LiveServer,
) -> None:
    async with web_chat(server) as me:
        await me.press("appeal")
        aside = await me.say("а как оплатить картой?")
        assert "Оплатить электроэнергию можно" in texts(aside)
        assert "Чтобы продолжить оформление обращения, напишите, как к вам обращаться." in texts(
            aside
        )
        assert "Укажите телефон" in texts(await me.say("Петрова Анна Сергеевна"))
        # two words could be a poor answer to the step: the step says what it needs
        assert "Не похоже" in texts(await me.say("позвоните мне"))
        assert "Номер лицевого счёта" in texts(await me.say("+7 912 345-67-89"))
        assert "Опишите суть" in texts(await me.say("пропустить"))
        # a topic button left from earlier, pressed at the free-text step: answered, and
        # the step asked again
        topic = await me.press("intent:readings_deadline")
        assert "Показания принимаются" in texts(topic) and "Опишите суть" in texts(topic)
        # the appeal's text is the customer's own words, whatever they ask in it
        text = "Почему квитанция приходит на чужую фамилию? Прошу разобраться."
        confirm = await me.say(text)
        assert text in texts(confirm)
        done = texts(await me.press("yes"))
        assert "Обращение № ВП-" in done
        db = Database(server.settings.database_url)
        async with db.session() as session:
            [appeal] = list(await session.scalars(select(Appeal)))
        await db.dispose()
        assert (appeal.name, appeal.contact, appeal.account_number, appeal.text) == (
            "Петрова Анна Сергеевна",
            "+7 912 345-67-89",
            None,
            text,
        )
