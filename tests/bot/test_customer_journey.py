"""The bar of issue 2: a new customer in the web chat, end to end, through the real server.

menu → readings with a wrong account and too-low readings first, then right ones, on
a two-zone and a single-zone account → balance → asking for an operator; the numbers
(consumption, cost, balance) exactly right, and the rows written checked in the database.
"""

from __future__ import annotations

from decimal import Decimal

import httpx
import pytest

from abonent import clock
from abonent.db.models import Conversation
from abonent.db.session import Database
from bot.conftest import StartBot
from support import (
    Customer,
    LiveServer,
    account_history,
    make_settings,
    moscow,
    payloads,
    texts,
    web_chat,
)

# ruff: noqa: E501  (the CSV rows are kept whole, as a billing export writes them)

ACCOUNTS_CSV = """account,holder,address,plan,t1,t2,t3,readings_date,balance,phone
1000000001,Иванов Иван Иванович,"г. Энск, ул. Ленина, д. 15, кв. 7",two_zone,12345,5210,,2026-10-25,1234.56,+79120000001
1000000002,Петрова Анна Сергеевна,"г. Энск, ул. Мира, д. 3, кв. 12",single,8500.5,,,2026-10-25,-200,
1000000003,Сидоров Пётр,"г. Энск, ул. Садовая, д. 1",three_zone,4000,6000,5000,2026-10-25,0,
"""


def plain(text: str) -> str:
    return text.replace("\u00a0", " ").replace("\u202f", " ")


@pytest.fixture
def server(accounts_server: StartBot) -> LiveServer:
    return accounts_server(ACCOUNTS_CSV)


async def test_new_customer_full_journey(server: LiveServer) -> None:
    async with httpx.AsyncClient(timeout=30) as http:
        me = Customer(server, http)

        greeting = await me.start()
        assert "ЭнергоСбыт Тест" in texts(greeting)
        assert "пн–пт 08:00–20:00, сб 09:00–15:00" in texts(greeting)
        assert "8 800 111-11-11" in texts(greeting)
        assert payloads(greeting) == ["readings", "balance", "operator"]

        # --- readings on the two-zone account, mistakes first
        ask = await me.press("readings")
        assert "10 цифр" in texts(ask)

        wrong = await me.say("12345")
        assert "должно быть 10 цифр, а в вашем — 5" in texts(wrong)
        unknown = await me.say("1000000099")
        assert "1000000099 не найден" in texts(unknown)

        confirm = await me.say("1000-000-ОО1")  # dashes and the letter О for zero
        assert "Ив**** И. И." in texts(confirm)
        assert "Иванов" not in texts(confirm)
        assert "ул. Ленина" in texts(confirm) and "15" not in texts(confirm).split("Адрес:")[1]
        assert payloads(confirm)[:2] == ["yes", "no"]

        prompt = await me.press("yes")
        assert "«день», «ночь»" in texts(prompt)
        assert "12 345" in plain(texts(prompt))

        too_low = await me.say("12000 5300")
        assert "«день» 12 000 меньше предыдущего принятого — 12 345 (от 25.10.2026)" in plain(
            texts(too_low)
        )

        # zone by zone, with a decimal comma
        night_prompt = await me.say("12500")
        assert "«ночь»" in texts(night_prompt)
        done = plain(texts(await me.say("5300,5")))
        assert "Показания приняты" in done
        assert (
            "День: 12 500 кВт·ч, расход 155 кВт·ч с 25.10.2026; 155 × 7,36 ₽ = 1 140,80 ₽" in done
        )
        assert (
            "Ночь: 5 300,5 кВт·ч, расход 90,5 кВт·ч с 25.10.2026; 90,5 × 3,79 ₽ = 343,00 ₽" in done
        )
        assert "Итого расход 245,5 кВт·ч на сумму 1 483,80 ₽" in done

        account, history = await account_history(server.settings.database_url, "1000000001")
        assert (account.t1, account.t2) == (Decimal("12500"), Decimal("5300.5"))
        assert (
            account.readings_date is not None and account.readings_date.isoformat() == "2026-11-23"
        )
        last = history[-1]
        assert last.source == "bot" and last.cost == Decimal("1483.80")
        assert last.conversation_id == me.conversation_id

        # --- readings on the single-zone account, the remembered account offered first
        ask = await me.press("readings")
        assert "Счёт ******0001" in [b["title"] for m in ask for b in m["buttons"]]
        await me.say("1000000002")
        prompt = await me.press("yes")
        assert "8 500,5 кВт·ч от 25.10.2026" in plain(texts(prompt))
        low = plain(texts(await me.say("8400")))
        assert "Показание 8 400 меньше предыдущего принятого — 8 500,5" in low
        done = plain(texts(await me.say("8650,7")))
        assert (
            "Показание: 8 650,7 кВт·ч, расход 150,2 кВт·ч с 25.10.2026; 150,2 × 6,43 ₽ = 965,79 ₽"
            in done
        )
        account, history = await account_history(server.settings.database_url, "1000000002")
        assert account.t1 == Decimal("8650.7") and history[-1].cost == Decimal("965.79")

        # --- balance: a debt with the payment link, then an overpayment
        await me.press("balance")
        owe = plain(texts(await me.say("1000000001")))
        assert "К оплате: 1 234,56 ₽" in owe and "https://pay.example/energo" in owe
        await me.press("balance")
        over = plain(texts(await me.say("1000000002")))
        assert "Переплата: 200,00 ₽" in over

        # --- an operator, please
        handoff = texts(await me.press("operator"))
        assert "Вы 1-й в очереди" in handoff

        queue = await http.get(
            f"{server.url}/api/operator/v1/queue",
            headers={"Authorization": "Bearer test-operator-token"},
        )
        assert queue.status_code == 200
        entry = queue.json()["conversations"][0]
        assert entry["conversation_id"] == me.conversation_id and entry["position"] == 1

        # the customer keeps writing; the bot stays silent, the message waits for a human
        assert await me.say("У меня ещё вопрос по квитанции") == []
        db = Database(server.settings.database_url)
        async with db.session() as session:
            conv = await session.get(Conversation, me.conversation_id)
        await db.dispose()
        assert conv is not None and conv.status == "queued" and conv.waiting_since is not None


async def test_implausible_jump_is_confirmed_before_saving(server: LiveServer) -> None:
    async with web_chat(server) as me:
        await me.press("readings")
        await me.say("1000000003")
        prompt = await me.press("yes")
        assert "«пик», «полупик», «ночь»" in texts(prompt)
        jump = plain(texts(await me.say("9000 6100 5100")))
        # 5000 + 100 + 100 kWh in 29 days, above 60 kWh a day
        assert "расход 5 200 кВт·ч за 29 дней" in jump
        account, _ = await account_history(server.settings.database_url, "1000000003")
        assert account.t1 == Decimal("4000")  # nothing saved yet
        again = await me.press("no")
        assert "«пик», «полупик», «ночь»" in texts(again)
        await me.say("9000 6100 5100")
        done = plain(texts(await me.press("yes")))
        # 5000 × 8,85 = 44 250,00; 100 × 6,43 = 643,00; 100 × 3,79 = 379,00
        assert "Итого расход 5 200 кВт·ч на сумму 45 272,00 ₽" in done


async def test_menu_back_and_cancel_work_at_any_step(server: LiveServer) -> None:
    async with web_chat(server) as me:
        await me.press("readings")
        await me.say("1000000001")
        back = await me.say("назад")
        assert "10 цифр" in texts(back)
        await me.say("1000000001")
        await me.press("yes")
        back = await me.say("Назад")
        assert "Это ваш счёт?" in texts(back)
        cancel = await me.say("отмена")
        assert "отменил" in texts(cancel) and payloads(cancel) == [
            "readings",
            "balance",
            "operator",
        ]
        menu = await me.say("МЕНЮ")
        assert payloads(menu) == ["readings", "balance", "operator"]
        # free text reaches the keyword matcher from the menu
        assert "10 цифр" in texts(await me.say("хочу узнать задолженность"))


async def test_three_wrong_accounts_offer_an_operator(server: LiveServer) -> None:
    async with web_chat(server) as me:
        await me.press("balance")
        await me.say("1")
        await me.say("10000000ab")  # an attempt with letters (words alone are a question)
        third = await me.say("9999999999")
        assert "не найден" in texts(third)
        assert "operator" in payloads(third)
        assert "8 800 222-22-22" in texts(third)


async def test_outside_working_hours_the_customer_is_told_where_to_go(
    fresh_database_url: str,
) -> None:
    clock.set_clock(lambda: moscow(2026, 11, 22, 23, 30))  # Sunday night
    srv = LiveServer(make_settings(fresh_database_url)).start()
    try:
        async with web_chat(srv) as me:
            reply = texts(await me.say("позовите оператора"))
            assert "Сейчас операторы не работают" in reply
            assert "8 800 222-22-22" in reply
            assert "https://energo.example/reception" in reply
            assert "8 800 111-11-11" in reply
    finally:
        srv.stop()


async def test_a_queued_customer_can_leave_the_queue(server: LiveServer) -> None:
    async with web_chat(server) as me:
        assert "1-й в очереди" in texts(await me.say("соедините с оператором"))
        assert await me.say("жду") == []
        back = await me.say("меню")
        assert "вышли из очереди" in texts(back)
        assert payloads(back) == ["readings", "balance", "operator"]
        db = Database(server.settings.database_url)
        async with db.session() as session:
            conv = await session.get(Conversation, me.conversation_id)
        await db.dispose()
        assert conv is not None and conv.status == "bot" and conv.queued_at is None
        # and the bot serves them again
        assert "10 цифр" in texts(await me.press("balance"))


async def test_readings_outside_the_window_are_not_taken(fresh_database_url: str) -> None:
    clock.set_clock(lambda: moscow(2026, 11, 27, 12, 0))
    settings = make_settings(
        fresh_database_url, readings={"first_day": 15, "last_day": 25, "max_daily_kwh": "60"}
    )
    srv = LiveServer(settings).start()
    try:
        async with web_chat(srv) as me:
            reply = await me.press("readings")
            assert "Показания принимаются с 15 по 25 число каждого месяца" in texts(reply)
            assert "Сегодня 27.11.2026" in texts(reply)
            assert "balance" in payloads(reply)
    finally:
        srv.stop()


async def test_a_typo_in_a_known_account_number_is_caught(server: LiveServer) -> None:
    async with httpx.AsyncClient(timeout=30) as http:
        me = Customer(server, http)
        await me.start()
        await me.press("balance")
        await me.say("1000000001")  # now known for this customer
        await me.press("balance")
        typo = await me.say("1000000010")  # two digits swapped
        assert "Возможно, вы имели в виду свой счёт 1000000001" in texts(typo)
        assert payloads(typo)[0] == "acct:1000000001"
        assert "К оплате" in texts(await me.press("acct:1000000001"))
        # a stranger's account one digit away is never suggested
        other = Customer(server, http)
        await other.start()
        await other.press("balance")
        assert "Возможно" not in texts(await other.say("1000000004"))
