"""Fixtures of the intent-engine tests: a small knowledge base of our own (so the tests do
not depend on the exact content of the real one) and an engine trained on it once."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from abonent.nlu.classifier import TrainConfig
from abonent.nlu.engine import Engine

FIXTURE_KB = Path(__file__).parent / "kb_fixture"


@pytest.fixture(scope="session")
def nlu_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("nlu-cache")


@pytest.fixture(scope="session")
def engine(nlu_cache: Path) -> Engine:
    return Engine.load(FIXTURE_KB, cache_dir=nlu_cache, config=TrainConfig(folds=3))


@pytest.fixture()
def kb_copy(tmp_path: Path) -> Iterator[Path]:
    target = tmp_path / "kb"
    shutil.copytree(FIXTURE_KB, target)
    yield target
