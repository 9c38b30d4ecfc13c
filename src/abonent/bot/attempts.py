"""What an attempt at each kind of waiting step looks like, judged from the text alone.

A customer in the middle of a flow may type the step's input (right or wrong) or ask
something else («а как оплатить картой?»). Only the first should reach the step and
count as a failed attempt; the second is the consultant's. These judges are cheap and
deliberately lenient towards the step: anything number-shaped at a number step is an
attempt, so a typo is corrected by the step, never answered as a question.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from abonent.billing.accounts import (
    check_account_number,
    find_account_in_text,
    normalise_account_number,
)
from abonent.billing.readings import parse_readings
from abonent.bot import texts as t
from abonent.bot.dialog import Expect, Shape
from abonent.config import Settings

# A judge of one kind of step: the text, and the settings (the account number's length).
Judge = Callable[[str, Settings], Shape]

_WORD = re.compile(r"[^\W\d_]+")
_DIGIT = re.compile(r"\d")
_EMAIL_SIGN = "@"
# A few letter-words may come with numbers that are still an attempt: «лс 1000000001»,
# «день 12500 ночь 5300», «12500 квт»; a sentence with a number in it is not.
_WORDS_WITH_NUMBERS = 3
# Longer than this, text with no question mark is still a sentence, not a name.
_NAME_WORDS = 6
_CONTACT_WORDS = 3

YES_WORDS = frozenset(
    {
        "да",
        "ага",
        "угу",
        "верно",
        "да верно",
        "да, верно",
        "ок",
        "ok",
        "yes",
        "подтверждаю",
        "все верно",
        "всё верно",
        "да, всё верно",
        "да, все верно",
        "правильно",
        "отправить",
        "отправляй",
    }
)
NO_WORDS = frozenset(
    {
        "нет",
        "не",
        "неа",
        "нет, другой счёт",
        "нет, другой счет",
        "no",
        "неверно",
        "не верно",
        "ввести заново",
        "заново",
    }
)


def _words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def _numbers_with_few_words(text: str) -> bool:
    return bool(_DIGIT.search(text)) and len(_words(text)) <= _WORDS_WITH_NUMBERS


def account(text: str, settings: Settings) -> Shape:
    """A number, a number with a word or two, or look-alike letters («1000-000-ОО1»)."""
    length = settings.billing.account_length
    if check_account_number(text, length).ok or find_account_in_text(text, length):
        return "attempt"
    if _numbers_with_few_words(text) or normalise_account_number(text).isdigit():
        return "attempt"
    return "aside"


def readings(text: str, settings: Settings) -> Shape:
    """Numbers, with zone names and units at most; «12.500» is an attempt too (a wrong one)."""
    if parse_readings(text) is not None or _numbers_with_few_words(text):
        return "attempt"
    return "aside"


def _yes_no_words(text: str) -> bool:
    word = text.strip().lower().rstrip("!.")
    if word in YES_WORDS or word in NO_WORDS:
        return True
    first = _words(word)[:1]
    return bool(first) and first[0] in {"да", "нет"} and len(_words(word)) <= 4


def yes_no(text: str, settings: Settings) -> Shape:
    """«да», «нет, другой счёт» and the like."""
    return "attempt" if _yes_no_words(text) else "aside"


def yes_no_or_account(text: str, settings: Settings) -> Shape:
    """At «Это ваш счёт?», a number typed instead is an attempt: the step asks again."""
    return "attempt" if _yes_no_words(text) or account(text, settings) == "attempt" else "aside"


def yes_no_or_readings(text: str, settings: Settings) -> Shape:
    """At «всё верно?» after a jump in readings, new numbers are a fresh attempt."""
    return "attempt" if _yes_no_words(text) or readings(text, settings) == "attempt" else "aside"


def contact(text: str, settings: Settings) -> Shape:
    """A phone or an e-mail; a couple of words («позвоните мне») may be a poor answer too."""
    if _DIGIT.search(text) or _EMAIL_SIGN in text:
        return "attempt"
    if "?" not in text and len(_words(text)) <= _CONTACT_WORDS:
        return "maybe"
    return "aside"


def name(text: str, settings: Settings) -> Shape:
    """A name is a few words without a question; the consultant decides if it is a name."""
    if "?" in text or _DIGIT.search(text) or len(_words(text)) > _NAME_WORDS:
        return "aside"
    return "maybe"


def optional_account(text: str, settings: Settings) -> Shape:
    """The appeal's account step: a number, or a word that skips it."""
    if text.strip().lower().rstrip("!.") in t.APPEAL_SKIP_WORDS:
        return "attempt"
    return account(text, settings)


ACCOUNT = Expect(account, t.HINT_ACCOUNT)
CONFIRM_ACCOUNT = Expect(yes_no_or_account, t.HINT_CONFIRM_ACCOUNT)
READINGS = Expect(readings, t.HINT_READINGS)
CONFIRM_READINGS = Expect(yes_no_or_readings, t.HINT_CONFIRM_READINGS)
APPEAL_NAME = Expect(name, t.HINT_APPEAL_NAME)
APPEAL_CONTACT = Expect(contact, t.HINT_APPEAL_CONTACT)
APPEAL_ACCOUNT = Expect(optional_account, t.HINT_APPEAL_ACCOUNT)
APPEAL_CONFIRM = Expect(yes_no, t.HINT_APPEAL_CONFIRM)
