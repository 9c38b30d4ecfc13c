"""The price question is answered with the configured prices; "why so high a bill" with
estimated billing and recalculation; no price is ever stated that was not configured."""

from __future__ import annotations

import tomllib
from typing import Any

import pytest

from abonent.bot import answers
from abonent.bot.dialog import Dialog, Services
from abonent.bot.engine import Bot
from abonent.core.pipeline import Turn
from abonent.demo import DEMO_ACCOUNTS_CSV
from bot.conftest import StartBot
from support import LiveServer, on_server, texts, to_values, web_chat

DEMO_TOML = DEMO_ACCOUNTS_CSV.with_name("demo.toml")
DEMO_TARIFFS: dict[str, Any] = tomllib.loads(DEMO_TOML.read_text(encoding="utf-8"))["tariffs"]
ACCOUNTS_CSV = """account,holder,address,plan,t1,t2,t3,readings_date,balance,phone
1000000001,Иванов Иван,г. Энск,two_zone,12345,5210,,2026-10-25,0,
1000000002,Петрова Анна,г. Энск,single,8500,,,2026-10-25,0,
"""
TWO, SINGLE = "1000000001", "1000000002"


def plain(text: str) -> str:
    return text.replace("\u00a0", " ")


@pytest.fixture
def demo_priced(accounts_server: StartBot) -> LiveServer:
    return accounts_server(ACCOUNTS_CSV, tariffs=DEMO_TARIFFS)


@pytest.fixture
def unpriced(accounts_server: StartBot) -> LiveServer:
    return accounts_server(ACCOUNTS_CSV, tariffs={})


async def _ask(server: LiveServer, question: str) -> str:
    async with web_chat(server) as me:
        return plain(texts(await me.say(question)))


async def test_price_question_gets_the_configured_prices(demo_priced: LiveServer) -> None:
    answer = await _ask(demo_priced, "сколько стоит киловатт")
    assert answer.startswith("Тарифы «ЭнергоСбыт Тест» за 1 кВт·ч:")
    assert "Однотарифный: 6,43 ₽/кВт·ч." in answer
    assert "• день (07:00–23:00) — 7,36 ₽/кВт·ч" in answer
    assert "• ночь (23:00–07:00) — 3,79 ₽/кВт·ч" in answer
    assert "• пик (07:00–10:00 и 17:00–21:00) — 8,85 ₽/кВт·ч" in answer
    assert "• полупик (10:00–17:00 и 21:00–23:00) — 6,43 ₽/кВт·ч" in answer
    assert "Часы зон — по местному времени." in answer
    assert "указана в квитанции" not in answer


async def test_without_configured_prices_the_general_text_and_no_costs(
    unpriced: LiveServer,
) -> None:
    answer = await _ask(unpriced, "сколько стоит киловатт")
    assert "указана в квитанции" in answer
    assert "₽" not in answer
    async with web_chat(unpriced) as me:
        await to_values(me, SINGLE)
        done = plain(texts(await me.say("8650")))
    assert "Показание: 8 650 кВт·ч, расход 150 кВт·ч с 25.10.2026" in done
    assert "Итого расход 150 кВт·ч." in done
    assert "₽" not in done


@pytest.fixture
def single_priced(accounts_server: StartBot) -> LiveServer:
    return accounts_server(ACCOUNTS_CSV, tariffs={"single": "5.12"})


async def test_only_the_configured_plans_are_priced(single_priced: LiveServer) -> None:
    answer = await _ask(single_priced, "почём киловатт-час")
    assert "Однотарифный: 5,12 ₽/кВт·ч." in answer
    assert "двухзонн" not in answer.lower().split("перейти")[0]
    assert "трёхзонн" not in answer.lower().split("перейти")[0]


async def test_a_big_bill_gets_the_estimated_billing_answer(demo_priced: LiveServer) -> None:
    answer = await _ask(demo_priced, "почему такой большой счёт")
    assert answer.startswith("Если сумма больше обычной, проверьте:")
    assert "до 31-го числа, месяц начисляется по среднему потреблению" in answer
    assert "новые показания заменят прежние" in answer
    assert "₽/кВт·ч" not in answer


def _turn(state: dict[str, Any]) -> Turn:
    return Turn(conversation_id=1, contact_id=1, channel_id="web", state=state)


async def test_the_customers_own_plan_comes_first(demo_priced: LiveServer) -> None:
    """In a conversation about a two-zone account, its prices lead the answer."""
    handler = demo_priced.runtime.pipeline.handler
    assert isinstance(handler, Bot)
    services: Services = handler.services

    async def fill(state: dict[str, Any]) -> str | None:
        return await answers.fill(Dialog.from_turn(_turn(state), services), "tariffs")

    in_flow = {"flow": "readings", "step": "values", "data": {"account": TWO}}
    own = plain(await on_server(demo_priced, fill(in_flow)) or "")
    lines = own.splitlines()
    assert lines[1:4] == [
        "Ваш тариф — двухзонный:",
        "• день (07:00–23:00) — 7,36 ₽/кВт·ч",
        "• ночь (23:00–07:00) — 3,79 ₽/кВт·ч",
    ]
    assert "Другие тарифы:" in lines and "Однотарифный: 6,43 ₽/кВт·ч." in lines
    single = plain(
        await on_server(demo_priced, fill({**in_flow, "data": {"account": SINGLE}})) or ""
    )
    assert single.splitlines()[1] == "Ваш тариф — однотарифный: 6,43 ₽/кВт·ч."
    anonymous = plain(await on_server(demo_priced, fill({})) or "")
    assert "Ваш тариф" not in anonymous and "Другие тарифы" not in anonymous


async def test_asked_in_the_middle_of_readings_the_answer_leads_with_their_plan(
    demo_priced: LiveServer,
) -> None:
    async with web_chat(demo_priced) as me:
        await to_values(me, TWO)
        answer = plain(texts(await me.say("сколько стоит киловатт")))
        assert "Ваш тариф — двухзонный:\n• день (07:00–23:00) — 7,36 ₽/кВт·ч" in answer
        assert "Не вижу в сообщении показаний" not in answer
        # The readings step is still there to go on with.
        assert "Показания приняты" in texts(await me.say("12400 5250"))
