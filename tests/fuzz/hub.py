"""One real server wired to every fake platform, and a way to post hostile bodies to it.

Bodies are posted as raw bytes with the platform's genuine authentication (the secret
header, or the HMAC of exactly those bytes), so what is tested is the parsing behind
the signature check, which is where an attacker with a leaked secret, or a platform
with a bug, reaches. ``dumps`` keeps lone surrogates (ASCII escapes, as JSON allows)
and can splice in nesting deeper than Python's own encoder can write.
"""

from __future__ import annotations

import asyncio
import json
import logging
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import create_async_engine

from abonent.db.models import Base, Message
from abonent.web.webhooks import follow_ups_done
from channels.conftest import (
    max_config,
    settle,
    telegram_config,
    viber_config,
    vk_config,
    whatsapp_config,
)
from fakes import max as max_api
from fakes import telegram as telegram_api
from fakes import vk as vk_api
from fakes import whatsapp as whatsapp_api
from fakes.max import FakeMax
from fakes.telegram import FakeTelegram
from fakes.viber import FakeViber
from fakes.vk import FakeVk
from fakes.whatsapp import FakeWhatsApp
from support import LiveServer, make_settings, seed_demo

PLATFORMS = ("tg", "wa", "viber", "vk", "max")
DEEP = "\x00deep\x00"  # a marker ``dumps`` replaces with nested brackets


def nested(levels: int) -> str:
    return "[" * levels + "]" * levels


def dumps(body: Any, deep: int = 0) -> bytes:
    """JSON with ASCII escapes; the string value ``DEEP`` becomes ``deep`` levels of
    nested arrays (Python's encoder would hit its recursion limit first)."""
    raw = json.dumps(body, ensure_ascii=True)
    if deep:
        raw = raw.replace(json.dumps(DEEP), nested(deep))
    return raw.encode()


class Problems(logging.Handler):
    """Every record that carries a traceback or says ERROR, from any thread."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info or record.levelno >= logging.ERROR:
            self.records.append(record)

    def take(self) -> list[str]:
        found = [f"{r.name}: {r.getMessage()[:300]}" for r in self.records]
        self.records.clear()
        return found


@dataclass
class Hub:
    server: LiveServer
    fakes: dict[str, Any]
    problems: Problems
    seq: Iterator[int] = field(default_factory=lambda: iter(range(10_000_000, 99_999_999)))
    http: httpx.Client = field(default_factory=lambda: httpx.Client(timeout=30))

    @property
    def url(self) -> str:
        return self.server.url

    # ------------------------------------------------------------------ valid shapes
    def base(self, platform: str, text: str = "Как оплатить?", user: int = 0) -> dict[str, Any]:
        """A genuine text message from a customer of ``platform`` (a fresh id each time)."""
        n = next(self.seq)
        user = user or 500_000_000 + n % 1000
        if platform == "tg":
            tg: FakeTelegram = self.fakes["tg"]
            return tg.message(user, text=text, sender=tg.user(user, "Иван", "Петров"))
        if platform == "wa":
            wa: FakeWhatsApp = self.fakes["wa"]
            phone = f"7999{user:07d}"[-11:]
            msg = wa.message("text", {"body": text}, wa_id=phone)
            return wa.event(wa.value(msg, wa_id=phone, name="Иван"))
        if platform == "viber":
            viber: FakeViber = self.fakes["viber"]
            return viber.message_event(f"u{user}A==", {"type": "text", "text": text})
        if platform == "vk":
            vk: FakeVk = self.fakes["vk"]
            return vk.message_new(user % 1_000_000_000 or 1, text)
        mx: FakeMax = self.fakes["max"]
        return mx.message_update(user, text)

    def press(self, platform: str, data: Any, callback_id: Any = None) -> dict[str, Any]:
        """A button press carrying ``data`` (callback data / payload / button id)."""
        n = next(self.seq)
        if platform == "tg":
            body = self.fakes["tg"].button_update("menu", 600_000_000 + n % 1000)
            body["callback_query"]["data"] = data
            if callback_id is not None:
                body["callback_query"]["id"] = callback_id
            return body
        if platform == "wa":
            body = self.fakes["wa"].button_reply_event("menu", "Меню")
            msg = body["entry"][0]["changes"][0]["value"]["messages"][0]
            msg["interactive"]["button_reply"]["id"] = data
            if callback_id is not None:
                msg["id"] = callback_id
            return body
        if platform == "viber":
            body = self.base("viber")
            body["message"]["tracking_data"] = data
            return body
        if platform == "vk":
            body = self.fakes["vk"].message_event(7000 + n % 1000, {"p": "menu"})
            body["object"]["payload"] = data
            if callback_id is not None:
                body["object"]["event_id"] = callback_id
            return body
        body = self.fakes["max"].callback_update(
            800_000 + n % 1000, "menu", callback_id="cb" + str(n)
        )
        body["callback"]["payload"] = data
        if callback_id is not None:
            body["callback"]["callback_id"] = callback_id
        return body

    # ------------------------------------------------------------------ delivery
    def post(self, platform: str, raw: bytes) -> httpx.Response:
        """``raw`` as the platform would deliver it, authenticated."""
        url = f"{self.url}/webhooks/{platform}"
        headers = {"Content-Type": "application/json"}
        if platform == "tg":
            headers["X-Telegram-Bot-Api-Secret-Token"] = telegram_api.SECRET
        elif platform == "wa":
            headers["X-Hub-Signature-256"] = self.fakes["wa"].sign(raw)
        elif platform == "viber":
            headers["X-Viber-Content-Signature"] = self.fakes["viber"].sign(raw)
        elif platform == "max":
            headers["X-Max-Bot-Api-Secret"] = max_api.SECRET
        return self.http.post(url, content=raw, headers=headers)

    def problems_after(self) -> list[str]:
        """The log's tracebacks and errors, once the follow-up calls in flight are done."""
        self.server.call(follow_ups_done())
        return self.problems.take()

    def bot_replies(self, channel_id: str) -> int:
        async def count() -> int:
            async with self.server.runtime.db.session() as session:
                query = (
                    select(func.count())
                    .select_from(Message)
                    .where(Message.channel_id == channel_id, Message.author == "bot")
                )
                return int(await session.scalar(query) or 0)

        result: int = self.server.call(count())
        return result

    def still_answers(self, platform: str) -> None:
        """A normal customer message right after is answered by the bot."""
        before = self.bot_replies(platform)
        r = self.post(platform, dumps(self.base(platform, "Как оплатить?")))
        assert r.status_code == 200, r.text
        deadline = time.monotonic() + 10
        while self.bot_replies(platform) <= before:
            settle(self.server)
            assert time.monotonic() < deadline, f"{platform}: no answer to a normal message"


def channels(fakes: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        telegram_config(fakes["tg"]),
        whatsapp_config(fakes["wa"]),
        viber_config(fakes["viber"]),
        vk_config(fakes["vk"]),
        max_config(fakes["max"]),
    ]


def module_database(template_url: str, folder: Path) -> str:
    """An empty migrated database for one test module (copied SQLite, truncated PG)."""
    if template_url.startswith("sqlite"):
        dst = folder / "fuzz.db"
        shutil.copy(Path(template_url.split(":///", 1)[1]), dst)
        return f"sqlite+aiosqlite:///{dst}"

    async def truncate() -> None:
        engine = create_async_engine(template_url)
        names = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
        async with engine.begin() as conn:
            await conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
        await engine.dispose()

    asyncio.run(truncate())
    return template_url


def start_hub(database_url: str, **settings: Any) -> Iterator[Hub]:
    fakes: dict[str, Any] = {
        "tg": FakeTelegram(),
        "wa": FakeWhatsApp(),
        "viber": FakeViber(),
        "vk": FakeVk(),
        "max": FakeMax(),
    }
    for fake in fakes.values():
        fake.start()
    seed_demo(database_url)
    problems = Problems()
    watched = [
        logging.getLogger(),
        logging.getLogger("uvicorn"),
        logging.getLogger("uvicorn.error"),
    ]
    for logger in watched:
        logger.addHandler(problems)
    settings.setdefault("public_url", "https://cc.example.ru")
    settings.setdefault("rate_limits", {"enabled": False})
    server = LiveServer(make_settings(database_url, channels=channels(fakes), **settings)).start()
    try:
        hub = Hub(server, fakes, problems)
        yield hub
        hub.http.close()
    finally:
        server.stop()
        for logger in watched:
            logger.removeHandler(problems)
        for fake in fakes.values():
            fake.stop()


__all__ = ["PLATFORMS", "Hub", "dumps", "module_database", "start_hub", "vk_api", "whatsapp_api"]
