"""Builds the configured channels from ``[[channels]]``; web chat is always there.

Each messenger is a plugin module with one ``MessengerChannel`` subclass; the map
below is the only place that names them, so adding a platform touches nothing else.
"""

from __future__ import annotations

import importlib
import logging

from abonent.channels.base import Channel, MessengerChannel
from abonent.channels.webchat import WEBCHAT_ID, WebChatChannel
from abonent.config import ChannelSettings, Settings

log = logging.getLogger(__name__)

PLUGINS: dict[str, str] = {
    "telegram": "abonent.channels.telegram:TelegramChannel",
    "whatsapp": "abonent.channels.whatsapp:WhatsAppChannel",
    "viber": "abonent.channels.viber:ViberChannel",
    "vk": "abonent.channels.vk:VkChannel",
    "max": "abonent.channels.max:MaxChannel",
}


def plugin(channel_type: str) -> type[MessengerChannel]:
    module_name, _, class_name = PLUGINS[channel_type].partition(":")
    cls: type[MessengerChannel] = getattr(importlib.import_module(module_name), class_name)
    return cls


def build_channel(cfg: ChannelSettings) -> Channel:
    if cfg.type == "webchat":
        return WebChatChannel(cfg.id)
    return plugin(cfg.type)(cfg)


def build_channels(settings: Settings) -> dict[str, Channel]:
    """Every configured channel; a bad entry stops the start with the field at fault
    (pydantic's message), because a silently missing channel loses customers."""
    channels: dict[str, Channel] = {WEBCHAT_ID: WebChatChannel(WEBCHAT_ID)}
    for cfg in settings.channels:
        if cfg.id in channels and cfg.id != WEBCHAT_ID:
            raise ValueError(f"channel id {cfg.id!r} is configured twice")
        channels[cfg.id] = build_channel(cfg)
    return channels


def messengers(channels: dict[str, Channel]) -> dict[str, MessengerChannel]:
    return {cid: c for cid, c in channels.items() if isinstance(c, MessengerChannel)}
