"""Retraining: a lease so two runs never overlap, held-out checks that keep a worse model
out, and every process swapping in the accepted one (the page's run in a child process)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

import support
from abonent.db.session import Database
from abonent.nlu.classifier import TrainConfig
from abonent.nlu.edits import add_edit
from abonent.nlu.engine import Engine
from abonent.nlu.kb import KnowledgeBase
from abonent.nlu.retrain import Busy, ModelFollower, run_job, start_training, training
from support import LiveServer, Operator, make_settings, seed_users

FAST = replace(TrainConfig(folds=2), features=replace(TrainConfig().features, semantic=0.0))
NEW_WORDING = [
    "где закинуть бабки за свет",
    "куда скинуть деньги за электричество",
    "как закинуть деньги за электроэнергию",
    "закинуть бабки за электричество через телефон",
    "скинуть деньги за свет с карты",
]


# Tariff questions filed under power cuts (the fixture's own tariff examples, reworded):
# a mistake the held-out check must catch.
def _wrong(kb_dir: Path) -> list[str]:
    examples = KnowledgeBase.load(kb_dir).intents["tariffs"].examples
    return [f"{prefix} {e}" for e in examples for prefix in ("подскажите", "скажите пожалуйста")]


async def _edit(db: Database, kb_dir: Path, intent: str, texts: list[str]) -> None:
    await add_edit(
        db,
        KnowledgeBase.load(kb_dir),
        kind="examples",
        intent=intent,
        texts=texts,
        author_id=None,
        author_login="test",
    )


async def test_swapped_in_only_when_not_worse(db: Database, kb_copy: Path, nlu_cache: Path) -> None:
    engine = Engine.load(kb_copy, cache_dir=nlu_cache, config=FAST)
    follower = ModelFollower(db, engine)
    # Another server process on the same database and cache.
    other = Engine.load(kb_copy, cache_dir=nlu_cache, config=FAST)
    other_follower = ModelFollower(db, other)
    assert engine.parse(NEW_WORDING[0]).intent != "payment_methods"

    await _edit(db, kb_copy, "payment_methods", NEW_WORDING)
    run = await start_training(db, None)
    with pytest.raises(Busy) as busy:
        await start_training(db, None)  # the lease is held: nobody trains it twice
    assert busy.value.training_id == run.id
    report = await run_job(db, run.id, kb_copy, nlu_cache, config=FAST)
    assert report["accepted"], report
    assert report["after"]["review"] >= report["before"]["review"]
    assert (await training(db, run.id))["status"] == "accepted"  # type: ignore[index]
    assert await follower.poll_once()  # the process follows the accepted run
    assert engine.parse(NEW_WORDING[0]).intent == "payment_methods"
    assert not await follower.poll_once()  # nothing newer
    assert await other_follower.poll_once()
    assert other.parse(NEW_WORDING[0]).intent == "payment_methods"
    assert other.bundle.from_cache  # loaded what the run cached, not trained again

    await _edit(db, kb_copy, "power_outage", _wrong(kb_copy))
    worse = await start_training(db, None)  # the lease was released
    report = await run_job(db, worse.id, kb_copy, nlu_cache, config=FAST)
    assert not report["accepted"], report
    assert report["after"]["kb"] < report["before"]["kb"]
    assert (await training(db, worse.id))["status"] == "rejected"  # type: ignore[index]
    assert not await follower.poll_once()
    assert engine.parse("сколько стоит киловатт").intent == "tariffs"
    assert len(engine.edits) == 1


@pytest.fixture
def kb_server(
    fresh_database_url: str, kb_copy: Path, nlu_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[LiveServer]:
    engine = Engine.load(kb_copy, cache_dir=nlu_cache, config=FAST)
    monkeypatch.setattr(support, "_understanding", (engine, lambda: engine.kb))
    seed_users(fresh_database_url, {"ed": {"name": "Редактор", "role": "editor"}})
    server = LiveServer(make_settings(fresh_database_url)).start()
    try:
        yield server
    finally:
        server.stop()


async def test_the_page_retrains_in_a_child_process(kb_server: LiveServer, kb_copy: Path) -> None:
    ed = Operator(kb_server, "ed")
    assert (await ed.login()).status_code == 200
    headers = {"X-CSRF-Token": ed.csrf}
    r = await ed.http.post(
        "/api/kb/v1/edits",
        json={"kind": "examples", "intent": "payment_methods", "texts": NEW_WORDING},
        headers=headers,
    )
    assert r.status_code == 200, r.text
    r = await ed.http.post("/api/kb/v1/train", headers=headers)
    assert r.status_code == 202, r.text
    assert (await ed.http.post("/api/kb/v1/train", headers=headers)).status_code == 409
    deadline = time.monotonic() + 90
    seen: set[str] = set()
    while True:
        state = (await ed.http.get("/api/kb/v1/train")).json()["training"]
        seen.add(state["status"])
        if state["status"] != "running" or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.2)
    assert state["status"] == "accepted", state
    assert state["progress"] == 1.0 and "running" in seen
    assert state["report"]["before"]["kb_n"] > 0
    engine = kb_server.runtime.understander
    deadline = time.monotonic() + 30
    while engine.parse(NEW_WORDING[0]).intent != "payment_methods":  # type: ignore[attr-defined]
        assert time.monotonic() < deadline, "the server did not swap the model in"
        await asyncio.sleep(0.2)
    assert len(engine.edits) == 1  # type: ignore[attr-defined]
