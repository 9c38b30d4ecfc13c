"""Wrong keyboard layout: Russian typed on the English layout and vice versa.

The tables map the keys of the standard ЙЦУКЕН and QWERTY layouts onto each other,
punctuation keys included («gjrfpfybz» → «показания», «,fyr» → «банк»,
«ye;yf» → «нужна»). Whether a string *was* typed on the wrong layout is decided in
``normalize`` by comparing the candidates with a Russian character model and the
dictionary.
"""

from __future__ import annotations

_EN = "`qwertyuiop[]asdfghjkl;'zxcvbnm,./" + '~QWERTYUIOP{}ASDFGHJKL:"ZXCVBNM<>?' + "@#$^&"
_RU = "ёйцукенгшщзхъфывапролджэячсмитьбю." + "ЁЙЦУКЕНГШЩЗХЪФЫВАПРОЛДЖЭЯЧСМИТЬБЮ," + '"№;:?'

EN_TO_RU = str.maketrans(_EN, _RU)
RU_TO_EN = str.maketrans(_RU, _EN)

# Characters that are letters on the Russian layout but punctuation on the English one.
EN_PUNCT_LETTERS = frozenset("`[];',.~{}:\"<>")


def en_to_ru(text: str) -> str:
    """«ghbdtn» → «привет»."""
    return text.translate(EN_TO_RU)


def ru_to_en(text: str) -> str:
    """«руддщ» → «hello»."""
    return text.translate(RU_TO_EN)
