"""Two visitors who type the same account number stay two customers (issue 10.7).

An account number is printed on every receipt: typing it, or pressing «да» on its
masked holder, proves nothing about who writes. The account stays with that
conversation and that contact's own list; the operator's card and history of each
visitor show only that visitor's conversations and accounts.
"""

from __future__ import annotations

import json

import httpx
import pytest
from sqlalchemy import select

from abonent.core.contacts import ContactDirectory
from abonent.db.models import Contact, ContactAccount, Conversation
from bot.conftest import StartBot
from support import (
    ALWAYS_OPEN,
    Customer,
    LiveServer,
    Operator,
    on_server,
    seed_users,
    texts,
)

ACCOUNTS_CSV = (
    "account,holder,address,plan,t1,t2,t3,readings_date,balance,phone\n"
    '1000000001,Иванов Иван Иванович,"г. Энск, ул. Ленина, д. 15, кв. 7",single,'
    "12345,,,2026-10-25,1234.56,+79120000001\n"
    '1000000002,Иванов Иван Иванович,"г. Энск, ул. Садовая, д. 1",single,'
    "500,,,2026-10-25,0,+79120000001\n"
)
SHARED, OWN = "1000000001", "1000000002"


@pytest.fixture
def server(accounts_server: StartBot, fresh_database_url: str) -> LiveServer:
    seed_users(fresh_database_url, {"sveta": {"name": "Светлана", "role": "supervisor"}})
    return accounts_server(ACCOUNTS_CSV, company=ALWAYS_OPEN)


async def _confirm(me: Customer, number: str) -> None:
    await me.press("readings")
    assert "Это ваш счёт?" in texts(await me.say(number))
    assert "Предыдущие показания" in texts(await me.press("yes"))
    await me.say("меню")


async def test_two_visitors_typing_one_account_stay_two_contacts(server: LiveServer) -> None:
    async with httpx.AsyncClient(timeout=30) as http:
        first = Customer(server, http)
        await first.start()
        await first.say("Меня зовут Иван, я живу на Садовой")
        await _confirm(first, SHARED)
        await _confirm(first, OWN)

        second = Customer(server, http)  # another browser, with the receipt in hand
        await second.start()
        await _confirm(second, SHARED)
        # the bot offers the second visitor their own accounts only
        offered = await second.press("readings")
        titles = [b["title"] for m in offered for b in m["buttons"]]
        assert "Счёт ******0001" in titles and "Счёт ******0002" not in titles
        await second.say("меню")
        await second.press("operator")

    async def facts() -> tuple[dict[int, int], set[tuple[int, str]], int, list[str]]:
        async with server.runtime.db.session() as session:
            owners = {c.id: c.contact_id for c in await session.scalars(select(Conversation))}
            links = {
                (r.contact_id, r.account_number)
                for r in await session.scalars(select(ContactAccount))
            }
            contacts = len(list(await session.scalars(select(Contact))))
        named = await ContactDirectory(server.runtime.db).conversation_accounts(
            second.conversation_id
        )
        return owners, links, contacts, named

    owners, links, contacts, named = await on_server(server, facts())
    a, b = owners[first.conversation_id], owners[second.conversation_id]
    assert a != b and contacts == 2
    assert links == {(a, SHARED), (a, OWN), (b, SHARED)}
    assert named == [SHARED]  # the account stays linked to the conversation that named it

    sveta = Operator(server, "sveta")
    assert (await sveta.login()).status_code == 200
    view = (await sveta.get(f"/conversations/{second.conversation_id}")).json()
    assert view["conversation"]["contact_id"] == b
    assert {m["conversation_id"] for m in view["messages"]} == {second.conversation_id}
    assert "Садовой" not in json.dumps(view, ensure_ascii=False)

    card = await sveta.get(f"/contacts/{b}/card?conversation_id={second.conversation_id}")
    assert card.status_code == 200, card.text
    shown = card.json()
    assert [acc["number"] for acc in shown["accounts"]] == [SHARED]
    # nothing of the first visitor: not their other account (nor its address), not their words
    dumped = json.dumps(shown, ensure_ascii=False)
    assert OWN not in dumped and "Садов" not in dumped

    own_card = (await sveta.get(f"/contacts/{a}/card")).json()
    assert sorted(acc["number"] for acc in own_card["accounts"]) == [SHARED, OWN]
    own_view = (await sveta.get(f"/conversations/{first.conversation_id}")).json()
    assert {m["conversation_id"] for m in own_view["messages"]} == {first.conversation_id}
    await sveta.http.aclose()
