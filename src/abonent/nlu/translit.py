"""Informal transliteration, Latin → Cyrillic: «kak peredat pokazaniya» → «как передать показания».

People write translit without a standard: «sch» is «щ» in «schet» for some and «сч» for
others, «y» is «ы», «й» or «у», «e» may be «е» or «э», «c» is «ц», «к» or «с». The
decoder therefore keeps every reading in a beam, scores them with a Russian character
model (``CharLM``) and lets the dictionary break ties among the best ones.
The reverse direction (``to_latin``) makes translit copies of the training examples.
"""

from __future__ import annotations

from collections.abc import Callable

from abonent.nlu.charlm import BOS, EOS, CharLM

# Latin sequence → Cyrillic readings (most usual first). Longest sequences are tried too.
RULES: dict[str, tuple[str, ...]] = {
    "shch": ("щ",),
    "sch": ("щ", "сч"),
    "zh": ("ж",),
    "kh": ("х",),
    "ch": ("ч", "чь"),
    "sh": ("ш", "шь"),
    "ts": ("ц", "тс"),
    "tz": ("ц",),
    "cz": ("ц",),
    "ck": ("к",),
    "ph": ("ф",),
    "ya": ("я", "ыа"),
    "ja": ("я", "жа"),
    "ia": ("ия", "я"),
    "yu": ("ю",),
    "ju": ("ю", "жу"),
    "iu": ("ию", "ю"),
    "yo": ("е", "йо"),
    "jo": ("е", "йо"),
    "ye": ("е", "ые", "йе"),
    "je": ("е", "же"),
    "yi": ("ый", "ий"),
    "iy": ("ий",),
    "ij": ("ий",),
    "yj": ("ый",),
    "a": ("а",),
    "b": ("б", "бь"),
    "c": ("ц", "к", "с"),
    "d": ("д", "дь"),
    "e": ("е", "э"),
    "f": ("ф", "фь"),
    "g": ("г",),
    "h": ("х",),
    "i": ("и", "й"),
    "j": ("й", "ж"),
    "k": ("к",),
    "l": ("л", "ль"),
    "m": ("м", "мь"),
    "n": ("н", "нь"),
    "o": ("о",),
    "p": ("п", "пь"),
    "q": ("к",),
    "r": ("р", "рь"),
    "s": ("с", "сь"),
    "t": ("т", "ть"),
    "u": ("у",),
    "v": ("в", "вь"),
    "w": ("в", "ш"),
    "x": ("кс", "х"),
    "y": ("ы", "й", "у"),
    "z": ("з", "зь"),
    "'": ("ь", "ъ"),
    "`": ("ь",),
}
_MAX_RULE = max(len(k) for k in RULES)
BEAM = 12
SOFT_SIGN_PENALTY = 1.0


def decode(
    word: str,
    lm: CharLM,
    is_known: Callable[[str], bool] | None = None,
    beam: int = BEAM,
) -> tuple[str, float]:
    """The most Russian-looking Cyrillic reading of a lower-case Latin word and its score.

    The score is the mean log-probability per character (see ``CharLM.word_score``),
    plus 1.0 when ``is_known`` recognises the word.
    """
    n = len(word)
    if n == 0:
        return "", 0.0
    # hyps[i]: list of (logprob, cyrillic) having consumed i Latin characters
    hyps: list[list[tuple[float, str]]] = [[] for _ in range(n + 1)]
    hyps[0] = [(0.0, "")]
    for i in range(n):
        current = hyps[i]
        if not current:
            continue
        if len(current) > beam:
            current.sort(key=lambda h: -h[0])
            del current[beam:]
        for length in range(1, _MAX_RULE + 1):
            chunk = word[i : i + length]
            if len(chunk) < length:
                break
            readings = RULES.get(chunk)
            if readings is None:
                if length == 1:  # not a letter we know: keep it as it is
                    readings = (chunk,)
                else:
                    continue
            for reading in readings:
                # a soft sign nobody typed is a guess: it must earn its place
                penalty = SOFT_SIGN_PENALTY if reading[-1] == "ь" and chunk != "'" else 0.0
                for logp, text in current:
                    score = logp - penalty
                    context = BOS + BOS + text
                    for ch in reading:
                        score += lm.char_logprob(context[-2], context[-1], ch)
                        context += ch
                    hyps[i + length].append((score, text + reading))
    final = []
    for logp, text in hyps[n]:
        score = logp + lm.char_logprob((BOS + BOS + text)[-2], (BOS + text)[-1], EOS)
        final.append((score / (len(text) + 1), text))
    final.sort(key=lambda h: -h[0])
    best_score, best = final[0]
    if is_known is not None:
        for score, text in final[:beam]:
            if score < best_score - 1.5:
                break
            if is_known(text):
                return text, score + 1.0
    return best, best_score


# ---- the reverse: Cyrillic → informal Latin, for augmenting the training examples ----
_TO_LATIN_A = {
    "а": "a", "б": "b", "в": "v", "г": "g", "д": "d", "е": "e", "ё": "e", "ж": "zh",
    "з": "z", "и": "i", "й": "y", "к": "k", "л": "l", "м": "m", "н": "n", "о": "o",
    "п": "p", "р": "r", "с": "s", "т": "t", "у": "u", "ф": "f", "х": "h", "ц": "c",
    "ч": "ch", "ш": "sh", "щ": "sch", "ъ": "", "ы": "y", "ь": "", "э": "e", "ю": "yu",
    "я": "ya",
}  # fmt: skip
_TO_LATIN_B = {
    **_TO_LATIN_A,
    "й": "j", "х": "kh", "ц": "ts", "щ": "shch", "ь": "'", "ю": "ju", "я": "ja",
    "ж": "j", "ы": "i",
}  # fmt: skip


def to_latin(text: str, variant: int = 0) -> str:
    """Informal translit of Russian text (two styles, chosen by ``variant``)."""
    table = _TO_LATIN_B if variant % 2 else _TO_LATIN_A
    return "".join(table.get(ch, ch) for ch in text.lower())
