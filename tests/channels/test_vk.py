"""VK community messages: the real server against a fake VK, driven as VK drives it."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import ValidationError

from abonent.bot import texts as t
from abonent.channels.base import MessengerChannel, OutgoingMessage, WebhookRequest
from abonent.channels.registry import build_channel
from abonent.config import ChannelSettings
from abonent.core.types import Attachment, Button
from channels.conftest import (
    StartServer,
    contacts,
    eventually,
    messages,
    platform_fixture,
    settle,
    vk_config,
)
from fakes.base import Reply
from fakes.vk import CONFIRMATION, GROUP_ID, TOKEN, FakeVk, vk_error
from support import LiveServer

PEER = 510000001
MENU_TITLES = [b.title for b in t.MENU_BUTTONS]


fake = platform_fixture(FakeVk)
config = vk_config


def hook(server: LiveServer) -> str:
    return f"{server.url}/webhooks/vk"


def labels(keyboard: dict[str, Any]) -> list[str]:
    return [cell["action"]["label"] for row in keyboard["buttons"] for cell in row]


def customer_messages(server: LiveServer) -> list[Any]:
    return [m for m in messages(server, "vk") if m.author == "customer"]


def bot_messages(server: LiveServer) -> list[Any]:
    return [m for m in messages(server, "vk") if m.author != "customer"]


def assert_ok(response: Any) -> None:
    assert response.status_code == 200, response.text
    assert response.text == "ok"
    assert response.headers["content-type"].startswith("text/plain")


# --------------------------------------------------------------------------- handshake, auth
def test_confirmation_answers_the_configured_string(
    channel_server: StartServer, fake: FakeVk
) -> None:
    server = channel_server([config(fake)])
    r = fake.send_event(hook(server), fake.confirmation_request())
    assert r.status_code == 200
    assert r.text == CONFIRMATION
    assert r.headers["content-type"].startswith("text/plain")
    assert fake.send_event(hook(server), fake.confirmation_request(group_id=1)).status_code == 403
    assert messages(server) == []


def test_confirmation_string_is_read_with_the_token_when_not_configured(
    channel_server: StartServer, fake: FakeVk
) -> None:
    server = channel_server([config(fake, confirmation="")])
    r = fake.send_event(hook(server), fake.confirmation_request())
    assert (r.status_code, r.text) == (200, CONFIRMATION)
    [call] = fake.calls("/method/groups.getCallbackConfirmationCode")
    assert fake.params(call)["group_id"] == str(GROUP_ID)
    assert fake.params(call)["access_token"] == TOKEN


def test_forged_and_malformed_callbacks_are_refused(
    channel_server: StartServer, fake: FakeVk
) -> None:
    server = channel_server([config(fake)])
    url = hook(server)
    assert fake.send_event(url, fake.message_new(PEER, "Привет", secret="guess")).status_code == 403
    no_secret = fake.message_new(PEER, "Привет")
    del no_secret["secret"]
    assert fake.send_event(url, no_secret).status_code == 403
    other_group = fake.message_new(PEER, "Привет", group_id=GROUP_ID + 1)
    assert fake.send_event(url, other_group).status_code == 403
    assert fake.send_event(url, b'{"type": "message_new", "secret"').status_code == 400
    assert fake.send_event(url, b"[1, 2]").status_code == 400
    broken = fake.envelope("message_new", {"no": "message"})
    assert fake.send_event(url, broken).status_code == 400
    settle(server)
    assert messages(server) == []
    assert fake.calls("/method/messages.send") == []


# --------------------------------------------------------------------------- conversation
def test_greeting_gets_the_menu_as_inline_text_buttons(
    channel_server: StartServer, fake: FakeVk
) -> None:
    fake.users[PEER] = ("Анна", "Смирнова")
    server = channel_server([config(fake)])
    event = fake.message_new(PEER, "Здравствуйте")
    assert_ok(fake.send_event(hook(server), event))
    settle(server)

    [sent] = fake.sent
    assert sent["peer_id"] == PEER
    assert "Здравствуйте" in sent["message"]
    keyboard = sent["keyboard"]
    assert keyboard["inline"] is True
    assert labels(keyboard) == MENU_TITLES
    cells = [cell["action"] for row in keyboard["buttons"] for cell in row]
    assert {c["type"] for c in cells} == {"text"}
    assert [json.loads(c["payload"]) for c in cells] == [{"p": b.payload} for b in t.MENU_BUTTONS]
    [call] = fake.send_calls()
    assert call["access_token"] == TOKEN
    assert call["v"] == "5.199"
    assert int(call["random_id"]) > 0

    [incoming] = customer_messages(server)
    assert incoming.text == "Здравствуйте"
    assert incoming.external_id == f"e:{event['event_id']}"
    [reply] = bot_messages(server)
    assert reply.delivery == "sent"
    assert reply.meta["platform_id"] == str(sent["id"])
    assert [c.name for c in contacts(server)] == ["Анна Смирнова"]


def test_vk_start_button_greets(channel_server: StartServer, fake: FakeVk) -> None:
    server = channel_server([config(fake)])
    start = fake.message_new(PEER, "Начать", payload='{"command":"start"}')
    assert_ok(fake.send_event(hook(server), start))
    settle(server)
    [sent] = fake.sent
    assert sent["message"].startswith("Здравствуйте! Я виртуальный помощник")


def test_text_button_press_starts_the_readings_flow(
    channel_server: StartServer, fake: FakeVk
) -> None:
    server = channel_server([config(fake)])
    fake.send_event(hook(server), fake.message_new(PEER, "Здравствуйте"))
    settle(server)
    readings = fake.sent[0]["keyboard"]["buttons"][0][0]
    assert readings["action"]["label"] == "Передать показания"

    assert_ok(fake.send_event(hook(server), fake.press(PEER, readings)))
    settle(server)
    press = customer_messages(server)[-1]
    assert (press.text, press.payload) == ("Передать показания", t.P_READINGS)
    assert "номер лицевого счёта" in fake.sent[-1]["message"]
    assert fake.sent[-1]["peer_id"] == PEER


def test_callback_button_press_is_answered_and_starts_the_flow(
    channel_server: StartServer, fake: FakeVk
) -> None:
    server = channel_server([config(fake)])
    event = fake.message_event(PEER, {"p": t.P_READINGS})
    assert_ok(fake.send_event(hook(server), event))
    settle(server)
    [answer] = fake.wait_for("/method/messages.sendMessageEventAnswer")
    params = fake.params(answer)
    assert params["event_id"] == event["object"]["event_id"]
    assert (params["user_id"], params["peer_id"]) == (str(PEER), str(PEER))
    assert params["access_token"] == TOKEN
    [press] = customer_messages(server)
    assert press.payload == t.P_READINGS
    assert press.external_id == f"e:{event['event_id']}"
    [sent] = fake.sent
    assert "номер лицевого счёта" in sent["message"]


def test_redelivered_event_is_stored_and_answered_once(
    channel_server: StartServer, fake: FakeVk
) -> None:
    server = channel_server([config(fake)])
    event = fake.message_new(PEER, "Здравствуйте")
    assert_ok(fake.send_event(hook(server), event))
    assert_ok(fake.send_event(hook(server), event, retry=1))
    settle(server)
    assert len(customer_messages(server)) == 1
    assert len(fake.sent) == 1
    assert len(fake.calls("/method/messages.send")) == 1


def test_ignored_events_are_acknowledged_without_storing(
    channel_server: StartServer, fake: FakeVk
) -> None:
    server = channel_server([config(fake)])
    url = hook(server)
    assert_ok(fake.send_event(url, fake.envelope("message_reply", {"id": 1, "peer_id": PEER})))
    assert_ok(fake.send_event(url, fake.envelope("message_typing_state", {"from_id": PEER})))
    assert_ok(fake.send_event(url, fake.envelope("message_allow", {"user_id": PEER})))
    assert_ok(fake.send_event(url, fake.message_new(2000000001, "всем привет")))
    settle(server)
    assert messages(server) == []
    assert fake.calls("/method/messages.send") == []


PHOTO = {
    "type": "photo",
    "photo": {
        "id": 1,
        "owner_id": PEER,
        "sizes": [
            {"type": "s", "url": "https://sun9.example/s.jpg", "width": 75, "height": 56},
            {"type": "x", "url": "https://sun9.example/x.jpg", "width": 604, "height": 453},
        ],
    },
}


def test_photo_is_stored_and_answered_politely(channel_server: StartServer, fake: FakeVk) -> None:
    server = channel_server([config(fake)])
    assert_ok(fake.send_event(hook(server), fake.message_new(PEER, "", attachments=[PHOTO])))
    settle(server)
    [incoming] = customer_messages(server)
    stored = incoming.meta["attachments"]
    # (The bot turn replaces the stored attachment dicts by their kinds: see the report.)
    assert [a["kind"] if isinstance(a, dict) else a for a in stored] == ["photo"]
    [sent] = fake.sent
    assert sent["message"].startswith("Я понимаю только текстовые сообщения")
    assert labels(sent["keyboard"]) == MENU_TITLES


@pytest.mark.parametrize(
    ("attachment", "expected"),
    [
        (PHOTO, Attachment("photo", "https://sun9.example/x.jpg")),
        (
            {
                "type": "sticker",
                "sticker": {
                    "sticker_id": 9,
                    "images": [
                        {"url": "https://vk.example/64.png", "width": 64, "height": 64},
                        {"url": "https://vk.example/128.png", "width": 128, "height": 128},
                    ],
                },
            },
            Attachment("sticker", "https://vk.example/128.png"),
        ),
        (
            {"type": "audio_message", "audio_message": {"link_mp3": "https://vk.example/v.mp3"}},
            Attachment("voice", "https://vk.example/v.mp3"),
        ),
        (
            {"type": "doc", "doc": {"title": "счёт.pdf", "url": "https://vk.example/doc"}},
            Attachment("file", "https://vk.example/doc", "счёт.pdf"),
        ),
        (
            {"type": "video", "video": {"owner_id": PEER, "id": 7, "title": "Счётчик"}},
            Attachment("video", f"https://vk.com/video{PEER}_7", "Счётчик"),
        ),
        (
            {"type": "wall", "wall": {"owner_id": -1, "id": 3}},
            Attachment("other", "https://vk.com/wall-1_3", "wall"),
        ),
    ],
)
async def test_attachments_are_parsed(
    fake: FakeVk, attachment: dict[str, Any], expected: Attachment
) -> None:
    channel = await _channel(fake, fetch_names=False)
    event = fake.message_new(PEER, "", attachments=[attachment])
    body = json.dumps(event, ensure_ascii=False).encode()
    result = await channel.handle_webhook(WebhookRequest("POST", {}, {}, body))
    [message] = result.messages
    assert message.attachments == (expected,)
    assert (message.external_user_id, message.text, result.body) == (str(PEER), "", "ok")
    await channel.stop()


def test_client_without_inline_keyboards_gets_numbered_text(
    channel_server: StartServer, fake: FakeVk
) -> None:
    server = channel_server([config(fake)])
    event = fake.message_new(PEER, "Здравствуйте", inline_keyboard=False)
    fake.send_event(hook(server), event)
    settle(server)
    [sent] = fake.sent
    assert sent["keyboard"] is None
    assert "1. Передать показания" in sent["message"]
    assert "3. Связаться с оператором" in sent["message"]

    # The customer answers with the number of the item: that is the button's press.
    fake.send_event(hook(server), fake.message_new(PEER, "1", inline_keyboard=False))
    settle(server)
    asked = fake.sent[-1]["message"]
    assert "10 цифр" in asked, asked
    # A number where no numbered menu was shown stays text (the account step says so).
    fake.send_event(hook(server), fake.message_new(PEER, "2", inline_keyboard=False))
    settle(server)
    assert "Передать показания" not in fake.sent[-1]["message"]


# --------------------------------------------------------------------------- delivery errors
@pytest.mark.parametrize(
    "fault",
    [
        vk_error(6, "Too many requests per second"),
        Reply(429, text="Too Many Requests", headers={"Retry-After": "1"}),
    ],
    ids=["vk-error-6", "http-429"],
)
def test_rate_limit_is_retried_after_the_hint(
    channel_server: StartServer, fake: FakeVk, fault: Reply
) -> None:
    server = channel_server([config(fake)])
    fake.fail_next("/method/messages.send", fault)
    fake.send_event(hook(server), fake.message_new(PEER, "Здравствуйте"))
    first, second = fake.wait_for("/method/messages.send", 2)
    assert second.at - first.at >= 1.0
    assert fake.params(first)["random_id"] == fake.params(second)["random_id"]
    eventually(lambda: bot_messages(server)[0].delivery == "sent")
    assert len(fake.sent) == 1


@pytest.mark.parametrize(
    "fault",
    [Reply(502, text="Bad Gateway"), vk_error(10, "Internal server error")],
    ids=["http-502", "vk-error-10"],
)
def test_server_errors_are_retried(channel_server: StartServer, fake: FakeVk, fault: Reply) -> None:
    server = channel_server([config(fake)])
    fake.fail_next("/method/messages.send", fault)
    fake.send_event(hook(server), fake.message_new(PEER, "Здравствуйте"))
    fake.wait_for("/method/messages.send", 2)
    eventually(lambda: bot_messages(server)[0].delivery == "sent")
    assert len(fake.sent) == 1


def test_user_without_permission_fails_for_good(channel_server: StartServer, fake: FakeVk) -> None:
    fake.denied.add(PEER)
    server = channel_server([config(fake)])
    fake.send_event(hook(server), fake.message_new(PEER, "Здравствуйте"))
    settle(server)
    [reply] = bot_messages(server)
    assert reply.delivery == "failed"
    assert reply.delivery_error.startswith(
        "vk 901: Can't send messages for users without permission"
    )
    fake.assert_no_more("/method/messages.send", 1, wait=1.2)


def test_revoked_token_fails_for_good_and_still_stores_the_message(
    channel_server: StartServer, fake: FakeVk
) -> None:
    server = channel_server([config(fake, token="revoked")])
    assert_ok(fake.send_event(hook(server), fake.message_new(PEER, "Здравствуйте")))
    settle(server)
    [incoming] = customer_messages(server)
    assert incoming.text == "Здравствуйте"  # users.get failed: no name, message kept
    [reply] = bot_messages(server)
    assert reply.delivery == "failed"
    assert reply.delivery_error.startswith("vk 5: User authorization failed")
    assert len(fake.calls("/method/messages.send")) == 1


# --------------------------------------------------------------------------- channel directly
async def _channel(fake: FakeVk, **overrides: Any) -> MessengerChannel:
    channel = build_channel(ChannelSettings(**config(fake, **overrides)))
    assert isinstance(channel, MessengerChannel)
    await channel.start()
    return channel


async def test_long_text_is_split_and_a_resend_is_not_duplicated(fake: FakeVk) -> None:
    channel = await _channel(fake)
    paragraph = "Показания передаются с 15 по 25 число каждого месяца. " * 40
    text = "\n\n".join([paragraph] * 9)  # ~20 000 characters
    message = OutgoingMessage(77, 1, str(PEER), text, t.MENU_BUTTONS)
    result = await channel.send(message)
    parts = fake.sent
    assert len(parts) == 3
    assert all(len(p["message"]) <= 9000 for p in parts)
    assert [p["keyboard"] is not None for p in parts] == [False, False, True]
    assert len({p["random_id"] for p in parts}) == 3
    assert result.external_id == str(parts[-1]["id"])

    again = await channel.send(message)  # the outbox retrying after a lost answer
    assert again.external_id == result.external_id
    assert len(fake.sent) == 3
    assert len(fake.calls("/method/messages.send")) == 6
    await channel.stop()


async def test_buttons_degrade_within_vk_limits(fake: FakeVk) -> None:
    channel = await _channel(fake)
    eight = tuple(Button(f"Вариант {i}", f"opt{i}") for i in range(8))
    await channel.send(OutgoingMessage(1, 1, str(PEER), "Выберите:", eight))
    keyboard = fake.sent[-1]["keyboard"]
    assert [len(row) for row in keyboard["buttons"]] == [2, 2, 2, 2]

    long_title = Button("Очень длинное название кнопки, которое не помещается", "long")
    await channel.send(OutgoingMessage(2, 1, str(PEER), "Выберите:", (long_title,)))
    [label] = labels(fake.sent[-1]["keyboard"])
    assert len(label) == 40 and label.endswith("…")

    twelve = tuple(Button(f"Вариант {i}", f"opt{i}") for i in range(1, 13))
    await channel.send(OutgoingMessage(3, 1, str(PEER), "Выберите:", twelve))
    assert fake.sent[-1]["keyboard"] is None
    assert "12. Вариант 12" in fake.sent[-1]["message"]

    fat = (Button("Счёт", "acct:" + "9" * 300),)
    await channel.send(OutgoingMessage(4, 1, str(PEER), "Выберите:", fat))
    assert fake.sent[-1]["keyboard"] is None
    assert "1. Счёт" in fake.sent[-1]["message"]
    await channel.stop()


async def test_register_prints_the_steps_and_verifies_the_confirmation(fake: FakeVk) -> None:
    channel = await _channel(fake)
    line = await channel.register("https://cc.example.ru")
    assert line.startswith("vk: ")
    assert "https://cc.example.ru/webhooks/vk" in line
    assert "message_new" in line and "message_event" in line
    assert CONFIRMATION in line
    [call] = fake.calls("/method/groups.getCallbackConfirmationCode")
    assert fake.params(call)["group_id"] == str(GROUP_ID)
    await channel.stop()

    stale = await _channel(fake, confirmation="old-code")
    with pytest.raises(RuntimeError, match="differs"):
        await stale.register("https://cc.example.ru")
    await stale.stop()


async def test_check_reports_the_community(fake: FakeVk) -> None:
    channel = await _channel(fake)
    line = await channel.check()
    assert line.startswith("vk: token valid")
    assert "ЭнергоСбыт Тест" in line
    [call] = fake.calls("/method/groups.getById")
    assert fake.params(call)["access_token"] == TOKEN
    await channel.stop()

    broken = await _channel(fake, token="revoked")
    with pytest.raises(RuntimeError, match="vk 5"):
        await broken.check()
    await broken.stop()


def test_settings_name_the_missing_field_and_give_the_deep_link() -> None:
    with pytest.raises(ValidationError, match="group_id"):
        build_channel(ChannelSettings(id="vk", type="vk", token="t", secret="s"))
    with pytest.raises(ValidationError, match="secret"):
        build_channel(ChannelSettings(id="vk", type="vk", token="t", group_id=5))
    channel = build_channel(ChannelSettings(id="vk", type="vk", token="t", secret="s", group_id=5))
    assert channel.deep_link() == "https://vk.me/club5"
