"""The readings prompts and refusals, as a web-chat customer sees them through the real server.

Every example the bot shows is accepted when typed back; what the prompts allow is what the
refusals allow; a too-low reading is one bubble that names the zone and the previous value.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

import pytest

from bot.conftest import StartBot
from support import LiveServer, texts, to_values, web_chat

# ruff: noqa: E501  (the CSV rows are kept whole, as a billing export writes them)

ACCOUNTS_CSV = """account,holder,address,plan,t1,t2,t3,readings_date,balance,phone
1000000001,Иванов Иван Иванович,"г. Энск, ул. Ленина, д. 15, кв. 7",two_zone,12345,5210,,2026-10-25,0,
1000000002,Петрова Анна Сергеевна,"г. Энск, ул. Мира, д. 3, кв. 12",single,8500.5,,,2026-10-25,0,
1000000003,Сидоров Пётр,"г. Энск, ул. Садовая, д. 1",three_zone,4000,6000,5000,2026-10-25,0,
1000000004,Новый Абонент,"г. Энск, ул. Новая, д. 2",two_zone,,,,,0,
"""
TWO, SINGLE, THREE, NEW = "1000000001", "1000000002", "1000000003", "1000000004"
_EXAMPLE = re.compile(r"например: ([0-9][0-9 ]*[0-9]|[0-9])")


def plain(text: str) -> str:
    return text.replace("\u00a0", " ")


def example_in(replies: list[dict[str, Any]]) -> str:
    match = _EXAMPLE.search(texts(replies))
    assert match is not None, texts(replies)
    return match.group(1)


@pytest.fixture
def server(accounts_server: StartBot) -> LiveServer:
    return accounts_server(ACCOUNTS_CSV)


@pytest.mark.parametrize(
    ("number", "previous"),
    [
        (TWO, [Decimal("12345"), Decimal("5210")]),
        (SINGLE, [Decimal("8500.5")]),
        (THREE, [Decimal("4000"), Decimal("6000"), Decimal("5000")]),
        (NEW, None),
    ],
)
async def test_the_prompts_example_is_accepted_typed_back(
    server: LiveServer, number: str, previous: list[Decimal] | None
) -> None:
    async with web_chat(server) as me:
        prompt = await to_values(me, number)
        example = example_in(prompt)
        values = [Decimal(v) for v in example.split()]
        if previous is not None:
            # Not lower than the previous readings shown in the same bubble.
            assert all(v >= p for v, p in zip(values, previous, strict=True)), example
            assert "12500 5300" not in texts(prompt)
        done = plain(texts(await me.say(example)))
        assert "Показания приняты" in done, done


async def test_the_next_zone_prompts_example_is_accepted(server: LiveServer) -> None:
    async with web_chat(server) as me:
        await to_values(me, TWO)
        night = await me.say("12400")
        assert "«ночь»" in texts(night)
        example = example_in(night)
        assert Decimal(example) >= Decimal("5210")
        assert "Показания приняты" in texts(await me.say(example))


async def test_one_too_low_zone_is_one_bubble_naming_it(server: LiveServer) -> None:
    async with web_chat(server) as me:
        await to_values(me, TWO)
        refused = await me.say("12400 5100")
        assert len(refused) == 1, texts(refused)
        text = plain(refused[0]["text"])
        assert "«ночь» 5 100 меньше предыдущего принятого — 5 210 (от 25.10.2026)" in text
        assert "«день»" not in text.split("Показания счётчика")[0]
        assert [b["payload"] for b in refused[0]["buttons"]] == ["back", "cancel"]
        # The bubble's own example is accepted.
        assert "Показания приняты" in texts(await me.say(example_in(refused)))


async def test_both_zones_too_low_are_named_in_one_bubble(server: LiveServer) -> None:
    async with web_chat(server) as me:
        await to_values(me, TWO)
        refused = await me.say("12000 5000")
        assert len(refused) == 1
        text = plain(refused[0]["text"])
        assert "«день» 12 000 меньше предыдущего принятого — 12 345" in text
        assert "«ночь» 5 000 меньше предыдущего принятого — 5 210" in text


async def test_prompts_and_refusals_agree_with_what_is_accepted(server: LiveServer) -> None:
    async with web_chat(server) as me:
        prompt = texts(await to_values(me, SINGLE))
        assert "через запятую (не больше двух)" in prompt
        low = texts(await me.say("8400"))
        # The refusal must not forbid what the prompt allows (and the validator accepts).
        assert "без цифр после запятой" not in low
        assert "Показание 8 400 меньше предыдущего принятого — 8 500,5" in plain(low)
        # A thousands space makes two numbers: the refusal says so.
        spaced = texts(await me.say("8 650"))
        assert "одно показание" in spaced and "без пробелов" in spaced
        # Two digits after the comma, as the prompt says, are accepted.
        done = plain(texts(await me.say("8650,75")))
        assert "Показание: 8 650,75 кВт·ч, расход 150,25 кВт·ч с 25.10.2026" in done


async def test_unreadable_text_gets_an_example_that_works(server: LiveServer) -> None:
    async with web_chat(server) as me:
        await to_values(me, THREE)
        unreadable = await me.say("12.500")
        assert "Не вижу в сообщении показаний" in texts(unreadable)
        assert "Показания приняты" in texts(await me.say(example_in(unreadable)))


async def test_the_jump_question_counts_the_days(server: LiveServer) -> None:
    async with web_chat(server) as me:
        await to_values(me, SINGLE)
        jump = plain(texts(await me.say("12000")))
        assert "расход 3 499,5 кВт·ч за 29 дней" in jump
