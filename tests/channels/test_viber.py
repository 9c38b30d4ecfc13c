"""Viber: the real server behind a fake Viber, driven by signed callbacks."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from pydantic import ValidationError

from abonent.bot import texts as t
from abonent.channels.base import OutgoingMessage, SendError, WebhookRequest
from abonent.channels.registry import build_channel
from abonent.channels.viber import ViberChannel
from abonent.config import ChannelSettings
from abonent.core.types import Attachment, Button
from fakes.base import Reply
from fakes.viber import FakeViber
from support import LiveServer

from .conftest import (
    StartServer,
    contacts,
    eventually,
    messages,
    platform_fixture,
    settle,
    viber_config,
)

USER = "01234567890A="
PUBLIC = "https://cc.example.ru"


fake = platform_fixture(FakeViber)
config = viber_config


def hook(server: LiveServer) -> str:
    return f"{server.url}/webhooks/viber"


def channel(fake: FakeViber, **extra: Any) -> ViberChannel:
    built = build_channel(ChannelSettings(**config(fake, **extra)))
    assert isinstance(built, ViberChannel)
    return built


def customer_messages(server: LiveServer) -> list[Any]:
    return [m for m in messages(server, "viber") if m.author == "customer"]


def bot_messages(server: LiveServer) -> list[Any]:
    return [m for m in messages(server, "viber") if m.author == "bot"]


def titles(body: dict[str, Any]) -> list[str]:
    return [b["Text"] for b in body["keyboard"]["Buttons"]]


def say(fake: FakeViber, server: LiveServer, event: dict[str, Any]) -> dict[str, Any]:
    """Deliver a customer's event and return the (last) reply they got."""
    user = event["sender"]["id"]
    before = len(fake.sent_to(user))
    answer = fake.deliver_event(hook(server), event)
    assert answer.status_code == 200, answer.text
    settle(server)
    return fake.wait_sent(user, before + 1)[-1]


def greet(fake: FakeViber, server: LiveServer, user: str = USER) -> dict[str, Any]:
    return say(fake, server, fake.text_update(user, "Здравствуйте"))


# --------------------------------------------------------------------------- authenticity
def test_forged_or_malformed_callbacks_are_refused(
    channel_server: StartServer, fake: FakeViber
) -> None:
    server = channel_server([config(fake)])
    raw = json.dumps(fake.text_update(USER, "Здравствуйте"), ensure_ascii=False).encode()

    assert fake.deliver(hook(server), raw).status_code == 403  # no signature
    wrong = {"X-Viber-Content-Signature": "0" * 64}
    assert fake.deliver(hook(server), raw, wrong).status_code == 403
    other_key = FakeViber(token="someone-else").sign(raw)
    assert (
        fake.deliver(hook(server), raw, {"X-Viber-Content-Signature": other_key}).status_code == 403
    )
    # Signed, but the signature is over other bytes (re-serialised JSON).
    tampered = raw.replace("Здравствуйте".encode(), "Привет".encode())
    signed_raw = {"X-Viber-Content-Signature": fake.sign(raw)}
    assert fake.deliver(hook(server), tampered, signed_raw).status_code == 403

    garbage = b"{not json"
    headers = {"X-Viber-Content-Signature": fake.sign(garbage)}
    assert fake.deliver(hook(server), garbage, headers).status_code == 400
    no_event = b'{"sender": {}}'
    headers = {"X-Viber-Content-Signature": fake.sign(no_event)}
    assert fake.deliver(hook(server), no_event, headers).status_code == 400

    settle(server)
    assert messages(server) == []
    assert fake.sent == []


# --------------------------------------------------------------------------- the menu
def test_greeting_gets_the_menu_as_a_reply_keyboard(
    channel_server: StartServer, fake: FakeViber
) -> None:
    server = channel_server([config(fake)])
    answer = fake.deliver_event(hook(server), fake.text_update(USER, "Здравствуйте"))
    assert answer.status_code == 200
    assert answer.text == ""
    settle(server)
    fake.wait_sent(USER)

    call = fake.calls("/pa/send_message")[-1]
    assert call.headers["x-viber-auth-token"] == fake.token
    body = call.json()
    assert body["receiver"] == USER
    assert body["type"] == "text"
    assert body["sender"] == {"name": "ЭнергоСбыт"}
    assert "Здравствуйте" in body["text"]
    keyboard = body["keyboard"]
    assert keyboard["Type"] == "keyboard" and keyboard["DefaultHeight"] is False
    assert titles(body) == [b.title for b in t.MENU_BUTTONS]
    for button in keyboard["Buttons"]:
        # The chat shows the ActionBody as the customer's message: keep it readable.
        assert button["ActionType"] == "reply"
        assert button["ActionBody"] == button["Text"]
        assert (button["Columns"], button["Rows"]) == (6, 1)
    tracking = json.loads(body["tracking_data"])
    assert tracking["b"] == [[b.title, b.payload] for b in t.MENU_BUTTONS]

    (stored,) = customer_messages(server)
    assert stored.text == "Здравствуйте" and stored.payload is None
    assert stored.external_id.startswith("t:")
    eventually(lambda: bot_messages(server)[-1].delivery == "sent")
    assert [c.name for c in contacts(server)] == ["Иван Петров"]


def test_a_pressed_button_starts_its_flow(channel_server: StartServer, fake: FakeViber) -> None:
    server = channel_server([config(fake)])
    greet(fake, server)

    reply = say(fake, server, fake.press(USER, "Передать показания"))

    pressed = customer_messages(server)[-1]
    assert pressed.payload == t.P_READINGS
    assert pressed.text == "Передать показания"
    assert "номер лицевого счёта" in reply["text"]


def test_typed_text_after_a_reply_without_buttons_is_plain_text(
    channel_server: StartServer, fake: FakeViber
) -> None:
    server = channel_server([config(fake)])
    greet(fake, server)
    say(fake, server, fake.press(USER, "Передать показания"))
    # The bot now waits for an account number; whatever is echoed, digits are text.
    fake.deliver_event(hook(server), fake.text_update(USER, "1"))
    settle(server)
    typed = customer_messages(server)[-1]
    assert typed.text == "1" and typed.payload is None


def test_the_same_callback_twice_is_stored_and_answered_once(
    channel_server: StartServer, fake: FakeViber
) -> None:
    server = channel_server([config(fake)])
    event = fake.text_update(USER, "Здравствуйте")
    assert fake.deliver_event(hook(server), event).status_code == 200
    assert fake.deliver_event(hook(server), event).status_code == 200
    settle(server)
    assert len(customer_messages(server)) == 1
    assert len(bot_messages(server)) == 1
    assert len(fake.wait_sent(USER)) == 1


# --------------------------------------------------------------------------- opening the chat
def test_a_new_visitor_gets_the_welcome_in_the_answer_and_start_greets(
    channel_server: StartServer, fake: FakeViber
) -> None:
    server = channel_server([config(fake)])
    answer = fake.open_chat(hook(server), USER, context="site")
    assert answer.status_code == 200
    welcome = answer.json()
    assert welcome["sender"] == {"name": "ЭнергоСбыт"} and "receiver" not in welcome
    assert welcome["type"] == "text" and welcome["text"]
    assert [b["ActionBody"] for b in welcome["keyboard"]["Buttons"]] == ["Начать"]
    settle(server)
    assert messages(server) == []  # send_message would fail: not subscribed yet
    assert fake.sent == []

    # The customer taps «Начать»: it arrives as their text, and the bot greets.
    reply = say(fake, server, fake.message_event(USER, {"type": "text", "text": "Начать"}))
    (start,) = customer_messages(server)
    assert start.text == "/start site"
    assert "Здравствуйте" in reply["text"]
    assert titles(reply) == [b.title for b in t.MENU_BUTTONS]


def test_a_subscriber_opening_the_chat_is_greeted(
    channel_server: StartServer, fake: FakeViber
) -> None:
    server = channel_server([config(fake)])
    fake.subscribed.add(USER)
    event = fake.conversation_started(USER, subscribed=True)
    assert fake.deliver_event(hook(server), event).status_code == 200
    assert fake.deliver_event(hook(server), event).status_code == 200  # retried
    settle(server)
    (start,) = customer_messages(server)
    assert start.text == "/start" and start.external_id == f"start:{event['message_token']}"
    assert len(bot_messages(server)) == 1
    (reply,) = fake.wait_sent(USER)
    assert titles(reply) == [b.title for b in t.MENU_BUTTONS]


def test_receipts_and_the_handshake_are_acknowledged_and_not_stored(
    channel_server: StartServer, fake: FakeViber
) -> None:
    server = channel_server([config(fake)])
    for kind in ("delivered", "seen", "subscribed", "unsubscribed", "failed"):
        answer = fake.deliver_event(hook(server), fake.receipt(kind, USER))
        assert answer.status_code == 200, kind
    handshake = {"event": "webhook", "timestamp": 1767000000000, "message_token": 1}
    assert fake.deliver_event(hook(server), handshake).status_code == 200
    settle(server)
    assert messages(server) == []


# --------------------------------------------------------------------------- attachments
def test_contact_picture_and_sticker_are_kept_and_answered_politely(
    channel_server: StartServer, fake: FakeViber
) -> None:
    server = channel_server([config(fake)])
    contact = {"type": "contact", "contact": {"name": "Мама", "phone_number": "+79001234567"}}
    fake.deliver_event(hook(server), fake.message_event(USER, contact))
    settle(server)
    # Whose number it is Viber does not say: kept for operators, not linked.
    assert [c.phone for c in contacts(server)] == [None]

    picture = {
        "type": "picture",
        "text": "",
        "media": "https://dl-media.viber.com/1/share/2/long/bots/generic-message/media/1.jpg",
        "thumbnail": "https://dl-media.viber.com/thumb.jpg",
        "file_name": "counter.jpg",
    }
    fake.deliver_event(hook(server), fake.message_event(USER, picture))
    sticker = {"type": "sticker", "sticker_id": 46105, "media": "https://example.invalid/s.png"}
    fake.deliver_event(hook(server), fake.message_event(USER, sticker))
    settle(server)

    stored = customer_messages(server)
    # The bot's turn notes the kinds under the same key (strings then, not objects).
    kinds = [
        [a["kind"] if isinstance(a, dict) else a for a in (m.meta or {}).get("attachments", [])]
        for m in stored
    ]
    assert kinds == [["contact"], ["photo"], ["sticker"]]
    assert stored[0].meta["attachments"][0]["url"] == "tel:+79001234567"
    replies = fake.wait_sent(USER, 3)
    assert len(replies) == 3
    assert all(m.text == "" for m in stored)
    assert t.TEXT_ONLY[:30] in replies[1]["text"]
    assert t.TEXT_ONLY[:30] in replies[2]["text"]


async def test_every_message_type_is_parsed(fake: FakeViber) -> None:
    ch = channel(fake)

    async def parse(message: dict[str, Any]) -> Any:
        event = fake.message_event(USER, message, token=5890000000000000777)
        raw = json.dumps(event, ensure_ascii=False).encode()
        request = WebhookRequest("POST", {"x-viber-content-signature": fake.sign(raw)}, {}, raw)
        (inbound,) = (await ch.handle_webhook(request)).messages
        return inbound

    media = "https://dl-media.viber.com/5/media/2/short/any/sig/image/0x0/1.jpg"
    photo = await parse({"type": "picture", "text": "Вот счётчик", "media": media})
    assert photo.attachments == (Attachment("photo", media, None),)
    assert photo.text == "Вот счётчик"  # the caption is read like any text
    assert photo.external_id == "t:5890000000000000777"
    assert photo.external_user_id == USER and photo.display_name == "Иван Петров"
    assert photo.sent_at is not None and photo.sent_at.tzinfo is not None

    video = await parse({"type": "video", "media": media, "size": 10, "duration": 3})
    assert video.attachments[0].kind == "video"
    document = await parse(
        {"type": "file", "media": media, "size": 1000, "file_name": "квитанция.pdf"}
    )
    assert document.attachments == (Attachment("file", media, "квитанция.pdf"),)
    place = await parse({"type": "location", "location": {"lat": 55.75, "lon": 37.62}})
    assert place.attachments == (Attachment("location", "geo:55.75,37.62", None),)
    link = await parse({"type": "url", "media": "https://example.ru/page"})
    assert link.attachments == (Attachment("other", "https://example.ru/page", None),)
    sticker = await parse({"type": "sticker", "sticker_id": 40133})
    assert sticker.attachments == (Attachment("sticker", None, "sticker 40133"),)
    contact = await parse({"type": "contact", "contact": {"name": "Иван", "phone_number": "+7900"}})
    assert contact.phone is None and contact.attachments[0].kind == "contact"


# --------------------------------------------------------------------------- delivery errors
def test_http_429_retry_after_is_honoured(channel_server: StartServer, fake: FakeViber) -> None:
    server = channel_server([config(fake)])
    fake.fail_next(
        "/pa/send_message", Reply(429, {"error": "slow down"}, headers={"Retry-After": "1"})
    )
    fake.deliver_event(hook(server), fake.text_update(USER, "Здравствуйте"))
    first, second = fake.wait_for("/pa/send_message", 2, timeout=15)
    assert second.at - first.at >= 1.0
    eventually(lambda: bot_messages(server)[-1].delivery == "sent")
    assert len(fake.sent_to(USER)) == 1


def test_5xx_is_retried(channel_server: StartServer, fake: FakeViber) -> None:
    server = channel_server([config(fake)])
    fake.fail_next("/pa/send_message", Reply(502, text="Bad Gateway"))
    fake.deliver_event(hook(server), fake.text_update(USER, "Здравствуйте"))
    fake.wait_for("/pa/send_message", 2, timeout=15)
    eventually(lambda: bot_messages(server)[-1].delivery == "sent")


def test_not_subscribed_fails_for_good(channel_server: StartServer, fake: FakeViber) -> None:
    server = channel_server([config(fake)])
    fake.fail_next("/pa/send_message", Reply(200, {"status": 6, "status_message": "notSubscribed"}))
    fake.deliver_event(hook(server), fake.text_update(USER, "Здравствуйте"))
    fake.wait_for("/pa/send_message", 1)
    eventually(lambda: bot_messages(server)[-1].delivery == "failed")
    settle(server)
    reply = bot_messages(server)[-1]
    assert "notSubscribed" in (reply.delivery_error or "")
    assert len(fake.calls("/pa/send_message")) == 1


async def test_status_codes_map_to_retry_or_stop(fake: FakeViber) -> None:
    ch = channel(fake)
    await ch.start()
    fake.subscribed.add(USER)
    out = OutgoingMessage(1, 1, USER, "Добрый день")
    try:
        fake.fail_next("/send_message", Reply(200, {"status": 12, "status_message": "Too many"}))
        with pytest.raises(SendError) as busy:
            await ch.send(out)
        assert not busy.value.permanent and busy.value.retry_after == 60

        bad_token = channel(fake, token="wrong")
        await bad_token.start()
        with pytest.raises(SendError) as denied:
            await bad_token.send(out)
        await bad_token.stop()
        assert denied.value.permanent and "invalidAuthToken" in denied.value.reason

        with pytest.raises(SendError) as unknown:
            await ch.send(OutgoingMessage(1, 1, "never-wrote=", "Добрый день"))
        assert unknown.value.permanent and "notSubscribed" in unknown.value.reason

        fake.fail_next("/send_message", Reply(429, {}))  # no Retry-After from the proxy
        with pytest.raises(SendError) as proxy:
            await ch.send(out)
        assert proxy.value.retry_after == 60

        fake.fail_next("/send_message", Reply(200, {"status": 99, "status_message": "other"}))
        with pytest.raises(SendError) as other:
            await ch.send(out)
        assert not other.value.permanent and other.value.retry_after is None
    finally:
        await ch.stop()


# --------------------------------------------------------------------------- limits
async def test_long_text_is_split_and_the_keyboard_rides_on_the_last_part(
    fake: FakeViber,
) -> None:
    ch = channel(fake)
    await ch.start()
    fake.subscribed.add(USER)
    paragraph = "Показания принимаются с 15 по 25 число. " * 40
    text = "\n\n".join([paragraph] * 12)
    assert len(text) > 2 * 7000
    try:
        result = await ch.send(OutgoingMessage(1, 1, USER, text, t.MENU_BUTTONS))
    finally:
        await ch.stop()
    parts = fake.sent_to(USER)
    assert len(parts) == 3
    assert all(len(p["text"]) <= 7000 for p in parts)
    assert ["keyboard" in p for p in parts] == [False, False, True]
    assert ["tracking_data" in p for p in parts] == [False, False, True]
    assert result.external_id is not None


async def test_many_buttons_go_half_width_then_become_a_numbered_list(
    fake: FakeViber,
) -> None:
    ch = channel(fake)
    await ch.start()
    fake.subscribed.add(USER)
    twenty = tuple(Button(f"Счёт {i:02}", f"acct:{i:02}") for i in range(20))
    thirty = tuple(Button(f"Вариант {i}", f"opt:{i}") for i in range(1, 31))
    try:
        await ch.send(OutgoingMessage(1, 1, USER, "Выберите счёт", twenty))
        await ch.send(OutgoingMessage(2, 1, USER, "Выберите вариант", thirty))
    finally:
        await ch.stop()
    half, numbered = fake.sent_to(USER)
    assert {b["Columns"] for b in half["keyboard"]["Buttons"]} == {3}
    assert len(half["keyboard"]["Buttons"]) == 20
    assert "keyboard" not in numbered
    assert "1. Вариант 1" in numbered["text"] and "30. Вариант 30" in numbered["text"]


def test_a_number_picks_from_the_numbered_list(
    channel_server: StartServer, fake: FakeViber
) -> None:
    server = channel_server([config(fake)])
    greet(fake, server)
    ch = server.runtime.channels["viber"]
    assert isinstance(ch, ViberChannel)
    options = tuple(Button(f"Вариант {i}", f"opt:{i}") for i in range(1, 30))
    many = (*options, Button("Передать показания", t.P_READINGS))
    server.call(ch.send(OutgoingMessage(99, 1, USER, "Выберите", many)))
    fake.deliver_event(hook(server), fake.text_update(USER, "30"))
    settle(server)
    picked = customer_messages(server)[-1]
    assert picked.payload == t.P_READINGS and picked.text == "Передать показания"


# --------------------------------------------------------------------------- operations
def test_register_passes_viber_handshake_and_check_reports(
    channel_server: StartServer, fake: FakeViber
) -> None:
    server = channel_server([config(fake)])
    fake.routes[PUBLIC] = server.url

    async def run() -> tuple[str, str]:
        ch = channel(fake)
        await ch.start()
        try:
            return await ch.register(PUBLIC), await ch.check()
        finally:
            await ch.stop()

    registered, checked = asyncio.run(run())
    (call,) = fake.calls("/pa/set_webhook")
    body = call.json()
    assert call.headers["x-viber-auth-token"] == fake.token
    assert body["url"] == f"{PUBLIC}/webhooks/viber"
    assert "conversation_started" in body["event_types"]
    assert body["send_name"] is True and body["send_photo"] is True
    assert fake.webhook == f"{PUBLIC}/webhooks/viber"
    assert registered.startswith("viber:") and fake.webhook in registered
    assert checked.startswith("viber:") and "ЭнергоСбыт" in checked and fake.webhook in checked
    assert messages(server) == []  # the handshake stored nothing


def test_register_fails_when_the_handshake_is_refused(
    channel_server: StartServer, fake: FakeViber
) -> None:
    # The server knows the channel by another token: it refuses the signed handshake.
    server = channel_server([config(fake, token="stale-token")])
    fake.routes[PUBLIC] = server.url

    async def run() -> None:
        ch = channel(fake)
        await ch.start()
        try:
            await ch.register(PUBLIC)
        finally:
            await ch.stop()

    with pytest.raises(RuntimeError, match=r"viber: set_webhook .* failed: viber 1"):
        asyncio.run(run())
    assert fake.webhook is None


async def test_check_with_a_wrong_token_says_so(fake: FakeViber) -> None:
    ch = channel(fake, token="wrong")
    await ch.start()
    try:
        with pytest.raises(RuntimeError, match="invalidAuthToken"):
            await ch.check()
    finally:
        await ch.stop()


def test_settings_are_validated_and_give_the_deep_link(fake: FakeViber) -> None:
    assert channel(fake).deep_link() == "viber://pa?chatURI=energosbyt_test"
    assert channel(fake, uri=None).deep_link() is None
    with pytest.raises(ValidationError, match="name"):
        channel(fake, name="Энергосбытовая компания «Северный регион»")
    with pytest.raises(ValidationError, match="token"):
        channel(fake, token="")
