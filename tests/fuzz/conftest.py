"""A module's worth of hostile requests share one server (starting one per example
would cost more than all the examples together)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from fuzz.hub import Hub, module_database, start_hub


@pytest.fixture(scope="module")
def hub(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    url = module_database(database_url, Path(tmp_path_factory.mktemp("fuzz")))
    yield from start_hub(url)
