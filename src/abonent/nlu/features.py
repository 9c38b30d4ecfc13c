"""Features of a normalised message, and a vectoriser fast enough for one message at a time.

Three blocks, each TF-IDF weighted (sublinear tf) and L2-normalised on its own, then
scaled by the block's weight:

* ``c``: character n-grams (2–5) inside word boundaries of the normalised tokens —
  absorbs typos, missing spaces and endings;
* ``w``: lemma unigrams and bigrams — the words, whatever their form;
* ``k``: the editors' keywords found in the message (``k=<intent>``), matched on lemmas
  (whole words) or on word starts (stems such as «задолж»).

scikit-learn's vectorisers cost ≈0.3 ms per call on a single text; this one keeps plain
dicts and returns (indices, values) so a parse costs tens of microseconds.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp  # type: ignore[import-untyped, unused-ignore]

from abonent.nlu import lemmas
from abonent.nlu.normalize import SPECIAL_TOKENS, Analysis, Normalizer

# Function words that carry no topic: kept for char n-grams, dropped from word features.
STOP_LEMMAS = frozenset(
    [
        "и",
        "в",
        "во",
        "не",
        "на",
        "я",
        "он",
        "она",
        "оно",
        "они",
        "мы",
        "вы",
        "ты",
        "что",
        "как",
        "так",
        "это",
        "то",
        "тот",
        "та",
        "те",
        "весь",
        "быть",
        "бы",
        "же",
        "ли",
        "ну",
        "да",
        "а",
        "но",
        "или",
        "если",
        "у",
        "к",
        "с",
        "со",
        "о",
        "об",
        "от",
        "до",
        "по",
        "за",
        "из",
        "для",
        "при",
        "про",
        "под",
        "над",
        "уже",
        "еще",
        "ещё",
        "вот",
        "там",
        "тут",
        "здесь",
        "мой",
        "моя",
        "наш",
        "ваш",
        "свой",
        "его",
        "её",
        "их",
        "мне",
        "меня",
        "нам",
        "нас",
        "вам",
        "вас",
        "ему",
        "ей",
        "им",
        "который",
        "такой",
        "этот",
        "очень",
        "просто",
        "пожалуйста",
        "подсказать",
        "подскажите",
    ]
)


@dataclass
class FeatureConfig:
    char_min: int = 2
    char_max: int = 5
    word_bigrams: bool = True
    weights: dict[str, float] = field(default_factory=lambda: {"c": 1.0, "w": 0.6, "k": 0.5})
    min_df: int = 1
    # weight of the dense block of word vectors from the sentence encoder (0: none)
    semantic: float = 1.0


class KeywordMatcher:
    """Finds the editors' keywords in an analysed message.

    A keyword word that the dictionary knows is matched by lemma («счётчики» finds
    «счетчик»); an unknown one is a stem matched at word starts («задолж»). Phrases match
    as consecutive words.
    """

    def __init__(self, keywords: Mapping[str, Iterable[str]], normalizer: Normalizer) -> None:
        # first element → list of (intent, pattern); a pattern is a tuple of (is_stem, text)
        self._by_lemma: dict[str, list[tuple[str, tuple[tuple[bool, str], ...]]]] = {}
        self._by_prefix: dict[str, list[tuple[str, tuple[tuple[bool, str], ...]]]] = {}
        for intent, words in keywords.items():
            for keyword in words:
                pattern = self._compile(keyword, normalizer)
                if not pattern:
                    continue
                is_stem, first = pattern[0]
                if is_stem:
                    self._by_prefix.setdefault(first[:3], []).append((intent, pattern))
                else:
                    self._by_lemma.setdefault(first, []).append((intent, pattern))

    @staticmethod
    def _compile(keyword: str, normalizer: Normalizer) -> tuple[tuple[bool, str], ...]:
        analysis = normalizer.analyze(keyword)
        parts: list[tuple[bool, str]] = []
        for token, lem in zip(analysis.tokens, analysis.lemmas, strict=True):
            if token in SPECIAL_TOKENS:
                parts.append((False, token))
            elif lemmas.is_known(token) or not token.isalpha() or len(token) < 4:
                parts.append((False, lem))
            else:
                parts.append((True, token))
        return tuple(parts)

    @staticmethod
    def _matches(
        pattern: tuple[tuple[bool, str], ...], tokens: Sequence[str], lems: Sequence[str], i: int
    ) -> bool:
        if i + len(pattern) > len(tokens):
            return False
        for k, (is_stem, text) in enumerate(pattern):
            if is_stem:
                if not tokens[i + k].startswith(text):
                    return False
            elif lems[i + k] != text:
                return False
        return True

    def find(self, analysis: Analysis) -> set[str]:
        """Intents whose keywords occur in the message."""
        tokens, lems = analysis.tokens, analysis.lemmas
        hits: set[str] = set()
        by_lemma, by_prefix = self._by_lemma, self._by_prefix
        for i, lem in enumerate(lems):
            candidates = by_lemma.get(lem)
            if candidates is not None:
                for intent, pattern in candidates:
                    if intent not in hits and (
                        len(pattern) == 1 or self._matches(pattern, tokens, lems, i)
                    ):
                        hits.add(intent)
            token = tokens[i]
            candidates = by_prefix.get(token[:3])
            if candidates is not None:
                for intent, pattern in candidates:
                    if intent not in hits and self._matches(pattern, tokens, lems, i):
                        hits.add(intent)
        return hits


def token_ngrams(token: str, lo: int, hi: int) -> list[str]:
    """The distinct character n-grams of one word, padded with spaces (« сч», «чет »)."""
    word = " " + token + " "
    n_chars = len(word)
    grams: dict[str, None] = {}
    for n in range(lo, hi + 1):
        if n > n_chars:
            break
        for i in range(n_chars - n + 1):
            grams[word[i : i + n]] = None
    return list(grams)


def char_ngrams(tokens: Sequence[str], lo: int, hi: int) -> list[str]:
    """Each word's distinct n-grams: a gram counts once per word that has it."""
    grams: list[str] = []
    for token in tokens:
        grams.extend(token_ngrams(token, lo, hi))
    return grams


def word_ngrams(lems: Sequence[str], bigrams: bool) -> list[str]:
    content = [lem for lem in lems if lem not in STOP_LEMMAS]
    grams = content[:]
    if bigrams:
        grams.extend(a + " " + b for a, b in itertools.pairwise(content))
    return grams


BLOCKS = ("c", "w", "k")
TOKEN_CACHE_SIZE = 200_000


class Vectorizer:
    """TF-IDF over the sparse blocks; ``fit`` on training analyses, ``one`` per message."""

    def __init__(self, config: FeatureConfig | None = None) -> None:
        self.config = config or FeatureConfig()
        self.vocab: dict[str, int] = {}
        self.idf: npt.NDArray[np.float32] = np.zeros(0, dtype=np.float32)

    def raw(self, analysis: Analysis, keyword_hits: Iterable[str]) -> dict[str, list[str]]:
        cfg = self.config
        return {
            "c": char_ngrams(analysis.tokens, cfg.char_min, cfg.char_max),
            "w": word_ngrams(analysis.lemmas, cfg.word_bigrams),
            "k": sorted(keyword_hits),
        }

    # ---------- training: whole matrices ----------
    def fit_vocabulary(self, raws: Sequence[dict[str, list[str]]]) -> sp.csr_matrix:
        """Build the vocabulary (features seen in ``min_df`` messages) and return counts."""
        df: dict[str, int] = {}
        for raw in raws:
            seen = {block + "|" + g for block, grams in raw.items() for g in grams}
            for key in seen:
                df[key] = df.get(key, 0) + 1
        keys = sorted(k for k, v in df.items() if v >= self.config.min_df)
        self.vocab = {k: i for i, k in enumerate(keys)}
        self.idf = np.ones(len(keys), dtype=np.float32)
        return self.counts(raws)

    def counts(self, raws: Sequence[dict[str, list[str]]]) -> sp.csr_matrix:
        indptr = [0]
        indices: list[int] = []
        data: list[float] = []
        vocab = self.vocab
        for raw in raws:
            row: dict[int, int] = {}
            for block, grams in raw.items():
                prefix = block + "|"
                for g in grams:
                    j = vocab.get(prefix + g)
                    if j is not None:
                        row[j] = row.get(j, 0) + 1
            indices.extend(row)
            data.extend(row.values())
            indptr.append(len(indices))
        return sp.csr_matrix(
            (np.array(data, dtype=np.float32), np.array(indices, dtype=np.int32), indptr),
            shape=(len(raws), len(vocab)),
        )

    def block_of_columns(self) -> npt.NDArray[np.int64]:
        keys = sorted(self.vocab, key=self.vocab.__getitem__)
        return np.array([BLOCKS.index(k.split("|", 1)[0]) for k in keys], dtype=np.int64)

    @staticmethod
    def idf_from(counts: sp.csr_matrix) -> npt.NDArray[np.float32]:
        n = counts.shape[0]
        df = np.asarray((counts > 0).sum(axis=0)).ravel()
        idf: npt.NDArray[np.float32] = (np.log((1 + n) / (1 + df)) + 1.0).astype(np.float32)
        return idf

    def weigh(
        self,
        counts: sp.csr_matrix,
        idf: npt.NDArray[np.float32],
        blocks: npt.NDArray[np.int64],
        keep: npt.NDArray[np.bool_] | None = None,
    ) -> sp.csr_matrix:
        """TF × IDF per block, normalised and scaled by the block's weight.

        The count of a character n-gram is the number of words that have it, of a word
        or keyword the number of times it occurs; the norm of a block is √Σ count·idf²
        (for n-grams: the sum of the words' own squared norms). So a message's score is
        a sum of parts — one per word, lemma, lemma pair and keyword — that the engine
        caches (see ``IntentModel.scores_for``).

        ``keep`` masks the columns a fold's training part never saw (as at inference,
        where unknown features are simply absent).
        """
        X = counts.copy().astype(np.float32)
        if keep is not None:
            X.data *= keep[X.indices]
            X.eliminate_zeros()
        entry_block = blocks[X.indices]
        square = X.data.astype(np.float64) * idf[X.indices].astype(np.float64) ** 2
        X.data = (X.data * idf[X.indices]).astype(np.float32)
        n_blocks = len(BLOCKS)
        rows = np.repeat(np.arange(X.shape[0]), np.diff(X.indptr))
        slot = rows * n_blocks + entry_block
        norms = np.sqrt(np.bincount(slot, weights=square, minlength=X.shape[0] * n_blocks))
        weights = np.array([self.config.weights.get(b, 1.0) for b in BLOCKS])
        X.data = (X.data * weights[entry_block] / norms[slot]).astype(np.float32)
        return X

    def fit(self, raws: Sequence[dict[str, list[str]]]) -> sp.csr_matrix:
        counts = self.fit_vocabulary(raws)
        self.idf = self.idf_from(counts)
        return self.weigh(counts, self.idf, self.block_of_columns())

    def transform(self, raws: Sequence[dict[str, list[str]]]) -> sp.csr_matrix:
        return self.weigh(self.counts(raws), self.idf, self.block_of_columns())

    # ---------- one message ----------
    def prepare(self) -> None:
        """Per-block vocabularies and plain-float IDF for the one-message path."""
        by_block: dict[str, dict[str, int]] = {b: {} for b in BLOCKS}
        for key, j in self.vocab.items():
            block, gram = key.split("|", 1)
            by_block.setdefault(block, {})[gram] = j
        self.block_vocab = by_block
        self.idf_list: list[float] = self.idf.tolist()

    def token_ids(self, token: str) -> npt.NDArray[np.int32]:
        """Columns of the word's character n-grams (``prepare`` first)."""
        vocab = self.block_vocab["c"]
        found = [
            vocab.get(g) for g in token_ngrams(token, self.config.char_min, self.config.char_max)
        ]
        return np.array([j for j in found if j is not None], dtype=np.int32)

    def gram_id(self, block: str, gram: str) -> int | None:
        """Column of a word-block or keyword-block feature (``prepare`` first)."""
        return self.block_vocab[block].get(gram)

    def one(
        self, raw: dict[str, list[str]]
    ) -> tuple[npt.NDArray[np.int32], npt.NDArray[np.float32]]:
        """Feature indices and values of one message from its raw features (the reference
        implementation of ``weigh`` for a single row)."""
        all_idx: list[int] = []
        all_val: list[float] = []
        vocab = self.vocab
        idf = self.idf
        for block, grams in raw.items():
            counts: dict[int, int] = {}
            prefix = block + "|"
            for g in grams:
                j = vocab.get(prefix + g)
                if j is not None:
                    counts[j] = counts.get(j, 0) + 1
            if not counts:
                continue
            idx = list(counts)
            vals = [c * float(idf[j]) for j, c in counts.items()]
            norm = math.sqrt(sum(c * float(idf[j]) ** 2 for j, c in counts.items()))
            weight = self.config.weights.get(block, 1.0) / norm
            all_idx.extend(idx)
            all_val.extend(v * weight for v in vals)
        return np.array(all_idx, dtype=np.int32), np.array(all_val, dtype=np.float32)


def semantic_words(analysis: Analysis) -> list[str]:
    """The words whose encoder vectors represent the message: content lemmas."""
    return [
        lem
        for lem in analysis.lemmas
        if lem not in STOP_LEMMAS and lem not in SPECIAL_TOKENS and len(lem) > 1
    ]
