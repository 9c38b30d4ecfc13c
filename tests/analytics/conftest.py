"""The statistics' end-to-end tests drive a Telegram customer through a fake platform."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from fakes.telegram import FakeTelegram


@pytest.fixture
def fake() -> Iterator[FakeTelegram]:
    platform = FakeTelegram()
    platform.start()
    yield platform
    platform.stop()
