"""Normalisation: layout both ways, translit, repeats, numbers, slang, look-alikes."""

from __future__ import annotations

import pytest

from abonent.nlu.layout import en_to_ru, ru_to_en
from abonent.nlu.normalize import (
    ACCT,
    DATE,
    MAX_CHARS,
    MAX_WORD,
    NUM,
    PHONE,
    Normalizer,
    bounded,
    normalize,
    question_sentence,
)
from abonent.nlu.translit import to_latin


@pytest.fixture(scope="module")
def norm() -> Normalizer:
    return Normalizer()


def test_layout_tables_are_inverse() -> None:
    assert en_to_ru("ghbdtn") == "привет"
    assert ru_to_en("привет") == "ghbdtn"
    assert en_to_ru(",fyr") == "банк"
    assert en_to_ru(ru_to_en("жёлтый щит, съешь")) == "жёлтый щит, съешь"


@pytest.mark.parametrize(
    ("typed", "expected"),
    [
        ("gthtlfnm gjrfpfybz", "передать показания"),
        ("rfr jgkfnbnm xthtp ghbkj;tybt", "как оплатить через приложение"),
        ("yfgbcfnm ghtntypb.", "написать претензию"),
        ("ye;yf rdbnfywbz", "нужна квитанция"),
    ],
)
def test_russian_typed_on_english_layout(norm: Normalizer, typed: str, expected: str) -> None:
    analysis = norm.analyze(typed)
    assert analysis.text == expected
    assert "layout" in analysis.conversion


def test_english_word_typed_on_russian_layout(norm: Normalizer) -> None:
    # «operator» typed with the Russian layout on
    analysis = norm.analyze("щзукфещк")
    assert analysis.text == "оператор"


@pytest.mark.parametrize(
    ("typed", "expected"),
    [
        ("kak peredat pokazaniya", "как передать показания"),
        ("schetchik", "счетчик"),
        ("hochu zhalobu", "хочу жалобу"),
        ("skolko stoit elektrichestvo", "сколько стоит электричество"),
        ("gde moya kvitanciya", "где моя квитанция"),
        ("nochnoy tarif", "ночной тариф"),
    ],
)
def test_informal_translit(norm: Normalizer, typed: str, expected: str) -> None:
    # «stoit» may come back as «стоит» or «стоить»: translit drops the soft sign, so
    # the words are compared by lemma
    assert norm.analyze(typed).lemmas == norm.analyze(expected).lemmas


def test_translit_round_trip_of_training_text(norm: Normalizer) -> None:
    latin = to_latin("передать показания счётчика")
    assert latin.isascii()
    assert norm.analyze(latin).text == "передать показания счетчика"


def test_case_yo_punctuation_repeats(norm: Normalizer) -> None:
    assert norm.analyze("СПАСИБОООООО!!!").text == "спасибо"
    assert norm.analyze("Ёлки, счётчик сгорел...").text == "елки счетчик сгорел"
    assert normalize("Здраааавствуйте!!! Ёлки") == "здраавствуйте елки"


def test_numbers_become_tokens(norm: Normalizer) -> None:
    tokens = norm.analyze("показания 18734 л/с 0203948571, тел 8 (902) 478-12-36").tokens
    assert NUM in tokens
    assert ACCT in tokens
    assert PHONE in tokens
    assert "лицевой" in tokens  # л/с
    assert not any(ch.isdigit() for t in tokens for ch in t)


def test_slang_and_abbreviations(norm: Normalizer) -> None:
    assert norm.analyze("скок стоит квт").tokens[0] == "сколько"
    assert norm.analyze("не работает лк").text == "не работает личный кабинет"
    assert norm.analyze("пасиб").text == "спасибо"


def test_latin_lookalikes_inside_cyrillic(norm: Normalizer) -> None:
    # «c» and «o» are Latin here
    assert norm.analyze("cчетчик cлoмался").text == "счетчик сломался"


def test_lemmas(norm: Normalizer) -> None:
    analysis = norm.analyze("передала показания счётчиков")
    assert analysis.lemmas == ("передать", "показание", "счетчик")


def test_spelling_correction_uses_the_vocabulary() -> None:
    norm = Normalizer(["квитанция не пришла", "электроэнергия"])
    assert norm.analyze("квитанцыя").text == "квитанция"


def test_sums_dates_and_times_keep_their_meaning(norm: Normalizer) -> None:
    # a sum written with a thousands space and «₽» is one amount in roubles
    assert norm.analyze("оплатила 2 340,50 ₽").tokens == ("оплатила", NUM, "рублей")
    # a date or a time says when, not how much
    assert norm.analyze("отключение 10.12 с 9:30").tokens == ("отключение", DATE, "с", DATE)
    assert norm.analyze("показания 31.12.2025: 4521").tokens == ("показания", DATE, NUM)
    # a reading with a decimal point or a month and year stay numbers
    assert DATE not in norm.analyze("тариф 5.66 руб, счет за 09.2025").tokens


def test_a_huge_word_or_message_is_cut_to_bounds(norm: Normalizer) -> None:
    # a 20,000-letter «word» is read as its first MAX_WORD letters: every later step
    # (layout, translit, spelling) works on that much only
    assert bounded("ф" * 20_000) == "ф" * MAX_WORD
    assert bounded("ab" * 10_000 + " свет") == "ab" * (MAX_WORD // 2) + " свет"
    assert len(bounded("свет " * 5_000)) == MAX_CHARS
    analysis = norm.analyze("qwertyuiop" * 2_000)
    assert all(len(token) <= MAX_WORD for token in analysis.tokens)
    assert len(norm.analyze("нет света " * 2_000).tokens) <= MAX_CHARS // 2


def test_the_question_of_a_long_message() -> None:
    story = (
        "Мы с мужем уехали на месяц, квитанцию никто не забирал. "
        "Соседи говорят, что приходил контролёр. Какая сумма сейчас к оплате?"
    )
    assert question_sentence(story) == "Какая сумма сейчас к оплате?"
    # no «?»: the last sentence that asks or requests
    request = "В октябре начислили 4800 кВт·ч, обычно около 150. Прошу сделать перерасчёт."
    assert question_sentence(request) == "Прошу сделать перерасчёт."
    assert question_sentence("сколько я должен за свет?") is None  # one sentence
    # a story of thousands of sentences: only the first MAX_SENTENCES are looked at
    assert question_sentence("Свет мигает. " * 2_000 + "Куда звонить?") is None
