"""The learning loop's review: unrecognised messages grouped by similarity.

``group_messages(texts, engine)`` is a pure function of its inputs: the texts are
normalised by the engine's normaliser, compared by cosine over character n-grams
(2–4, TF-IDF) and the meaning vectors of their words (half each), and grouped greedily
(each text joins the most similar existing group whose centroid is at least
``min_similarity`` away, otherwise starts one — deterministic in the order given).
Each group lists the three intents its messages resemble, with the mean calibrated
probability, so an editor sees «these 14 messages look like tariffs (0.41) or
benefits (0.22)» and adds examples.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np

from abonent.nlu.base import FALLBACK


@dataclass
class Group:
    texts: list[str]
    # (intent, mean probability) best first; fallback excluded
    intents: list[tuple[str, float]] = field(default_factory=list)

    @property
    def size(self) -> int:
        return len(self.texts)

    def to_dict(self) -> dict[str, Any]:
        return {
            "size": self.size,
            "texts": self.texts,
            "intents": [{"intent": i, "score": round(s, 4)} for i, s in self.intents],
        }


def group_messages(
    texts: Sequence[str], engine: Any, min_similarity: float = 0.35, top: int = 3
) -> list[Group]:
    """Groups of similar texts, the largest first, each with the intents it resembles.

    ``engine`` is an ``Engine`` (anything with ``analyze(text)`` and ``proba(text)``).
    """
    from sklearn.feature_extraction.text import TfidfVectorizer  # type: ignore[import-untyped, unused-ignore]

    items = [t.strip() for t in texts if t and t.strip()]
    if not items:
        return []
    normalised = [engine.analyze(t) for t in items]
    docs = [a.text + " || " + " ".join(a.lemmas) for a in normalised]
    vectorizer = TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 4), sublinear_tf=True)
    try:
        X = vectorizer.fit_transform(docs)
    except ValueError:  # nothing but empty documents
        X = None
    if X is None:
        groups_idx: list[list[int]] = [list(range(len(items)))]
    else:
        M = X.toarray().astype(np.float64)
        # meaning as well as spelling: half of the similarity from the words' vectors
        meaning = getattr(engine, "meaning_vector", None)
        if meaning is not None:
            vectors = [meaning(a) for a in normalised]
            if any(v is not None for v in vectors):
                dim = next(len(v) for v in vectors if v is not None)
                S = np.vstack([v if v is not None else np.zeros(dim) for v in vectors])
                M = np.hstack([M * np.sqrt(0.5), S.astype(np.float64) * np.sqrt(0.5)])
        centroids: list[np.ndarray[Any, np.dtype[np.float64]]] = []
        groups_idx = []
        for i, row in enumerate(M):
            best, best_sim = -1, min_similarity
            for g, centroid in enumerate(centroids):
                norm = float(np.linalg.norm(centroid))
                sim = float(row @ centroid) / norm if norm else 0.0
                if sim >= best_sim:
                    best, best_sim = g, sim
            if best < 0:
                groups_idx.append([i])
                centroids.append(row.copy())
            else:
                groups_idx[best].append(i)
                centroids[best] += row
    return _with_intents(items, groups_idx, engine, top)


def group_indices(
    texts: Sequence[str], engine: Any, min_similarity: float = 0.35, top: int = 3
) -> list[tuple[list[int], list[tuple[str, float]]]]:
    """Like ``group_messages`` but by position in ``texts`` (all of them non-empty),
    so a caller keeps each message's id and count beside its text."""
    groups = group_messages(texts, engine, min_similarity, top)
    where: dict[str, list[int]] = {}
    for i, text in enumerate(texts):
        where.setdefault(text.strip(), []).append(i)
    out = []
    for group in groups:
        indices = [where[text].pop(0) for text in group.texts]
        out.append((indices, group.intents))
    return out


def _with_intents(
    items: list[str], groups_idx: list[list[int]], engine: Any, top: int
) -> list[Group]:
    result = []
    for members in groups_idx:
        sums: dict[str, float] = {}
        for i in members:
            for intent, p in engine.proba(items[i]).items():
                if intent != FALLBACK:
                    sums[intent] = sums.get(intent, 0.0) + p
        ranked = sorted(((k, v / len(members)) for k, v in sums.items()), key=lambda kv: -kv[1])
        result.append(Group([items[i] for i in members], ranked[:top]))
    result.sort(key=lambda g: (-g.size, g.texts[0]))
    return result


# --------------------------------------------------------------------------- stored
REVIEW_LIMIT = 2000


async def stored_misses(
    db: Any, since: datetime, until: datetime, below: float = 0.6
) -> list[dict[str, Any]]:
    """Customer messages of [since, until) the consultant fell back on or was unsure of
    (under ``below``), newest first, one entry per distinct text with its count."""
    from sqlalchemy import or_, select

    from abonent.db.models import Message

    intent = Message.meta["intent"].as_string()
    confidence = Message.meta["confidence"].as_float()
    async with db.session() as session:
        rows = await session.execute(
            select(
                Message.id,
                Message.conversation_id,
                Message.text,
                Message.created_at,
                intent,
                confidence,
            )
            .where(
                Message.author == "customer",
                Message.created_at >= since,
                Message.created_at < until,
                intent.is_not(None),
                or_(intent == "fallback", confidence < below),
            )
            .order_by(Message.id.desc())
            .limit(REVIEW_LIMIT)
        )
        by_text: dict[str, dict[str, Any]] = {}
        for mid, conv, text, at, guessed, conf in rows:
            if not text or not text.strip():
                continue
            key = " ".join(text.split()).lower()
            entry = by_text.get(key)
            if entry is None:
                by_text[key] = {
                    "id": mid,
                    "ids": [mid],
                    "conversation_id": conv,
                    "text": text.strip(),
                    "at": at.isoformat(),
                    "intent": guessed,
                    "confidence": conf,
                    "count": 1,
                }
            else:
                entry["ids"].append(mid)
                entry["count"] += 1
        return list(by_text.values())
