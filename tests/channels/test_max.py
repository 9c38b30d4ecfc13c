"""MAX end to end: the real server, the fake MAX API, updates delivered as MAX does."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import ValidationError

from abonent.bot import texts as t
from abonent.channels.base import (
    MessengerChannel,
    OutgoingMessage,
    SendError,
    WebhookRequest,
)
from abonent.channels.max import MaxChannel
from abonent.channels.registry import build_channel
from abonent.config import ChannelSettings
from abonent.core.types import Button
from channels.conftest import (
    StartServer,
    contacts,
    delivered,
    max_config,
    messages,
    platform_fixture,
    settle,
)
from fakes.base import Reply
from fakes.max import BOT_USERNAME, SECRET, TOKEN, FakeMax

USER = 123456789
MENU = ["readings", "balance", "operator"]


fake = platform_fixture(FakeMax)
config = max_config


def hook(server: Any) -> str:
    return f"{server.url}/webhooks/max"


async def channel(fake: FakeMax, **overrides: Any) -> MessengerChannel:
    ch = build_channel(ChannelSettings(**config(fake, **overrides)))
    assert isinstance(ch, MessengerChannel)
    await ch.start()
    return ch


def customer_messages(server: Any) -> list[Any]:
    return [m for m in messages(server, "max") if m.author == "customer"]


def bot_messages(server: Any) -> list[Any]:
    return [m for m in messages(server, "max") if m.author == "bot"]


def kinds(message: Any) -> list[str]:
    """Attachment kinds on a stored message (the inbox stores dicts; the bot's turn
    currently overwrites them with the bare kinds — see the report)."""
    found = (message.meta or {}).get("attachments", [])
    return [a["kind"] if isinstance(a, dict) else a for a in found]


# ------------------------------------------------------------------ authenticity
def test_forged_missing_and_malformed_requests_store_nothing(
    channel_server: StartServer, fake: FakeMax
) -> None:
    server = channel_server([config(fake)])
    update = fake.message_update(USER, "Здравствуйте")

    wrong = fake.deliver_update(hook(server), update, secret="Forged_secret-1")
    missing = fake.deliver_update(hook(server), update, header=False)
    malformed = fake.deliver_update(hook(server), b'{"update_type": "message_created", ')
    not_object = fake.deliver_update(hook(server), b"[1, 2]")

    assert (wrong.status_code, missing.status_code) == (401, 401)
    assert malformed.status_code == 400 and not_object.status_code == 400
    settle(server)
    assert messages(server) == [] and fake.sent == []


def test_without_a_configured_secret_every_update_is_refused(
    channel_server: StartServer, fake: FakeMax
) -> None:
    server = channel_server([config(fake, secret="")])
    r = fake.deliver_update(hook(server), fake.message_update(USER, "Здравствуйте"), "anything")
    assert r.status_code == 403 and "secret" in r.text
    settle(server)
    assert messages(server) == []


# ------------------------------------------------------------------ conversation
def test_greeting_gets_the_menu_as_an_inline_keyboard(
    channel_server: StartServer, fake: FakeMax
) -> None:
    server = channel_server([config(fake)])
    update = fake.message_update(USER, "Здравствуйте")

    ack = fake.deliver_update(hook(server), update)

    assert ack.status_code == 200 and ack.text == ""
    [sent] = fake.wait_sent(1)
    assert sent.user_id == str(USER) and sent.chat_id is None
    assert sent.auth == TOKEN  # the raw token, no "Bearer"
    assert "user_id" not in sent.body and "chat_id" not in sent.body
    assert sent.payloads == MENU
    assert [b["type"] for row in sent.keyboard or [] for b in row] == ["callback"] * 3
    assert all(len(row) == 1 for row in sent.keyboard or [])
    assert "Здравствуйте" in sent.text
    settle(server)
    [stored] = customer_messages(server)
    assert stored.text == "Здравствуйте"
    assert stored.external_id == f"m:{update['message']['body']['mid']}"
    [reply] = delivered(server, "max", "sent")
    assert reply.meta["platform_id"] == sent.mid
    assert [c.name for c in contacts(server)] == ["Иван Петров"]


def test_bot_started_greets_once_per_event(channel_server: StartServer, fake: FakeMax) -> None:
    server = channel_server([config(fake)])
    started = fake.bot_started_update(USER, payload="site")

    assert fake.deliver_update(hook(server), started).status_code == 200
    assert fake.deliver_update(hook(server), started).status_code == 200

    settle(server)
    [stored] = customer_messages(server)
    assert stored.text == "/start site"
    assert stored.external_id == f"s:{USER}:{started['timestamp']}"
    [sent] = fake.wait_sent(1)
    assert sent.text.startswith("Здравствуйте") and sent.payloads == MENU


def test_button_press_starts_the_flow_and_is_answered(
    channel_server: StartServer, fake: FakeMax
) -> None:
    server = channel_server([config(fake)])
    fake.deliver_update(hook(server), fake.message_update(USER, "Здравствуйте"))
    fake.wait_sent(1)
    press = fake.callback_update(USER, "readings")  # on the menu message just sent

    assert fake.deliver_update(hook(server), press).status_code == 200

    sent = fake.wait_sent(2)
    assert sent[1].user_id == str(USER)
    assert "лицевого счёта" in sent[1].text
    [answer] = fake.wait_for("/answers")
    assert answer.query == {"callback_id": press["callback"]["callback_id"]}
    assert answer.headers["authorization"] == TOKEN
    assert answer.json() == {"notification": "Принято"}
    settle(server)
    pressed = customer_messages(server)[-1]
    assert pressed.payload == "readings" and pressed.text == "Передать показания"
    assert pressed.external_id == f"cb:{press['callback']['callback_id']}"


def test_press_without_the_keyboard_in_the_update_still_works(
    channel_server: StartServer, fake: FakeMax
) -> None:
    server = channel_server([config(fake)])
    press = fake.callback_update(USER, "balance", message={"body": {"mid": "mid.1", "text": "…"}})
    assert fake.deliver_update(hook(server), press).status_code == 200
    settle(server)
    [stored] = customer_messages(server)
    assert stored.payload == "balance" and stored.text == ""
    assert "лицевого счёта" in fake.wait_sent(1)[0].text


def test_the_same_update_twice_is_stored_and_answered_once(
    channel_server: StartServer, fake: FakeMax
) -> None:
    server = channel_server([config(fake)])
    update = fake.message_update(USER, "Здравствуйте")

    first = fake.deliver_update(hook(server), update)
    second = fake.deliver_update(hook(server), update)

    assert first.status_code == second.status_code == 200
    fake.wait_sent(1)
    settle(server)
    assert len(customer_messages(server)) == 1
    assert len(fake.sent) == 1


def test_group_chats_are_acknowledged_and_ignored(
    channel_server: StartServer, fake: FakeMax
) -> None:
    server = channel_server([config(fake)])
    update = fake.message_update(USER, "Здравствуйте", chat_type="chat", chat_id=-5001)
    assert fake.deliver_update(hook(server), update).status_code == 200
    other = {"update_type": "message_edited", "timestamp": 1767000000000, "message": {}}
    assert fake.deliver_update(hook(server), other).status_code == 200
    settle(server)
    assert messages(server) == [] and fake.sent == []


# ------------------------------------------------------------------ send errors
def test_429_is_retried_after_the_retry_after_delay(
    channel_server: StartServer, fake: FakeMax
) -> None:
    server = channel_server([config(fake)])
    fake.fail_next(
        "/messages",
        Reply(429, {"code": "too.many.requests", "message": "Too many"}, {"Retry-After": "1"}),
    )
    fake.deliver_update(hook(server), fake.message_update(USER, "Здравствуйте"))

    first, second = fake.wait_for("/messages", 2)

    assert second.at - first.at >= 0.95
    [_] = delivered(server, "max", "sent")  # one reply, sent
    assert len(fake.sent) == 1


def test_5xx_is_retried(channel_server: StartServer, fake: FakeMax) -> None:
    server = channel_server([config(fake)])
    fake.fail_next("/messages", Reply(503, {"code": "internal.error", "message": "Unavailable"}))
    fake.deliver_update(hook(server), fake.message_update(USER, "Здравствуйте"))

    fake.wait_for("/messages", 2)

    [_] = delivered(server, "max", "sent")  # one reply, sent


def test_a_blocked_bot_fails_for_good(channel_server: StartServer, fake: FakeMax) -> None:
    server = channel_server([config(fake)])
    fake.fail_next(
        "/messages",
        Reply(403, {"code": "chat.denied", "message": "chat.denied: dialog is blocked"}),
    )
    fake.deliver_update(hook(server), fake.message_update(USER, "Здравствуйте"))

    [reply] = delivered(server, "max", "failed")

    assert reply.delivery_error is not None and "max 403: chat.denied" in reply.delivery_error
    assert len(fake.calls("/messages")) == 1


async def test_error_mapping(fake: FakeMax) -> None:
    ch = await channel(fake)
    out = OutgoingMessage(1, 1, str(USER), "Добрый день")
    cases = [
        (Reply(400, {"code": "attachment.not.ready", "message": ""}), False),
        (Reply(400, {"code": "proto.payload", "message": "bad"}), True),
        (Reply(404, {"code": "not.found", "message": "User not found"}), True),
        (Reply(502, text="Bad Gateway"), False),
    ]
    try:
        for reply, permanent in cases:
            fake.fail_next("/messages", reply)
            with pytest.raises(SendError) as caught:
                await ch.send(out)
            assert caught.value.permanent is permanent, caught.value.reason
        fake.fail_next("/messages", Reply(429, {"code": "too.many.requests", "message": ""}))
        with pytest.raises(SendError) as caught:
            await ch.send(out)
        assert not caught.value.permanent and caught.value.retry_after == 1.0
    finally:
        await ch.stop()
    bad = await channel(fake, token="wrong-token")
    try:
        with pytest.raises(SendError) as caught:
            await bad.send(out)
        assert caught.value.permanent and "verify.token" in caught.value.reason
    finally:
        await bad.stop()


# ------------------------------------------------------------------ attachments
def test_own_contact_gives_the_phone_and_a_foreign_one_does_not(
    channel_server: StartServer, fake: FakeMax
) -> None:
    server = channel_server([config(fake)])
    other = 555000111
    foreign = fake.message_update(other, attachments=[fake.contact_attachment(USER, "79001234567")])
    fake.deliver_update(hook(server), foreign)
    settle(server)
    assert [c.phone for c in contacts(server)] == [None]

    own = fake.message_update(USER, attachments=[fake.contact_attachment(USER, "79001234567")])
    assert fake.deliver_update(hook(server), own).status_code == 200
    settle(server)

    phones = {c.phone for c in contacts(server)}
    assert "+79001234567" in phones and len(contacts(server)) == 2
    fake.wait_sent(2)
    assert kinds(customer_messages(server)[-1]) == ["contact"]
    assert fake.sent_to(USER)[-1].text == t.PHONE_SAVED


def test_photo_and_sticker_are_stored_with_a_text_only_reply(
    channel_server: StartServer, fake: FakeMax
) -> None:
    server = channel_server([config(fake)])
    fake.deliver_update(
        hook(server), fake.message_update(USER, attachments=[fake.image_attachment()])
    )
    fake.deliver_update(
        hook(server), fake.message_update(USER, attachments=[fake.sticker_attachment()])
    )
    settle(server)

    photo, sticker = customer_messages(server)
    assert kinds(photo) == ["photo"] and kinds(sticker) == ["sticker"]
    fake.wait_sent(2)
    replies = fake.sent_to(USER)
    assert len(replies) == 2 and all(r.text.startswith("Я понимаю только текст") for r in replies)
    assert replies[0].payloads == MENU


async def test_attachments_are_parsed_with_their_urls(fake: FakeMax) -> None:
    ch = await channel(fake)
    update = fake.message_update(
        USER,
        attachments=[
            fake.image_attachment(),
            fake.sticker_attachment(),
            {"type": "file", "payload": {"url": "https://f.example/a.pdf"}, "filename": "a.pdf"},
            {"type": "location", "latitude": 55.75, "longitude": 37.62},
            {"type": "audio", "payload": {"url": "https://f.example/v.ogg"}},
            fake.contact_attachment(USER, "+7 (900) 123-45-67"),
        ],
    )
    raw = json.dumps(update).encode()
    request = WebhookRequest("POST", {"x-max-bot-api-secret": SECRET}, {}, raw)
    try:
        result = await ch.handle_webhook(request)
    finally:
        await ch.stop()
    [message] = result.messages
    assert message.phone == "+79001234567" and message.external_user_id == str(USER)
    assert message.sent_at is not None and message.sent_at.tzinfo is not None
    assert [(a.kind, a.url, a.name) for a in message.attachments] == [
        ("photo", "https://i.oneme.ru/i?r=photo4242", None),
        ("sticker", "https://i.oneme.ru/s?r=st777", None),
        ("file", "https://f.example/a.pdf", "a.pdf"),
        ("location", "geo:55.75,37.62", None),
        ("voice", "https://f.example/v.ogg", None),
        ("contact", None, None),
    ]


async def test_a_contact_number_is_read_like_telegram_reads_it(fake: FakeMax) -> None:
    """Ten digits without the country code are not guessed into «+900…»."""
    ch = await channel(fake)
    try:
        for tel, phone in (("8 900 123-45-67", "+79001234567"), ("9001234567", None)):
            update = fake.message_update(USER, attachments=[fake.contact_attachment(USER, tel)])
            raw = json.dumps(update).encode()
            request = WebhookRequest("POST", {"x-max-bot-api-secret": SECRET}, {}, raw)
            [message] = (await ch.handle_webhook(request)).messages
            assert message.phone == phone
    finally:
        await ch.stop()


# ------------------------------------------------------------------ limits
async def test_long_text_is_split_with_the_buttons_on_the_last_part(fake: FakeMax) -> None:
    ch = await channel(fake)
    text = ("Абзац про тарифы и оплату. " * 60 + "\n\n") * 6  # ~9800 characters
    try:
        result = await ch.send(OutgoingMessage(1, 1, str(USER), text, (Button("Меню", "menu"),)))
    finally:
        await ch.stop()
    sent = fake.sent
    assert len(sent) == 3 and all(len(s.text) <= 4000 for s in sent)
    assert [s.keyboard is not None for s in sent] == [False, False, True]
    assert result.external_id == sent[-1].mid
    assert "".join(s.text for s in sent).replace("\n", "").replace(" ", "") == text.replace(
        "\n", ""
    ).replace(" ", "")


async def test_buttons_fill_rows_within_limits_and_degrade_beyond(fake: FakeMax) -> None:
    ch = await channel(fake)
    many = tuple(Button(f"Вариант {i}", f"opt:{i}") for i in range(1, 41))
    too_many = tuple(Button(f"Вариант {i}", f"opt:{i}") for i in range(1, 212))
    too_long = (Button("Д" * 129, "x"), Button("Меню", "menu"))
    try:
        await ch.send(OutgoingMessage(1, 1, str(USER), "Выберите:", many))
        await ch.send(OutgoingMessage(1, 1, str(USER), "Выберите:", too_many))
        await ch.send(OutgoingMessage(1, 1, str(USER), "Выберите:", too_long))
    finally:
        await ch.stop()
    rows, numbered, long_title = fake.sent
    assert rows.keyboard is not None and len(rows.keyboard) == 20
    assert all(len(r) == 2 for r in rows.keyboard) and len(rows.payloads) == 40
    assert numbered.keyboard is None and "211. Вариант 211" in numbered.text
    assert long_title.keyboard is None and "2. Меню" in long_title.text


# ------------------------------------------------------------------ admin
async def test_register_and_check(fake: FakeMax) -> None:
    ch = await channel(fake)
    try:
        with pytest.raises(RuntimeError, match="no webhook subscription"):
            await ch.check()
        line = await ch.register("https://cc.example.ru/")
        status = await ch.check()
    finally:
        await ch.stop()
    assert line.startswith("max: ") and "https://cc.example.ru/webhooks/max" in line
    posted = [c for c in fake.calls("/subscriptions") if c.method == "POST"]
    assert len(posted) == 1 and posted[0].headers["authorization"] == TOKEN
    assert json.loads(posted[0].body) == {
        "url": "https://cc.example.ru/webhooks/max",
        "update_types": ["message_created", "message_callback", "bot_started"],
        "secret": SECRET,
    }
    assert status.startswith("max: ") and f"@{BOT_USERNAME}" in status
    assert "https://cc.example.ru/webhooks/max" in status


async def test_register_refuses_without_a_secret_and_reports_a_bad_token(
    fake: FakeMax,
) -> None:
    no_secret = await channel(fake, secret="")
    bad_token = await channel(fake, token="wrong")
    try:
        with pytest.raises(RuntimeError, match="secret"):
            await no_secret.register("https://cc.example.ru")
        with pytest.raises(RuntimeError, match=r"verify\.token"):
            await bad_token.register("https://cc.example.ru")
        with pytest.raises(RuntimeError, match=r"verify\.token"):
            await bad_token.check()
    finally:
        await no_secret.stop()
        await bad_token.stop()
    assert fake.subscriptions == []


def test_settings_are_validated_and_give_the_deep_link(fake: FakeMax) -> None:
    with pytest.raises(ValidationError, match="secret"):
        build_channel(ChannelSettings(**config(fake, secret="a b")))
    ch = build_channel(ChannelSettings(**config(fake, username="@energo_test_bot")))
    assert isinstance(ch, MaxChannel)
    assert ch.deep_link() == "https://max.ru/energo_test_bot"
    assert build_channel(ChannelSettings(**config(fake, username=""))).deep_link() is None
