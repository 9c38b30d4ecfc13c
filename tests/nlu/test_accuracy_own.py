"""The project's own evaluation set (tests/nlu/eval/own.tsv): well-formed, kept out of the
training data, and — on request — an accuracy floor of the real knowledge base on it.

Training the real knowledge base takes about a minute, so the floor runs when
``ABONENT_TEST_NLU_ACCURACY=1`` (or when the model is already in ``ABONENT_NLU_CACHE_DIR``);
the format and no-overlap checks always run and cost milliseconds."""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

import pytest

from abonent.nlu.classifier import TrainConfig
from abonent.nlu.engine import Engine, default_cache_dir, is_cached
from abonent.nlu.kb import DEFAULT_KB_DIR, KnowledgeBase
from abonent.nlu.normalize import normalize

OWN = Path(__file__).parent / "eval" / "own.tsv"
STYLES = {
    "real",
    "numbers",
    "long",
    "typos",
    "slang",
    "translit",
    "layout",
    "short",
    "out_of_scope_neighbour",
}
# Floors a little under the measured figures (docs/nlu.md): a regression guard.
FLOORS = {"all": 0.95, "real": 0.95, "numbers": 0.92, "long": 0.90}


def rows() -> list[tuple[str, str, str]]:
    lines = OWN.read_text(encoding="utf-8").splitlines()
    assert lines[0].split("\t") == ["text", "intent", "style"]
    out = []
    for line in lines[1:]:
        text, intent, style = line.split("\t")
        out.append((text, intent, style))
    return out


def test_own_set_is_well_formed() -> None:
    data = rows()
    assert len(data) >= 300
    kb = KnowledgeBase.load(DEFAULT_KB_DIR)
    known = set(kb.intents) | {"fallback"}
    assert {intent for _, intent, _ in data} <= known
    assert {style for _, _, style in data} <= STYLES
    counts = Counter(style for _, _, style in data)
    assert counts["long"] >= 30 and counts["numbers"] >= 30 and counts["real"] >= 100


def test_own_set_stays_out_of_the_training_data() -> None:
    texts, _ = KnowledgeBase.load(DEFAULT_KB_DIR).training_data()
    trained = {normalize(t) for t in texts}
    leaked = [text for text, _, _ in rows() if normalize(text) in trained]
    assert not leaked, leaked


def _wanted() -> bool:
    if os.environ.get("ABONENT_TEST_NLU_ACCURACY") == "1":
        return True
    return is_cached(KnowledgeBase.load(DEFAULT_KB_DIR), TrainConfig(), default_cache_dir())


@pytest.mark.skipif(not _wanted(), reason="set ABONENT_TEST_NLU_ACCURACY=1 (trains ~1 min)")
def test_accuracy_floor_on_the_own_set() -> None:
    engine = Engine.load()
    if engine._bundle.vectors is not None:
        engine._bundle.vectors._model()  # the encoder, as in a running server
    hits: Counter[str] = Counter()
    totals: Counter[str] = Counter()
    fell = in_scope = 0
    for text, gold, style in rows():
        intent = engine.parse(text).intent
        for key in ("all", style):
            totals[key] += 1
            hits[key] += int(intent == gold)
        if gold != "fallback":
            in_scope += 1
            fell += int(intent == "fallback")
    accuracy = {key: hits[key] / totals[key] for key in FLOORS}
    assert all(accuracy[key] >= floor for key, floor in FLOORS.items()), accuracy
    assert fell / in_scope <= 0.01
