"""`abonent nlu review` without a file reads what the server kept: misses and unsure guesses."""

from __future__ import annotations

import asyncio

import pytest
from typer.testing import CliRunner

from abonent.cli import app
from abonent.config import get_settings
from abonent.db.models import ChannelIdentity, Contact, Conversation, Message
from abonent.db.session import Database


async def _seed(url: str) -> None:
    db = Database(url)
    async with db.transaction() as session:
        contact = Contact()
        session.add(contact)
        await session.flush()
        identity = ChannelIdentity(contact_id=contact.id, channel_id="webchat", external_id="x")
        session.add(identity)
        await session.flush()
        conv = Conversation(
            contact_id=contact.id, identity_id=identity.id, channel_id="webchat", bot_state={}
        )
        session.add(conv)
        await session.flush()
        for text, meta in (
            ("какая погода завтра", {"intent": "fallback", "confidence": 0.9}),
            ("какая погода в субботу", {"intent": "fallback", "confidence": 0.8}),
            ("тариф вроде бы", {"intent": "tariffs", "confidence": 0.4}),
            ("сколько стоит киловатт", {"intent": "tariffs", "confidence": 0.97}),
            ("меню", None),
        ):
            session.add(
                Message(
                    conversation_id=conv.id,
                    identity_id=identity.id,
                    channel_id="webchat",
                    author="customer",
                    text=text,
                    meta=meta,
                )
            )
    await db.dispose()


def test_review_groups_the_stored_misses(
    fresh_database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    asyncio.run(_seed(fresh_database_url))
    monkeypatch.setenv("ABONENT_DATABASE_URL", fresh_database_url)
    monkeypatch.delenv("ABONENT_CONFIG", raising=False)
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(app, ["nlu", "review", "--days", "7"])
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 0, result.output
    out = result.output
    assert "какая погода завтра" in out and "какая погода в субботу" in out
    assert "тариф вроде бы" in out
    assert "сколько стоит киловатт" not in out and "меню" not in out
