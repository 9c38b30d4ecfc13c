"""The one question the bot asks about free text: what does it mean?

Intent ids are the knowledge base's (``kb/intents/<id>.yaml``); ``fallback`` means "not sure
enough to answer". The keyword matcher below is the first implementation; a trained
classifier replaces it behind the same ``Understander`` protocol.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

FALLBACK = "fallback"


@dataclass(frozen=True)
class Interpretation:
    intent: str
    confidence: float
    # The closest intents with their scores, best first (for "did you mean" buttons).
    alternatives: tuple[tuple[str, float], ...] = field(default=())
    # The message contains obscene words (see ``profanity``): answer calmly, count it.
    profanity: bool = False
    # Why: "model" (the classifier decided), "threshold" (too unsure → fallback),
    # "out_of_scope" (closest to the out-of-scope examples), "other_utility", "noise",
    # "empty"; "" from understanders that do not say.
    reason: str = ""

    @property
    def understood(self) -> bool:
        return self.intent != FALLBACK


class Understander(Protocol):
    def parse(self, text: str) -> Interpretation: ...
