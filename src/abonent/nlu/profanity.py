"""Russian obscene words, disguised spellings included.

A word is obscene when one of its readings matches a root *at the right place*: most
roots only at the start of the word or after a known prefix («на-хуй», «за-еб-ал»),
because the same letters sit inside everyday words of our domain — «употре-бля-ть»,
«ру-бля-х», «кол-еба-ния», «стра-хуй», «ски-пидар». Readings tried for each word:

* as written (lower case, ё → е), separators inside removed («х.у.й», «х-у-й»),
  repeated letters squeezed («бляяять»);
* Latin and digit look-alikes mapped to Cyrillic («xуй», «6лядь», «п0х»);
* naive transliteration («blyat», «nahuy») and the Russian keyboard layout typed as
  English («[eq»);
* letters hidden by asterisks («б**дь», «х*й»): matched against a lexicon of obscene
  word forms with each run of stars standing for one to three letters;
* single letters separated by spaces («х у й») are joined first.

``mask_profanity`` keeps the first and the last letter of such a word and replaces the
letters between with «*», so operators see «б***ь».
"""

from __future__ import annotations

import re
from functools import lru_cache

from abonent.nlu.layout import en_to_ru
from abonent.nlu.normalize import bounded

_PREFIX = r"(?:на|по|до|ни|о|от|за|рас|раз|под|пере|вы|у|при|про|недо|не|из)?"

# Patterns over a whole word (already lower case, ё → е, repeats squeezed).
_ROOTS = [
    rf"{_PREFIX}ху[йеяюи][а-я]*",
    r"[а-я]*пизд[а-я]*",
    r"[а-я]*ъеб[а-я]*",
    rf"{_PREFIX}еб[а-я]*",
    r"(?:долбо|долба|дол)еб[а-я]*",
    r"бля(?:|д[а-я]*|т[а-я]*)",
    r"(?:на|по)?хер(?:а|у|ом|ня|ни|ню|нь|ней|ов|ова|ово|овый|овая|овое|овые|ово|ами)?",
    r"хули",
    r"сук(?:а|и|е|у|ой|ам|ами|ах)",
    r"суч(?:ка|ки|ке|ку|кой|ара|ары|ий|ья|ье|ьи)[а-я]*",
    r"муда(?:к|ч)[а-я]*",
    r"мудил[а-я]*",
    r"мудозвон[а-я]*",
    r"пид(?:о|а)?р[а-я]*",
    r"педик(?:и|а|у|ов|ом|ами)?",
    r"г(?:а|о)ндон[а-я]*",
    r"шлюх[а-я]*",
    r"залуп[а-я]*",
    r"манда|мандавош[а-я]*",
    r"дроч[а-я]*",
    r"жоп[а-я]*",
    r"говн[а-я]*",
]
_OBSCENE = re.compile("(?:" + "|".join(_ROOTS) + ")")

# Everyday words that the patterns above would catch.
ALLOWLIST = frozenset(
    [
        "ебург",
        "ебурге",
        "ебурга",
        "ебургу",
        "ебитда",
        "хулиган",
        "хулиганы",
        "херсон",
        "херсоне",
        "херсона",
        "херувим",
    ]
)
_ALLOW_PREFIXES = ("ебург", "хулиган", "херсон", "херувим", "педикюр", "сукн", "дрочен")

# Obscene word forms for matching words with letters hidden by asterisks.
LEXICON = [
    "хуй",
    "хуя",
    "хую",
    "хуе",
    "хуем",
    "хуи",
    "хуев",
    "хуйня",
    "хуйню",
    "хуйни",
    "хуево",
    "хуево",
    "хуевый",
    "нахуй",
    "нахуя",
    "похуй",
    "похую",
    "дохуя",
    "нихуя",
    "охуеть",
    "охуел",
    "охуела",
    "охуели",
    "охуенно",
    "пизда",
    "пизду",
    "пизды",
    "пиздец",
    "пиздеж",
    "пиздит",
    "пиздишь",
    "спиздил",
    "спиздили",
    "распиздяй",
    "блядь",
    "блядина",
    "бляди",
    "блять",
    "бля",
    "ебать",
    "ебал",
    "ебала",
    "ебали",
    "ебаный",
    "ебаная",
    "ебаное",
    "ебаные",
    "ебанутый",
    "ебнуть",
    "ебет",
    "заебал",
    "заебали",
    "заебало",
    "наебали",
    "наебал",
    "уебок",
    "уебище",
    "выебываться",
    "отъебись",
    "съебись",
    "долбоеб",
    "сука",
    "суки",
    "суку",
    "хуярить",
    "хуячить",
    "захуярить",
    "отхуярить",
    "нахуярить",
    "хуйло",
    "хуесос",
    "пиздато",
    "пиздюк",
    "ебучий",
    "сучка",
    "мудак",
    "мудила",
    "пидор",
    "пидорас",
    "пидар",
    "гандон",
    "гондон",
    "шлюха",
    "залупа",
]

_HOMOGLYPHS = str.maketrans(
    {
        "a": "а", "b": "в", "c": "с", "e": "е", "k": "к", "m": "м", "h": "н", "o": "о",
        "p": "р", "t": "т", "x": "х", "y": "у", "u": "и", "n": "п", "r": "г",
        "0": "о", "3": "з", "6": "б", "@": "а", "$": "с", "ё": "е",
    }
)  # fmt: skip
_TRANSLIT = [
    ("shch", "щ"), ("sch", "щ"), ("zh", "ж"), ("kh", "х"), ("ch", "ч"), ("sh", "ш"),
    ("ts", "ц"), ("ya", "я"), ("ja", "я"), ("yu", "ю"), ("ju", "ю"), ("yo", "е"),
    ("ye", "е"), ("a", "а"), ("b", "б"), ("c", "ц"), ("d", "д"), ("e", "е"), ("f", "ф"),
    ("g", "г"), ("h", "х"), ("i", "и"), ("j", "й"), ("k", "к"), ("l", "л"), ("m", "м"),
    ("n", "н"), ("o", "о"), ("p", "п"), ("q", "к"), ("r", "р"), ("s", "с"), ("t", "т"),
    ("u", "у"), ("v", "в"), ("w", "в"), ("x", "х"), ("y", "й"), ("z", "з"), ("'", "ь"),
]  # fmt: skip
_TRANSLIT_RE = re.compile("|".join(re.escape(k) for k, _ in _TRANSLIT))
_TRANSLIT_MAP = dict(_TRANSLIT)

_CHUNK = re.compile(r"\S+")
_SEPARATORS = re.compile(r"[.\-_,|/\\+~^'\"`]+")
_LETTERS = re.compile(r"[^\W\d_]", re.UNICODE)


def _squeeze(word: str) -> str:
    return re.sub(r"(.)\1+", r"\1", word)


def _word_match(word: str) -> bool:
    if not word or word in ALLOWLIST or word.startswith(_ALLOW_PREFIXES):
        return False
    return _OBSCENE.fullmatch(word) is not None


def _star_match(word: str) -> bool:
    """«б**дь», «х*й», «п***ц»: some lexicon form fits with stars for 1–3 letters each."""
    parts = re.split(r"(\*+)", word)
    pattern = "".join(
        f"[а-я]{{1,{len(p) + 1}}}" if p.startswith("*") else re.escape(p) for p in parts
    )
    if len(re.sub(r"\*", "", word)) < 1:
        return False
    rx = re.compile(pattern)
    return any(rx.fullmatch(form) for form in LEXICON)


def _translit(word: str) -> str:
    return _TRANSLIT_RE.sub(lambda m: _TRANSLIT_MAP[m.group(0)], word)


def _readings(chunk: str) -> set[str]:
    low = chunk.lower().replace("ё", "е")
    # letters hidden by «*», «#», «%» or by two dots or more («е..ный»)
    low = re.sub(r"[#%]", "*", low)
    low = re.sub(r"(?<=\w)\.{2,}(?=\w)", lambda m: "*" * len(m.group(0)), low)
    # strip punctuation around the word, keep stars inside
    core = re.sub(r"^[^\w*@$]+|[^\w*@$]+$", "", low)
    joined = _SEPARATORS.sub("", core)
    readings = {core, joined}
    if re.search(r"[a-z0-9@$]", joined):
        readings.add(joined.translate(_HOMOGLYPHS))
        if re.fullmatch(r"[a-z'*]+", joined):
            readings.add(_translit(joined))
    typed = re.sub(r"[!?]+$", "", low)
    if re.search(r"[a-z]", typed) and not re.search(r"[а-я]", typed):
        readings.add(en_to_ru(typed))
    return {_squeeze(r) for r in readings} | readings


@lru_cache(maxsize=50_000)
def is_obscene_word(chunk: str) -> bool:
    """True when a whitespace-separated chunk is an obscene word in any of its readings."""
    for reading in _readings(chunk):
        if "*" in reading:
            if (
                re.fullmatch(r"[а-я*]+", reading)
                and re.search(r"[а-я]", reading)
                and _star_match(reading)
            ):
                return True
            continue
        if re.fullmatch(r"[а-я]+", reading) and _word_match(reading):
            return True
    return False


_SPACED_MAX = 16
_SPACED_BUDGET = 600


def _spans(text: str) -> list[tuple[int, int]]:
    """Character spans of obscene words (runs of spaced single letters included)."""
    chunks = [(m.start(), m.end(), m.group(0)) for m in _CHUNK.finditer(text)]
    spans: list[tuple[int, int]] = []
    used: set[int] = set()
    # «х у й»: three or more one-letter chunks in a row, read as one word
    i = 0
    budget = _SPACED_BUDGET  # windows tried per message: a bound on its cost
    while i < len(chunks):
        j = i
        while (
            j < len(chunks)
            and len(_LETTERS.findall(chunks[j][2])) == 1
            and len(chunks[j][2].strip(".,!?-*_")) == 1
        ):
            j += 1
        if j - i >= 3 and budget > 0:
            for a in range(i, j - 2):
                budget -= min(j, a + _SPACED_MAX) - a
                if budget < 0:
                    break
                # no obscene word is longer than _SPACED_MAX letters: without the bound a
                # long run of spaced letters costs cubic time (minutes for 4,000 chars)
                for b in range(min(j, a + _SPACED_MAX), a + 2, -1):
                    word = "".join(c[2].strip(".,!?-_") for c in chunks[a:b])
                    if is_obscene_word(word):
                        spans.append((chunks[a][0], chunks[b - 1][1]))
                        used.update(range(a, b))
                        break
        i = max(j, i + 1)
    for k, (start, end, chunk) in enumerate(chunks):
        if k not in used and is_obscene_word(chunk):
            spans.append((start, end))
    return sorted(spans)


# Cheap pre-check: a text matching none of these cannot contain anything found above.
_SUSPECT = re.compile(
    r"[*#%@$]|\.\.|[a-z]|[а-я][0-9]|[0-9][а-я]|ху|пизд|еб|бля|хер|хули|сук|суч|муд|пид|педик"
    r"|г[ао]ндон|шлюх|залуп|манд|дроч|жоп|говн"
    r"|(?<![а-я])[а-я][^а-яa-z0-9]+[а-я][^а-яa-z0-9]+[а-я](?![а-я])"
)


def contains_profanity(text: str) -> bool:
    # the parse's bounds (a message's first 4,096 characters, runs cut to 40): the
    # readings of a 20,000-letter run would cost tens of milliseconds
    text = bounded(text)
    if not _SUSPECT.search(text.lower().replace("ё", "е")):
        return False
    return bool(_spans(text))


def mask_profanity(text: str) -> str:
    """«ну ты бля, х.у.й» → «ну ты б*я, х***й»: inner letters of obscene words masked."""
    if not _SUSPECT.search(text.lower().replace("ё", "е")):
        return text
    spans = _spans(text)
    if not spans:
        return text
    out = list(text)
    for start, end in spans:
        positions = [i for i in range(start, end) if not out[i].isspace()]
        while positions and out[positions[-1]] in '!?.,:;)»"':
            positions.pop()
        while positions and out[positions[0]] in '(«"':
            positions.pop(0)
        for i in positions[1:-1]:
            out[i] = "*"
    return "".join(out)
