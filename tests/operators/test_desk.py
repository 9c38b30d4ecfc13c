"""The workspace API as operators and supervisors use it: sign-in, queue, assignment by
load, sending, transfer with a note, return to the bot, close, statuses, the events log."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from typing import Any

import httpx
import pytest
import websockets
from sqlalchemy import select, update

from abonent.clock import utcnow
from abonent.db.models import AuditRecord, Conversation, EventRecord, Message, User
from abonent.operators.desk import Actor
from abonent.operators.users import add_user, set_active
from operators.conftest import StartDesk
from support import PASSWORD, Customer, LiveServer, Operator, conversation, on_server, texts


@pytest.fixture
def server(desk_team: StartDesk) -> LiveServer:
    return desk_team(anna_chats=1)


async def _queued_customer(server: LiveServer, http: httpx.AsyncClient) -> Customer:
    me = Customer(server, http)
    await me.start()
    await me.press("operator")
    return me


async def _wait(predicate: Any, within: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not await predicate():
        assert asyncio.get_running_loop().time() < deadline, "condition not reached"
        await asyncio.sleep(0.05)


async def test_sign_in_sets_a_safe_cookie_and_wrong_passwords_are_throttled(
    server: LiveServer,
) -> None:
    anna = Operator(server, "anna")
    assert (await anna.get("/me")).status_code == 401
    for _ in range(5):
        wrong = await anna.login("wrong password")
        assert wrong.status_code == 401
        assert wrong.json()["error"]["code"] == "bad_credentials"
    # Even the right password waits now: guessing must stay slow.
    throttled = await anna.login()
    assert throttled.status_code == 429
    boris = Operator(server, "boris")
    ok = await boris.login()
    assert ok.status_code == 200
    cookie = ok.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=lax" in cookie
    me = await boris.get("/me")
    assert me.json()["login"] == "boris" and me.json()["csrf_token"] == boris.csrf


async def test_wrong_passwords_sent_at_once_get_no_more_checks_than_the_limit(
    server: LiveServer,
) -> None:
    """Twenty guesses in parallel: at most five passwords are checked (401), the rest are
    refused unchecked (429), on SQLite and on PostgreSQL alike."""
    guessers = [Operator(server, "anna") for _ in range(20)]
    answers = await asyncio.gather(*(g.login("wrong password") for g in guessers))
    statuses = sorted(a.status_code for a in answers)
    assert statuses == [401] * 5 + [429] * 15, statuses
    assert (await Operator(server, "anna").login()).status_code == 429  # still throttled


async def test_state_changes_need_the_csrf_token_and_the_role(server: LiveServer) -> None:
    boris = Operator(server, "boris")
    await boris.login()
    no_token = await boris.http.post("/api/workspace/v1/status", json={"status": "online"})
    assert no_token.status_code == 403 and no_token.json()["error"]["code"] == "csrf"
    assert (await boris.get("/operators")).status_code == 403
    sveta = Operator(server, "sveta")
    await sveta.login()
    team = (await sveta.get("/operators")).json()
    assert {o["login"] for o in team["operators"]} == {"anna", "boris", "sveta"}


async def test_a_queued_chat_goes_to_an_online_operator_who_answers_it(
    server: LiveServer, http: httpx.AsyncClient
) -> None:
    me = await _queued_customer(server, http)
    anna = Operator(server, "anna")
    await anna.login()
    queue = (await anna.get("/queue")).json()
    assert (
        queue["length"] == 1 and queue["conversations"][0]["conversation_id"] == me.conversation_id
    )
    await anna.online()
    conv = await conversation(server, me.conversation_id)
    assert conv.status == "assigned" and conv.assignee_id == anna.id
    assert "К диалогу подключился оператор Анна" in texts(await me.replies())

    sent = await anna.post(
        f"/conversations/{me.conversation_id}/messages", {"text": "Добрый день! Чем помочь?"}
    )
    assert sent.status_code == 201
    got = await me.replies()
    assert [(m["author"], m["text"]) for m in got] == [("operator", "Добрый день! Чем помочь?")]
    conv = await conversation(server, me.conversation_id)
    assert conv.first_reply_at is not None and conv.waiting_since is None

    # the customer answers; the operator reads the whole history, bot part included
    await me.say("Хочу узнать про перерасчёт")
    view = (await anna.get(f"/conversations/{me.conversation_id}")).json()
    authors = [m["author"] for m in view["messages"]]
    assert authors[0] == "bot" and authors[-1] == "customer" and "operator" in authors
    assert view["read_only"] is False


async def test_assignment_respects_the_limit_and_gives_the_next_chat_when_one_closes(
    server: LiveServer, http: httpx.AsyncClient
) -> None:
    first = await _queued_customer(server, http)
    second = await _queued_customer(server, http)
    anna = Operator(server, "anna")  # max_chats = 1
    await anna.login()
    await anna.online()
    assert (await conversation(server, first.conversation_id)).assignee_id == anna.id
    assert (await conversation(server, second.conversation_id)).status == "queued"

    bad = await anna.post(f"/conversations/{first.conversation_id}/close", {"resolution": " "})
    assert bad.status_code == 422
    closed = await anna.post(
        f"/conversations/{first.conversation_id}/close", {"resolution": "Проконсультирован"}
    )
    assert closed.status_code == 200
    assert "Диалог завершён" in texts(await first.replies())

    async def second_assigned() -> bool:
        return (await conversation(server, second.conversation_id)).assignee_id == anna.id

    await _wait(second_assigned)
    # a closed conversation cannot be taken again
    gone = await anna.post(f"/conversations/{first.conversation_id}/take")
    assert gone.status_code == 409


async def test_transfer_to_a_colleague_carries_a_note_the_customer_never_sees(
    server: LiveServer, http: httpx.AsyncClient
) -> None:
    me = await _queued_customer(server, http)
    anna, boris = Operator(server, "anna"), Operator(server, "boris")
    await anna.login()
    await boris.login()
    await anna.online()  # the only one on the line: the chat is hers
    assert (await conversation(server, me.conversation_id)).assignee_id == anna.id
    await boris.online()
    assert (await boris.get(f"/conversations/{me.conversation_id}")).status_code == 403
    note = "Клиент спрашивает о перерасчёте за март, счёт уже проверила"
    moved = await anna.post(
        f"/conversations/{me.conversation_id}/transfer", {"to_user_id": boris.id, "note": note}
    )
    assert moved.status_code == 200
    view = (await boris.get(f"/conversations/{me.conversation_id}")).json()
    notes = [m for m in view["messages"] if m["author"] == "note"]
    assert len(notes) == 1 and note in notes[0]["text"] and notes[0]["author_name"] == "Анна"
    assert view["conversation"]["assignee"]["name"] == "Борис"
    seen = await me.replies()
    assert note not in texts(seen) and "Борис" in texts(seen)
    # Anna no longer owns it
    again = await anna.post(f"/conversations/{me.conversation_id}/messages", {"text": "ещё"})
    assert again.status_code == 409


async def test_transfer_to_a_group_queues_it_for_that_group_only(
    server: LiveServer, http: httpx.AsyncClient
) -> None:
    me = await _queued_customer(server, http)
    anna, boris = Operator(server, "anna"), Operator(server, "boris")
    await anna.login()
    await anna.online()
    assert (await conversation(server, me.conversation_id)).assignee_id == anna.id
    await anna.post(
        f"/conversations/{me.conversation_id}/transfer",
        {"group": "billing", "note": "Нужен специалист по начислениям"},
    )
    await server.settle()
    conv = await conversation(server, me.conversation_id)
    # Anna is online with room but not in «billing»: it waits for Boris.
    assert conv.status == "queued" and conv.group == "billing"
    await boris.login()
    await boris.online()
    assert (await conversation(server, me.conversation_id)).assignee_id == boris.id


async def test_return_to_bot_gives_the_customer_the_menu_again(
    server: LiveServer, http: httpx.AsyncClient
) -> None:
    me = await _queued_customer(server, http)
    boris = Operator(server, "boris")
    await boris.login()
    await boris.online()
    assert (await conversation(server, me.conversation_id)).assignee_id == boris.id
    await me.replies()
    assert (await boris.post(f"/conversations/{me.conversation_id}/return")).status_code == 200
    back = await me.replies()
    assert "я снова на связи" in texts(back)
    assert [b["payload"] for b in back[-1]["buttons"]] == ["readings", "balance", "operator"]
    conv = await conversation(server, me.conversation_id)
    assert conv.status == "bot" and conv.assignee_id is None
    # and the bot answers again
    assert (await me.press("balance")) != []


async def test_a_closed_page_takes_the_operator_offline_and_requeues_their_chats(
    server: LiveServer, http: httpx.AsyncClient
) -> None:
    me = await _queued_customer(server, http)
    anna = Operator(server, "anna")
    await anna.login()
    await anna.online()
    assert (await conversation(server, me.conversation_id)).assignee_id == anna.id

    async def page_closed_long_ago() -> None:
        async with server.runtime.db.write() as conn:
            await conn.execute(
                update(User)
                .where(User.id == anna.id)
                .values(last_seen_at=utcnow() - timedelta(minutes=5))
            )
        await server.runtime.desk.sweep()

    await on_server(server, page_closed_long_ago())
    assert (await anna.get("/me")).json()["status"] == "offline"
    conv = await conversation(server, me.conversation_id)
    assert conv.status == "queued" and conv.assignee_id is None

    async def log() -> list[EventRecord]:
        async with server.runtime.db.session() as session:
            rows = await session.scalars(
                select(EventRecord)
                .where(
                    EventRecord.type.like("operator.%") | EventRecord.type.like("conversation.%")
                )
                .order_by(EventRecord.id)
            )
            return list(rows)

    logged = await on_server(server, log())
    kinds = [e.type for e in logged]
    assert kinds[kinds.index("operator.signed_in") + 1] == "operator.status"
    assigned = [e for e in logged if e.type == "conversation.assigned"]
    assert assigned[0].data["assignee_id"] == anna.id and assigned[0].data["how"] == "auto"
    status = [e.data for e in logged if e.type == "operator.status"]
    assert status[-1] == {
        "user_id": anna.id,
        "previous": "online",
        "status": "offline",
        "auto": True,
    }
    requeued = [e.data for e in logged if e.type == "conversation.queued"][-1]
    assert requeued["reason"] == "requeue" and requeued["requeued_from"] == anna.id


async def test_the_live_socket_brings_queue_changes_and_customer_messages(
    server: LiveServer, http: httpx.AsyncClient
) -> None:
    boris = Operator(server, "boris")
    await boris.login()
    cookie = boris.http.cookies.get("abonent_session")
    url = server.url.replace("http://", "ws://") + "/api/workspace/v1/ws"
    async with websockets.connect(
        url, additional_headers={"Cookie": f"abonent_session={cookie}"}
    ) as ws:
        me = await _queued_customer(server, http)
        await me.say("<b>срочно</b> блин")

        async def next_of(kind: str) -> dict[str, Any]:
            while True:
                event = json.loads(await asyncio.wait_for(ws.recv(), 5))
                if event["type"] == kind:
                    return dict(event["data"])

        queued = await next_of("conversation.queued")
        assert queued["conversation_id"] == me.conversation_id
        message = await next_of("message.received")
        assert message["author"] == "customer" and message["text"].startswith("<b>срочно</b>")
        await ws.send(json.dumps({"type": "ping"}))
        assert (await next_of("pong")) == {}

    async def seen() -> User | None:
        async with server.runtime.db.session() as session:
            return await session.get(User, boris.id)

    user = await on_server(server, seen())
    assert user is not None and user.last_seen_at is not None


async def test_notes_never_reach_the_client_api(
    server: LiveServer, http: httpx.AsyncClient
) -> None:
    me = await _queued_customer(server, http)
    boris = Operator(server, "boris")
    await boris.login()
    await boris.online()
    await boris.post(f"/conversations/{me.conversation_id}/notes", {"text": "внутренняя заметка"})
    all_messages = await http.get(
        f"{server.url}/api/client/v1/messages", params={"after": 0}, headers=me.headers
    )
    assert "внутренняя заметка" not in all_messages.text

    async def note() -> Message | None:
        async with server.runtime.db.session() as session:
            return await session.scalar(select(Message).where(Message.author == "note"))

    stored = await on_server(server, note())
    assert stored is not None and stored.delivery is None


async def test_two_chats_that_confirm_one_account_stay_two_customers(
    live_server: LiveServer, http: httpx.AsyncClient
) -> None:
    """Two chats confirm the same account: nothing proves one person writes both (anyone
    with the receipt can), so the operator reads only the chat's own history."""
    number = live_server.accounts["single"]
    earlier = Customer(live_server, http)
    await earlier.start()
    await earlier.press("readings")
    await earlier.say(number)
    await earlier.press("yes")
    await earlier.say("меню")

    later = Customer(live_server, http)
    await later.start()
    await later.press("readings")
    await later.say(number)
    await later.press("yes")
    await later.press("operator")

    async def seed() -> None:
        await add_user(live_server.runtime.db, "vera", PASSWORD, name="Вера")

    await on_server(live_server, seed())
    vera = Operator(live_server, "vera")
    await vera.login()
    await vera.online()
    view = (await vera.get(f"/conversations/{later.conversation_id}")).json()
    conversations = {m["conversation_id"] for m in view["messages"]}
    assert conversations == {later.conversation_id}
    card = (await vera.get(f"/contacts/{view['conversation']['contact_id']}/card")).json()
    assert [a["number"] for a in card["accounts"]] == [number]


async def test_operators_read_and_annotate_only_waiting_and_their_own_chats(
    server: LiveServer, http: httpx.AsyncClient
) -> None:
    me = await _queued_customer(server, http)
    other = await _queued_customer(server, http)
    anna, boris, sveta = (Operator(server, n) for n in ("anna", "boris", "sveta"))
    for who in (anna, boris, sveta):
        await who.login()
    contact = (await boris.get(f"/conversations/{me.conversation_id}")).json()["conversation"][
        "contact_id"
    ]
    # waiting: any operator may look at the customer before taking the chat
    assert (await boris.get(f"/contacts/{contact}/card")).status_code == 200
    await anna.online()  # she gets the first waiting chat (her limit is one)
    assert (await conversation(server, me.conversation_id)).assignee_id == anna.id
    card = f"/contacts/{contact}/card"
    assert (await boris.get(card)).status_code == 403
    assert (await boris.get(f"{card}?conversation_id={me.conversation_id}")).status_code == 403
    # a conversation of somebody else does not vouch for this card (nor goes to the audit log)
    assert (await boris.get(f"{card}?conversation_id={other.conversation_id}")).status_code == 404
    assert (await anna.get(f"{card}?conversation_id={me.conversation_id}")).status_code == 200
    assert (await sveta.get(card)).status_code == 200
    note = await boris.post(f"/conversations/{me.conversation_id}/notes", {"text": "чужая"})
    assert note.status_code == 409
    # ids beyond a bigint are refused as such, not as a database error
    assert (await boris.get(f"/conversations/{10**20}")).status_code == 422
    assert (await boris.get(f"{card}?conversation_id={10**20}")).status_code == 422

    async def audited() -> list[tuple[int | None, str]]:
        async with server.runtime.db.session() as session:
            rows = await session.scalars(select(AuditRecord).order_by(AuditRecord.id))
            return [(r.user_id, r.action) for r in rows]

    log = await on_server(server, audited())
    assert (boris.id, "conversation.view") in log  # reading the history is an access too
    assert log.count((boris.id, "card.view")) == 1


async def test_an_action_checked_against_one_assignee_does_not_land_after_a_reassignment(
    server: LiveServer, http: httpx.AsyncClient
) -> None:
    me = await _queued_customer(server, http)
    anna, boris, sveta = (Operator(server, n) for n in ("anna", "boris", "sveta"))
    for who in (anna, boris, sveta):
        await who.login()
    await anna.online()
    await boris.online()
    desk = server.runtime.desk
    # Anna's close passed its check; the supervisor hands the chat to Boris before it lands.
    seen_by_anna = await on_server(
        server, desk._own(Actor(anna.id, "Анна", "operator"), me.conversation_id)
    )
    moved = await sveta.post(f"/conversations/{me.conversation_id}/assign", {"user_id": boris.id})
    assert moved.status_code == 200

    async def stale_own(actor: Actor, conv_id: int) -> Conversation:
        return seen_by_anna

    desk._own = stale_own  # type: ignore[method-assign]
    try:
        late = await anna.post(
            f"/conversations/{me.conversation_id}/close", {"resolution": "Решено"}
        )
    finally:
        del desk._own
    assert late.status_code == 409
    conv = await conversation(server, me.conversation_id)
    assert conv.status == "assigned" and conv.assignee_id == boris.id


async def test_a_disabled_operator_gives_the_chats_back_and_loses_the_socket(
    server: LiveServer, http: httpx.AsyncClient
) -> None:
    me = await _queued_customer(server, http)
    anna = Operator(server, "anna")
    await anna.login()
    await anna.online()
    cookie = anna.http.cookies.get("abonent_session")
    url = server.url.replace("http://", "ws://") + "/api/workspace/v1/ws"
    with pytest.raises(websockets.InvalidStatus):
        # another site's page cannot listen with the operator's cookie
        await websockets.connect(
            url,
            additional_headers={"Cookie": f"abonent_session={cookie}"},
            origin=websockets.Origin("https://evil.example"),
        )
    async with websockets.connect(
        url, additional_headers={"Cookie": f"abonent_session={cookie}"}
    ) as ws:
        await on_server(server, set_active(server.runtime.db, "anna", False))
        await ws.send(json.dumps({"type": "ping"}))
        with pytest.raises(websockets.ConnectionClosed):
            while True:
                await asyncio.wait_for(ws.recv(), 5)
        assert ws.close_code == 4401
    conv = await conversation(server, me.conversation_id)
    assert conv.status == "queued" and conv.assignee_id is None
