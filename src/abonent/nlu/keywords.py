"""Keyword matching: a word stem found in the text decides the intent.

Deliberately simple: it covers the menu's own words and the commonest phrasings until
the statistical classifier arrives; stems are matched at word starts so «долг» finds
«долга» and «задолженность» but «оператор» does not fire inside another word.
"""

from __future__ import annotations

import re

from abonent.nlu.base import FALLBACK, Interpretation
from abonent.nlu.normalize import normalize

# intent → stems (prefixes of words) or whole phrases; the first match in this order wins.
KEYWORDS: dict[str, tuple[str, ...]] = {
    "operator": (
        "оператор",
        "живой человек",
        "живого человека",
        "с человеком",
        "специалист",
        "консультант",
        "соедините",
        "позовите",
        "operator",
    ),
    "readings_submit": ("показан", "передать показ", "pokazan", "счетчик", "счётчик"),
    "balance": (
        "баланс",
        "долг",
        "задолж",
        "сколько платить",
        "сколько я должен",
        "сколько должна",
        "к оплате",
        "переплат",
        "сколько заплатить",
        "balans",
    ),
    "thanks_bye": ("спасибо", "спс", "благодарю", "до свидания", "всего доброго", "spasibo"),
    "greeting": (
        "привет",
        "здравств",
        "здраств",
        "добрый день",
        "добрый вечер",
        "доброе утро",
        "доброго времени",
        "здрасте",
        "hello",
        "privet",
    ),
}

_PATTERNS = {
    intent: re.compile(r"(?:^|\s)(?:" + "|".join(re.escape(s) for s in stems) + ")")
    for intent, stems in KEYWORDS.items()
}


class KeywordUnderstander:
    def parse(self, text: str) -> Interpretation:
        norm = normalize(text)
        if not norm:
            return Interpretation(FALLBACK, 0.0)
        hits = [intent for intent, pattern in _PATTERNS.items() if pattern.search(norm)]
        if not hits:
            return Interpretation(FALLBACK, 0.0)
        # A greeting followed by a question belongs to the question.
        substantive = [h for h in hits if h not in ("greeting", "thanks_bye")]
        best = substantive[0] if substantive else hits[0]
        return Interpretation(best, 0.9, tuple((h, 0.9) for h in hits if h != best))
