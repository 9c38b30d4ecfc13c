"""The server's consultant: answering from the first second, the trained model when ready.

On a new machine the model is not in the cache yet and training takes tens of seconds
(minutes on a busy machine). The server must not keep its port closed meanwhile, so
:class:`Consultant` answers at once with the knowledge base's own keywords
(:class:`KeywordEngine`: the same answers, found by the editors' keywords), trains in a
background thread with its progress in the log, and swaps the trained engine in with
one assignment, without a restart. A cached model (every later start) loads in well
under a second the same way. Several processes on one machine share the model cache:
one trains, the others wait for it and load it (``engine.build_bundle`` takes a file
lock), so a deployment trains once.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

from abonent.nlu import profanity, rules
from abonent.nlu.base import FALLBACK, Interpretation
from abonent.nlu.engine import RULE_CONFIDENCE, Engine, keyword_parts
from abonent.nlu.kb import DEFAULT_KB_DIR, KnowledgeBase

log = logging.getLogger(__name__)

# Said by the keyword stage: sure of a single topic, less so when several match.
KEYWORD_CONFIDENCE = 0.9
AMBIGUOUS_CONFIDENCE = 0.6


class KeywordEngine:
    """The knowledge base's keywords as an ``Understander``: the stand-in while the
    model trains, so every topic with keywords is answered from the first second."""

    def __init__(self, kb: KnowledgeBase) -> None:
        self.kb = kb
        self.normalizer, self.keywords = keyword_parts(kb)
        # The knowledge base's order decides between topics matched equally.
        self._order = {intent: i for i, intent in enumerate(kb.intents)}

    def parse(self, text: str) -> Interpretation:
        swear = profanity.contains_profanity(text)
        analysis = self.normalizer.analyze(text)
        if not analysis.tokens:
            return Interpretation(FALLBACK, 1.0, (), profanity=swear, reason="empty")
        if rules.junk_number(text):
            return Interpretation(FALLBACK, RULE_CONFIDENCE, (), profanity=swear, reason="noise")
        if rules.other_utility(analysis.lemmas):
            return Interpretation(
                FALLBACK, RULE_CONFIDENCE, (), profanity=swear, reason="other_utility"
            )
        hits = sorted(self.keywords.find(analysis), key=lambda i: self._order.get(i, 1 << 30))
        if not hits:
            return Interpretation(FALLBACK, 0.0, (), profanity=swear, reason="keywords")
        # A greeting or thanks with a question belongs to the question.
        topics = [h for h in hits if self.kb.is_topic(h)] or hits
        best = topics[0]
        confidence = KEYWORD_CONFIDENCE if len(topics) == 1 else AMBIGUOUS_CONFIDENCE
        others = tuple((h, AMBIGUOUS_CONFIDENCE) for h in topics[1:])
        return Interpretation(best, confidence, others, profanity=swear, reason="keywords")


class Consultant:
    """Implements ``Understander``; ``start()`` begins loading (or training) the model."""

    def __init__(
        self,
        kb_dir: str | Path | None = None,
        *,
        cache_dir: str | Path | None = None,
        watch: bool = True,
    ) -> None:
        self.kb_dir = Path(kb_dir) if kb_dir is not None else DEFAULT_KB_DIR
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        self._keywords = KeywordEngine(KnowledgeBase.load(self.kb_dir))
        self._engine: Engine | None = None
        self._watch = watch
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self.ready = threading.Event()
        # Why the model could not be built (the keywords keep answering), for the log/UI.
        self.error: str | None = None

    # ---------- Understander ----------
    def parse(self, text: str) -> Interpretation:
        engine = self._engine
        return engine.parse(text) if engine is not None else self._keywords.parse(text)

    @property
    def kb(self) -> KnowledgeBase:
        engine = self._engine
        return engine.kb if engine is not None else self._keywords.kb

    @property
    def engine(self) -> Engine | None:
        """The trained engine once it is in use (the admin's review needs its vectors)."""
        return self._engine

    @property
    def stage(self) -> str:
        """``model`` when the trained model answers, ``keywords`` until then."""
        return "model" if self._engine is not None else "keywords"

    # ---------- life cycle ----------
    def start(self) -> None:
        """Load or train the model in a daemon thread; parse keeps answering meanwhile."""
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._load, name="nlu-train", daemon=True)
        self._thread.start()

    def _load(self) -> None:
        started = time.monotonic()
        cached = _cached(self.kb_dir, self.cache_dir)
        if not cached:
            log.info(
                "the consultant's model is not in the cache: training it in the background "
                "(tens of seconds; longer on a busy machine); keyword matching answers meanwhile"
            )

        def progress(message: str) -> None:
            log.info("training the consultant: %s (%.0fs)", message, time.monotonic() - started)

        try:
            engine = Engine.load(self.kb_dir, cache_dir=self.cache_dir, progress=progress)
        except Exception as exc:
            self.error = str(exc)
            log.exception("the consultant's model could not be built; keyword matching stays")
            return
        if self._stopping.is_set():
            return
        self._engine = engine
        self.ready.set()
        log.info(
            "consultant model in use after %.1fs (%s)",
            time.monotonic() - started,
            "from the cache" if engine.from_cache else "trained",
        )
        if self._watch:
            engine.start_watching()  # editors' changes to the knowledge base apply live

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the trained model is in use (tests, the CLI); False on timeout."""
        return self.ready.wait(timeout)

    def stop(self) -> None:
        """At shutdown: a training still running is abandoned (its thread is a daemon)."""
        self._stopping.set()
        engine = self._engine
        if engine is not None:
            engine.stop_watching()


def _cached(kb_dir: Path, cache_dir: Path | None) -> bool:
    from abonent.nlu.classifier import TrainConfig
    from abonent.nlu.engine import is_cached

    try:
        return is_cached(KnowledgeBase.load(kb_dir), TrainConfig(), cache_dir)
    except Exception:  # the load proper reports it
        return False
