"""Personal account numbers and personal data as customers type them and as we may show them.

Customers write account numbers every which way ("л/с 12-345-678 90", "№ 12345678О9" with a
letter O), so the bot normalises before looking anything up. Before a customer has proved who
they are, the bot may only show masked holder names and addresses: enough for them to
recognise their account, too little to harvest someone else's personal data.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

# Prefixes people put before the number. Longest first, so "лицевой счёт" is not cut to "счёт".
_PREFIX_RE = re.compile(
    r"^\s*(?:"
    r"номер\s+лицевого\s+сч[её]та|лицевой\s+сч[её]т|лиц\.?\s*сч[её]т|"
    r"л\s*/\s*сч?|л\s*\.\s*с\s*\.?|лс|сч[её]т|ls"
    r")(?![а-яёa-z])[\s:.#№-]*",
    re.IGNORECASE,
)
# Separators people put inside the number; removing them is always safe for a digit string.
_SEPARATORS_RE = re.compile(r"[\s\-‐‑‒–—―.,/\\№#:_]+")
# Letters that look like digits in both alphabets; customers type them from a printed bill.
_LOOKALIKES = str.maketrans(
    {
        "О": "0",
        "о": "0",
        "O": "0",
        "o": "0",
        "З": "3",
        "з": "3",
        "l": "1",
        "I": "1",
        "|": "1",
    }
)


def normalise_account_number(text: str) -> str:
    """What is left of a typed account number once decoration and look-alike letters are gone.

    The result is digits for anything a customer could mean as a number; junk stays junk
    (with its letters as typed), so the caller can tell "not a number" from "wrong length".
    """
    compact = _SEPARATORS_RE.sub("", _PREFIX_RE.sub("", text.strip(), count=1))
    digits = compact.translate(_LOOKALIKES)
    # Letters are read as digits only when that makes the whole thing a number: in "мой счёт"
    # the "о" is a letter, in "12345678О9" it is a zero.
    return digits if digits.isdigit() else compact


@dataclass(frozen=True)
class AccountCheck:
    """Why a typed number is not usable, so the bot can say exactly what to fix."""

    # The normalised number when it is usable, else None.
    number: str | None
    problem: Literal["not_digits", "wrong_length"] | None
    # How many digits the normalised text holds ("в номере 9 цифр, а нужно 10").
    digits: int

    @property
    def ok(self) -> bool:
        return self.problem is None


def check_account_number(text: str, length: int) -> AccountCheck:
    normalised = normalise_account_number(text)
    digits = sum(ch.isdigit() for ch in normalised)
    if not normalised or not (normalised.isascii() and normalised.isdigit()):
        return AccountCheck(number=None, problem="not_digits", digits=digits)
    if len(normalised) != length:
        return AccountCheck(number=None, problem="wrong_length", digits=digits)
    return AccountCheck(number=normalised, problem=None, digits=digits)


# A run of digit groups joined by single spaces or dashes: "12-345-678 90". Parentheses and a
# leading "+" are taken in so that a phone number forms one run and can be recognised as such.
_RUN_RE = re.compile(r"\+?\(?\d+\)?(?:[ \u00a0]?[-‐‑–—]?[ \u00a0]?\(?\d+\)?)*")
_GROUP_RE = re.compile(r"\d+")


def find_account_in_text(text: str, length: int) -> str | None:
    """An account number inside a free-text message, or None.

    A run of digit groups ("12-345-678 90 12500") may hold the account and a reading typed
    after it, so only a contiguous stretch of whole groups adding up to exactly ``length``
    digits counts; a group is never split. A single group of the right length wins over a
    glued one, then the earliest. Ignored, so that they are not glued on: runs that look like
    phone numbers (a leading "+" or parentheses), the parts of a decimal ("12500,5"), and a
    group stuck to a letter ("т1") unless it is the whole number itself ("лс1234567890").
    """
    best: tuple[int, int, str] | None = None  # (groups used, position, number)
    for run in _RUN_RE.finditer(text):
        chunk = run.group()
        if chunk.startswith("+") or "(" in chunk or ")" in chunk:
            continue
        # None marks a decimal part: it belongs to no account and no stretch may cross it.
        groups: list[tuple[int, str] | None] = []
        for m in _GROUP_RE.finditer(chunk):
            start, end = m.start() + run.start(), m.end() + run.start()
            groups.append(None if _is_decimal_part(text, start, end) else (start, m.group()))
        for first, head in enumerate(groups):
            if head is None or (_stuck_to_letter(text, head[0]) and len(head[1]) != length):
                continue
            total = 0
            for last in range(first, len(groups)):
                item = groups[last]
                if item is None or (last > first and _stuck_to_letter(text, item[0])):
                    break
                total += len(item[1])
                if total > length:
                    break
                if total == length:
                    number = "".join(g[1] for g in groups[first : last + 1] if g is not None)
                    candidate = (last - first + 1, head[0], number)
                    if best is None or candidate[:2] < best[:2]:
                        best = candidate
                    break
    return best[2] if best else None


def _stuck_to_letter(text: str, position: int) -> bool:
    return position > 0 and text[position - 1].isalpha()


def _is_decimal_part(text: str, start: int, end: int) -> bool:
    """True for either side of a decimal separator, as in "12500,5" or "0.75".

    The same rule as for readings: a comma or dot followed by one or two digits.
    """
    if re.match(r"[.,]\d{1,2}(?!\d)", text[end:]):
        return True
    before = text[max(start - 2, 0) : start]
    return end - start <= 2 and bool(re.fullmatch(r"\d[.,]", before))


_PHONE_JUNK_RE = re.compile(r"[\s\-()‐‑–—.]+")


def normalise_phone(text: str) -> str | None:
    """``+7`` and ten digits from the ways Russian numbers are written, or None if it is not one.

    "8 (912) 345-67-89", "+7 912 345 67 89", "79123456789" all give "+79123456789".
    """
    compact = _PHONE_JUNK_RE.sub("", text.strip())
    if re.fullmatch(r"\+7\d{10}", compact):
        return compact
    if re.fullmatch(r"[78]\d{10}", compact):
        return "+7" + compact[1:]
    return None


_LEGAL_FORMS = {
    "ООО",
    "ОАО",
    "ЗАО",
    "ПАО",
    "АО",
    "НАО",
    "ИП",
    "МУП",
    "ГУП",
    "ФГУП",
    "ТСЖ",
    "ТСН",
    "ЖСК",
    "СНТ",
    "ДНТ",
    "ГБУ",
    "МБУ",
    "МКУ",
    "АНО",
    "НКО",
    "КФХ",
}


def _mask_word(word: str, keep: int = 2) -> str:
    """Keep the first letters, star every later letter; hyphens and quotes stay as they are."""
    letters = sum(ch.isalpha() for ch in word)
    keep = min(keep, max(letters - 1, 0))
    out: list[str] = []
    seen = 0
    for ch in word:
        if ch.isalpha():
            out.append(ch if seen < keep else "*")
            seen += 1
        else:
            out.append(ch)
    return "".join(out)


def _initial(word: str) -> str:
    for ch in word:
        if ch.isalpha():
            return ch.upper() + "."
    return ""


def mask_holder(holder: str) -> str:
    """Enough for the owner to recognise, too little for a stranger: "Ив**** И. И.".

    A sole trader ("ИП Иванов Иван Иванович") is a person and is masked as one after the legal
    form. Other organisations keep the legal form and the first letters of the name
    ("ООО «Ромашка»" → "ООО «Ро*****»"): a stranger should not learn whose account it is.
    """
    words = holder.split()
    if not words:
        return ""
    form = words[0].strip("«»\"'").upper()
    if form in _LEGAL_FORMS and len(words) > 1:
        rest = words[1:]
        if form == "ИП":
            return f"{words[0]} {mask_holder(' '.join(rest))}"
        return " ".join([words[0], _mask_word(rest[0]), *(_mask_word(w, 0) for w in rest[1:])])
    if any(q in holder for q in '«"') or form in _LEGAL_FORMS:
        return " ".join([_mask_word(words[0]), *(_mask_word(w, 0) for w in words[1:])])
    return " ".join([_mask_word(words[0]), *(_initial(w) for w in words[1:] if _initial(w))])


# House, building and flat markers; the number after them identifies a household.
_ADDRESS_NUMBER_RE = re.compile(
    r"(?P<marker>(?<![а-яёa-z])(?:дом|д|квартира|кв|корпус|корп|к|строение|стр|"
    r"литера|лит|офис|оф|помещение|пом|комната|комн|участок|уч)(?![а-яёa-z])\.?\s*)"
    r"(?P<number>\d+(?:\s*[/-]\s*\d+)*(?:\s*[а-яё](?![а-яё]))?)",
    re.IGNORECASE,
)
# A comma-separated part that is nothing but a house/flat number: "Ленина, 15-7".
_BARE_NUMBER_RE = re.compile(r"^\s*\d{1,4}(?:\s*[/-]\s*\d{1,4})*\s*[а-яё]?\s*$", re.IGNORECASE)
# A house number typed straight after the street name: "ул. Ленина 15".
_TRAILING_NUMBER_RE = re.compile(
    r"(?<=[а-яё.])(?P<sep>\s+)(?P<number>\d{1,4}(?:\s*[/-]\s*\d{1,4})*[а-яё]?)\s*$",
    re.IGNORECASE,
)
_STREET_RE = re.compile(
    r"^\s*(?:ул|улица|пр|пр-т|просп|проспект|пер|переулок|ш|шоссе|б-р|бульвар|наб|"
    r"набережная|пл|площадь|проезд|мкр|микрорайон|туп|тупик)(?![а-яё])",
    re.IGNORECASE,
)


def _stars(text: str) -> str:
    return "".join("*" if ch.isalnum() else ch for ch in text)


def mask_address(address: str) -> str:
    """Town and street stay, house and flat numbers become stars of the same length.

    "г. Энск, ул. Ленина, д. 15, кв. 7" → "г. Энск, ул. Ленина, д. **, кв. *". Numbers that
    are part of a street name ("ул. 8 Марта") stay; postcodes (six digits) stay too.
    """
    masked = _ADDRESS_NUMBER_RE.sub(
        lambda m: m.group("marker") + _stars(m.group("number")), address
    )
    parts = masked.split(",")
    for i, part in enumerate(parts):
        if i > 0 and _BARE_NUMBER_RE.match(part):
            parts[i] = _stars(part)
        elif _STREET_RE.match(part):
            parts[i] = _TRAILING_NUMBER_RE.sub(
                lambda m: m.group("sep") + _stars(m.group("number")), part
            )
    return ",".join(parts)


def mask_account(number: str) -> str:
    """Enough to tell accounts apart in logs, not to use one: "******7890"."""
    if len(number) <= 4:
        return "*" * len(number)
    return "*" * (len(number) - 4) + number[-4:]
