"""Evaluation on a labelled TSV (``text<TAB>intent``, more columns allowed)."""

from __future__ import annotations

import csv
import io
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from abonent.nlu.base import Understander


class EvalFileError(ValueError):
    pass


def read_tsv(path: str | Path) -> list[tuple[str, str]]:
    """(text, intent) rows; the header must name the columns ``text`` and ``intent``."""
    raw = Path(path).read_text(encoding="utf-8-sig")
    reader = csv.reader(io.StringIO(raw), delimiter="\t", quoting=csv.QUOTE_NONE)
    try:
        header = [h.strip().lower() for h in next(reader)]
    except StopIteration:
        raise EvalFileError(f"{path}: empty file") from None
    if "text" not in header or "intent" not in header:
        raise EvalFileError(f"{path}: the header must have the columns text and intent")
    ti, ii = header.index("text"), header.index("intent")
    rows = []
    for line_no, row in enumerate(reader, start=2):
        if not row or not any(cell.strip() for cell in row):
            continue
        if len(row) <= max(ti, ii):
            raise EvalFileError(f"{path}:{line_no}: expected at least {max(ti, ii) + 1} columns")
        rows.append((row[ti], row[ii].strip()))
    return rows


@dataclass
class Report:
    total: int = 0
    correct: int = 0
    per_intent: dict[str, dict[str, float]] = field(default_factory=dict)
    confusions: list[tuple[str, str, int]] = field(default_factory=list)
    errors: list[tuple[str, str, str, float]] = field(default_factory=list)

    @property
    def accuracy(self) -> float:
        return self.correct / self.total if self.total else 0.0

    def min_recall(self) -> tuple[str, float]:
        if not self.per_intent:
            return "", 0.0
        name = min(self.per_intent, key=lambda k: (self.per_intent[k]["recall"], k))
        return name, self.per_intent[name]["recall"]


def evaluate(understander: Understander, rows: Sequence[tuple[str, str]]) -> Report:
    gold_count: Counter[str] = Counter()
    pred_count: Counter[str] = Counter()
    hits: Counter[str] = Counter()
    confusion: Counter[tuple[str, str]] = Counter()
    report = Report(total=len(rows))
    for text, gold in rows:
        result = understander.parse(text)
        gold_count[gold] += 1
        pred_count[result.intent] += 1
        if result.intent == gold:
            hits[gold] += 1
            report.correct += 1
        else:
            confusion[(gold, result.intent)] += 1
            report.errors.append((text, gold, result.intent, result.confidence))
    for intent in sorted(set(gold_count) | set(pred_count)):
        tp = hits[intent]
        precision = tp / pred_count[intent] if pred_count[intent] else 0.0
        recall = tp / gold_count[intent] if gold_count[intent] else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        report.per_intent[intent] = {
            "precision": precision,
            "recall": recall,
            "f1": f1,
            "support": float(gold_count[intent]),
        }
    report.confusions = [(g, p, n) for (g, p), n in confusion.most_common()]
    return report


def format_report(report: Report, max_confusions: int = 15) -> Iterable[str]:
    yield f"accuracy: {report.accuracy:.4f} ({report.correct}/{report.total})"
    name, recall = report.min_recall()
    if name:
        yield f"lowest recall: {name} {recall:.3f}"
    yield ""
    yield f"{'intent':<22} {'precision':>9} {'recall':>7} {'f1':>6} {'support':>8}"
    for intent, m in report.per_intent.items():
        yield (
            f"{intent:<22} {m['precision']:>9.3f} {m['recall']:>7.3f} {m['f1']:>6.3f} "
            f"{int(m['support']):>8d}"
        )
    yield ""
    yield "most frequent confusions (gold → predicted: count):"
    if not report.confusions:
        yield "  none"
    for gold, pred, n in report.confusions[:max_confusions]:
        yield f"  {gold} → {pred}: {n}"
    yield ""
    yield f"misclassified lines ({len(report.errors)}):"
    for text, gold, pred, conf in report.errors:
        yield f"  [{gold} → {pred} {conf:.2f}] {text}"
