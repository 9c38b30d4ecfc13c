"""The cases the issue found, one by one: each answered below 500, without a traceback
in the log, and the channel still answers a normal message afterwards (a redelivered
5xx would hold every later update of the channel behind it)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from fuzz.hub import DEEP, PLATFORMS, Hub, dumps

Case = Callable[[Hub, str], tuple[dict[str, Any], int]]
SURROGATE = "\ud800"


def _msg(body: dict[str, Any], platform: str) -> dict[str, Any]:
    """The part of ``platform``'s body that holds the message fields."""
    if platform == "tg":
        return body["message"]
    if platform == "wa":
        return body["entry"][0]["changes"][0]["value"]["messages"][0]
    if platform == "viber":
        return body["message"]
    if platform == "vk":
        return body["object"]["message"]
    return body["message"]["body"]


def set_text(value: Any) -> Case:
    def build(hub: Hub, platform: str) -> tuple[dict[str, Any], int]:
        body = hub.base(platform)
        msg = _msg(body, platform)
        if platform == "wa":
            msg["text"]["body"] = value
        else:
            msg["text"] = value
        return body, 0

    return build


def caption(value: str) -> Case:
    def build(hub: Hub, platform: str) -> tuple[dict[str, Any], int]:
        body = hub.base(platform)
        msg = _msg(body, platform)
        if platform == "tg":
            msg.pop("text")
            msg["caption"] = value
            msg["photo"] = [{"file_id": "Ag\x00", "file_unique_id": "x", "width": 9, "height": 9}]
        elif platform == "wa":
            msg.update(type="image", image={"id": "1\x00", "caption": value, "mime_type": "x"})
        elif platform == "viber":
            msg.update(type="picture", text=value, media="https://x.invalid/a.jpg")
        elif platform == "vk":
            msg["text"] = value
        else:
            msg["text"] = value
        return body, 0

    return build


def name(value: Any) -> Case:
    def build(hub: Hub, platform: str) -> tuple[dict[str, Any], int]:
        body = hub.base(platform)
        if platform == "tg":
            body["message"]["from"]["first_name"] = value
            body["message"]["chat"]["first_name"] = value
        elif platform == "wa":
            body["entry"][0]["changes"][0]["value"]["contacts"][0]["profile"]["name"] = value
        elif platform == "viber":
            body["sender"]["name"] = value
        elif platform == "vk":
            body["object"]["message"]["text"] = value  # VK sends no name
        else:
            body["message"]["sender"]["first_name"] = value
            body["message"]["sender"]["name"] = value
        return body, 0

    return build


def user_id(value: Any) -> Case:
    """Where the sender's id belongs: a NUL, a surrogate, a string for an int, 5000 digits."""

    def build(hub: Hub, platform: str) -> tuple[dict[str, Any], int]:
        body = hub.base(platform)
        if platform == "tg":
            body["message"]["chat"]["id"] = value
            body["message"]["from"]["id"] = value
        elif platform == "wa":
            body["entry"][0]["changes"][0]["value"]["contacts"][0]["wa_id"] = value
            _msg(body, platform)["from"] = value
        elif platform == "viber":
            body["sender"]["id"] = value
        elif platform == "vk":
            body["object"]["message"]["peer_id"] = value
            body["object"]["message"]["from_id"] = value
        else:
            body["message"]["sender"]["user_id"] = value
        return body, 0

    return build


def message_id(value: Any) -> Case:
    def build(hub: Hub, platform: str) -> tuple[dict[str, Any], int]:
        body = hub.base(platform)
        if platform == "tg":
            body["message"]["message_id"] = value
            body["update_id"] = value
        elif platform == "wa":
            _msg(body, platform)["id"] = value
        elif platform == "viber":
            body["message_token"] = value
        elif platform == "vk":
            body["event_id"] = value
            body["object"]["message"]["id"] = value
            body["object"]["message"]["conversation_message_id"] = value
        else:
            body["message"]["body"]["mid"] = value
        return body, 0

    return build


def timestamp(value: Any) -> Case:
    def build(hub: Hub, platform: str) -> tuple[dict[str, Any], int]:
        body = hub.base(platform)
        if platform == "tg":
            body["message"]["date"] = value
        elif platform == "wa":
            _msg(body, platform)["timestamp"] = value
        elif platform == "viber":
            body["timestamp"] = value
        elif platform == "vk":
            body["object"]["message"]["date"] = value
        else:
            body["message"]["timestamp"] = value
            body["timestamp"] = value
        return body, 0

    return build


def press(data: Any, callback_id: Any = None) -> Case:
    def build(hub: Hub, platform: str) -> tuple[dict[str, Any], int]:
        return hub.press(platform, data, callback_id), 0

    return build


def phone(value: Any) -> Case:
    def build(hub: Hub, platform: str) -> tuple[dict[str, Any], int]:
        body = hub.base(platform)
        msg = _msg(body, platform)
        if platform == "tg":
            msg.pop("text")
            sender = body["message"]["from"]["id"]
            msg["contact"] = {"phone_number": value, "first_name": "И", "user_id": sender}
        elif platform == "wa":
            wa_contact = {"phones": [{"phone": value, "wa_id": value}], "name": {"first_name": "И"}}
            msg.update(type="contacts", contacts=[wa_contact])
            msg.pop("text")
        elif platform == "viber":
            msg.update(type="contact", contact={"name": "И", "phone_number": value})
        elif platform == "vk":
            msg["text"] = value
        else:
            owner = body["message"]["sender"]["user_id"]
            vcard = f"BEGIN:VCARD\r\nTEL;TYPE=cell:{value}\r\nFN:И\r\nEND:VCARD\r\n"
            msg["attachments"] = [
                {"type": "contact", "payload": {"vcf_info": vcard, "max_info": {"user_id": owner}}}
            ]
        return body, 0

    return build


def deep(levels: int, where: str) -> Case:
    def build(hub: Hub, platform: str) -> tuple[dict[str, Any], int]:
        body = hub.base(platform)
        if where == "text":
            _msg(body, platform)["text"] = DEEP
        else:
            body["extra"] = DEEP
        return body, levels

    return build


def whole(value: Any) -> Case:
    def build(hub: Hub, platform: str) -> tuple[dict[str, Any], int]:
        return value, 0

    return build


CASES: dict[str, Case] = {
    "nul_text": set_text("как оплатить\x00 картой"),
    "nul_caption": caption("счёт\x00"),
    "nul_first_name": name("Ив\x00ан"),
    "nul_user_id": user_id("1\x002"),
    "nul_message_id": message_id("m\x00"),
    "surrogate_text": set_text(f"спасибо {SURROGATE}"),
    "surrogate_name": name(f"Иван{SURROGATE}"),
    "surrogate_user_id": user_id(f"u{SURROGATE}"),
    "surrogate_callback_id": press("menu", f"cb{SURROGATE}"),
    "surrogate_callback_data": press(f"menu{SURROGATE}\x00"),
    "deep_5k_text": deep(5_000, "text"),
    "deep_100k_extra": deep(100_000, "extra"),
    "string_for_int_user_id": user_id("abc"),
    "string_for_int_message_id": message_id("not-a-number"),
    "float_user_id": user_id(1e308),
    "bool_user_id": user_id(True),
    "object_user_id": user_id({"id": 1}),
    "list_text": set_text(["a", 1]),
    "object_text": set_text({"text": "x"}),
    "int_text": set_text(2**70),
    "null_text": set_text(None),
    "id_300": user_id("7" * 300),
    "id_5000": user_id("9" * 5000),
    "int_id_300_digits": user_id(int("9" * 300)),
    "negative_id": user_id(-(2**63)),
    "message_id_5000": message_id("x" * 5000),
    "message_id_2_64": message_id(2**64),
    "callback_data_300": press("d" * 300),
    "callback_data_5000": press("d" * 5000, "c" * 5000),
    "callback_data_object": press({"p": {"q": [1, 2]}}),
    "phone_300_digits": phone("7" * 300),
    "phone_nul": phone("+7999\x001234567"),
    "timestamp_2_64": timestamp(2**64),
    "timestamp_negative": timestamp(-1),
    "timestamp_string": timestamp("yesterday"),
    "timestamp_float_huge": timestamp(1e308),
    "body_is_list": whole([1, 2, 3]),
    "body_is_string": whole("update"),
    "body_is_null": whole(None),
    "empty_object": whole({}),
}


@pytest.mark.parametrize("platform", PLATFORMS)
@pytest.mark.parametrize("case", sorted(CASES))
def test_hostile_body_is_answered_below_500(hub: Hub, platform: str, case: str) -> None:
    body, levels = CASES[case](hub, platform)
    r = hub.post(platform, dumps(body, levels))
    assert r.status_code < 500, f"{platform}/{case}: {r.status_code} {r.text[:200]}"
    assert hub.problems_after() == []


@pytest.mark.parametrize("platform", PLATFORMS)
def test_the_channel_still_answers_after_the_hostile_bodies(hub: Hub, platform: str) -> None:
    hub.still_answers(platform)
    assert hub.problems_after() == []
