"""``abonent channels register|check`` from a config file, against fake platforms; the
widget lists the configured messengers with their deep links."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from abonent.cli import app
from abonent.config import get_settings
from fakes import max as fake_max
from fakes import telegram as fake_telegram
from support import LiveServer, make_settings


@pytest.fixture
def fakes() -> Iterator[tuple[fake_telegram.FakeTelegram, fake_max.FakeMax]]:
    with fake_telegram.FakeTelegram() as tg, fake_max.FakeMax() as mx:
        yield tg, mx  # type: ignore[misc]


def _config(path: Path, tg_url: str, max_url: str) -> Path:
    path.write_text(
        f"""
public_url = "https://cc.example.ru"

[[channels]]
id = "tg"
type = "telegram"
token = "{fake_telegram.TOKEN}"
secret = "{fake_telegram.SECRET}"
username = "energo_test_bot"
api_base = "{tg_url}"

[[channels]]
id = "max-main"
type = "max"
token = "{fake_max.TOKEN}"
secret = "{fake_max.SECRET}"
username = "energo_max_bot"
api_base = "{max_url}"
""",
        encoding="utf-8",
    )
    return path


def _invoke(config: Path, *args: str) -> tuple[int, str]:
    get_settings.cache_clear()
    result = CliRunner().invoke(app, ["channels", *args], env={"ABONENT_CONFIG": str(config)})
    get_settings.cache_clear()
    return result.exit_code, result.output


def test_register_then_check_every_channel(
    tmp_path: Path, fakes: tuple[fake_telegram.FakeTelegram, fake_max.FakeMax]
) -> None:
    tg, mx = fakes
    config = _config(tmp_path / "abonent.toml", tg.url, mx.url)
    code, out = _invoke(config, "check")
    assert code == 1, out  # nothing registered yet: MAX has no subscription to us

    code, out = _invoke(config, "register")
    assert code == 0, out
    assert tg.webhook["url"] == "https://cc.example.ru/webhooks/tg"
    assert tg.webhook["secret_token"] == fake_telegram.SECRET
    assert [s["url"] for s in mx.subscriptions] == ["https://cc.example.ru/webhooks/max-main"]

    code, out = _invoke(config, "check")
    assert code == 0, out
    assert "tg" in out and "max-main" in out

    code, out = _invoke(config, "check", "--channel", "nope")
    assert code == 1 and "unknown channel" in out


def test_register_needs_a_public_url(tmp_path: Path) -> None:
    config = tmp_path / "empty.toml"
    config.write_text("", encoding="utf-8")
    code, out = _invoke(config, "register")
    assert code == 2 and "--public-url" in out


async def test_the_widget_lists_configured_messengers_with_deep_links(
    fresh_database_url: str,
) -> None:
    channels = [
        {
            "id": "tg",
            "type": "telegram",
            "token": fake_telegram.TOKEN,
            "secret": fake_telegram.SECRET,
            "username": "@energo_test_bot",
        },
        {
            "id": "max-main",
            "type": "max",
            "token": fake_max.TOKEN,
            "secret": fake_max.SECRET,
            "username": "energo_max_bot",
        },
    ]
    server = LiveServer(make_settings(fresh_database_url, channels=channels)).start()
    try:
        async with httpx.AsyncClient() as http:
            config = (await http.get(f"{server.url}/api/client/v1/widget")).json()
    finally:
        server.stop()
    links = {m["type"]: m["url"] for m in config["messengers"]}
    # [company] lists Telegram itself (its wording wins); MAX comes from the channel.
    assert links["telegram"] == "https://t.me/energo_test_bot"
    assert links["max"] == "https://max.ru/energo_max_bot"
    assert links["vk"] == "https://vk.me/energo_test"
