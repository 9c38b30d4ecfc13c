"""Telegram end to end: the real server, a fake Bot API, updates posted as Telegram does."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from pydantic import ValidationError
from sqlalchemy import select

from abonent.bot import texts as t
from abonent.channels.base import OutgoingMessage, SendError, WebhookRequest
from abonent.channels.registry import build_channel
from abonent.channels.telegram import TelegramChannel, render
from abonent.config import ChannelSettings
from abonent.core.types import Attachment, Button, InboundMessage
from abonent.db.models import EventRecord, Message
from channels.conftest import (
    StartServer,
    contacts,
    delivered,
    messages,
    platform_fixture,
    settle,
    telegram_config,
)
from fakes.base import Reply
from fakes.telegram import SECRET, TOKEN, USER_ID, FakeTelegram, error
from support import LiveServer, free_port

# Short titles pair up; «Связаться с оператором» is long and gets a row of its own.
MENU_ROWS = [
    [("Передать показания", "readings"), ("Узнать баланс", "balance")],
    [("Связаться с оператором", "operator")],
]


fake = platform_fixture(FakeTelegram)
config = telegram_config


@pytest.fixture
def server(channel_server: StartServer, fake: FakeTelegram) -> LiveServer:
    return channel_server([config(fake)])


def hook(server: LiveServer) -> str:
    return f"{server.url}/webhooks/tg"


def customer_messages(server: LiveServer) -> list[Message]:
    return [m for m in messages(server, "tg") if m.author == "customer"]


def bot_messages(server: LiveServer) -> list[Message]:
    return [m for m in messages(server, "tg") if m.author == "bot"]


def kinds(message: Message) -> list[str]:
    """Attachment kinds of a stored message. (The bot's turn currently overwrites the
    stored attachments with their bare kinds in ``meta``; both shapes are read.)"""
    found = (message.meta or {}).get("attachments", [])
    return [a["kind"] if isinstance(a, dict) else str(a) for a in found]


async def channel(fake: FakeTelegram, **overrides: Any) -> TelegramChannel:
    ch = build_channel(ChannelSettings(**config(fake, **overrides)))
    assert isinstance(ch, TelegramChannel)
    await ch.start()
    return ch


# ----------------------------------------------------------------------------- webhook auth
def test_forged_or_malformed_updates_are_refused_and_nothing_is_stored(
    server: LiveServer, fake: FakeTelegram
) -> None:
    update = fake.text_update("Здравствуйте")
    missing = fake.deliver_update(hook(server), update, secret=None)
    assert missing.status_code == 401
    assert "X-Telegram-Bot-Api-Secret-Token" in missing.text
    assert fake.deliver_update(hook(server), update, secret=SECRET + "x").status_code == 401
    assert fake.deliver_update(hook(server), update, secret="").status_code == 401
    assert fake.deliver_update(hook(server), b"{not json").status_code == 400
    assert fake.deliver_update(hook(server), b"[1, 2]").status_code == 400
    broken = fake.update(message={"text": "без чата"})
    assert fake.deliver_update(hook(server), broken).status_code == 400
    settle(server)
    assert messages(server) == []
    assert fake.calls("/sendMessage") == []
    # Counted for operations, and not one event stored: a forger cannot fill the log.
    metrics = httpx.get(f"{server.url}/metrics").text
    assert 'abonent_webhooks_rejected_total{channel="tg",status="401"} 3.0' in metrics
    assert 'abonent_webhooks_rejected_total{channel="tg",status="400"} 3.0' in metrics
    assert server.call(_event_count(server)) == 0


async def _event_count(server: LiveServer) -> int:
    async with server.runtime.db.session() as session:
        return len(
            (
                await session.scalars(
                    select(EventRecord.id).where(EventRecord.type != "log.started")
                )
            ).all()
        )


def test_without_a_secret_every_update_is_refused(
    channel_server: StartServer, fake: FakeTelegram
) -> None:
    server = channel_server([config(fake, secret="")])
    r = fake.deliver_update(hook(server), fake.text_update("Здравствуйте"), secret=None)
    assert r.status_code == 403 and "secret must be configured" in r.text
    r = fake.deliver_update(hook(server), fake.text_update("Здравствуйте"), secret="anything")
    assert r.status_code == 403
    settle(server)
    assert messages(server) == []


async def test_without_a_secret_there_is_nothing_to_register(fake: FakeTelegram) -> None:
    ch = await channel(fake, secret="")
    with pytest.raises(ValueError, match="secret must be configured"):
        await ch.register("https://cc.example.ru")
    await ch.stop()
    assert fake.calls("/setWebhook") == []


# ----------------------------------------------------------------------------- conversation
def test_a_greeting_gets_the_menu_as_an_inline_keyboard(
    server: LiveServer, fake: FakeTelegram
) -> None:
    r = fake.deliver_update(hook(server), fake.text_update("Здравствуйте"))
    assert (r.status_code, r.text) == (200, "")

    [sent] = fake.wait_sent(1)
    call = fake.calls("/sendMessage")[0]
    assert call.path == f"/bot{TOKEN}/sendMessage"
    assert call.headers["content-type"].startswith("application/json")
    assert sent.chat_id == USER_ID  # a number, as Telegram gives it
    assert sent.text.startswith("Здравствуйте!")
    assert sent.keyboard == MENU_ROWS
    assert sent.body["link_preview_options"] == {"is_disabled": True}

    [incoming] = customer_messages(server)
    assert incoming.text == "Здравствуйте"
    assert incoming.external_id == f"m:{USER_ID}:1"
    reply = delivered(server, "tg", "sent")[-1]
    assert reply.meta is not None and reply.meta["platform_id"] == str(sent.message_id)
    [person] = contacts(server)
    assert person.name == "Иван Петров"


def test_a_start_deep_link_greets(server: LiveServer, fake: FakeTelegram) -> None:
    assert fake.deliver_update(hook(server), fake.text_update("/start site")).status_code == 200
    [sent] = fake.wait_sent(1)
    assert sent.text.startswith("Здравствуйте!") and sent.payloads == [
        "readings",
        "balance",
        "operator",
    ]
    assert customer_messages(server)[0].text == "/start site"


def test_a_button_press_starts_the_flow_and_is_answered(
    server: LiveServer, fake: FakeTelegram
) -> None:
    fake.deliver_update(hook(server), fake.text_update("/start"))
    fake.wait_sent(1)
    press = fake.button_update("readings")
    r = fake.deliver_update(hook(server), press)
    assert (r.status_code, r.text) == (200, "")

    sent = fake.wait_sent(2)
    assert "номер лицевого счёта" in sent[1].text
    assert sent[1].chat_id == USER_ID and sent[1].payloads == ["cancel"]
    [answer] = fake.wait_for("/answerCallbackQuery")
    assert answer.json() == {"callback_query_id": press["callback_query"]["id"]}
    assert fake.answered  # the fake knew the query id: the spinner stops

    stored = customer_messages(server)[-1]
    assert stored.payload == "readings"
    assert stored.text == "Передать показания"  # the title, looked up in the keyboard
    assert stored.external_id == f"cb:{press['callback_query']['id']}"


def test_the_same_update_delivered_twice_is_answered_once(
    server: LiveServer, fake: FakeTelegram
) -> None:
    update = fake.text_update("Здравствуйте")
    assert fake.deliver_update(hook(server), update).status_code == 200
    assert fake.deliver_update(hook(server), update).status_code == 200
    fake.wait_sent(1)
    press = fake.button_update("balance")
    assert fake.deliver_update(hook(server), press).status_code == 200
    assert fake.deliver_update(hook(server), press).status_code == 200
    fake.wait_sent(2)
    settle(server)
    assert len(customer_messages(server)) == 2
    assert len(bot_messages(server)) == 2


def test_updates_the_bot_does_not_serve_are_acknowledged_and_dropped(
    server: LiveServer, fake: FakeTelegram
) -> None:
    edited = fake.update(
        edited_message={
            "message_id": 5,
            "date": 1767000000,
            "edit_date": 1767000100,
            "chat": {"id": USER_ID, "type": "private"},
            "from": fake.user(),
            "text": "исправил",
        }
    )
    blocked = fake.update(
        my_chat_member={
            "chat": {"id": USER_ID, "type": "private"},
            "from": fake.user(),
            "date": 1767000000,
            "old_chat_member": {"status": "member", "user": {"id": 1, "is_bot": True}},
            "new_chat_member": {"status": "kicked", "user": {"id": 1, "is_bot": True}},
        }
    )
    group = fake.text_update("всем привет", chat_id=-100500, sender=fake.user(USER_ID))
    group["message"]["chat"]["type"] = "supergroup"
    pinned = fake.message(pinned_message={"message_id": 1, "date": 1, "chat": {"id": USER_ID}})
    for update in (edited, blocked, group, pinned):
        r = fake.deliver_update(hook(server), update)
        assert (r.status_code, r.text) == (200, "")
    settle(server)
    assert messages(server) == []


# ----------------------------------------------------------------------------- contacts, media
def test_an_own_contact_gives_the_phone_a_foreign_one_does_not(
    server: LiveServer, fake: FakeTelegram
) -> None:
    fake.deliver_update(hook(server), fake.contact_update("79001234567"))
    [sent] = fake.wait_sent(1)
    assert sent.text.startswith(t.PHONE_SAVED)
    [person] = contacts(server)
    assert person.phone == "+79001234567"
    assert kinds(customer_messages(server)[0]) == ["contact"]

    fake.deliver_update(hook(server), fake.contact_update("+7 912 000-00-00", user_id=999))
    sent2 = fake.wait_sent(2)[1]
    assert sent2.text.startswith(t.TEXT_ONLY[:30])
    assert [c.phone for c in contacts(server)] == ["+79001234567"]
    assert kinds(customer_messages(server)[1]) == ["other"]


def test_a_photo_and_a_sticker_are_stored_and_answered_politely(
    server: LiveServer, fake: FakeTelegram
) -> None:
    fake.deliver_update(hook(server), fake.photo_update())
    fake.deliver_update(hook(server), fake.sticker_update(emoji="👍"))
    sent = fake.wait_sent(2)
    assert all(s.text.startswith("Я понимаю только текстовые") for s in sent)
    assert "operator" in sent[0].payloads
    stored = customer_messages(server)
    assert [kinds(m) for m in stored] == [["photo"], ["sticker"]]
    assert all(m.text == "" for m in stored)


async def test_what_an_update_becomes(fake: FakeTelegram) -> None:
    """Parsing alone, without a server: the fields an operator and the bot get."""
    ch = await channel(fake)

    async def parse(update: dict[str, Any]) -> list[InboundMessage]:
        body = json.dumps(update).encode()
        headers = {"x-telegram-bot-api-secret-token": SECRET}
        result = await ch.handle_webhook(WebhookRequest("POST", headers, {}, body))
        assert (result.status, result.body) == (200, "")
        return result.messages

    [photo] = await parse(fake.photo_update(caption="показания 12345"))
    assert photo.text == "показания 12345"  # a caption is read as text
    assert photo.attachments == (Attachment("photo"),)
    assert photo.sent_at is not None and photo.sent_at.tzinfo is not None
    assert (photo.external_user_id, photo.display_name) == (str(USER_ID), "Иван Петров")

    [sticker] = await parse(fake.sticker_update(emoji="👍"))
    assert sticker.attachments == (Attachment("sticker", name="👍"),)
    gif = {"file_id": "CgAD", "file_unique_id": "x", "file_name": "cat.gif", "duration": 1}
    [animation] = await parse(fake.message(animation=gif, document=gif))
    assert animation.attachments == (Attachment("video", name="cat.gif"),)
    place = {"latitude": 55.75, "longitude": 37.62}
    venue = {"location": place, "title": "Офис", "address": "Москва"}
    [where] = await parse(fake.message(venue=venue, location=place))
    assert where.attachments == (Attachment("location", url="geo:55.75,37.62", name="Офис"),)
    [voice] = await parse(fake.message(voice={"file_id": "AwAD", "duration": 3}))
    assert voice.attachments == (Attachment("voice"),) and voice.text == ""
    [foreign] = await parse(fake.contact_update("79001234567", user_id=5))
    assert foreign.phone is None and foreign.attachments[0].kind == "other"
    [abroad] = await parse(fake.contact_update("+49 151 2345678"))
    assert abroad.phone is None  # not a number normalise_phone reads

    press = fake.button_update("menu")
    press["callback_query"].pop("message")  # an inline message: reply to the presser
    [pressed] = await parse(press)
    assert (pressed.external_user_id, pressed.payload, pressed.text) == (str(USER_ID), "menu", "")
    await ch.stop()


# ----------------------------------------------------------------------------- delivery errors
def test_429_is_retried_after_the_hint(server: LiveServer, fake: FakeTelegram) -> None:
    fake.fail_next(
        "/sendMessage", error(429, "Too Many Requests: retry after 1", retry_after=1), times=1
    )
    fake.deliver_update(hook(server), fake.text_update("Здравствуйте"))
    fake.wait_sent(1)
    first, second = fake.calls("/sendMessage")
    assert second.at - first.at >= 1.0
    assert second.json() == first.json()
    delivered(server, "tg", "sent")


def test_5xx_is_retried(server: LiveServer, fake: FakeTelegram) -> None:
    fake.fail_next("/sendMessage", error(502, "Bad Gateway"), times=1)
    fake.deliver_update(hook(server), fake.text_update("Здравствуйте"))
    fake.wait_sent(1)
    assert len(fake.calls("/sendMessage")) == 2
    delivered(server, "tg", "sent")


def test_a_blocked_bot_fails_for_good(server: LiveServer, fake: FakeTelegram) -> None:
    fake.blocked.add(USER_ID)
    fake.deliver_update(hook(server), fake.text_update("Здравствуйте"))
    reply = delivered(server, "tg", "failed")[-1]
    assert reply.delivery_error == "telegram 403: Forbidden: bot was blocked by the user"
    assert len(fake.calls("/sendMessage")) == 1  # "failed" is final: never tried again


@pytest.mark.parametrize(
    ("reply", "permanent", "retry_after", "reason"),
    [
        (error(429, "Too Many Requests: retry after 7", retry_after=7), False, 7.0, "429"),
        (error(500, "Internal Server Error"), False, None, "telegram 500"),
        (Reply(502, text="<html>bad gateway</html>"), False, None, "telegram 502"),
        (error(400, "Bad Request: chat not found"), True, None, "chat not found"),
        (error(403, "Forbidden: user is deactivated"), True, None, "deactivated"),
        (error(401, "Unauthorized"), True, None, "check the bot token"),
    ],
)
async def test_send_errors_are_classified(
    fake: FakeTelegram,
    reply: Reply,
    permanent: bool,
    retry_after: float | None,
    reason: str,
) -> None:
    ch = await channel(fake)
    fake.fail_next("/sendMessage", reply)
    with pytest.raises(SendError) as caught:
        await ch.send(OutgoingMessage(1, 1, str(USER_ID), "Ответ"))
    await ch.stop()
    assert caught.value.permanent is permanent
    assert caught.value.retry_after == retry_after
    assert reason in caught.value.reason


async def test_a_wrong_token_and_a_dead_network(fake: FakeTelegram) -> None:
    ch = await channel(fake, token="999:wrong")
    with pytest.raises(SendError) as caught:
        await ch.send(OutgoingMessage(1, 1, str(USER_ID), "Ответ"))
    assert caught.value.permanent and caught.value.reason.startswith("telegram 401: Unauthorized")
    await ch.stop()
    ch = await channel(fake, api_base=f"http://127.0.0.1:{free_port()}")
    with pytest.raises(SendError) as caught:
        await ch.send(OutgoingMessage(1, 1, str(USER_ID), "Ответ"))
    assert not caught.value.permanent and caught.value.reason.startswith("network:")
    await ch.stop()


# ----------------------------------------------------------------------------- limits
async def test_a_long_text_is_split_with_the_buttons_on_the_last_part(
    fake: FakeTelegram,
) -> None:
    ch = await channel(fake)
    text = ("Абзац про тарифы и оплату. " * 60 + "\n\n") * 4  # ~6.5 thousand characters
    result = await ch.send(OutgoingMessage(1, 1, str(USER_ID), text, (Button("Меню", "menu"),)))
    await ch.stop()
    parts = fake.sent
    assert len(parts) == 2
    assert all(len(p.text) <= 4096 for p in parts)
    assert [p.keyboard for p in parts] == [[], [[("Меню", "menu")]]]
    assert "reply_markup" not in parts[0].body
    assert result.external_id == str(parts[1].message_id)


async def test_a_retry_after_a_failed_part_sends_only_the_rest(fake: FakeTelegram) -> None:
    ch = await channel(fake)
    text = "А" * 4000 + "\n\n" + "Б" * 100
    fake.fail_next_matching(
        lambda r: r.path.endswith("/sendMessage") and "ББ" in r.body.decode(),
        error(429, "Too Many Requests: retry after 1", retry_after=1),
    )
    outgoing = OutgoingMessage(1, 1, str(USER_ID), text, (Button("Меню", "menu"),))
    with pytest.raises(SendError) as failed:
        await ch.send(outgoing)
    assert failed.value.sent_parts == 1 and failed.value.retry_after == 1
    await ch.send(OutgoingMessage(1, 1, str(USER_ID), text, outgoing.buttons, skip_parts=1))
    await ch.stop()
    assert [p.text[:2] for p in fake.sent] == ["АА", "ББ"]
    assert fake.sent[1].keyboard == [[("Меню", "menu")]]


async def test_buttons_that_do_not_fit_become_a_numbered_menu(fake: FakeTelegram) -> None:
    ch = await channel(fake)
    long_payload = Button("Счёт", "acct:" + "я" * 30)  # 65 bytes: over the 64-byte limit
    await ch.send(
        OutgoingMessage(1, 1, str(USER_ID), "Выберите:", (Button("Меню", "menu"), long_payload))
    )
    many = tuple(Button(f"Вариант {i}", f"v{i}") for i in range(101))
    await ch.send(OutgoingMessage(2, 1, str(USER_ID), "Много:", many))
    await ch.stop()
    first, second = fake.sent
    assert first.text == "Выберите:\n\n1. Меню\n2. Счёт" and "reply_markup" not in first.body
    assert second.text.endswith("101. Вариант 100") and second.keyboard == []


def test_the_keyboard_layout() -> None:
    _, markup = render(
        "?",
        (
            Button("Да", "yes"),
            Button("Связаться с оператором", "operator"),
            Button("Нет", "no"),
            Button("Назад", "back"),
            Button("Отмена", "cancel"),
        ),
    )
    assert markup is not None
    rows = [[b["callback_data"] for b in row] for row in markup["inline_keyboard"]]
    assert rows == [["yes"], ["operator"], ["no", "back"], ["cancel"]]
    assert render("?", ()) == ("?", None)
    exactly_64 = Button("Ok", "ж" * 32)
    assert render("?", (exactly_64,))[1] is not None


# ----------------------------------------------------------------------------- set-up
async def test_register_sets_the_webhook_with_the_secret(fake: FakeTelegram) -> None:
    ch = await channel(fake)
    line = await ch.register("https://cc.example.ru/")
    [call] = fake.calls("/setWebhook")
    assert call.path == f"/bot{TOKEN}/setWebhook"
    assert call.json() == {
        "url": "https://cc.example.ru/webhooks/tg",
        "secret_token": SECRET,
        "allowed_updates": ["message", "callback_query"],
    }
    assert line.startswith("tg: ") and "https://cc.example.ru/webhooks/tg" in line

    fake.pending_update_count = 3
    fake.last_error = (1767000000, "Wrong response from the webhook: 401 Unauthorized")
    status = await ch.check()
    assert status.startswith("tg: bot @energo_test_bot")
    assert "https://cc.example.ru/webhooks/tg" in status and "pending updates 3" in status
    assert "Wrong response from the webhook: 401 Unauthorized" in status
    assert {c.path.rsplit("/", 1)[1] for c in fake.calls("")} >= {"getMe", "getWebhookInfo"}

    with pytest.raises(RuntimeError, match=r"setWebhook failed: telegram 400: .*HTTPS"):
        await ch.register("http://cc.example.ru")
    await ch.stop()


async def test_check_with_a_wrong_token_fails_clearly(fake: FakeTelegram) -> None:
    ch = await channel(fake, token="42:revoked")
    with pytest.raises(RuntimeError, match="tg: getMe failed: telegram 401: Unauthorized"):
        await ch.check()
    await ch.stop()


def test_settings_name_the_field_at_fault_and_give_the_deep_link() -> None:
    with pytest.raises(ValidationError, match="token"):
        build_channel(ChannelSettings(id="tg", type="telegram", token="no token"))
    with pytest.raises(ValidationError, match="secret"):
        build_channel(ChannelSettings(id="tg", type="telegram", token="1:a", secret="не ascii"))
    with_name = {"id": "tg", "type": "telegram", "token": "1:a", "username": "@my_bot"}
    ch = build_channel(ChannelSettings.model_validate(with_name))
    assert ch.deep_link() == "https://t.me/my_bot"
    assert build_channel(ChannelSettings(id="tg", type="telegram", token="1:a")).deep_link() is None
