"""The engine on the fixture knowledge base: classification, fallback, calibration,
determinism, the model cache and hot reload, thread safety."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from abonent.nlu.base import FALLBACK, Understander
from abonent.nlu.classifier import TrainConfig
from abonent.nlu.engine import Engine
from abonent.nlu.rules import junk_number, other_utility

FIXTURE_KB = Path(__file__).parent / "kb_fixture"


@pytest.mark.parametrize(
    ("text", "intent"),
    [
        ("Здравствуйте!", "greeting"),
        ("подскажите как передать показания электросчётчика", "readings_submit"),
        ("gthtlfnm gjrfpfybz", "readings_submit"),  # wrong layout
        ("kak peredat pokazaniya", "readings_submit"),  # translit
        ("скок щас стоит 1 квт", "tariffs"),
        ("света нет второй час, что случилось", "power_outage"),
        ("соедините с живым оператором", "operator"),
        ("можно оплатить картой через приложение", "payment_methods"),
    ],
)
def test_classifies_unseen_wordings(engine: Engine, text: str, intent: str) -> None:
    result = engine.parse(text)
    assert result.intent == intent, result
    assert 0.0 <= result.confidence <= 1.0


@pytest.mark.parametrize(
    "text",
    ["", "   ", "?!", "фыва олдж йцук", "кто победит в чемпионате мира по футболу", "123123"],
)
def test_gibberish_and_out_of_scope_fall_back(engine: Engine, text: str) -> None:
    assert engine.parse(text).intent == FALLBACK


def test_other_utilities_fall_back(engine: Engine) -> None:
    result = engine.parse("как передать показания счётчика воды")
    assert result.intent == FALLBACK
    assert result.reason == "other_utility"
    # the closest topics are still offered
    assert result.alternatives[0][0] == "readings_submit"


def test_rules() -> None:
    assert junk_number("123123") and junk_number("1111") and junk_number("12345")
    assert not junk_number("18734") and not junk_number("день 4521")
    assert other_utility(["счетчик", "газ"])
    assert not other_utility(["газ", "плита", "электрический", "тариф"])


def test_interpretation_shape(engine: Engine) -> None:
    understander: Understander = engine  # the protocol the bot calls (checked by mypy)
    assert understander.parse("тариф").intent == "tariffs"
    result = engine.parse("сколько стоит киловатт")
    assert result.understood
    assert len(result.alternatives) == 3
    assert result.alternatives[0][0] == result.intent
    scores = [p for _, p in result.alternatives]
    assert scores == sorted(scores, reverse=True)
    assert FALLBACK not in [name for name, _ in result.alternatives]
    proba = engine.proba("сколько стоит киловатт")
    assert abs(sum(proba.values()) - 1.0) < 1e-4


def test_threshold_override(engine: Engine, nlu_cache: Path) -> None:
    strict = Engine.load(
        FIXTURE_KB, cache_dir=nlu_cache, config=TrainConfig(folds=3), threshold=1.01
    )
    assert strict.from_cache
    assert strict.parse("тариф").intent == FALLBACK
    assert engine.threshold == engine.model.calibration.threshold
    assert 0.0 <= engine.threshold < 0.9


def test_calibration_figures(engine: Engine) -> None:
    cal = engine.model.calibration
    assert 0.05 < cal.temperature < 10
    assert cal.reliability, "out-of-fold reliability table"
    assert 0.0 <= cal.ece <= 1.0


def test_profanity_flag(engine: Engine) -> None:
    assert engine.parse("да где этот с**ый свет, бля").profanity
    assert not engine.parse("нет света").profanity


def test_deterministic_training(tmp_path: Path, engine: Engine) -> None:
    again = Engine.load(
        FIXTURE_KB, cache_dir=tmp_path, config=TrainConfig(folds=3), use_cache=False
    )
    assert not again.from_cache
    assert again.model.labels == engine.model.labels
    np.testing.assert_array_equal(again.model.W, engine.model.W)
    assert again.model.calibration.threshold == engine.model.calibration.threshold
    for text in ("нет света", "тариф на ночь", "ghbdtn"):
        assert again.parse(text) == engine.parse(text)


def test_cache_hit_and_invalidation(kb_copy: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    config = TrainConfig(folds=2)
    first = Engine.load(kb_copy, cache_dir=cache, config=config)
    assert not first.from_cache
    second = Engine.load(kb_copy, cache_dir=cache, config=config)
    assert second.from_cache
    assert second.parse("нет света") == first.parse("нет света")
    assert not second.maybe_reload()  # nothing changed

    # an editor adds a new intent: the cache misses, the running engine reloads
    (kb_copy / "vacancies.yaml").write_text(
        "id: vacancies\ntitle: Вакансии\nkind: faq\nexamples:\n"
        + "".join(
            f"  - {t}\n"
            for t in [
                "есть ли вакансии",
                "хочу у вас работать",
                "куда отправить резюме",
                "требуются ли электромонтеры",
                "возьмете на работу",
                "работа в вашей компании",
                "ищу работу контролером",
                "стажировка для студентов",
            ]
        )
        + "answer:\n  text: Вакансии на сайте.\n",
        encoding="utf-8",
    )
    assert second.maybe_reload()
    assert "vacancies" in second.labels
    assert second.parse("есть ли у вас вакансии электрика").intent == "vacancies"
    third = Engine.load(kb_copy, cache_dir=cache, config=config)
    assert third.from_cache  # the reload wrote the new model to the cache


def test_broken_edit_keeps_the_running_model(kb_copy: Path, tmp_path: Path) -> None:
    engine = Engine.load(kb_copy, cache_dir=tmp_path, config=TrainConfig(folds=2))
    (kb_copy / "tariffs.yaml").write_text("id: tariffs\nexamples: [oops\n", encoding="utf-8")
    assert not engine.maybe_reload()
    assert engine.parse("сколько стоит киловатт").intent == "tariffs"


def test_thread_safe_parse(engine: Engine) -> None:
    texts = ["нет света", "тариф", "позовите оператора", "ghbdtn", "оплата картой"] * 40
    expected = [engine.parse(t) for t in texts]
    with ThreadPoolExecutor(max_workers=8) as pool:
        got = list(pool.map(engine.parse, texts))
    assert got == expected


def test_a_long_message_is_answered_by_its_question(engine: Engine) -> None:
    story = (
        "Добрый день. Вчера вечером у нас во всём доме пропал свет, потом дали, "
        "соседи говорят, что авария была на подстанции. Теперь вопрос другой: "
        "сколько сейчас стоит один киловатт-час по ночному тарифу?"
    )
    assert engine.parse(story).intent == "tariffs"


def test_unsure_messages_get_the_sentence_encoders_view(engine: Engine, nlu_cache: Path) -> None:
    bundle = engine._bundle
    assert bundle.sentences is not None
    assert bundle.sentences.matrix.shape[0] == len(engine.kb.training_data()[0])
    assert bundle.vectors is not None
    bundle.vectors._model()  # the encoder loaded (in a server: in the background)
    for text in ("хочу узнать насчёт цены киловатта", "свет пропал", "ghbdtn"):
        proba = engine.proba(text)
        assert abs(sum(proba.values()) - 1.0) < 1e-4
    # the index is cached with the model: a cached start does not encode the examples
    again = Engine.load(FIXTURE_KB, cache_dir=nlu_cache, config=TrainConfig(folds=3))
    assert again.from_cache and again._bundle.sentences is not None
    np.testing.assert_array_equal(again._bundle.sentences.matrix, bundle.sentences.matrix)
    # without the word vectors no encoder is asked for at all
    plain = TrainConfig(folds=2, features=replace(TrainConfig().features, semantic=0.0))
    assert Engine.load(FIXTURE_KB, cache_dir=nlu_cache, config=plain)._bundle.sentences is None


def test_a_huge_message_parses(engine: Engine) -> None:
    # one run of 20,000 letters, a 4,096-character message of spaced letters: bounded
    # work (their cost is measured in bench/nlu_bench.py; here: they are answered)
    assert engine.analyze("ы" * 20_000).tokens == engine.analyze("ыыыы").tokens
    assert engine.parse("qwertyuiop" * 2_000).intent == FALLBACK
    # spaced letters are tried as a hidden word a bounded number of times
    assert not engine.parse("а б в г д " * 400).profanity
    assert engine.parse("х у й " * 700).profanity
    assert engine.parse("нет света. " * 400).intent == "power_outage"
