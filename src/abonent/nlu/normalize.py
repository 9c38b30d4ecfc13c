"""Text normalisation shared by every matcher: case, ё, punctuation, repeated letters."""

from __future__ import annotations

import re

_PUNCT = re.compile(r"[^\w\s]+", re.UNICODE)
_SPACES = re.compile(r"\s+")
_REPEATS = re.compile(r"(\D)\1{2,}")


def normalize(text: str) -> str:
    """«Здраааавствуйте!!! Ёлки» → «здраавствуйте елки»: enough for keyword matching."""
    text = text.lower().replace("ё", "е")
    text = _PUNCT.sub(" ", text)
    text = _REPEATS.sub(r"\1\1", text)
    return _SPACES.sub(" ", text).strip()
