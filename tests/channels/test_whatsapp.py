"""WhatsApp Cloud API end to end: the real server, the fake Graph API, events signed
with the app secret as Meta delivers them."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from pydantic import ValidationError

from abonent.bot import texts as t
from abonent.channels.base import MessengerChannel, OutgoingMessage, SendError, WebhookRequest
from abonent.channels.registry import build_channel
from abonent.channels.whatsapp import WhatsAppChannel, render
from abonent.config import ChannelSettings
from abonent.core.types import Attachment, Button
from channels.conftest import (
    StartServer,
    contacts,
    messages,
    platform_fixture,
    settle,
    whatsapp_config,
)
from fakes.base import Reply
from fakes.whatsapp import (
    APP_SECRET,
    CUSTOMER,
    PHONE_NUMBER_ID,
    SECOND_PHONE_NUMBER_ID,
    TOKEN,
    VERIFY_TOKEN,
    FakeWhatsApp,
    graph_error,
    outside_window,
    rate_limited,
)

MENU = [
    ("readings", "Передать показания"),
    ("balance", "Узнать баланс"),
    ("operator", "Связаться с оператором"),
]
MESSAGES_PATH = f"/v25.0/{PHONE_NUMBER_ID}/messages"


fake = platform_fixture(FakeWhatsApp)
config = whatsapp_config


def hook(server: Any, channel_id: str = "wa") -> str:
    return f"{server.url}/webhooks/{channel_id}"


async def channel(fake: FakeWhatsApp, **overrides: Any) -> MessengerChannel:
    ch = build_channel(ChannelSettings(**config(fake, **overrides)))
    assert isinstance(ch, MessengerChannel)
    await ch.start()
    return ch


def customer_messages(server: Any, channel_id: str = "wa") -> list[Any]:
    return [m for m in messages(server, channel_id) if m.author == "customer"]


def bot_messages(server: Any, channel_id: str = "wa") -> list[Any]:
    return [m for m in messages(server, channel_id) if m.author == "bot"]


def wamid(event: dict[str, Any], index: int = 0) -> str:
    return str(event["entry"][0]["changes"][0]["value"]["messages"][index]["id"])


# ------------------------------------------------------------------ authenticity
def test_forged_unsigned_and_malformed_posts_store_nothing(
    channel_server: StartServer, fake: FakeWhatsApp
) -> None:
    server = channel_server([config(fake)])
    event = fake.text_event("Здравствуйте")

    missing = FakeWhatsApp.deliver(hook(server), event)
    forged = fake.post_event(hook(server), event, signature=fake.sign(b"{}"))
    wrong_key = fake.post_event(
        hook(server), event, signature=fake.sign(b"x", secret="another-app")
    )
    malformed = fake.post_event(hook(server), b'{"object": "whatsapp_business_account", ')
    not_object = fake.post_event(hook(server), b"[1, 2]")

    assert missing.status_code == 401
    assert forged.status_code == 403 and wrong_key.status_code == 403
    assert malformed.status_code == 400 and not_object.status_code == 400
    settle(server)
    assert messages(server) == [] and fake.sent == [] and contacts(server) == []


def test_verification_handshake_echoes_the_challenge_only_for_our_token(
    channel_server: StartServer, fake: FakeWhatsApp
) -> None:
    server = channel_server([config(fake)])

    ok = fake.verify(hook(server), VERIFY_TOKEN, challenge="1158201444")
    wrong = fake.verify(hook(server), "guessed-token")
    no_mode = httpx.get(hook(server), params={"hub.challenge": "1"}, timeout=10)

    assert ok.status_code == 200 and ok.text == "1158201444"
    assert ok.headers["content-type"].startswith("text/plain")
    assert wrong.status_code == 403 and no_mode.status_code == 403
    assert messages(server) == []


# ------------------------------------------------------------------ conversation
def test_greeting_gets_the_menu_as_a_list_with_whole_titles(
    channel_server: StartServer, fake: FakeWhatsApp
) -> None:
    server = channel_server([config(fake)])
    event = fake.text_event("Здравствуйте")

    ack = fake.post_event(hook(server), event)

    assert ack.status_code == 200 and ack.text == ""
    [sent] = fake.wait_sent(1)
    [call] = fake.calls("/messages")
    assert call.path == MESSAGES_PATH
    assert sent.authorization == f"Bearer {TOKEN}"
    assert sent.to == CUSTOMER and sent.phone_number_id == PHONE_NUMBER_ID
    assert sent.body["messaging_product"] == "whatsapp"
    # «Связаться с оператором» is 22 characters: reply buttons (20) would cut it.
    assert sent.interactive_type == "list" and sent.buttons == MENU
    assert all("description" not in row for row in sent.rows)
    assert sent.body["interactive"]["action"]["button"] == "Выбрать"
    assert sent.text.startswith("Здравствуйте") and "ЭнергоСбыт Тест" in sent.text
    settle(server)
    [stored] = customer_messages(server)
    assert stored.text == "Здравствуйте" and stored.external_id == f"w:{wamid(event)}"
    [reply] = bot_messages(server)
    assert reply.delivery == "sent" and reply.meta["platform_id"] == sent.wamid
    [contact] = contacts(server)
    assert contact.name == "Иван Петров" and contact.phone == "+79001234567"


def test_a_list_press_starts_the_readings_flow(
    channel_server: StartServer, fake: FakeWhatsApp
) -> None:
    server = channel_server([config(fake)])
    fake.post_event(hook(server), fake.text_event("Здравствуйте"))
    menu = fake.wait_sent(1)[0]
    press = fake.button_reply_event(
        "readings", "Передать показания", kind="list_reply", context_id=menu.wamid
    )

    assert fake.post_event(hook(server), press).status_code == 200

    asked = fake.wait_sent(2)[1]
    assert asked.to == CUSTOMER and "лицевого счёта" in asked.text
    settle(server)
    pressed = customer_messages(server)[-1]
    assert pressed.payload == "readings" and pressed.text == "Передать показания"
    assert pressed.external_id == f"w:{wamid(press)}"


def test_a_reply_button_press_carries_its_id(
    channel_server: StartServer, fake: FakeWhatsApp
) -> None:
    server = channel_server([config(fake)])
    press = fake.button_reply_event("balance", "Узнать баланс")
    assert fake.post_event(hook(server), press).status_code == 200
    settle(server)
    [stored] = customer_messages(server)
    assert stored.payload == "balance" and stored.text == "Узнать баланс"
    assert "лицевого счёта" in fake.wait_sent(1)[0].text


def test_a_known_phone_offers_the_customers_own_account(
    channel_server: StartServer, fake: FakeWhatsApp
) -> None:
    """The WhatsApp id is the customer's number: accounts billed to it are theirs."""
    server = channel_server([config(fake)])
    press = fake.button_reply_event("readings", "Передать показания", wa_id="79123456789")
    fake.post_event(hook(server), press)
    settle(server)
    [asked] = fake.sent_to("79123456789")
    assert [c.phone for c in contacts(server)] == ["+79123456789"]
    assert asked.interactive_type == "button"  # three short titles: reply buttons
    assert ("acct:1000234561", "Счёт ******4561") in asked.buttons


def test_the_same_event_twice_is_stored_and_answered_once(
    channel_server: StartServer, fake: FakeWhatsApp
) -> None:
    server = channel_server([config(fake)])
    event = fake.text_event("Здравствуйте")

    first = fake.post_event(hook(server), event)
    second = fake.post_event(hook(server), event)

    assert first.status_code == second.status_code == 200
    settle(server)
    assert len(customer_messages(server)) == 1 and len(fake.sent) == 1


def test_a_batch_of_messages_and_statuses(channel_server: StartServer, fake: FakeWhatsApp) -> None:
    server = channel_server([config(fake)])
    value = fake.value(
        fake.message("text", {"body": "Здравствуйте"}),
        fake.message("image", {"id": "1479537139650973", "mime_type": "image/jpeg"}),
    )
    batch = fake.event(value)
    delivered = fake.status_event("wamid.OUT1", "delivered")
    failed = fake.status_event(
        "wamid.OUT2", "failed", errors=[{"code": 131047, "title": "Re-engagement message"}]
    )

    assert fake.post_event(hook(server), batch).status_code == 200
    assert fake.post_event(hook(server), delivered).status_code == 200
    assert fake.post_event(hook(server), failed).status_code == 200

    settle(server)
    texts = [m.text for m in customer_messages(server)]
    assert texts == ["Здравствуйте", ""] and len(fake.sent) == 2


def test_group_messages_reactions_and_other_fields_are_acknowledged_and_ignored(
    channel_server: StartServer, fake: FakeWhatsApp
) -> None:
    server = channel_server([config(fake)])
    group = fake.message("text", {"body": "Всем привет"}, group_id="120363025246125486@g.us")
    reaction = fake.message("reaction", {"message_id": "wamid.OUT1", "emoji": "👍"})
    template_status = {
        "object": "whatsapp_business_account",
        "entry": [
            {
                "id": "1",
                "changes": [
                    {"field": "message_template_status_update", "value": {"event": "APPROVED"}}
                ],
            }
        ],
    }
    for event in (fake.event(fake.value(group, reaction)), template_status):
        assert fake.post_event(hook(server), event).status_code == 200
    settle(server)
    assert messages(server) == [] and fake.sent == []


# ------------------------------------------------------------------ two numbers
def test_two_numbers_side_by_side_each_answer_their_own(
    channel_server: StartServer, fake: FakeWhatsApp
) -> None:
    server = channel_server(
        [config(fake), config(fake, id="wa-south", phone_number_id=SECOND_PHONE_NUMBER_ID)]
    )
    to_south = fake.text_event("Здравствуйте", phone_number_id=SECOND_PHONE_NUMBER_ID)

    # The app delivers every number's events to one URL: the wrong channel drops it.
    assert fake.post_event(hook(server, "wa"), to_south).status_code == 200
    settle(server)
    assert messages(server) == [] and fake.sent == []

    assert fake.post_event(hook(server, "wa-south"), to_south).status_code == 200
    assert fake.post_event(hook(server, "wa"), fake.text_event("Добрый день")).status_code == 200
    mixed = fake.event(
        fake.value(fake.message("text", {"body": "Меню"}), phone_number_id=PHONE_NUMBER_ID),
        fake.value(fake.message("text", {"body": "Меню"}), phone_number_id=SECOND_PHONE_NUMBER_ID),
    )
    assert fake.post_event(hook(server, "wa"), mixed).status_code == 200

    settle(server)
    assert [m.text for m in customer_messages(server, "wa-south")] == ["Здравствуйте"]
    assert [m.text for m in customer_messages(server, "wa")] == ["Добрый день", "Меню"]
    south = [s for s in fake.sent if s.phone_number_id == SECOND_PHONE_NUMBER_ID]
    main = [s for s in fake.sent if s.phone_number_id == PHONE_NUMBER_ID]
    assert len(south) == 1 and len(main) == 2
    assert {c.path for c in fake.calls("/messages")} == {
        MESSAGES_PATH,
        f"/v25.0/{SECOND_PHONE_NUMBER_ID}/messages",
    }


# ------------------------------------------------------------------ send errors
def test_rate_limit_is_retried_after_retry_after(
    channel_server: StartServer, fake: FakeWhatsApp
) -> None:
    server = channel_server([config(fake)])
    fake.fail_next("/messages", rate_limited(retry_after=1))
    fake.post_event(hook(server), fake.text_event("Здравствуйте"))

    first, second = fake.wait_for("/messages", 2)

    assert second.at - first.at >= 0.95
    settle(server)
    [reply] = bot_messages(server)
    assert reply.delivery == "sent" and len(fake.sent) == 1


def test_5xx_is_retried(channel_server: StartServer, fake: FakeWhatsApp) -> None:
    server = channel_server([config(fake)])
    fake.fail_next(
        "/messages", graph_error(503, 131016, "(#131016) Service temporarily unavailable")
    )
    fake.post_event(hook(server), fake.text_event("Здравствуйте"))

    fake.wait_for("/messages", 2)

    settle(server)
    assert bot_messages(server)[0].delivery == "sent" and len(fake.sent) == 1


def test_outside_the_24_hour_window_fails_for_good(
    channel_server: StartServer, fake: FakeWhatsApp
) -> None:
    server = channel_server([config(fake)])
    fake.fail_next("/messages", outside_window())
    fake.post_event(hook(server), fake.text_event("Здравствуйте"))

    fake.wait_for("/messages", 1)
    settle(server)

    [reply] = bot_messages(server)
    assert reply.delivery == "failed"
    assert reply.delivery_error is not None and "outside the 24-hour window" in reply.delivery_error
    assert "#131047" in reply.delivery_error
    assert len(fake.calls("/messages")) == 1


async def test_error_mapping(fake: FakeWhatsApp) -> None:
    ch = await channel(fake)
    out = OutgoingMessage(1, 1, CUSTOMER, "Добрый день")
    fake.close_window(CUSTOMER)  # the fake itself refuses: nobody wrote within 24 h
    cases = [
        (None, True, None),
        (graph_error(400, 131026, "(#131026) Message Undeliverable."), True, None),
        (graph_error(400, 100, "(#100) Invalid parameter"), True, None),
        (graph_error(400, 131051, "(#131051) Unsupported message type"), True, None),
        (graph_error(500, 1, "An unknown error occurred", type_="OAuthException"), False, None),
        (graph_error(500, 131000, "(#131000) Something went wrong"), False, None),
        (Reply(502, text="Bad Gateway"), False, None),
        (
            graph_error(
                400, 131056, "(#131056) (Business Account, Consumer Account) pair rate limit hit"
            ),
            False,
            6.0,
        ),
        (graph_error(400, 80007, "(#80007) Rate limit issues"), False, 60.0),
        (graph_error(400, 4, "(#4) Application request limit reached"), False, 60.0),
        (rate_limited(retry_after=None), False, 1.0),
        (rate_limited(retry_after=3), False, 3.0),
        (Reply(429, text="Too Many Requests"), False, 5.0),
    ]
    try:
        for reply, permanent, retry_after in cases:
            if reply is not None:
                fake.fail_next("/messages", reply)
            with pytest.raises(SendError) as caught:
                await ch.send(out)
            assert caught.value.permanent is permanent, caught.value.reason
            assert caught.value.retry_after == retry_after, caught.value.reason
            if reply is None:
                assert "outside the 24-hour window" in caught.value.reason
    finally:
        await ch.stop()
    bad = await channel(fake, token="expired-token")
    try:
        with pytest.raises(SendError) as caught:
            await bad.send(out)
        assert caught.value.permanent and "#190" in caught.value.reason
        assert "token" in caught.value.reason
    finally:
        await bad.stop()


async def test_network_trouble_is_retried() -> None:
    ch = build_channel(
        ChannelSettings(
            id="wa",
            type="whatsapp",
            token=TOKEN,
            secret=APP_SECRET,
            verify_token=VERIFY_TOKEN,
            phone_number_id=PHONE_NUMBER_ID,
            api_base="http://127.0.0.1:9",
        )
    )
    assert isinstance(ch, MessengerChannel)
    await ch.start()
    try:
        with pytest.raises(SendError) as caught:
            await ch.send(OutgoingMessage(1, 1, CUSTOMER, "Добрый день"))
    finally:
        await ch.stop()
    assert not caught.value.permanent and caught.value.reason.startswith("network:")


# ------------------------------------------------------------------ attachments
def test_a_contact_card_is_an_attachment_not_the_senders_phone(
    channel_server: StartServer, fake: FakeWhatsApp
) -> None:
    server = channel_server([config(fake)])
    card = {
        "name": {"formatted_name": "Мария Петрова", "first_name": "Мария"},
        "phones": [{"phone": "+7 916 123-45-67", "wa_id": "79161234567", "type": "CELL"}],
    }
    event = fake.event(fake.value(fake.message("contacts", [card])))
    assert fake.post_event(hook(server), event).status_code == 200
    settle(server)

    [contact] = contacts(server)
    assert contact.phone == "+79001234567"  # the sender's own number, from `from`
    [stored] = customer_messages(server)
    assert stored.meta["attachments"] == [
        {"kind": "contact", "url": "tel:+79161234567", "name": "Мария Петрова"}
    ]
    assert len(fake.sent) == 1


MEDIA = [
    ("image", {"id": "111", "mime_type": "image/jpeg", "sha256": "x"}),
    ("sticker", {"id": "222", "mime_type": "image/webp", "animated": False}),
    ("audio", {"id": "333", "mime_type": "audio/ogg; codecs=opus", "voice": True}),
    ("location", {"latitude": 55.75, "longitude": 37.61, "name": "Дом"}),
]


def test_photo_sticker_voice_and_location_get_the_text_only_reply(
    channel_server: StartServer, fake: FakeWhatsApp
) -> None:
    server = channel_server([config(fake)])
    for kind, content in MEDIA:
        fake.post_event(hook(server), fake.event(fake.value(fake.message(kind, content))))
    settle(server)

    stored = customer_messages(server)
    assert len(stored) == 4 and all(m.meta.get("attachments") for m in stored)
    replies = fake.sent_to(CUSTOMER)
    assert len(replies) == 4 and all(r.text == t.TEXT_ONLY for r in replies)
    assert replies[0].buttons == MENU


async def test_attachments_are_parsed_with_where_to_fetch_them(fake: FakeWhatsApp) -> None:
    ch = await channel(fake)
    event = fake.event(fake.value(*(fake.message(kind, content) for kind, content in MEDIA)))
    raw = json.dumps(event).encode()
    request = WebhookRequest("POST", {"x-hub-signature-256": fake.sign(raw)}, {}, raw)
    try:
        result = await ch.handle_webhook(request)
    finally:
        await ch.stop()
    assert [m.attachments for m in result.messages] == [
        (Attachment("photo", f"{fake.url}/v25.0/111"),),
        (Attachment("sticker", f"{fake.url}/v25.0/222"),),
        (Attachment("voice", f"{fake.url}/v25.0/333"),),
        (Attachment("location", "geo:55.75,37.61", "Дом"),),
    ]
    assert all(m.text == "" and m.phone == "+79001234567" for m in result.messages)
    assert result.messages[0].sent_at is not None and result.messages[0].sent_at.tzinfo


def test_a_document_with_a_caption_is_read_as_text(
    channel_server: StartServer, fake: FakeWhatsApp
) -> None:
    server = channel_server([config(fake)])
    document = {"id": "444", "filename": "квитанция.pdf", "caption": "Меню"}
    fake.post_event(hook(server), fake.event(fake.value(fake.message("document", document))))
    settle(server)
    [stored] = customer_messages(server)
    assert stored.text == "Меню"
    assert stored.meta["attachments"][0]["name"] == "квитанция.pdf"
    assert fake.wait_sent(1)[0].buttons == MENU


def test_a_username_without_a_number_is_answered_by_bsuid(
    channel_server: StartServer, fake: FakeWhatsApp
) -> None:
    server = channel_server([config(fake)])
    bsuid = "RU.13491208655302741918"
    msg = fake.message("text", {"body": "Здравствуйте"}, wa_id=None)
    event = fake.event(fake.value(msg, wa_id=None, user_id=bsuid, name="Аноним"))

    assert fake.post_event(hook(server), event).status_code == 200

    [sent] = fake.wait_sent(1)
    assert sent.body["recipient"] == bsuid and "to" not in sent.body
    settle(server)
    [contact] = contacts(server)
    assert contact.phone is None and contact.name == "Аноним"


# ------------------------------------------------------------------ rendering
async def test_long_text_is_split_and_the_buttons_ride_on_the_last_part(
    fake: FakeWhatsApp,
) -> None:
    ch = await channel(fake)
    fake.last_inbound[(PHONE_NUMBER_ID, CUSTOMER)] = float("inf")  # window open
    text = ("Абзац про тарифы и оплату. " * 60 + "\n\n") * 6  # ~9800 characters
    try:
        result = await ch.send(OutgoingMessage(1, 1, CUSTOMER, text, (Button("Меню", "menu"),)))
        plain = await ch.send(OutgoingMessage(2, 1, CUSTOMER, text))
    finally:
        await ch.stop()
    sent = fake.sent
    with_buttons = sent[:4]
    assert [s.type for s in with_buttons] == ["text", "text", "text", "interactive"]
    assert result.external_id == with_buttons[-1].wamid
    assert all(len(s.text) <= 4096 for s in sent)
    assert with_buttons[-1].buttons == [("menu", "Меню")]
    assert with_buttons[-1].text == "Выберите действие:"  # the last part was over 1024
    assert "".join(s.text for s in with_buttons[:-1]).replace("\n", "").replace(
        " ", ""
    ) == text.replace("\n", "").replace(" ", "")
    assert plain.external_id == sent[-1].wamid and [s.type for s in sent[4:]] == ["text"] * 3


def test_buttons_choose_the_richest_form_that_fits() -> None:
    three = (Button("Да, верно", "yes"), Button("Нет", "no"), Button("Меню", "menu"))
    [buttons] = render("Это ваш счёт?", three)
    assert buttons["interactive"]["type"] == "button"
    assert [b["reply"]["title"] for b in buttons["interactive"]["action"]["buttons"]] == [
        "Да, верно",
        "Нет",
        "Меню",
    ]

    four = (*three, Button("Назад", "back"))
    [listed] = render("Выберите:", four)
    assert listed["interactive"]["type"] == "list"

    long_title = (Button("Показания за прошлый месяц и за этот", "old"), Button("Меню", "menu"))
    [row_list] = render("Выберите:", long_title)
    row = row_list["interactive"]["action"]["sections"][0]["rows"][0]
    assert len(row["title"]) == 24 and row["title"].endswith("…")
    assert row["description"] == "Показания за прошлый месяц и за этот"

    eleven = tuple(Button(f"Вариант {i}", f"opt:{i}") for i in range(1, 12))
    [numbered] = render("Выберите:", eleven)
    assert numbered["type"] == "text" and "11. Вариант 11" in numbered["text"]["body"]

    [short_body] = render("", three)
    assert short_body["interactive"]["body"]["text"] == "Выберите действие:"


async def test_the_fake_enforces_the_interactive_limits(fake: FakeWhatsApp) -> None:
    fake.last_inbound[(PHONE_NUMBER_ID, CUSTOMER)] = float("inf")
    four = [{"type": "reply", "reply": {"id": f"b{i}", "title": f"B{i}"}} for i in range(4)]
    body = {
        "messaging_product": "whatsapp",
        "to": CUSTOMER,
        "type": "interactive",
        "interactive": {"type": "button", "body": {"text": "?"}, "action": {"buttons": four}},
    }
    async with httpx.AsyncClient() as client:
        response = await client.post(
            f"{fake.url}{MESSAGES_PATH}", json=body, headers={"Authorization": f"Bearer {TOKEN}"}
        )
    assert response.status_code == 400 and response.json()["error"]["code"] == 131009


# ------------------------------------------------------------------ admin
async def test_register_prints_the_dashboard_steps_and_check_asks_the_number(
    fake: FakeWhatsApp,
) -> None:
    ch = await channel(fake)
    try:
        line = await ch.register("https://cc.example.ru/")
        assert fake.requests == []  # nothing the number's token could call
        status = await ch.check()
    finally:
        await ch.stop()
    assert line.startswith("wa: ") and "https://cc.example.ru/webhooks/wa" in line
    assert "verify_token" in line and "'messages'" in line
    [call] = fake.calls(f"/v25.0/{PHONE_NUMBER_ID}")
    assert call.method == "GET" and call.headers["authorization"] == f"Bearer {TOKEN}"
    assert call.query == {"fields": "display_phone_number,verified_name,quality_rating"}
    assert status == "wa: WhatsApp number +7 800 123-45-67 «ЭнергоСбыт Тест», quality GREEN"


async def test_check_reports_a_bad_token_and_an_unknown_number(fake: FakeWhatsApp) -> None:
    bad_token = await channel(fake, token="wrong")
    unknown = await channel(fake, phone_number_id="999")
    try:
        with pytest.raises(RuntimeError, match="#190"):
            await bad_token.check()
        with pytest.raises(RuntimeError, match="does not exist"):
            await unknown.check()
    finally:
        await bad_token.stop()
        await unknown.stop()


def test_settings_are_validated_and_give_the_deep_link(fake: FakeWhatsApp) -> None:
    with pytest.raises(ValidationError, match="phone_number_id"):
        build_channel(ChannelSettings(**config(fake, phone_number_id="")))
    with pytest.raises(ValidationError, match="verify_token"):
        build_channel(ChannelSettings(**{**config(fake), "verify_token": ""}))
    with pytest.raises(ValidationError, match="api_version"):
        build_channel(ChannelSettings(**config(fake, api_version="latest")))
    ch = build_channel(ChannelSettings(**config(fake, api_version="21")))
    assert isinstance(ch, WhatsAppChannel)
    assert ch.settings.api_version == "v21.0"
    assert ch.deep_link() == "https://wa.me/78001234567"
    assert build_channel(ChannelSettings(**config(fake, phone=""))).deep_link() is None
