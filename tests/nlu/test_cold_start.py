"""The first start on a new machine: ``abonent demo`` with no model in the cache.

The server must open its port and answer within seconds (the knowledge base's keywords
stand in), train the model in the background with its progress in the log, and then
answer with the trained model, without a restart. A second process on the same cache
loads the model instead of training it again.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

from cold_start import PARAPHRASE, PAYMENT_ANSWER, QUESTION, Demo

# The demo runs on its own SQLite file whatever the pass: once is enough.
pytestmark = pytest.mark.skipif(
    bool(os.environ.get("ABONENT_TEST_DATABASE_URL")),
    reason="uses no test database: runs in the SQLite pass only",
)

FIRST_ANSWER_S = 5.0  # after the port opened: the demo's own seeding comes before it


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[Demo]:
    started = Demo(tmp_path)
    try:
        yield started
    finally:
        started.stop()


def test_first_start_answers_at_once_then_with_the_trained_model(demo: Demo) -> None:
    port_open = demo.wait_port()
    answer = demo.ask(QUESTION, limit=FIRST_ANSWER_S)
    first = demo.elapsed()
    assert PAYMENT_ANSWER in answer  # the knowledge base's answer, found by its keywords
    assert first - port_open < FIRST_ANSWER_S, (port_open, first)
    assert demo.stage() == "keywords"  # the model is still training
    # Keywords do not know this wording: the bot asks to rephrase.
    assert PAYMENT_ANSWER not in demo.ask(PARAPHRASE)

    demo.wait_model()
    assert PAYMENT_ANSWER in demo.ask(PARAPHRASE)  # same process, now the model
    log = demo.log.read_text(encoding="utf-8")
    assert "training the consultant: cross-validation fold 5/5 done" in log
    assert "consultant model in use" in log and "(trained)" in log
    assert "about a minute" not in log

    # A second server on the same cache loads the model: nothing is trained again.
    demo.stop()
    again = Demo(demo.folder)
    try:
        again.wait_port()
        again.wait_model(limit=again.elapsed() + 60)
        second_log = again.log.read_text(encoding="utf-8")
        assert "from the cache" in second_log and "training the consultant" not in second_log
    finally:
        again.stop()
