"""One customer across channels: identities joined by a vouched phone, never by an account;
the accounts of a vouched phone found through the billing, whichever backend it is."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import select

from abonent.billing.http import HttpBilling
from abonent.billing.local import LocalBilling
from abonent.bot import texts as t
from abonent.config import BillingSettings, TariffSettings
from abonent.core.bus import LocalBus
from abonent.core.contacts import ContactDirectory
from abonent.core.pipeline import Pipeline, Turn, TurnOutcome
from abonent.core.types import Attachment, InboundMessage
from abonent.db.models import Account, ChannelIdentity, Contact, ContactAccount, Conversation
from abonent.db.session import Database
from channels.conftest import StartServer, channel_server, contacts, settle, telegram_config
from fakes.billing import TOKEN, FakeBilling
from fakes.telegram import FakeTelegram
from support import LiveServer

__all__ = ["channel_server"]  # the fixture, for the end-to-end tests below

NUMBER = "5000123456"
OTHER = "5000654321"
PHONE = "+79001234567"


class Silent:
    def __init__(self) -> None:
        self.turns: list[Turn] = []

    async def handle(self, turn: Turn) -> TurnOutcome:
        self.turns.append(turn)
        return TurnOutcome()


async def _contact_of(db: Database, channel_id: str, external_id: str) -> int:
    async with db.session() as session:
        value = await session.scalar(
            select(ChannelIdentity.contact_id).where(
                ChannelIdentity.channel_id == channel_id,
                ChannelIdentity.external_id == external_id,
            )
        )
        assert value is not None
        return int(value)


async def test_a_whatsapp_number_joins_the_contact_who_shared_it_in_telegram(
    db: Database,
) -> None:
    pipeline = Pipeline(db, LocalBus(), Silent())
    await pipeline.accept(InboundMessage("tg", "111", "привет", external_id="m:1"))
    shared = InboundMessage(
        "tg",
        "111",
        external_id="m:2",
        phone="+79001234567",
        attachments=(Attachment("contact"),),
    )
    await pipeline.accept(shared)
    await pipeline.accept(
        InboundMessage("wa", "79001234567", "добрый день", external_id="w:1", phone="+79001234567")
    )
    await pipeline.drain_all()
    tg, wa = await _contact_of(db, "tg", "111"), await _contact_of(db, "wa", "79001234567")
    assert tg == wa
    async with db.session() as session:
        contact = await session.get(Contact, tg)
        assert contact is not None and contact.phone == "+79001234567"
        owners = set(await session.scalars(select(Conversation.contact_id)))
    assert owners == {tg}


async def test_sharing_a_phone_merges_two_known_contacts_into_the_older(db: Database) -> None:
    bot = Silent()
    pipeline = Pipeline(db, LocalBus(), bot)
    await pipeline.accept(
        InboundMessage("wa", "79005556677", "a", external_id="w:1", phone="+79005556677")
    )
    await pipeline.accept(InboundMessage("max", "42", "b", external_id="m:1"))
    await pipeline.drain_all()
    older, newer = await _contact_of(db, "wa", "79005556677"), await _contact_of(db, "max", "42")
    assert older < newer
    await pipeline.accept(
        InboundMessage(
            "max",
            "42",
            external_id="m:2",
            phone="+79005556677",
            attachments=(Attachment("contact"),),
        )
    )
    await pipeline.drain_all()
    assert await _contact_of(db, "max", "42") == older
    # The bot's turn for the shared contact already sees the joined contact.
    assert bot.turns[-1].contact_id == older
    assert bot.turns[-1].attachments == ("contact",)
    async with db.session() as session:
        absorbed = await session.get(Contact, newer)
        assert absorbed is not None and absorbed.phone is None


async def test_a_phone_on_an_account_links_the_account(db: Database) -> None:
    async with db.transaction() as session:
        session.add(
            Account(
                number="1234567890",
                holder="Иванов И. И.",
                address="ул. Ленина, 1",
                plan="single",
                phone="+79001112233",
            )
        )
    pipeline = Pipeline(db, LocalBus(), Silent(), accounts=LocalBilling(db, TariffSettings()))
    await pipeline.accept(
        InboundMessage("wa", "79001112233", "a", external_id="w:1", phone="+79001112233")
    )
    await pipeline.drain_all()
    contact = await _contact_of(db, "wa", "79001112233")
    assert await ContactDirectory(db).known_accounts(contact) == ["1234567890"]


async def test_naming_or_confirming_an_account_joins_nobody(db: Database) -> None:
    """A receipt's number proves nothing about who writes: two contacts stay two, each
    with its own list of accounts."""
    pipeline = Pipeline(db, LocalBus(), Silent())
    await pipeline.accept(InboundMessage("tg", "1", "a", external_id="m:1"))
    await pipeline.accept(InboundMessage("vk", "2", "b", external_id="e:1"))
    await pipeline.drain_all()
    tg, vk = await _contact_of(db, "tg", "1"), await _contact_of(db, "vk", "2")
    directory = ContactDirectory(db)
    await directory.confirm_account(tg, "1234567890")
    await directory.link_account(tg, "5555555555")
    await directory.link_account(vk, "1234567890")
    await directory.confirm_account(vk, "1234567890")
    assert (await _contact_of(db, "tg", "1"), await _contact_of(db, "vk", "2")) == (tg, vk)
    assert await directory.known_accounts(vk) == ["1234567890"]
    assert sorted(await directory.known_accounts(tg)) == ["1234567890", "5555555555"]
    async with db.session() as session:
        rows = list(await session.scalars(select(ContactAccount)))
        owners = {c.id: c.contact_id for c in await session.scalars(select(Conversation))}
    # «да» to the masked holder is no proof either: nothing is marked confirmed.
    assert {(r.contact_id, r.account_number, r.confirmed) for r in rows} == {
        (tg, "1234567890", False),
        (tg, "5555555555", False),
        (vk, "1234567890", False),
    }
    assert sorted(owners.values()) == sorted([tg, vk])


async def test_a_vouched_phone_proves_the_accounts_that_carry_it(db: Database) -> None:
    async with db.transaction() as session:
        session.add(
            Account(
                number="1234567890",
                holder="Иванов И. И.",
                address="ул. Ленина, 1",
                plan="single",
                phone="+79001112233",
            )
        )
    pipeline = Pipeline(db, LocalBus(), Silent(), accounts=LocalBilling(db, TariffSettings()))
    await pipeline.accept(InboundMessage("tg", "7", "a", external_id="m:1"))
    await pipeline.drain_all()
    contact = await _contact_of(db, "tg", "7")
    directory = ContactDirectory(db)
    await directory.confirm_account(contact, "1234567890")  # typed, «да»: not proof
    await directory.link_account(contact, "5555555555")
    shared = InboundMessage(
        "tg", "7", external_id="m:2", phone="+79001112233", attachments=(Attachment("contact"),)
    )
    await pipeline.accept(shared)
    await pipeline.drain_all()
    async with db.session() as session:
        rows = list(await session.scalars(select(ContactAccount).order_by(ContactAccount.id)))
    assert [(r.account_number, r.confirmed) for r in rows] == [
        ("1234567890", True),
        ("5555555555", False),
    ]


async def test_a_merge_keeps_the_absorbed_contacts_confirmation(db: Database) -> None:
    pipeline = Pipeline(db, LocalBus(), Silent())
    await pipeline.accept(
        InboundMessage("wa", "79005556677", "a", external_id="w:1", phone="+79005556677")
    )
    await pipeline.accept(InboundMessage("max", "42", "b", external_id="m:1"))
    await pipeline.drain_all()
    older, newer = await _contact_of(db, "wa", "79005556677"), await _contact_of(db, "max", "42")
    directory = ContactDirectory(db)
    await directory.link_account(older, "1234567890")  # only typed here …
    async with db.transaction() as session:  # … proven there
        session.add(ContactAccount(contact_id=newer, account_number="1234567890", confirmed=True))
    shared = InboundMessage(
        "max", "42", external_id="m:2", phone="+79005556677", attachments=(Attachment("contact"),)
    )
    await pipeline.accept(shared)
    await pipeline.drain_all()
    async with db.session() as session:
        rows = list(await session.scalars(select(ContactAccount)))
    assert [(r.contact_id, r.account_number, r.confirmed) for r in rows] == [
        (older, "1234567890", True)
    ]


# ----------------------------------------------------------------------------- HTTP billing
@pytest.fixture
def billing() -> Iterator[FakeBilling]:
    with FakeBilling() as server:
        assert isinstance(server, FakeBilling)
        server.add_account(NUMBER, phone=PHONE)
        server.add_account(OTHER, phone=PHONE)
        server.add_account("5000999999", phone="+79990000000")
        yield server


@pytest.fixture
def telegram() -> Iterator[FakeTelegram]:
    with FakeTelegram() as server:
        assert isinstance(server, FakeTelegram)
        yield server


def _http(fake: FakeBilling, **overrides: Any) -> dict[str, Any]:
    return {"type": "http", "url": fake.url, "token": TOKEN, "retries": 0, **overrides}


def _links(server: LiveServer) -> list[tuple[int, str, bool]]:
    async def load() -> list[tuple[int, str, bool]]:
        async with server.runtime.db.session() as session:
            rows = await session.scalars(select(ContactAccount).order_by(ContactAccount.id))
            return [(r.contact_id, r.account_number, r.confirmed) for r in rows]

    result: list[tuple[int, str, bool]] = server.call(load())
    return result


def _phone_lookups(fake: FakeBilling) -> int:
    return sum(1 for r in fake.calls("/accounts") if r.method == "GET" and "phone" in r.query)


def test_a_shared_contact_links_the_accounts_the_http_billing_has_for_it(
    channel_server: StartServer, telegram: FakeTelegram, billing: FakeBilling
) -> None:
    server = channel_server([telegram_config(telegram)], billing=_http(billing))
    hook = f"{server.url}/webhooks/tg"
    response = telegram.deliver_update(hook, telegram.contact_update("79001234567"))
    assert response.status_code == 200
    [thanks] = telegram.wait_sent(1)
    assert thanks.text.startswith(t.PHONE_SAVED)
    settle(server)
    [person] = contacts(server)
    assert person.phone == PHONE
    assert _links(server) == [(person.id, NUMBER, True), (person.id, OTHER, True)]
    assert _phone_lookups(billing) == 1

    # The bot offers them instead of asking for the number.
    telegram.deliver_update(hook, telegram.button_update(t.P_BALANCE))
    ask = telegram.wait_sent(2)[1]
    assert ask.text.startswith("Выберите лицевой счёт")
    assert {t.P_ACCOUNT + NUMBER, t.P_ACCOUNT + OTHER} <= set(ask.payloads)
    # A message without a phone asks the billing nothing about phones.
    assert _phone_lookups(billing) == 1


def test_a_shared_contact_is_answered_when_the_http_billing_is_down(
    channel_server: StartServer, telegram: FakeTelegram, billing: FakeBilling
) -> None:
    billing.down = True
    server = channel_server([telegram_config(telegram)], billing=_http(billing))
    hook = f"{server.url}/webhooks/tg"
    response = telegram.deliver_update(hook, telegram.contact_update("79001234567"))
    assert (response.status_code, response.text) == (200, "")
    [thanks] = telegram.wait_sent(1)
    assert thanks.text.startswith(t.PHONE_SAVED)
    settle(server)
    assert _phone_lookups(billing) >= 1  # asked, and refused
    [person] = contacts(server)
    assert person.phone == PHONE
    assert _links(server) == []


async def test_a_slow_billing_does_not_hold_the_message(db: Database, billing: FakeBilling) -> None:
    """Linking is bounded: past ``accounts_timeout`` the message goes on to the bot
    without the accounts (the customer names the number then)."""
    billing.delay = 1.5
    http = HttpBilling(BillingSettings(**_http(billing, timeout=5)), db, TariffSettings())
    bot = Silent()
    pipeline = Pipeline(db, LocalBus(), bot, accounts=http, accounts_timeout=0.2)
    try:
        started = time.monotonic()
        await pipeline.accept(
            InboundMessage("wa", "79001234567", "добрый день", external_id="w:1", phone=PHONE)
        )
        assert time.monotonic() - started < 1.0
        await pipeline.drain_all()
    finally:
        await http.close()
    contact = await _contact_of(db, "wa", "79001234567")
    assert [turn.contact_id for turn in bot.turns] == [contact]
    assert bot.turns[0].phone_vouched
    assert await ContactDirectory(db).known_accounts(contact) == []


async def test_linking_the_accounts_of_a_phone_again_changes_nothing(
    db: Database, billing: FakeBilling
) -> None:
    """A Telegram customer shares the phone a WhatsApp contact already has: the contacts
    are joined, the billing asked again, and the accounts linked stay one row each."""
    http = HttpBilling(BillingSettings(**_http(billing)), db, TariffSettings())
    pipeline = Pipeline(db, LocalBus(), Silent(), accounts=http)
    try:
        await pipeline.accept(InboundMessage("tg", "7", "a", external_id="m:1"))
        await pipeline.accept(
            InboundMessage("wa", "79001234567", "b", external_id="w:1", phone=PHONE)
        )
        await pipeline.drain_all()
        contact = await _contact_of(db, "tg", "7")
        assert await _contact_of(db, "wa", "79001234567") != contact
        shared = InboundMessage(
            "tg", "7", external_id="m:2", phone=PHONE, attachments=(Attachment("contact"),)
        )
        await pipeline.accept(shared)
        await pipeline.drain_all()
    finally:
        await http.close()
    assert await _contact_of(db, "wa", "79001234567") == contact
    assert _phone_lookups(billing) == 2
    async with db.session() as session:
        rows = list(await session.scalars(select(ContactAccount).order_by(ContactAccount.id)))
    assert [(r.contact_id, r.account_number, r.confirmed) for r in rows] == [
        (contact, NUMBER, True),
        (contact, OTHER, True),
    ]
