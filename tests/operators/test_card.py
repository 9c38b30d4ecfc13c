"""The customer card: our records, billing and a CRM, each allowed to fail alone; every view
audited."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from datetime import date
from decimal import Decimal

import pytest
from pydantic import ValidationError
from sqlalchemy import select

from abonent.billing.base import AccountInfo, BillingError, SubmissionResult
from abonent.billing.local import LocalBilling
from abonent.clock import utcnow
from abonent.config import TariffSettings
from abonent.crm import CrmError, CrmSettings, HttpCrm, LocalCrm, build_crm
from abonent.db.models import Account, AuditRecord, ChannelIdentity, Contact, ContactAccount
from abonent.db.session import Database
from abonent.operators.card import (
    CRM_UNAVAILABLE,
    ContactNotFound,
    customer_card,
    mask_external_id,
)
from abonent.operators.users import add_user
from fakes.base import Reply
from fakes.crm import TOKEN, FakeCrm
from support import free_port

D = Decimal
IVANOV = "1000234561"  # single, phone +79123456789
SIDOROV = "1000234585"  # two zones, phone +79031112233
NEWBIE = "1000234600"  # never sent readings
IVANOV_PHONE = "+79123456789"
TYPES = {"tg": "telegram", "wa": "whatsapp", "web": "webchat"}


async def add_accounts(db: Database) -> None:
    async with db.transaction() as session:
        session.add_all(
            [
                Account(
                    number=IVANOV,
                    holder="Иванов Иван Иванович",
                    address="г. Энск, ул. Ленина, д. 15, кв. 7",
                    plan="single",
                    t1=D("12500"),
                    readings_date=date(2026, 10, 25),
                    balance=D("1234.56"),
                    phone=IVANOV_PHONE,
                ),
                Account(
                    number=SIDOROV,
                    holder="Сидоров Алексей Петрович",
                    address="г. Энск, пр. Мира, д. 42, кв. 118",
                    plan="two_zone",
                    t1=D("15230"),
                    t2=D("6120.1"),
                    readings_date=date(2026, 10, 25),
                    balance=D("-350.00"),
                    phone="+79031112233",
                ),
                Account(
                    number=NEWBIE,
                    holder="Новый Абонент",
                    address="г. Энск, ул. Новая, д. 1",
                    plan="single",
                    balance=D("0"),
                ),
            ]
        )


async def add_contact(
    db: Database,
    *,
    name: str | None = None,
    phone: str | None = None,
    identities: Sequence[tuple[str, str, str | None]] = (),
    accounts: Sequence[str] = (),
) -> int:
    async with db.transaction() as session:
        contact = Contact(name=name, phone=phone, created_at=utcnow())
        session.add(contact)
        await session.flush()
        for channel_id, external_id, display_name in identities:
            session.add(
                ChannelIdentity(
                    contact_id=contact.id,
                    channel_id=channel_id,
                    external_id=external_id,
                    display_name=display_name,
                )
            )
        for number in accounts:
            session.add(
                ContactAccount(contact_id=contact.id, account_number=number, last_used_at=utcnow())
            )
        return contact.id


async def audit_rows(db: Database) -> list[AuditRecord]:
    async with db.session() as session:
        return list(await session.scalars(select(AuditRecord).order_by(AuditRecord.id)))


@pytest.fixture
async def viewer(db: Database) -> int:
    await add_accounts(db)
    user = await add_user(db, "anna", "card-test-pass", name="Анна")
    return user.id


@pytest.fixture
def billing(db: Database) -> LocalBilling:
    return LocalBilling(db, TariffSettings())


@pytest.fixture
def fake_crm() -> Iterator[FakeCrm]:
    fake = FakeCrm()
    fake.start()
    yield fake
    fake.stop()


@pytest.fixture
async def http_crm(fake_crm: FakeCrm) -> AsyncIterator[HttpCrm]:
    crm = HttpCrm(fake_crm.url, TOKEN, timeout=2.0)
    yield crm
    await crm.close()


def by_number(card: dict[str, object], number: str) -> dict[str, object]:
    accounts = card["accounts"]
    assert isinstance(accounts, list)
    return next(a for a in accounts if a["number"] == number)


# ------------------------------------------------------------------ local CRM
async def test_card_with_local_crm(db: Database, viewer: int, billing: LocalBilling) -> None:
    contact_id = await add_contact(
        db,
        name="Ваня",
        phone=IVANOV_PHONE,
        identities=[("tg", "555123456", "Ваня И."), ("wa", "79123456789", None)],
        accounts=[IVANOV],
    )

    card = await customer_card(
        db, billing, LocalCrm(db), contact_id, viewer, 7, channel_types=TYPES
    )

    assert card["contact"]["id"] == contact_id
    assert card["contact"]["name"] == "Ваня"
    assert card["contact"]["phone"] == IVANOV_PHONE
    assert card["identities"] == [
        {
            "channel_id": "tg",
            "channel_type": "telegram",
            "display_name": "Ваня И.",
            "external_id": "…3456",
        },
        {
            "channel_id": "wa",
            "channel_type": "whatsapp",
            "display_name": None,
            "external_id": "…6789",
        },
    ]
    # Platform ids (a WhatsApp id is the phone) never reach the card whole.
    assert "79123456789" not in json.dumps(card["identities"])
    assert card["accounts"] == [
        {
            "number": IVANOV,
            "source": "contact",
            "status": "ok",
            "holder": "Иванов Иван Иванович",
            "address": "г. Энск, ул. Ленина, д. 15, кв. 7",
            "plan": "single",
            "plan_title": "однотарифный",
            "balance": "1234.56",
            "balance_text": "задолженность 1\u00a0234,56\u00a0₽",
            "readings": {
                "date": "2026-10-25",
                "date_text": "25 октября 2026",
                "zones": {"t1": "12500"},
                "titles": {"t1": "показание"},
            },
        }
    ]
    assert card["billing"] == {"status": "ok"}
    assert card["crm"]["status"] == "ok"
    assert card["crm"]["person"]["name"] == "Иванов Иван Иванович"
    assert card["crm"]["person"]["phones"] == [IVANOV_PHONE]
    assert card["crm"]["person"]["accounts"] == [IVANOV]
    json.dumps(card)  # ready for the API as it is
    [row] = await audit_rows(db)
    assert (row.user_id, row.action, row.contact_id, row.conversation_id) == (
        viewer,
        "card.view",
        contact_id,
        7,
    )


async def test_local_crm_finds_by_phone_and_by_account(db: Database, viewer: int) -> None:
    contact_id = await add_contact(db, name="Лёша", accounts=[SIDOROV])
    crm = LocalCrm(db)

    by_phone = await crm.find("8 (912) 345-67-89", None)
    assert by_phone is not None
    assert (by_phone.name, by_phone.phones, by_phone.accounts) == (
        "Иванов Иван Иванович",
        [IVANOV_PHONE],
        [IVANOV],
    )
    by_account = await crm.find(None, "л/с 10-002-345-85")
    assert by_account is not None
    assert by_account.name == "Сидоров Алексей Петрович"
    assert by_account.phones == ["+79031112233"]
    assert by_account.accounts == [SIDOROV]
    # An unknown phone falls back to the account.
    fallback = await crm.find("+79990000000", SIDOROV)
    assert fallback is not None and fallback.name == "Сидоров Алексей Петрович"
    assert await crm.find("+79990000000", "1999999999") is None
    assert await crm.find(None, None) is None
    # A number some chat contact typed says nothing about who they are: by account, only
    # the billing answers, never another visitor's name, phone or accounts.
    async with db.transaction() as session:
        session.add(
            ContactAccount(
                contact_id=contact_id, account_number="1777777777", last_used_at=utcnow()
            )
        )
    assert await crm.find(None, "1777777777") is None
    by_account = await crm.find(None, SIDOROV)
    assert by_account is not None and by_account.accounts == [SIDOROV]
    assert by_account.name != "Лёша"


# ------------------------------------------------------------------ HTTP CRM
async def test_http_crm_finds_the_person_by_phone(
    db: Database, viewer: int, billing: LocalBilling, fake_crm: FakeCrm, http_crm: HttpCrm
) -> None:
    fake_crm.add_person(
        "Иванов Иван Иванович",
        phones=[IVANOV_PHONE, "8 (495) 123-45-67"],
        accounts=[IVANOV, SIDOROV],
        email="ivanov@example.ru",
        segment="льготник",
        note="звонить после 18:00",
    )
    contact_id = await add_contact(
        db,
        name="vanya_tg",
        phone=IVANOV_PHONE,
        identities=[("tg", "555123456", "vanya")],
        accounts=[IVANOV],
    )

    card = await customer_card(db, billing, http_crm, contact_id, viewer)

    assert card["crm"] == {
        "status": "ok",
        "person": {
            "name": "Иванов Иван Иванович",
            "phones": [IVANOV_PHONE, "+74951234567"],
            "email": "ivanov@example.ru",
            "accounts": [IVANOV, SIDOROV],
            "segment": "льготник",
            "note": "звонить после 18:00",
        },
        "message": None,
    }
    [call] = fake_crm.calls("/persons")
    assert call.query == {"phone": IVANOV_PHONE}
    assert call.headers["authorization"] == f"Bearer {TOKEN}"
    # The account the CRM names is on the card too, with its billing data.
    assert [(a["number"], a["source"]) for a in card["accounts"]] == [
        (IVANOV, "contact"),
        (SIDOROV, "crm"),
    ]
    sidorov = by_number(card, SIDOROV)
    assert sidorov["balance"] == "-350.00"
    # What the operator reads: words, not codes or a minus sign.
    assert sidorov["balance_text"] == "переплата 350,00\u00a0₽"
    assert sidorov["plan_title"] == "двухзонный (день, ночь)"
    assert sidorov["readings"] == {
        "date": "2026-10-25",
        "date_text": "25 октября 2026",
        "zones": {"t1": "15230", "t2": "6120.1"},
        "titles": {"t1": "день", "t2": "ночь"},
    }


async def test_http_crm_finds_the_person_by_account(
    db: Database, viewer: int, billing: LocalBilling, fake_crm: FakeCrm, http_crm: HttpCrm
) -> None:
    fake_crm.add_person("Сидоров Алексей Петрович", phones=["+79031112233"], accounts=[SIDOROV])
    no_phone = await add_contact(db, identities=[("web", "w-8f2c1d", "Гость")], accounts=[SIDOROV])
    # A phone the CRM does not know: asked by phone first, then by the account.
    unknown_phone = await add_contact(db, phone="+79995554433", accounts=[NEWBIE, SIDOROV])

    card = await customer_card(db, billing, http_crm, no_phone, viewer, channel_types=TYPES)
    assert card["crm"]["status"] == "ok"
    assert card["crm"]["person"]["name"] == "Сидоров Алексей Петрович"
    assert card["contact"]["name"] == "Гость"  # no name of its own: the platform's
    assert fake_crm.lookups == [{"account": SIDOROV}]

    card = await customer_card(db, billing, http_crm, unknown_phone, viewer)
    assert card["crm"]["person"]["name"] == "Сидоров Алексей Петрович"
    # The phone first; then the most recently used account (SIDOROV was named last).
    assert fake_crm.lookups[1:] == [{"phone": "+79995554433"}, {"account": SIDOROV}]
    newbie = by_number(card, NEWBIE)
    assert newbie["status"] == "ok" and newbie["readings"] is None
    assert newbie["balance"] == "0.00"
    assert newbie["balance_text"] == "задолженности нет"


async def test_crm_knows_nobody(
    db: Database, viewer: int, billing: LocalBilling, fake_crm: FakeCrm, http_crm: HttpCrm
) -> None:
    contact_id = await add_contact(db, phone="+79995554433", accounts=[IVANOV])
    card = await customer_card(db, billing, http_crm, contact_id, viewer)
    assert card["crm"]["status"] == "none"
    assert card["crm"]["person"] is None
    assert len(fake_crm.lookups) == 2
    fake_crm.fail_next("/persons", Reply(404, {"error": "not found"}), times=2)
    assert await http_crm.find(IVANOV_PHONE, IVANOV) is None


@pytest.mark.parametrize("fault", ["500", "timeout", "refused", "bad_token", "garbage"])
async def test_crm_down_the_card_still_shows_billing(
    db: Database, viewer: int, billing: LocalBilling, fake_crm: FakeCrm, fault: str
) -> None:
    fake_crm.add_person("Иванов Иван Иванович", phones=[IVANOV_PHONE], accounts=[IVANOV])
    url, token, timeout = fake_crm.url, TOKEN, 2.0
    if fault == "500":
        fake_crm.fail_next("/persons", Reply(500, {"error": "internal"}), times=5)
    elif fault == "timeout":
        fake_crm.delay, timeout = 1.0, 0.25
    elif fault == "refused":
        url = f"http://127.0.0.1:{free_port()}"
    elif fault == "bad_token":
        token = "stale-token"
    else:
        fake_crm.fail_next("/persons", Reply(200, text="<html>oops</html>"), times=5)
    crm = HttpCrm(url, token, timeout)
    contact_id = await add_contact(db, phone=IVANOV_PHONE, accounts=[IVANOV])

    started = time.monotonic()
    card = await customer_card(db, billing, crm, contact_id, viewer, 3)
    elapsed = time.monotonic() - started
    await crm.close()

    assert card["crm"] == {"status": "unavailable", "person": None, "message": CRM_UNAVAILABLE}
    assert by_number(card, IVANOV)["balance"] == "1234.56"
    assert card["billing"] == {"status": "ok"}
    assert elapsed < 0.9  # bounded by the CRM timeout, not by the CRM
    assert len(await audit_rows(db)) == 1
    with pytest.raises(CrmError):
        await HttpCrm(url, token, timeout).find(IVANOV_PHONE, None)


class DownBilling:
    async def get_account(self, number: str) -> AccountInfo | None:
        raise BillingError("billing down")

    async def find_accounts_by_phone(self, phone: str) -> list[AccountInfo]:
        raise BillingError("billing down")

    async def submit_readings(
        self,
        number: str,
        values: Sequence[Decimal],
        taken_on: date,
        *,
        source: str,
        conversation_id: int | None = None,
    ) -> SubmissionResult:
        raise BillingError("billing down")


async def test_billing_down_the_card_still_opens(db: Database, viewer: int) -> None:
    contact_id = await add_contact(db, name="Ваня", phone=IVANOV_PHONE, accounts=[IVANOV])
    card = await customer_card(db, DownBilling(), LocalCrm(db), contact_id, viewer)
    assert card["billing"] == {"status": "unavailable"}
    assert card["accounts"][0]["status"] == "unavailable"
    assert card["accounts"][0]["balance"] is None
    assert card["crm"]["status"] == "ok"


# ------------------------------------------------------------------ audit, empty cards
async def test_every_view_is_audited(db: Database, viewer: int, billing: LocalBilling) -> None:
    other = (await add_user(db, "boris", "card-test-pass", role="supervisor")).id
    contact_id = await add_contact(db, phone=IVANOV_PHONE, accounts=[IVANOV])
    crm = LocalCrm(db)

    await customer_card(db, billing, crm, contact_id, viewer, 11)
    await customer_card(db, billing, crm, contact_id, viewer, 11)
    await customer_card(db, billing, crm, contact_id, other)

    rows = await audit_rows(db)
    assert [(r.user_id, r.action, r.contact_id, r.conversation_id) for r in rows] == [
        (viewer, "card.view", contact_id, 11),
        (viewer, "card.view", contact_id, 11),
        (other, "card.view", contact_id, None),
    ]
    assert all(r.at is not None for r in rows)

    with pytest.raises(ContactNotFound):
        await customer_card(db, billing, crm, contact_id + 1000, viewer)
    assert len(await audit_rows(db)) == 3


async def test_contact_without_accounts(
    db: Database, viewer: int, billing: LocalBilling, fake_crm: FakeCrm, http_crm: HttpCrm
) -> None:
    contact_id = await add_contact(db, identities=[("web", "ab", None)])

    card = await customer_card(db, billing, http_crm, contact_id, viewer)

    assert card["contact"]["name"] is None and card["contact"]["phone"] is None
    assert card["identities"][0]["external_id"] == "…b"
    assert card["identities"][0]["channel_type"] is None
    assert card["accounts"] == []
    assert card["billing"] == {"status": "ok"}
    assert card["crm"]["status"] == "none"
    assert fake_crm.lookups == []  # nothing to ask about
    assert len(await audit_rows(db)) == 1

    # Local CRM, a phone nobody has: still nothing, still a card.
    with_phone = await add_contact(db, phone="+79995554433")
    card = await customer_card(db, billing, LocalCrm(db), with_phone, viewer)
    assert card["accounts"] == [] and card["crm"]["status"] == "none"


# ------------------------------------------------------------------ contract details
async def test_http_crm_contract_details(fake_crm: FakeCrm) -> None:
    fake_crm.fail_next(
        "/persons",
        Reply(
            200,
            {
                "persons": [
                    {"name": " Петрова ", "phones": [79161234567, None], "accounts": [1000234578]},
                    {"name": "second is ignored"},
                ],
                "total": 2,
            },
        ),
    )
    crm = HttpCrm(fake_crm.url + "/", TOKEN)
    person = await crm.find("+79161234567", None)
    await crm.close()
    assert person is not None
    assert (person.name, person.phones, person.accounts, person.email) == (
        "Петрова",
        ["+79161234567"],
        ["1000234578"],
        None,
    )
    assert fake_crm.calls("/persons")[0].path == "/persons"


async def test_settings_and_factory(db: Database) -> None:
    assert CrmSettings().type == "local"
    assert isinstance(build_crm(CrmSettings(), db), LocalCrm)
    http = build_crm(
        CrmSettings.model_validate({"type": "http", "url": "https://crm.example.ru/api"}), db
    )
    assert isinstance(http, HttpCrm) and http.endpoint == "https://crm.example.ru/api/persons"
    await http.close()
    with pytest.raises(ValidationError, match=r"crm\.url"):
        CrmSettings(type="http")
    with pytest.raises(ValidationError, match="timeout"):
        CrmSettings(timeout=0)


def test_mask_external_id() -> None:
    assert mask_external_id("79123456789") == "…6789"
    assert mask_external_id("12345") == "…45"
    assert mask_external_id("x") == "…"
