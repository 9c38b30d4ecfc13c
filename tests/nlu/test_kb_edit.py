"""The editors' review API: misses grouped, edits stored with who and when, applied on
top of the YAML knowledge base by the next build, exported as YAML and as a diff."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
import yaml
from sqlalchemy import select
from typer.testing import CliRunner

import support
from abonent.cli import app as cli_app
from abonent.config import get_settings
from abonent.db.models import AuditRecord, KbEdit
from abonent.nlu.classifier import TrainConfig
from abonent.nlu.edits import load_edits
from abonent.nlu.engine import Engine
from support import LiveServer, Operator, make_settings, on_server, seed_users, web_chat

# Small and quick: no word vectors, two folds (the fixture knowledge base trains in ~0.3 s).
FAST = replace(TrainConfig(folds=2), features=replace(TrainConfig().features, semantic=0.0))
USERS = {
    "ed": {"name": "Редактор", "role": "editor"},
    "op": {"name": "Оператор", "role": "operator"},
    "sup": {"name": "Старший", "role": "supervisor"},
}


@pytest.fixture
def kb_server(
    fresh_database_url: str, kb_copy: Path, nlu_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[LiveServer]:
    engine = Engine.load(kb_copy, cache_dir=nlu_cache, config=FAST)
    monkeypatch.setattr(support, "_understanding", (engine, lambda: engine.kb))
    seed_users(fresh_database_url, USERS)
    server = LiveServer(make_settings(fresh_database_url)).start()
    try:
        yield server
    finally:
        server.stop()


async def _signed(server: LiveServer, login: str) -> Operator:
    user = Operator(server, login)
    assert (await user.login()).status_code == 200
    return user


async def _kb(user: Operator, method: str, path: str, body: object = None) -> object:
    headers = {"X-CSRF-Token": user.csrf}
    if method == "GET":
        return await user.http.get(f"/api/kb/v1{path}")
    return await user.http.post(f"/api/kb/v1{path}", json=body or {}, headers=headers)


async def test_edits_are_stored_with_who_and_when_and_shape_the_next_build(
    kb_server: LiveServer, kb_copy: Path, nlu_cache: Path, tmp_path: Path
) -> None:
    async with web_chat(kb_server) as me:
        for text in ("какая погода завтра", "какая погода в субботу", "где закинуть бабки за свет"):
            await me.say(text)
    ed, op, sup = [await _signed(kb_server, login) for login in ("ed", "op", "sup")]

    assert (await _kb(op, "GET", "/review")).status_code == 403  # type: ignore[attr-defined]
    r = await _kb(sup, "GET", "/review")
    assert r.status_code == 200 and r.json()["can_edit"] is False  # type: ignore[attr-defined]
    r = await _kb(ed, "GET", "/review")
    body = r.json()  # type: ignore[attr-defined]
    assert body["can_edit"] is True
    texts = {m["text"]: m["id"] for g in body["groups"] for m in g["messages"]}
    assert {"какая погода завтра", "какая погода в субботу"} <= set(texts)
    weather = [g for g in body["groups"] if any("погода" in m["text"] for m in g["messages"])]
    assert len(weather) == 1 and weather[0]["size"] == 2  # grouped by meaning, counted

    async def audits() -> list[AuditRecord]:
        async with kb_server.runtime.db.session() as session:
            return list(await session.scalars(select(AuditRecord).order_by(AuditRecord.id)))

    seen = await on_server(kb_server, audits())
    assert [(a.user_id, a.action) for a in seen] == [(sup.id, "kb_review"), (ed.id, "kb_review")]

    # A supervisor looks but does not edit.
    r = await _kb(sup, "POST", "/edits", {"kind": "out_of_scope", "texts": ["x y"]})
    assert r.status_code == 403  # type: ignore[attr-defined]
    ids = [texts["какая погода завтра"], texts["какая погода в субботу"]]
    r = await _kb(ed, "POST", "/edits", {"kind": "out_of_scope", "message_ids": ids})
    assert r.status_code == 200, r.text  # type: ignore[attr-defined]
    r = await _kb(
        ed,
        "POST",
        "/edits",
        {
            "kind": "examples",
            "intent": "payment_methods",
            "message_ids": [texts["где закинуть бабки за свет"]],
        },
    )
    assert r.status_code == 200, r.text  # type: ignore[attr-defined]
    answer = {
        "text": "Счётчик меняет сетевая компания.",
        "buttons": [{"title": "Оператор", "payload": "operator"}],
    }
    r = await _kb(
        ed,
        "POST",
        "/edits",
        {
            "kind": "new_topic",
            "intent": "meter_replace",
            "title": "Замена счётчика",
            "texts": ["как заменить счётчик", "поменять электросчётчик"],
            "answer": answer,
        },
    )
    assert r.status_code == 200, r.text  # type: ignore[attr-defined]
    r = await _kb(ed, "POST", "/edits", {"kind": "examples", "intent": "nope", "texts": ["a b"]})
    assert r.status_code == 422  # type: ignore[attr-defined]

    stored = await on_server(kb_server, load_edits(kb_server.runtime.db))
    assert [(e.kind, e.author) for e in stored] == [
        ("out_of_scope", "ed"),
        ("examples", "ed"),
        ("new_topic", "ed"),
    ]
    assert all(e.created_at is not None for e in stored)
    assert stored[0].texts == ("какая погода завтра", "какая погода в субботу")

    async def authors() -> list[int | None]:
        async with kb_server.runtime.db.session() as session:
            return list(await session.scalars(select(KbEdit.author_id)))

    assert await on_server(kb_server, authors()) == [ed.id] * 3

    # Filed messages leave the review; the topics list has the new topic.
    r = await _kb(ed, "GET", "/review")
    left = {m["text"] for g in r.json()["groups"] for m in g["messages"]}  # type: ignore[attr-defined]
    assert not left & {"какая погода завтра", "где закинуть бабки за свет"}
    topics = {t["id"]: t for t in (await _kb(ed, "GET", "/topics")).json()["topics"]}  # type: ignore[attr-defined]
    assert topics["meter_replace"]["title"] == "Замена счётчика"

    # The diff, on the page's API and in the CLI.
    patch = (await _kb(ed, "GET", "/diff")).text  # type: ignore[attr-defined]
    # Only what changed: one added line in a file whose other lines stay as written.
    assert "+++ b/meter_replace.yaml" in patch and "+  - где закинуть бабки за свет" in patch
    assert "+  - какая погода в субботу" in patch  # «завтра» was an example already
    assert "\n-" not in patch.replace("\n--- ", "")

    # The next build applies the edits on top of the YAML files.
    engine = Engine.load(kb_copy, cache_dir=nlu_cache, config=FAST, edits=stored)
    assert "где закинуть бабки за свет" in engine.kb.intents["payment_methods"].examples
    assert engine.parse("как заменить счётчик").intent == "meter_replace"
    assert engine.parse("какая погода завтра").intent == "fallback"
    assert "какая погода завтра" in engine.kb.out_of_scope

    # The preview renders the answer channel by channel.
    r = await _kb(ed, "POST", "/preview", answer)
    shown = {c["channel"]: c for c in r.json()["channels"]}  # type: ignore[attr-defined]
    assert shown["telegram"]["buttons"] == ["Оператор", "Меню"]
    assert shown["whatsapp"]["buttons"] == ["Оператор", "Меню"]
    many = {
        "text": "Выберите",
        "buttons": [{"title": f"Вариант {i}", "payload": f"p{i}"} for i in range(12)],
    }
    r = await _kb(ed, "POST", "/preview", many)
    shown = {c["channel"]: c for c in r.json()["channels"]}  # type: ignore[attr-defined]
    assert shown["vk"]["buttons"] is None and "12. Вариант 11" in shown["vk"]["parts"][0]
    assert shown["whatsapp"]["note"]  # a list, not reply buttons

    # Export into YAML files: the knowledge base they make is the one with the edits.
    out = tmp_path / "exported"
    result = await asyncio.to_thread(
        _cli,
        kb_server.settings.database_url,
        ["nlu", "export-edits", str(out), "--kb", str(kb_copy)],
    )
    assert result.exit_code == 0, result.output
    assert "3 edit(s), 3 file(s) changed" in result.output
    exported = yaml.safe_load((out / "meter_replace.yaml").read_text(encoding="utf-8"))
    assert exported["answer"]["text"] == answer["text"]
    assert exported["examples"] == ["как заменить счётчик", "поменять электросчётчик"]
    assert "какая погода завтра" in (out / "_out_of_scope.yaml").read_text(encoding="utf-8")
    diff = await asyncio.to_thread(
        _cli, kb_server.settings.database_url, ["nlu", "diff-edits", "--kb", str(kb_copy)]
    )
    assert diff.exit_code == 0 and "+++ b/meter_replace.yaml" in diff.output


def _cli(url: str, args: list[str]) -> object:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ABONENT_DATABASE_URL", url)
        mp.delenv("ABONENT_CONFIG", raising=False)
        get_settings.cache_clear()
        try:
            return CliRunner().invoke(cli_app, args)
        finally:
            get_settings.cache_clear()
