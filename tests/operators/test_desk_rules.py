"""Who may be given a conversation, and what the customer is told: the desk's rules.

The customer reads "К диалогу подключился оператор …" only when that person is on the
line; an operator takes chats only on the line and does not answer while «Не в сети»;
a template's blank («[имя]») never reaches a customer. Every refusal is a 4xx in the
API's error format, and nothing changes behind it.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import httpx
import pytest

from abonent.operators import formats
from abonent.operators.desk import TRANSFERRED_TO_GROUP
from operators.conftest import StartDesk
from support import Customer, LiveServer, Operator, conversation, texts


@pytest.fixture
def server(desk_team: StartDesk) -> LiveServer:
    return desk_team(anna_chats=3)


async def _signed_in(server: LiveServer, *logins: str) -> list[Operator]:
    people = [Operator(server, login) for login in logins]
    for person in people:
        assert (await person.login()).status_code == 200
    return people


async def _queued(server: LiveServer, http: httpx.AsyncClient) -> Customer:
    me = Customer(server, http)
    await me.start()
    await me.press("operator")
    await me.replies()
    return me


async def _status(person: Operator, status: str) -> None:
    assert (await person.post("/status", {"status": status})).status_code == 200


def _error(response: httpx.Response, status: int, code: str) -> dict[str, object]:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code and error["message"], error
    return dict(error)


async def test_taking_a_chat_needs_the_operator_on_the_line(
    server: LiveServer, http: httpx.AsyncClient
) -> None:
    me = await _queued(server, http)
    boris, sveta = await _signed_in(server, "boris", "sveta")
    for status in ("offline", "break"):
        await _status(boris, status)
        refused = await boris.post(f"/conversations/{me.conversation_id}/take")
        _error(refused, 409, "not_online")
        # a supervisor takes any open chat, but on the line too
        await _status(sveta, status)
        _error(await sveta.post(f"/conversations/{me.conversation_id}/take"), 409, "not_online")
    conv = await conversation(server, me.conversation_id)
    assert conv.status == "queued" and conv.assignee_id is None
    assert "подключился" not in texts(await me.replies())

    await boris.online()  # the desk hands it over at once
    conv = await conversation(server, me.conversation_id)
    assert conv.status == "assigned" and conv.assignee_id == boris.id
    assert "К диалогу подключился оператор Борис." in texts(await me.replies())


async def test_a_transfer_goes_only_to_a_colleague_on_the_line(
    server: LiveServer, http: httpx.AsyncClient
) -> None:
    me = await _queued(server, http)
    anna, boris = await _signed_in(server, "anna", "boris")
    await anna.online()
    assert (await conversation(server, me.conversation_id)).assignee_id == anna.id
    await me.replies()
    path = f"/conversations/{me.conversation_id}/transfer"
    listed = {c["id"]: c for c in (await anna.get("/colleagues")).json()["operators"]}
    assert listed[boris.id]["status"] == "offline" and listed[boris.id]["available"] is False

    for status in ("offline", "break"):
        await _status(boris, status)
        refused = await anna.post(path, {"to_user_id": boris.id, "note": "Про начисления"})
        error = _error(refused, 409, "operator_unavailable")
        assert error["details"] == {"operator_status": status}
    # nothing moved, nothing was said to the customer, no note was left
    conv = await conversation(server, me.conversation_id)
    assert conv.status == "assigned" and conv.assignee_id == anna.id
    assert await me.replies() == []
    view = (await anna.get(f"/conversations/{me.conversation_id}")).json()
    assert not [m for m in view["messages"] if m["author"] == "note"]
    _error(await anna.post(path, {"to_user_id": anna.id, "note": "мне"}), 422, "target")

    await _status(boris, "online")
    listed = {c["id"]: c for c in (await anna.get("/colleagues")).json()["operators"]}
    assert listed[boris.id]["available"] is True and listed[boris.id]["load"] == 0
    moved = await anna.post(path, {"to_user_id": boris.id, "note": "Про начисления"})
    assert moved.status_code == 200, moved.text
    assert (await conversation(server, me.conversation_id)).assignee_id == boris.id
    assert texts(await me.replies()) == "К диалогу подключился оператор Борис."


async def test_a_group_transfer_tells_the_customer_to_wait_not_that_someone_joined(
    server: LiveServer, http: httpx.AsyncClient
) -> None:
    me = await _queued(server, http)
    (anna,) = await _signed_in(server, "anna")
    await anna.online()
    await me.replies()
    moved = await anna.post(
        f"/conversations/{me.conversation_id}/transfer",
        {"group": "billing", "note": "Нужен специалист по начислениям"},
    )
    assert moved.status_code == 200, moved.text
    told = await me.replies()
    assert [(m["author"], m["text"]) for m in told] == [("system", TRANSFERRED_TO_GROUP)]
    conv = await conversation(server, me.conversation_id)
    assert conv.status == "queued" and conv.group == "billing"


async def test_a_supervisor_reassigns_only_to_somebody_on_the_line(
    server: LiveServer, http: httpx.AsyncClient
) -> None:
    me = await _queued(server, http)
    anna, boris, sveta = await _signed_in(server, "anna", "boris", "sveta")
    await anna.online()
    await me.replies()
    path = f"/conversations/{me.conversation_id}/assign"
    _error(await sveta.post(path, {"user_id": boris.id}), 409, "operator_unavailable")
    assert (await conversation(server, me.conversation_id)).assignee_id == anna.id
    assert await me.replies() == []
    _error(await sveta.post(path, {"user_id": 10**9}), 404, "no_operator")
    await _status(boris, "online")
    assert (await sveta.post(path, {"user_id": boris.id})).status_code == 200
    assert texts(await me.replies()) == "К диалогу подключился оператор Борис."


async def test_nobody_answers_customers_while_offline(
    server: LiveServer, http: httpx.AsyncClient
) -> None:
    me = await _queued(server, http)
    anna, sveta = await _signed_in(server, "anna", "sveta")
    await anna.online()
    await me.replies()
    path = f"/conversations/{me.conversation_id}/messages"
    # a break keeps one's chats: finishing them is allowed
    await _status(anna, "break")
    assert (await anna.post(path, {"text": "Уточняю, минуту"})).status_code == 201
    # a supervisor who is «Не в сети» does not answer in a colleague's chat either
    _error(await sveta.post(path, {"text": "Добрый день"}), 409, "not_online")
    await _status(sveta, "break")
    assert (await sveta.post(path, {"text": "Добрый день"})).status_code == 201
    assert [m["text"] for m in await me.replies()] == ["Уточняю, минуту", "Добрый день"]
    # going offline gives the chat back to the queue: it is no longer Anna's to answer
    await _status(anna, "offline")
    _error(await anna.post(path, {"text": "ещё"}), 409, "not_yours")
    assert await me.replies() == []


async def test_a_template_blank_never_reaches_the_customer(
    server: LiveServer, http: httpx.AsyncClient
) -> None:
    me = await _queued(server, http)
    (anna,) = await _signed_in(server, "anna")
    await anna.online()
    await me.replies()
    path = f"/conversations/{me.conversation_id}/messages"
    refused = await anna.post(path, {"text": "Здравствуйте, [имя]! Счёт [лицевой счёт]."})
    error = _error(refused, 422, "unfilled_placeholder")
    assert error["details"] == {"placeholders": ["[имя]", "[лицевой счёт]"]}
    for text in ("Здравствуйте, {name}!", "Оплата: [нет в настройках: links.payment]"):
        _error(await anna.post(path, {"text": text}), 422, "unfilled_placeholder")
    assert await me.replies() == []
    sent = await anna.post(path, {"text": "Здравствуйте, Мария! Счёт [12345] проверю."})
    assert sent.status_code == 201
    assert texts(await me.replies()) == "Здравствуйте, Мария! Счёт [12345] проверю."


def test_what_an_operator_reads() -> None:
    """Formats of the card and the history, in Russian words."""
    assert formats.plan_title("three_zone") == "трёхзонный (пик, полупик, ночь)"
    assert formats.plan_title("night_only") == "night_only"  # a billing's own code, as is
    assert formats.balance_text(Decimal("-350.00")) == "переплата 350,00\u00a0₽"
    assert formats.balance_text(Decimal("1234.5")) == "задолженность 1\u00a0234,50\u00a0₽"
    assert formats.balance_text(Decimal("0")) == "задолженности нет"
    assert formats.date_text(date(2026, 12, 3)) == "3 декабря 2026"
    assert formats.date_text(date(2027, 1, 31)) == "31 января 2027"
    titles = {"thanks_bye": "Благодарность, прощание"}.__getitem__
    assert formats.intent_title("thanks_bye", titles) == "Благодарность, прощание"
    assert formats.intent_title("fallback", titles) == "не распознано"
    assert formats.intent_title(None, titles) is None


async def test_the_history_names_topics(server: LiveServer, http: httpx.AsyncClient) -> None:
    me = Customer(server, http)
    await me.start()
    await me.say("фывапролдж")
    await me.say("спасибо, до свидания")
    await me.press("operator")
    (anna,) = await _signed_in(server, "anna")
    view = (await anna.get(f"/conversations/{me.conversation_id}")).json()
    said = {m["text"]: m["meta"] for m in view["messages"] if m["author"] == "customer"}
    assert said["фывапролдж"]["intent_title"] == "не распознано"
    thanks = said["спасибо, до свидания"]
    assert thanks["intent"] and thanks["intent_title"] not in (None, thanks["intent"])
