"""«Узнать баланс» on the utility's billing: the due date it gives, and honesty about a
balance that billing, being down, could only give as it was some minutes ago."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from abonent import clock
from abonent.bot import texts as t
from fakes.billing import TOKEN, FakeBilling
from support import Clock, LiveServer, make_settings, moscow, texts, web_chat

DUE, NO_DUE, OVERDUE, PAID_AHEAD = "5000000001", "5000000002", "5000000003", "5000000004"


def plain(text: str) -> str:
    return text.replace("\u00a0", " ")


@pytest.fixture
def billing() -> Iterator[FakeBilling]:
    with FakeBilling() as server:
        assert isinstance(server, FakeBilling)
        server.add_account(DUE, balance="1520.40", due_date="2026-12-25")
        server.add_account(NO_DUE, balance="310", due_date=None)
        server.add_account(OVERDUE, balance="99.90", due_date="2026-11-25")
        server.add_account(PAID_AHEAD, balance="-250", due_date="2026-12-25")
        yield server


@pytest.fixture
def now() -> Clock:
    # Thursday 3 December 2026, 14:05 in Moscow.
    return Clock(moscow(2026, 12, 3, 14, 5))


@pytest.fixture
def server(fresh_database_url: str, billing: FakeBilling, now: Clock) -> Iterator[LiveServer]:
    """The real server on the fake billing; every answer is asked for afresh (no cache),
    so an outage shows at the next question."""
    clock.set_clock(now)
    settings = make_settings(
        fresh_database_url,
        billing={
            "type": "http",
            "url": billing.url,
            "token": TOKEN,
            "retries": 0,
            "cache_seconds": 0,
        },
    )
    server = LiveServer(settings).start()
    try:
        yield server
    finally:
        server.stop()
        clock.set_clock(None)


async def _balance(server: LiveServer, number: str) -> str:
    async with web_chat(server) as me:
        await me.press(t.P_BALANCE)
        return plain(texts(await me.say(number)))


async def test_the_due_date_billing_gives_is_the_one_said(server: LiveServer) -> None:
    answer = await _balance(server, DUE)
    assert "К оплате: 1 520,40 ₽." in answer
    assert "Оплатить нужно до 25 декабря." in answer
    assert "15-го" not in answer
    assert "По данным на" not in answer


async def test_without_a_due_date_the_general_deadline_is_said(server: LiveServer) -> None:
    answer = await _balance(server, NO_DUE)
    assert "К оплате: 310,00 ₽." in answer
    assert "Оплатить нужно до 15-го числа следующего месяца." in answer


async def test_a_passed_due_date_is_not_said_as_still_ahead(server: LiveServer) -> None:
    answer = await _balance(server, OVERDUE)
    assert "Срок оплаты был до 25 ноября." in answer
    assert "Оплатить нужно до" not in answer


async def test_an_overpayment_has_no_due_date(server: LiveServer) -> None:
    answer = await _balance(server, PAID_AHEAD)
    assert "Переплата: 250,00 ₽." in answer
    assert "декабря" not in answer


async def test_a_balance_from_before_an_outage_says_when_it_is_from(
    server: LiveServer, billing: FakeBilling, now: Clock
) -> None:
    first = await _balance(server, DUE)
    assert "По данным на" not in first
    billing.down = True
    now.advance(20 * 60)  # 14:25: past the cache, within what billing.http still serves
    answer = await _balance(server, DUE)
    assert (
        "По данным на 14:05 3 декабря; биллинг сейчас недоступен, сумма может быть уже другой."
        in answer
    )
    assert "К оплате: 1 520,40 ₽." in answer
    assert len(billing.calls(f"/accounts/{DUE}")) == 2  # billing was asked, and failed


async def test_a_balance_never_told_is_not_made_up_during_an_outage(
    server: LiveServer, billing: FakeBilling
) -> None:
    billing.down = True
    answer = await _balance(server, DUE)
    assert answer.startswith(t.BILLING_DOWN[:40])
    assert "К оплате" not in answer
