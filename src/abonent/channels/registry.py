"""Builds the configured channels; web chat is always there."""

from __future__ import annotations

import logging

from abonent.channels.base import Channel
from abonent.channels.webchat import WEBCHAT_ID, WebChatChannel
from abonent.config import Settings

log = logging.getLogger(__name__)


def build_channels(settings: Settings) -> dict[str, Channel]:
    channels: dict[str, Channel] = {WEBCHAT_ID: WebChatChannel(WEBCHAT_ID)}
    for cfg in settings.channels:
        if cfg.type == "webchat":
            channels[cfg.id] = WebChatChannel(cfg.id)
        else:
            log.warning("channel %s: type %s is not available in this version", cfg.id, cfg.type)
    return channels
