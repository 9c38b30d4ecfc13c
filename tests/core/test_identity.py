"""One customer across channels: identities joined by a vouched phone, never by an account."""

from __future__ import annotations

from sqlalchemy import select

from abonent.core.bus import LocalBus
from abonent.core.contacts import ContactDirectory
from abonent.core.pipeline import Pipeline, Turn, TurnOutcome
from abonent.core.types import Attachment, InboundMessage
from abonent.db.models import Account, ChannelIdentity, Contact, ContactAccount, Conversation
from abonent.db.session import Database


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
    pipeline = Pipeline(db, LocalBus(), Silent())
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
    pipeline = Pipeline(db, LocalBus(), Silent())
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
