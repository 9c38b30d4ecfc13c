"""The editors' review page in a real browser: misses grouped, a group filed under a
topic in one click, an answer previewed per channel, the diff, and a retraining whose
progress bar runs to a verdict with before/after accuracy."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

import support
from abonent.nlu.classifier import TrainConfig
from abonent.nlu.engine import Engine
from chromium import expect, new_page
from support import PASSWORD, LiveServer, make_settings, seed_users, web_chat

if TYPE_CHECKING:
    from playwright.async_api import Browser

FIXTURE_KB = Path(__file__).resolve().parents[1] / "nlu" / "kb_fixture"
FAST = replace(TrainConfig(folds=2), features=replace(TrainConfig().features, semantic=0.0))

# The page's checks are the same on either database: once is enough.
pytestmark = pytest.mark.skipif(
    bool(os.environ.get("ABONENT_TEST_DATABASE_URL")),
    reason="the API tests cover PostgreSQL; the page runs in the SQLite pass",
)


@pytest.fixture
def kb_server(
    fresh_database_url: str,
    tmp_path: Path,
    tmp_path_factory: pytest.TempPathFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[LiveServer]:
    import shutil

    kb = tmp_path / "kb"
    shutil.copytree(FIXTURE_KB, kb)
    engine = Engine.load(kb, cache_dir=tmp_path_factory.mktemp("nlu-cache"), config=FAST)
    monkeypatch.setattr(support, "_understanding", (engine, lambda: engine.kb))
    seed_users(fresh_database_url, {"ed": {"name": "Редактор", "role": "editor"}})
    server = LiveServer(make_settings(fresh_database_url)).start()
    try:
        yield server
    finally:
        server.stop()


async def test_editor_files_a_group_previews_an_answer_and_retrains(
    kb_server: LiveServer, browser: Browser
) -> None:
    async with web_chat(kb_server) as me:
        await me.say("какая погода завтра")
        await me.say("какая погода в субботу")
    page, errors = await new_page(browser, width=1400, height=1000)
    await page.goto(f"{kb_server.url}/operator/kb")
    await page.get_by_label("Логин").fill("ed")
    await page.get_by_label("Пароль").fill(PASSWORD)
    await page.get_by_role("button", name="Войти").click()
    await expect(page).to_have_url(f"{kb_server.url}/operator/kb")
    await expect(page.locator("#kb-page")).to_have_attribute("data-state", "ready")

    group = page.locator(".kb-group").filter(has_text="какая погода завтра")
    await expect(group).to_contain_text("какая погода в субботу")
    await expect(group.locator("h3")).to_have_text("2 сообщ.")
    await group.get_by_role("button", name="Не наша тема").click()
    await expect(group.locator(".kb-saved")).to_be_visible()
    await expect(page.locator("#edits tbody tr")).to_have_count(1)
    await expect(page.locator("#edits-diff")).to_contain_text("+  - какая погода в субботу")

    await page.locator("#topic-select").select_option("tariffs")
    await page.locator("#answer-buttons").fill("Узнать больше | tariffs_more")
    await page.get_by_role("button", name="Предпросмотр").click()
    telegram = page.locator(".kb-preview[data-channel='telegram']")
    await expect(telegram).to_contain_text("Тарифы устанавливает региональный регулятор.")
    await expect(telegram.locator(".kb-button")).to_have_text(["Узнать больше", "Меню"])

    await page.get_by_role("button", name="Переобучить").click()
    await expect(page.locator("#kb-page")).to_have_attribute(
        "data-training", "accepted", timeout=90_000
    )
    await expect(page.locator("#train-status")).to_contain_text("Новая модель принята")
    await expect(page.locator("#train-figures tbody tr")).to_have_count(2)
    await expect(page.locator("#train-progress")).to_be_hidden()
    errors.assert_none()
