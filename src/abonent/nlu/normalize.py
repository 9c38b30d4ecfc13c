"""Text normalisation shared by every matcher.

``normalize(text)``: case, ё, punctuation, repeated letters — the light form the bot's
menu commands use.

``Normalizer.analyze(text)``: the full pipeline in front of the classifier:

1. Unicode NFKC, lower case, ё → е, invisible characters removed;
2. every Latin chunk is read three ways — as typed on the wrong (English) layout,
   as informal transliteration, or (mixed with Cyrillic) as Latin look-alike letters
   («xуй», «cчётчик») — and the most Russian-looking reading wins (character model +
   dictionary); a Cyrillic chunk that is no word but is English typed on the Russian
   layout («щзукфещк» → «operator» → «оператор») is converted as well;
3. abbreviations («л/с», «э/э», «квт*ч»), phone numbers → ``<phone>``, account-like
   digit runs (8+ digits) → ``<acct>``, other numbers → ``<num>``;
4. punctuation dropped, letters repeated three times or more squeezed
   («спасибооо» → «спасибо» when the dictionary knows it);
5. chat slang and abbreviations mapped to words («скок» → «сколько», «лк» →
   «личный кабинет»), unknown words corrected to the nearest word of the vocabulary
   (the knowledge base's words) within one or two edits;
6. lemmas (pymorphy3) for word features and keywords.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass

from abonent.nlu import lemmas
from abonent.nlu.charlm import CharLM
from abonent.nlu.layout import en_to_ru, ru_to_en
from abonent.nlu.translit import decode

_PUNCT = re.compile(r"[^\w\s]+", re.UNICODE)
_SPACES = re.compile(r"\s+")
_REPEATS = re.compile(r"(\D)\1{2,}")


def normalize(text: str) -> str:
    """«Здраааавствуйте!!! Ёлки» → «здраавствуйте елки»: enough for keyword matching."""
    text = text.lower().replace("ё", "е")
    text = _PUNCT.sub(" ", text)
    text = _REPEATS.sub(r"\1\1", text)
    return _SPACES.sub(" ", text).strip()


NUM = "<num>"
ACCT = "<acct>"
PHONE = "<phone>"
# A date or a time of day («12.11», «05.03.2025», «14:30»): a number that says *when*
# (deadlines, outages, payments) rather than how much.
DATE = "<date>"
SPECIAL_TOKENS = frozenset({NUM, ACCT, PHONE, DATE})

_INVISIBLE_RE = re.compile("[\u200b\u200c\u200d\u2060\ufeff\u00ad]")
_LATIN = re.compile(r"[a-z]")
_CYR = re.compile(r"[а-я]")
_CYR_WORD = re.compile(r"[а-я]+")
_LATIN_RUN = re.compile(r"[a-z']+")
_TRAILING = re.compile(r"[.,!?)]+$")

# Latin letters that look like Cyrillic ones (a chunk mixing both scripts).
_LOOKALIKE = str.maketrans("aceopxykmtbhu3", "асеорхукмтвнуз")

_ABBREVIATIONS = [
    (re.compile(r"(?<![а-я])л\s*[/\\.]\s*с(?![а-я])\.?"), " лс "),
    (re.compile(r"(?<![а-я])э\s*/\s*э(?![а-я])"), " электроэнергия "),
    (re.compile(r"(?<![а-я])эл\s*[/.]\s*эн(?:ерги[а-я]*)?(?![а-я])"), " электроэнергия "),
    (re.compile(r"(?<![а-я])эл\s*[-.]\s*(?:во|ва|ву|вом|ве)(?![а-я])"), " электричество "),
    (re.compile(r"квт\s*[*./·-]?\s*ч(?:ас)?(?![а-я])"), "квт ч"),
    (re.compile(r"(?<![а-я])кв\s*[*./·]?\s*м(?![а-я])"), " квадратный метр "),
    (re.compile(r"(?<![а-я])т\.\s*[кд]\.?"), " "),
]
# the abbreviations above need one of these; most messages have none
_ABBREVIATION_HINT = re.compile(r"[/\\.*·]|квт|(?<![а-я])(?:эл|кв)\s*[-.]")
_DIGIT = re.compile(r"\d")
_PHONE = re.compile(
    r"(?<!\d)(?:\+\s*7|8|7)[\s\-(]*\d{3}[\s\-)]*\d{3}[\s\-]*\d{2}[\s\-]*\d{2}(?!\d)"
)
_ACCT = re.compile(r"(?<!\d)\d{8,}(?!\d)")
_NUMBER = re.compile(r"\d+(?:[.,]\d+)?")
_DATE = re.compile(
    r"(?<![\d.,])(?:(?:0?[1-9]|[12]\d|3[01])\.(?:0[1-9]|1[0-2])(?:\.(?:\d{4}|\d{2}))?"
    r"|(?:[01]?\d|2[0-3]):[0-5]\d)(?!\d|[.,:]\d)"
)
# «2 340,50», «12 500»: thousands written apart are one sum, not two numbers
_GROUPED = re.compile(r"(?<![\d.,])(\d{1,3})(?:[ \u00a0\u202f](\d{3}))+(?![\d])")
_CURRENCY = re.compile(r"[₽$€]")
_TOKEN = re.compile(r"<(?:num|acct|phone|date)>|[^\W_]+(?:-[^\W_]+)*")

# Bounds on what one message may cost: a run of 41+ characters without a space is no
# word (the layout, translit and spelling steps would spend seconds on a 20,000-letter
# one), and nothing past the first MAX_CHARS characters changes what a message is about.
MAX_WORD = 40
MAX_CHARS = 4096
_LONG_RUN = re.compile(rf"\S{{{MAX_WORD + 1},}}")

# Chat slang and abbreviations → the words an editor would write.
SLANG: dict[str, str] = {
    "лс": "лицевой счет",
    "лсч": "лицевой счет",
    "лицевик": "лицевой счет",
    "лк": "личный кабинет",
    "личке": "личный кабинет",
    "элво": "электричество",
    "ээ": "электроэнергия",
    "скок": "сколько",
    "скоко": "сколько",
    "скока": "сколько",
    "сколко": "сколько",
    "скоька": "сколько",
    "щас": "сейчас",
    "ща": "сейчас",
    "счас": "сейчас",
    "сча": "сейчас",
    "че": "что",
    "чо": "что",
    "шо": "что",
    "што": "что",
    "чтоли": "что ли",
    "пасиб": "спасибо",
    "пасиба": "спасибо",
    "пасибо": "спасибо",
    "спс": "спасибо",
    "спасиб": "спасибо",
    "спасибки": "спасибо",
    "сенкс": "спасибо",
    "благодарочка": "спасибо",
    "плиз": "пожалуйста",
    "плз": "пожалуйста",
    "пжл": "пожалуйста",
    "пжлст": "пожалуйста",
    "пжлста": "пожалуйста",
    "пож": "пожалуйста",
    "пожалста": "пожалуйста",
    "пожалуста": "пожалуйста",
    "пожайлуста": "пожалуйста",
    "здрасте": "здравствуйте",
    "здрасьте": "здравствуйте",
    "здрасти": "здравствуйте",
    "здраствуйте": "здравствуйте",
    "здраствуй": "здравствуй",
    "здравствуте": "здравствуйте",
    "драсте": "здравствуйте",
    "тел": "телефон",
    "тлф": "телефон",
    "номерок": "номер",
    "квиток": "квитанция",
    "квитка": "квитанция",
    "квитку": "квитанцию",
    "квитки": "квитанции",
    "квитков": "квитанций",
    "платежка": "квитанция",
    "платежку": "квитанцию",
    "платежки": "квитанции",
    "доки": "документы",
    "доков": "документов",
    "инфа": "информация",
    "инфу": "информацию",
    "прила": "приложение",
    "прилага": "приложение",
    "приложуха": "приложение",
    "прилож": "приложение",
    "мб": "может быть",
    "тк": "так как",
    "руб": "рублей",
    "р": "рублей",
    "тыс": "тысяч",
    "тыщ": "тысяч",
    "ул": "улица",
    "кв": "квартира",
    "мес": "месяц",
    "ваще": "вообще",
    "щетчик": "счетчик",
    "щетчика": "счетчика",
    "щетчике": "счетчике",
    "щетчики": "счетчики",
    "щечик": "счетчик",
    "счечик": "счетчик",
    "счетчек": "счетчик",
    "электричесво": "электричество",
    "лектричество": "электричество",
    "електричество": "электричество",
    "електроэнергия": "электроэнергия",
    "ок": "хорошо",
    "окей": "хорошо",
    "оки": "хорошо",
}


@dataclass(frozen=True)
class Analysis:
    """What the classifier sees: normalised tokens and their lemmas."""

    original: str
    tokens: tuple[str, ...]
    lemmas: tuple[str, ...]
    # "layout", "translit", "layout+translit" when a chunk had to be converted
    conversion: str = ""

    @property
    def text(self) -> str:
        return " ".join(self.tokens)

    @property
    def lemma_text(self) -> str:
        return " ".join(self.lemmas)


class _BoundedCache:
    """A size-capped dict; emptied when full. Lock-free: a dict's get and set are atomic
    under the GIL, and a lost entry only costs recomputing it."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.data: dict[str, tuple[str, str]] = {}

    def get(self, key: str) -> tuple[str, str] | None:
        return self.data.get(key)

    def put(self, key: str, value: tuple[str, str]) -> None:
        if len(self.data) >= self.size:
            self.data.clear()
        self.data[key] = value


class Normalizer:
    """The normalisation pipeline; ``vocabulary_texts`` (the KB examples) train the
    character model and give the spelling corrector its words."""

    def __init__(self, vocabulary_texts: Iterable[str] = (), spell: bool = True) -> None:
        texts = list(vocabulary_texts)
        self.lm = CharLM(texts)
        self.spell = spell
        self._chunk_cache = _BoundedCache(100_000)
        self._word_cache = _BoundedCache(100_000)
        self._token_cache: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {}
        counts: dict[str, int] = {}
        for text in texts:
            for word in _CYR_WORD.findall(text.lower().replace("ё", "е")):
                counts[word] = counts.get(word, 0) + 1
        self.vocabulary = counts
        self._deletes: dict[str, list[str]] = {}
        for word in counts:
            if len(word) >= 4:
                for variant in _deletes1(word):
                    self._deletes.setdefault(variant, []).append(word)

    # ---------- scoring readings ----------
    def _word_score(self, word: str) -> float:
        score = self.lm.word_score(word)
        if lemmas.is_known(word) or word in self.vocabulary:
            score += 1.0
        return score

    def _reading_score(self, text: str) -> float:
        words = _CYR_WORD.findall(text)
        if not words:
            return -10.0
        total = sum(len(w) for w in words)
        score = sum(self._word_score(w) * len(w) for w in words) / total
        # characters left that are neither Cyrillic nor digits: a bad sign
        junk = len(re.sub(r"[а-я0-9\s\-]", "", text))
        return score - 0.5 * junk

    def _translit(self, chunk: str) -> str:
        def repl(match: re.Match[str]) -> str:
            return decode(match.group(0).strip("'"), self.lm, lemmas.is_known)[0]

        return _LATIN_RUN.sub(repl, chunk)

    def read_chunk(self, chunk: str) -> tuple[str, str, float, float]:
        """(best reading, how it was read, layout score, translit score) of a Latin chunk."""
        layout = en_to_ru(chunk)
        stripped = _TRAILING.sub("", chunk)
        candidates = [(self._reading_score(layout), layout)]
        if stripped != chunk:
            layout2 = en_to_ru(stripped) + chunk[len(stripped) :]
            candidates.append((self._reading_score(layout2), layout2))
        layout_score, layout_best = max(candidates)
        translit = self._translit(chunk)
        translit_score = self._reading_score(translit)
        if translit_score >= layout_score:
            return translit, "translit", layout_score, translit_score
        return layout_best, "layout", layout_score, translit_score

    def _fix_cyrillic(self, chunk: str) -> tuple[str, str]:
        """A Cyrillic chunk is kept unless it is an English/translit word on the RU layout."""
        word = re.sub(r"[^а-я]", "", chunk)
        if len(word) < 4 or lemmas.is_known(word) or word in self.vocabulary:
            return chunk, ""
        own = self.lm.word_score(word)
        if own > -3.2:
            return chunk, ""
        latin = ru_to_en(chunk)
        reading = self._translit(re.sub(r"[^a-z']", "", latin))
        if lemmas.is_known(reading) and self._word_score(reading) > own + 1.5:
            return reading, "layout+translit"
        return chunk, ""

    # ---------- the pipeline ----------
    def _convert(self, text: str) -> tuple[str, str]:
        if not _LATIN.search(text):  # the common case: nothing typed in Latin
            fixed: list[str] = []
            fixed_modes: set[str] = set()
            for chunk in text.split():
                cached = self._word_cache.get(chunk)
                if cached is None:
                    cached = self._fix_cyrillic(chunk) if _CYR.search(chunk) else (chunk, "")
                    self._word_cache.put(chunk, cached)
                fixed.append(cached[0])
                if cached[1]:
                    fixed_modes.add(cached[1])
            return " ".join(fixed), "+".join(sorted(fixed_modes))
        chunks = text.split()
        out: list[str] = []
        modes: set[str] = set()
        pending: list[tuple[int, str, float, float]] = []
        votes = {"layout": 0, "translit": 0}
        for chunk in chunks:
            if _LATIN.search(chunk):
                if _CYR.search(chunk):
                    out.append(chunk.translate(_LOOKALIKE))
                    continue
                cached = self._chunk_cache.get(chunk)
                if cached is not None:
                    reading, mode = cached
                    out.append(reading)
                    modes.add(mode)
                    votes[mode] += len(chunk)
                    continue
                reading, mode, s_layout, s_translit = self.read_chunk(chunk)
                if abs(s_layout - s_translit) < 0.5:
                    pending.append((len(out), chunk, s_layout, s_translit))
                else:
                    self._chunk_cache.put(chunk, (reading, mode))
                votes[mode] += len(chunk)
                modes.add(mode)
                out.append(reading)
            elif _CYR.search(chunk):
                cached = self._word_cache.get(chunk)
                if cached is None:
                    cached = self._fix_cyrillic(chunk)
                    self._word_cache.put(chunk, cached)
                out.append(cached[0])
                if cached[1]:
                    modes.add(cached[1])
            else:
                out.append(chunk)
        if pending:  # close calls follow the rest of the message
            majority = "layout" if votes["layout"] > votes["translit"] else "translit"
            for index, chunk, _, _ in pending:
                out[index] = en_to_ru(chunk) if majority == "layout" else self._translit(chunk)
        return " ".join(out), "+".join(sorted(modes))

    def _squeeze(self, token: str) -> str:
        if lemmas.is_known(token) or token in self.vocabulary:
            return token
        single = re.sub(r"(\w)\1+", r"\1", token)
        if single != token and (lemmas.is_known(single) or single in self.vocabulary):
            return single
        return token

    def _correct(self, token: str) -> str:
        if (
            not self.spell
            or len(token) < 5
            or token in self.vocabulary
            or not _CYR_WORD.fullmatch(token)
            or lemmas.is_known(token)
        ):
            return token
        cached = self._word_cache.get("\0" + token)
        if cached is not None:
            return cached[0]
        best = token
        best_count = 0
        for variant in (token, *_deletes1(token)):
            if variant != token and self.vocabulary.get(variant, 0) > best_count:
                best, best_count = variant, self.vocabulary[variant]
            for word in self._deletes.get(variant, ()):
                if _distance_ok(token, word) and self.vocabulary[word] > best_count:
                    best, best_count = word, self.vocabulary[word]
        self._word_cache.put("\0" + token, (best, ""))
        return best

    def analyze(self, text: str) -> Analysis:
        raw = unicodedata.normalize("NFKC", bounded(text))
        if _INVISIBLE_RE.search(raw):
            raw = _INVISIBLE_RE.sub("", raw)
        lowered = raw.lower().replace("ё", "е")
        converted, mode = self._convert(lowered)
        if _ABBREVIATION_HINT.search(converted):
            for pattern, replacement in _ABBREVIATIONS:
                converted = pattern.sub(replacement, converted)
        if _DIGIT.search(converted):
            converted = _PHONE.sub(f" {PHONE} ", converted)
            converted = _GROUPED.sub(
                lambda m: m.group(0).replace(" ", "").replace("\u00a0", "").replace("\u202f", ""),
                converted,
            )
            converted = _ACCT.sub(f" {ACCT} ", converted)
            converted = _DATE.sub(f" {DATE} ", converted)
            if "₽" in converted or "$" in converted or "€" in converted:
                converted = _CURRENCY.sub(" рублей ", converted)
            converted = _NUMBER.sub(f" {NUM} ", converted)
        tokens: list[str] = []
        lems: list[str] = []
        cache = self._token_cache
        for token in _TOKEN.findall(converted):
            entry = cache.get(token)
            if entry is None:
                entry = self._token(token)
                if len(cache) >= 200_000:
                    cache.clear()
                cache[token] = entry
            tokens.extend(entry[0])
            lems.extend(entry[1])
        return Analysis(original=text, tokens=tuple(tokens), lemmas=tuple(lems), conversion=mode)

    def _token(self, token: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """Normalised words and their lemmas for one token of the converted text."""
        if token in SPECIAL_TOKENS:
            return (token,), (token,)
        token = self._squeeze(_REPEATS.sub(r"\1\1", token))
        if "-" in token and token not in SLANG and not lemmas.is_known(token):
            parts = token.split("-")
        else:
            parts = [token]
        out: list[str] = []
        for part in parts:
            word = self._correct(part)
            if word in SLANG:
                out.extend(SLANG[word].split())
            else:
                out.append(word)
        return tuple(out), tuple(lemmas.lemma(w) for w in out)


MAX_SENTENCES = 12
_SENTENCE_END = re.compile(r"(?<=[.!?…])\s+|\n+")
_ASKING = re.compile(
    r"^(?:\W*(?:а|и|но|так|вот|скажите|подскажите|пожалуйста|уважаемые)\b[\s,]*)*"
    r"(?:как|где|куда|когда|сколько|почему|зачем|что|кто|какой|какая|какие|каким|можно|"
    r"могу|нужно|надо|прошу|хочу|помогите|объясните|дайте|разъясните|верните|пересчитайте|"
    r"сделайте|есть ли|будет ли|имеете ли|должен ли|должна ли)\b",
    re.IGNORECASE,
)


def question_sentence(text: str) -> str | None:
    """The sentence of a story-telling message that asks (the last with «?», else the
    last that starts like a question or a request); None for a message of one sentence.

    Only the first ``MAX_SENTENCES`` sentences are looked at: the cost stays linear."""
    if len(text) < 60 or not _SENTENCE_END.search(text):
        return None
    sentences = [s for s in _SENTENCE_END.split(bounded(text), MAX_SENTENCES) if s.strip()]
    sentences = sentences[:MAX_SENTENCES]
    if len(sentences) < 2:
        return None
    asked = [s for s in sentences if "?" in s]
    if not asked:
        asked = [s for s in sentences if _ASKING.match(s.strip())]
    if not asked or len(asked[-1].split()) < 2:
        return None
    return asked[-1]


def bounded(text: str) -> str:
    """The text cut to ``MAX_CHARS`` with every space-free run cut to ``MAX_WORD``: the
    steps after it are linear in its length with a small constant."""
    if len(text) > 16 * MAX_CHARS:  # what the APIs let through is far less
        text = text[: 16 * MAX_CHARS]
    if len(text) > MAX_WORD and _LONG_RUN.search(text):
        text = _LONG_RUN.sub(lambda m: m.group(0)[:MAX_WORD], text)
    return text[:MAX_CHARS]


def _deletes1(word: str) -> list[str]:
    return [word[:i] + word[i + 1 :] for i in range(len(word))]


def _distance_ok(a: str, b: str) -> bool:
    """Damerau-Levenshtein distance of at most 1 (a substitution, insertion, deletion or swap)."""
    if a == b:
        return True
    la, lb = len(a), len(b)
    if abs(la - lb) > 1:
        return False
    if la == lb:
        diff = [i for i in range(la) if a[i] != b[i]]
        if len(diff) == 1:
            return True
        return (
            len(diff) == 2
            and diff[1] == diff[0] + 1
            and a[diff[0]] == b[diff[1]]
            and a[diff[1]] == b[diff[0]]
        )
    if la > lb:
        a, b = b, a
    return any(b[:i] + b[i + 1 :] == a for i in range(len(b)))
