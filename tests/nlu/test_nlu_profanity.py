"""Obscene words: disguised spellings are found, everyday words of the domain are not."""

from __future__ import annotations

from pathlib import Path

import pytest

from abonent.nlu.kb import KnowledgeBase
from abonent.nlu.profanity import contains_profanity, mask_profanity

DEV_TSV = Path(__file__).resolve().parents[3] / "shared" / "nlu" / "dev.tsv"


@pytest.mark.parametrize(
    "text",
    [
        "бля",
        "ну ты блять даёшь",
        "xуй",  # Latin x
        "х.у.й",
        "х у й вам",
        "б**дь",
        "пи**ец полный",
        "Бляяяяять",
        "ПИЗДЕЦ!!!",
        "заебали уже",
        "6лядь",
        "blyat",
        "nahuy",
        "[eq",  # «хуй» on the English layout
        "сука",
        "ах ты ж е..ный",
        "охуенно",
        "долбоёб",
    ],
)
def test_finds_obscene_words(text: str) -> None:
    assert contains_profanity(text)


@pytest.mark.parametrize(
    "text",
    [
        "передать показания",
        "колебания напряжения в сети",
        "потреблять меньше",
        "в рублях",
        "употреблять",
        "страхуй",
        "застрахуйте квартиру",
        "психуй",
        "скипидар",
        "себя",
        "хлеб",
        "корабля",
        "оскорблять",
        "бляха муха",
        "хуже некуда",
        "хулиган",
        "мандарин",
        "мудрость",
        "педикюр",
        "сукно",
        "ребенок",
        "учебник",
        "квт*ч",
        "2*2",
        "т.е.",
        "л/с",
        "ебург",
    ],
)
def test_everyday_words_are_not_flagged(text: str) -> None:
    assert not contains_profanity(text)


def test_mask_keeps_first_and_last_letter() -> None:
    assert mask_profanity("ну ты бля, х.у.й") == "ну ты б*я, х***й"
    assert mask_profanity("сука!") == "с**а!"
    assert mask_profanity("всё нормально") == "всё нормально"


def test_no_false_positives_on_the_knowledge_base_and_dev_texts() -> None:
    kb = KnowledgeBase.load()
    texts, _ = kb.training_data()
    for intent in kb.intents.values():
        texts.extend(intent.keywords)
        if intent.answer is not None:
            texts.extend(intent.answer.text.splitlines())
    if DEV_TSV.exists():
        lines = DEV_TSV.read_text(encoding="utf-8").splitlines()[1:]
        texts.extend(line.split("\t")[0] for line in lines)
    flagged = [t for t in texts if contains_profanity(t)]
    assert flagged == []
