"""The statistical intent model: a linear model over ``features``, calibrated, with a
fallback threshold chosen by measurement.

Training (``train``):

1. every knowledge-base example is analysed, plus — unless ``augment`` is off — a copy
   typed on the wrong layout and a copy in informal translit, both read back through the
   normaliser (so the model learns what the normaliser makes of such messages);
   out-of-scope examples form the class ``fallback``;
2. ``folds``-fold cross-validation (the copies of an example stay in its fold) gives
   out-of-fold scores for every example: the softmax temperature is fitted to them
   (minimum negative log-likelihood), and the confidence threshold is the one that
   maximises the out-of-fold accuracy with fallback counted as the right answer for the
   out-of-scope examples, weighting those as ``oos_share`` of traffic;
3. the final model is trained on everything.

The weights are kept as a dense float32 matrix so that scoring one message is a gather
and a sum. ``save``/``load`` write ``.npz`` + JSON (no pickle).
"""

from __future__ import annotations

import itertools
import json
import math
import os
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp  # type: ignore[import-untyped, unused-ignore]

from abonent.nlu.base import FALLBACK
from abonent.nlu.features import FeatureConfig, Vectorizer, word_ngrams

FloatArray = npt.NDArray[np.float32]


@dataclass
class TrainConfig:
    model: str = "svc"  # "svc" (LinearSVC, one-vs-rest) or "lr" (multinomial logistic)
    C: float = 1.0
    augment: bool = True
    folds: int = 5
    seed: int = 13
    oos_share: float = 0.15
    # Threads for the cross-validation fits. liblinear draws from the C library's global
    # random generator, so fits running side by side are not bit-for-bit reproducible:
    # 1 (the default) keeps training deterministic; more is faster on several cores.
    jobs: int = 1
    features: FeatureConfig = field(default_factory=FeatureConfig)
    # The second opinion of the sentence encoder (``semantic.SentenceIndex``) for the
    # messages whose best probability is below ``rescue_below``, mixed in with
    # ``rescue_weight`` (measured: docs/nlu.md). False: the linear model alone.
    sentence_rescue: bool = True
    rescue_below: float = 0.7
    rescue_weight: float = 0.3

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        data = dict(data)
        features = FeatureConfig(**data.pop("features", {}))
        return cls(features=features, **data)


@dataclass
class Calibration:
    temperature: float = 1.0
    threshold: float = 0.5
    # out-of-fold figures (for the bench and the report)
    oof_accuracy: float = 0.0
    oof_accuracy_in_scope: float = 0.0
    oof_oos_recall: float = 0.0
    ece: float = 0.0
    reliability: list[tuple[float, float, float, int]] = field(default_factory=list)


def softmax(scores: FloatArray, temperature: float) -> FloatArray:
    z = scores * np.float32(1.0 / temperature)
    z -= z.max(axis=-1, keepdims=True)
    np.exp(z, out=z)
    z /= z.sum(axis=-1, keepdims=True)
    out: FloatArray = z.astype(np.float32, copy=False)
    return out


def _fit_linear(X: Any, y: Sequence[int], config: TrainConfig) -> tuple[FloatArray, FloatArray]:
    """(W: n_features × n_classes, b: n_classes) of the configured linear model."""
    from sklearn.linear_model import LogisticRegression  # type: ignore[import-untyped, unused-ignore]
    from sklearn.svm import LinearSVC  # type: ignore[import-untyped, unused-ignore]

    model: Any
    if config.model == "lr":
        model = LogisticRegression(C=config.C, max_iter=3000, random_state=config.seed)
    else:
        model = LinearSVC(C=config.C, random_state=config.seed, max_iter=5000)
    model.fit(X, np.asarray(y))
    coef = np.asarray(model.coef_, dtype=np.float32)
    intercept = np.asarray(model.intercept_, dtype=np.float32)
    n_classes = len(set(y))
    if coef.shape[0] == 1 and n_classes == 2:  # binary: sklearn keeps one row
        coef = (np.vstack([-coef[0], coef[0]]) / 2).astype(np.float32)
        intercept = (np.array([-intercept[0], intercept[0]]) / 2).astype(np.float32)
    return np.ascontiguousarray(coef.T), intercept


def _scores(X: Any, W: FloatArray, b: FloatArray) -> FloatArray:
    out: FloatArray = np.asarray(X @ W, dtype=np.float32) + b
    return out


def fit_temperature(scores: FloatArray, y: npt.NDArray[np.int64]) -> float:
    """The softmax temperature that minimises the negative log-likelihood."""

    def nll(log_t: float) -> float:
        p = softmax(scores, math.exp(log_t))
        return float(-np.mean(np.log(np.clip(p[np.arange(len(y)), y], 1e-12, None))))

    lo, hi = math.log(0.01), math.log(10.0)
    ratio = (math.sqrt(5) - 1) / 2
    a, b = hi - ratio * (hi - lo), lo + ratio * (hi - lo)
    fa, fb = nll(a), nll(b)
    for _ in range(60):
        if fa < fb:
            hi, b, fb = b, a, fa
            a = hi - ratio * (hi - lo)
            fa = nll(a)
        else:
            lo, a, fa = a, b, fb
            b = lo + ratio * (hi - lo)
            fb = nll(b)
    return float(math.exp((lo + hi) / 2))


def decide(
    proba: FloatArray, labels: Sequence[str], threshold: float
) -> tuple[str, float, list[tuple[str, float]]]:
    """(intent or fallback, confidence, the four best in-scope intents) of one message.

    The confidence is the probability of the returned intent; for ``fallback`` it is
    1 − the probability of the best intent.
    """
    order = np.argsort(-proba)[:5].tolist()
    values = proba.tolist()
    ranked = [(labels[i], values[i]) for i in order if labels[i] != FALLBACK]
    best, p_best = ranked[0] if ranked else (FALLBACK, 0.0)
    top = labels[order[0]]
    if top == FALLBACK or p_best < threshold:
        return FALLBACK, 1.0 - p_best, ranked
    return best, p_best, ranked


class IntentModel:
    """A trained, calibrated model: ``proba(indices, values)`` for one message."""

    def __init__(
        self,
        labels: list[str],
        vectorizer: Vectorizer,
        W: FloatArray,
        b: FloatArray,
        calibration: Calibration,
        config: TrainConfig,
        W_dense: FloatArray | None = None,
    ) -> None:
        self.labels = labels
        self.vectorizer = vectorizer
        self.W = W
        self.b = b
        self.W_dense = W_dense
        self.calibration = calibration
        self.config = config
        self._token_cache: dict[str, tuple[FloatArray, float]] = {}
        self._gram_cache: dict[str, tuple[FloatArray, float]] = {}
        self._weights = dict(config.features.weights)
        self._zero = np.zeros(len(labels), dtype=np.float32)
        vectorizer.prepare()

    @property
    def uses_semantic(self) -> bool:
        return self.W_dense is not None

    # ---------- the fast path for one message ----------
    def _token_part(self, token: str) -> tuple[FloatArray, float]:
        """A word's share of the character block: Σ idf·W over its n-grams, and Σ idf²."""
        part = self._token_cache.get(token)
        if part is None:
            ids = self.vectorizer.token_ids(token)
            if ids.size:
                idf = self.vectorizer.idf[ids]
                part = (idf @ self.W[ids], float(idf @ idf))
            else:
                part = (self._zero, 0.0)
            if len(self._token_cache) >= 200_000:
                self._token_cache.clear()
            self._token_cache[token] = part
        return part

    def _gram_part(self, block: str, gram: str) -> tuple[FloatArray, float]:
        """A word-block or keyword-block feature's part: idf·W, and idf²."""
        key = block + "|" + gram
        part = self._gram_cache.get(key)
        if part is None:
            j = self.vectorizer.gram_id(block, gram)
            if j is None:
                part = (self._zero, 0.0)
            else:
                idf = float(self.vectorizer.idf[j])
                part = (self.W[j] * np.float32(idf), idf * idf)
            if len(self._gram_cache) >= 200_000:
                self._gram_cache.clear()
            self._gram_cache[key] = part
        return part

    def scores_for(
        self,
        tokens: Sequence[str],
        lemmas: Sequence[str],
        keyword_hits: Iterable[str],
        extra: Sequence[FloatArray] = (),
        extra_scale: float = 0.0,
    ) -> FloatArray:
        """Scores of one analysed message; equal to ``scores`` on its feature vector.

        Each block is a sum of cached parts (a word's n-grams, a lemma, a lemma pair, a
        keyword) times the block's weight over the block's norm, so the whole message is
        one weighted sum: the parts are stacked and multiplied by their factors at once.
        ``extra`` parts (the semantic block's per-word projections) enter with
        ``extra_scale``.
        """
        blocks = (
            ("c", [self._token_part(t) for t in tokens]),
            (
                "w",
                [
                    self._gram_part("w", g)
                    for g in word_ngrams(lemmas, self.config.features.word_bigrams)
                ],
            ),
            ("k", [self._gram_part("k", g) for g in keyword_hits]),
        )
        vectors: list[FloatArray] = []
        factors: list[float] = []
        for name, parts in blocks:
            if not parts:
                continue
            square = sum(part[1] for part in parts)
            if square <= 0:
                continue
            factor = self._weights.get(name, 1.0) / math.sqrt(square)
            for vector, _ in parts:
                vectors.append(vector)
                factors.append(factor)
        for vector in extra:
            vectors.append(vector)
            factors.append(extra_scale)
        if not vectors:
            return self.b.copy()
        out: FloatArray = np.array(factors, dtype=np.float32) @ np.array(vectors) + self.b
        return out

    def scores(
        self, idx: npt.NDArray[np.int32], val: FloatArray, dense: FloatArray | None = None
    ) -> FloatArray:
        """Scores of a feature vector (the reference path; ``scores_for`` is the fast one)."""
        out: FloatArray = self.b.copy()
        if len(idx):
            out += val @ self.W[idx]
        if dense is not None and self.W_dense is not None:
            out += dense @ self.W_dense
        return out

    def proba(
        self, idx: npt.NDArray[np.int32], val: FloatArray, dense: FloatArray | None = None
    ) -> FloatArray:
        return softmax(self.scores(idx, val, dense), self.calibration.temperature)

    # ---------- persistence ----------
    def save(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        keys = sorted(self.vectorizer.vocab, key=self.vectorizer.vocab.__getitem__)
        tmp = directory / "model.tmp.npz"
        dense = self.W_dense if self.W_dense is not None else np.zeros((0, len(self.labels)))
        np.savez(tmp, W=self.W, b=self.b, idf=self.vectorizer.idf, W_dense=dense)
        tmp.replace(directory / "model.npz")
        meta = {
            "labels": self.labels,
            "vocab": keys,
            "calibration": asdict(self.calibration),
            "config": self.config.to_dict(),
        }
        tmp_json = directory / "model.tmp.json"
        tmp_json.write_text(json.dumps(meta, ensure_ascii=False), encoding="utf-8")
        tmp_json.replace(directory / "model.json")

    @classmethod
    def load(cls, directory: Path) -> IntentModel:
        meta = json.loads((directory / "model.json").read_text(encoding="utf-8"))
        with np.load(directory / "model.npz") as arrays:
            W = np.ascontiguousarray(arrays["W"], dtype=np.float32)
            b = np.asarray(arrays["b"], dtype=np.float32)
            idf = np.asarray(arrays["idf"], dtype=np.float32)
            W_dense = np.ascontiguousarray(arrays["W_dense"], dtype=np.float32)
        config = TrainConfig.from_dict(meta["config"])
        vectorizer = Vectorizer(config.features)
        vectorizer.vocab = {k: i for i, k in enumerate(meta["vocab"])}
        vectorizer.idf = idf
        cal = meta["calibration"]
        cal["reliability"] = [tuple(r) for r in cal.get("reliability", [])]
        return cls(
            meta["labels"],
            vectorizer,
            W,
            b,
            Calibration(**cal),
            config,
            W_dense if W_dense.shape[0] else None,
        )


def _reliability(
    conf: npt.NDArray[np.float64], correct: npt.NDArray[np.bool_], bins: int = 10
) -> tuple[float, list[tuple[float, float, float, int]]]:
    table = []
    ece = 0.0
    edges = np.linspace(0.0, 1.0, bins + 1)
    for lo, hi in itertools.pairwise(edges):
        mask = (conf > lo) & (conf <= hi) if lo > 0 else (conf >= lo) & (conf <= hi)
        n = int(mask.sum())
        if n == 0:
            continue
        mean_conf = float(conf[mask].mean())
        acc = float(correct[mask].mean())
        table.append((float(hi), mean_conf, acc, n))
        ece += n / len(conf) * abs(mean_conf - acc)
    return ece, table


def calibrate(
    oof_scores: FloatArray, y: npt.NDArray[np.int64], labels: Sequence[str], oos_share: float
) -> Calibration:
    """Temperature, threshold and reliability figures from out-of-fold scores."""
    temperature = fit_temperature(oof_scores, y)
    proba = softmax(oof_scores, temperature)
    fb = labels.index(FALLBACK) if FALLBACK in labels else -1
    is_oos = y == fb
    in_scope_p = proba.copy()
    if fb >= 0:
        in_scope_p[:, fb] = -1.0
    best = in_scope_p.argmax(axis=1)
    p_best = in_scope_p.max(axis=1)
    top = proba.argmax(axis=1)
    share = oos_share if is_oos.any() else 0.0
    best_thr, best_acc, stats = 0.0, -1.0, (0.0, 0.0)
    for thr in np.round(np.arange(0.0, 0.91, 0.01), 2):
        falls = (top == fb) | (p_best < thr)
        right_in = (~falls) & (best == y)
        acc_in = float(right_in[~is_oos].mean()) if (~is_oos).any() else 0.0
        rec_oos = float(falls[is_oos].mean()) if is_oos.any() else 0.0
        acc = (1 - share) * acc_in + share * rec_oos
        if acc > best_acc + 1e-9:
            best_thr, best_acc, stats = float(thr), acc, (acc_in, rec_oos)
    # reliability of the confidence of the top in-scope intent on in-scope examples
    conf = p_best[~is_oos].astype(np.float64)
    correct = best[~is_oos] == y[~is_oos]
    ece, table = _reliability(conf, correct)
    return Calibration(
        temperature=temperature,
        threshold=best_thr,
        oof_accuracy=best_acc,
        oof_accuracy_in_scope=stats[0],
        oof_oos_recall=stats[1],
        ece=ece,
        reliability=table,
    )


def _with_dense(X: Any, dense: FloatArray | None, weight: float) -> Any:
    if dense is None or weight <= 0:
        return X
    return sp.hstack([X, sp.csr_matrix(dense * weight)], format="csr")


def _split(
    W: FloatArray, n_sparse: int, dense: FloatArray | None, weight: float
) -> tuple[FloatArray, FloatArray | None]:
    if dense is None or weight <= 0:
        return np.ascontiguousarray(W), None
    return np.ascontiguousarray(W[:n_sparse]), np.ascontiguousarray(W[n_sparse:] * weight)


def folds_of(
    y: npt.NDArray[np.int64], groups: Sequence[int], k: int, seed: int
) -> npt.NDArray[np.int64]:
    """Fold of every row: deterministic, stratified by label, a group's rows together."""
    first_label: dict[int, int] = {}
    for i, g in enumerate(groups):
        first_label.setdefault(g, int(y[i]))
    by_label: dict[int, list[int]] = {}
    for g in sorted(first_label):
        by_label.setdefault(first_label[g], []).append(g)
    rng = np.random.RandomState(seed)
    fold_of: dict[int, int] = {}
    for label in sorted(by_label):
        members = by_label[label]
        order = rng.permutation(len(members))
        for rank, pos in enumerate(order):
            fold_of[members[pos]] = rank % max(k, 1)
    return np.array([fold_of[g] for g in groups], dtype=np.int64)


def train_model(
    raws: Sequence[dict[str, list[str]]],
    dense: FloatArray | None,
    y_names: Sequence[str],
    groups: Sequence[int],
    config: TrainConfig,
    progress: Callable[[str], None] | None = None,
) -> tuple[IntentModel, FloatArray]:
    """Cross-validate, calibrate and fit the final model; returns it and the OOF scores.

    ``progress`` hears of each cross-validation fold as it finishes (the first start
    of a server trains in the background and says how far it is)."""
    say = progress or (lambda _message: None)
    labels = sorted(set(y_names))
    index = {name: i for i, name in enumerate(labels)}
    y = np.array([index[name] for name in y_names], dtype=np.int64)
    weight = config.features.semantic
    vec = Vectorizer(config.features)
    counts = vec.fit_vocabulary(raws)
    blocks = vec.block_of_columns()
    n_sparse = counts.shape[1]
    fold = folds_of(y, groups, config.folds, config.seed)
    oof = np.zeros((len(y), len(labels)), dtype=np.float32)
    is_source = np.zeros(len(y), dtype=bool)
    seen: set[int] = set()
    for i, g in enumerate(groups):
        if g not in seen:
            is_source[i] = True
            seen.add(g)

    def fold_task(k: int) -> tuple[npt.NDArray[np.int64], FloatArray] | None:
        train_idx = np.flatnonzero(fold != k)
        test_idx = np.flatnonzero(fold == k)
        if len(set(y[train_idx].tolist())) < len(labels) or not len(test_idx):
            return None
        c_train = counts[train_idx]
        keep = np.asarray((c_train > 0).sum(axis=0)).ravel() >= config.features.min_df
        idf = vec.idf_from(c_train)
        X_train = vec.weigh(c_train, idf, blocks, keep)
        X_test = vec.weigh(counts[test_idx], idf, blocks, keep)
        d_train = dense[train_idx] if dense is not None else None
        d_test = dense[test_idx] if dense is not None else None
        W, b = _fit_linear(_with_dense(X_train, d_train, weight), y[train_idx].tolist(), config)
        return test_idx, _scores(_with_dense(X_test, d_test, weight), W, b)

    idf_all = vec.idf_from(counts)
    X_all = vec.weigh(counts, idf_all, blocks)

    def final_task() -> tuple[FloatArray, FloatArray]:
        return _fit_linear(_with_dense(X_all, dense, weight), y.tolist(), config)

    folds = list(range(config.folds)) if config.folds >= 2 else []
    # liblinear releases the GIL: with jobs > 1 the fits run side by side
    workers = max(1, min(config.jobs or (os.cpu_count() or 1), len(folds) + 1))
    say(f"fitting the model: {len(folds)} cross-validation folds and the final fit")
    with ThreadPoolExecutor(max_workers=workers) as pool:
        final_future = pool.submit(final_task)
        futures = [pool.submit(fold_task, k) for k in folds]
        for done, _ in enumerate(as_completed(futures), start=1):
            say(f"cross-validation fold {done}/{len(folds)} done")
        fold_results = [f.result() for f in futures]
        W, b = final_future.result()
    say("calibrating the confidence")
    for result in fold_results:
        if result is not None:
            oof[result[0]] = result[1]
    if folds:
        calibration = calibrate(oof[is_source], y[is_source], labels, config.oos_share)
    else:
        calibration = Calibration()
    vec.idf = idf_all
    W_sparse, W_dense = _split(W, n_sparse, dense, weight)
    model = IntentModel(labels, vec, W_sparse, b, calibration, config, W_dense)
    return model, oof
