"""Domain knowledge the examples cannot teach a linear model reliably.

* Another utility: gas, water, heating, waste, lifts, intercoms, capital repairs,
  internet, mobile operators, the management company (ТСЖ) — a question about them is
  not ours even when it is worded exactly like one of
  ours («как передать показания счётчика газа», «телефон водоканала»), unless
  electricity is mentioned too («газ есть, а плита электрическая — какой тариф?»).
* Digits that cannot be meter readings: «123123», «1111», «12345» (periodic, one digit
  repeated, a run up or down) — keyboard noise, not a submission.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Sequence

OTHER_UTILITY_LEMMAS = frozenset(
    [
        "газ",
        "газовик",
        "горгаз",
        "газоснабжение",
        "газоснабжающий",
        "газпром",
        "межрегионгаз",
        "вода",
        "водоканал",
        "водоснабжение",
        "водоотведение",
        "канализация",
        "канализационный",
        "отопление",
        "теплоснабжение",
        "теплосеть",
        "теплоэнерго",
        "капремонт",
        "мусор",
        "мусоровоз",
        "тко",
        "домофон",
        "лифт",
        "гвс",
        "хвс",
        "кубометр",
        "куб",
        # telecoms and the building's management: their tariffs, balances and bills
        # are worded like ours («тариф», «баланс», «квитанция»)
        "сотовый",
        "мтс",
        "билайн",
        "мегафон",
        "ростелеком",
        "провайдер",
        "роутер",
        "вайфай",
        "управляйка",
        "тсж",
    ]
)
# «мобильный» is ours in «мобильное приложение», another service's next to these.
MOBILE_SERVICE_LEMMAS = frozenset(["связь", "тариф", "баланс", "пополнить", "минута", "гигабайт"])
# Lemmas that tie a message to electricity whatever else it mentions.
ELECTRIC_LEMMAS = frozenset(
    [
        "свет",
        "электричество",
        "электроэнергия",
        "электрический",
        "электроплита",
        "электроснабжение",
        "электросчетчик",
        "электрик",
        "электросеть",
        "электроэнергетика",
        "электроотопление",
        "электроприбор",
        "электрокотел",
        "квт",
        "киловатт",
        "кв",
        "энергосбыт",
        "энергия",
        "напряжение",
        "проводка",
        "провод",
        "розетка",
        "щиток",
        "щит",
        "автомат",
        "пробка",
        "лампочка",
    ]
)
_ELECTRIC_PREFIXES = ("электр", "энерг")

_DIGITS_ONLY = re.compile(r"[\d\s.,\-+]+")


def other_utility(lemmas: Sequence[str]) -> bool:
    """The message is about another utility and does not mention electricity."""
    if not any(lem in OTHER_UTILITY_LEMMAS for lem in lemmas) and not (
        "мобильный" in lemmas and any(lem in MOBILE_SERVICE_LEMMAS for lem in lemmas)
    ):
        return False
    return not any(lem in ELECTRIC_LEMMAS or lem.startswith(_ELECTRIC_PREFIXES) for lem in lemmas)


def junk_number(text: str) -> bool:
    """Only digits, and they look typed at random: periodic, constant or a straight run."""
    stripped = text.strip()
    if not stripped or not _DIGITS_ONLY.fullmatch(stripped):
        return False
    digits = re.sub(r"\D", "", stripped)
    if len(digits) < 3:
        return False
    n = len(digits)
    for period in range(1, n // 2 + 1):
        if n % period == 0 and digits == digits[:period] * (n // period):
            return True
    steps = {(int(b) - int(a)) % 10 for a, b in itertools.pairwise(digits)}
    return steps in ({1}, {9})
