"""Benchmark of the intent engine (issue 3): speed, load time, memory, accuracy.

    .venv/bin/python bench/nlu_bench.py                      # dev.tsv of shared/nlu
    .venv/bin/python bench/nlu_bench.py --tsv FILE.tsv --passes 20 --json

Each measurement runs in a fresh subprocess pinned to one core with BLAS limited to one
thread:

* **cold load**: an empty model cache, so the engine trains (cross-validation,
  calibration, final fit) — what the first start after a knowledge-base edit costs;
* **cached load**: the model from the cache written by the cold run — every other start;
* **parses/s**: ``Engine.parse`` one message at a time in one thread, over the texts of
  the TSV: the first pass (cold caches: every word new) and then ``--passes`` warm
  passes (the per-word caches filled, as in a running server);
* **peak RSS** (``ru_maxrss``) of the cached-load process after the parse passes, and of
  the training process;
* **accuracy** with per-intent precision/recall on the TSV, and the reliability of the
  calibrated confidence (out-of-fold on the knowledge base, and on the TSV);
* **latency** p50/p99/max of one parse over the TSV and the own set with the sentence
  encoder's per-text cache emptied before each pass (every message new to the encoder,
  the per-word caches warm — a running server's steady state), and the share of messages
  that took the encoder (unsure) path;
* **accuracy per style** of the project's own evaluation set (``--own``, default
  tests/nlu/eval/own.tsv: text, intent, style), with "has_digits" and the share of
  in-scope messages that fell back.

Targets: ≥ 5,000 parses/s, p99 < 20 ms, serving RSS < 400 MB.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_TSV = ROOT.parent / "shared" / "nlu" / "dev.tsv"
DEFAULT_OWN = ROOT / "tests" / "nlu" / "eval" / "own.tsv"


def _pin() -> None:
    with contextlib.suppress(AttributeError, OSError):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _styled(path: str) -> list[tuple[str, str, str]]:
    """(text, intent, style) rows of a TSV whose third column is the style."""
    rows = []
    for line in Path(path).read_text(encoding="utf-8").splitlines()[1:]:
        cells = line.split("\t")
        if len(cells) >= 2 and cells[0].strip():
            rows.append((cells[0], cells[1].strip(), cells[2].strip() if len(cells) > 2 else ""))
    return rows


def _by_style(engine: Any, rows: list[tuple[str, str, str]]) -> dict[str, Any]:
    import re

    counts: dict[str, list[int]] = {}
    fell = in_scope = 0
    for text, gold, style in rows:
        intent = engine.parse(text).intent
        keys = {"all", style} | ({"has_digits"} if re.search(r"\d", text) else set())
        for key in keys:
            counts.setdefault(key, [0, 0])
            counts[key][0] += int(intent == gold)
            counts[key][1] += 1
        if gold != "fallback":
            in_scope += 1
            fell += int(intent == "fallback")
    return {
        "styles": {k: [round(a / b, 4), b] for k, (a, b) in sorted(counts.items())},
        "fallback_in_scope": round(fell / in_scope, 4) if in_scope else 0.0,
    }


def _latencies(engine: Any, texts: list[str], passes: int) -> dict[str, float]:
    """Per-parse latency (ms) with the encoder's per-text cache emptied before each pass."""
    index = engine._bundle.sentences
    times: list[float] = []
    rescued = 0
    for _ in range(passes):
        if index is not None:
            index._cache.clear()
        for text in texts:
            t0 = time.perf_counter()
            engine.parse(text)
            times.append(time.perf_counter() - t0)
        if index is not None:
            rescued = len(index._cache)
    times.sort()

    def q(share: float) -> float:
        return round(times[min(len(times) - 1, int(share * len(times)))] * 1000, 3)

    return {
        "p50_ms": q(0.5),
        "p99_ms": q(0.99),
        "max_ms": round(times[-1] * 1000, 3),
        "per_s": round(len(times) / sum(times), 1),
        "encoder_share": round(rescued / len(texts), 4) if texts else 0.0,
    }


def child(mode: str, cache: str, tsv: str, passes: int, own: str = "") -> dict[str, Any]:
    _pin()
    started = time.perf_counter()
    from abonent.nlu.engine import Engine

    import_s = time.perf_counter() - started
    engine = Engine.load(cache_dir=cache)
    load_s = time.perf_counter() - started
    result: dict[str, Any] = {
        "mode": mode,
        "load_s": round(load_s, 3),
        "import_s": round(import_s, 3),
        "from_cache": engine.from_cache,
    }
    if mode == "cold":
        result["rss_mb"] = round(_rss_mb(), 1)
        return result
    from abonent.nlu.eval import evaluate, read_tsv

    rows = read_tsv(tsv)
    texts = [t for t, _ in rows]
    # the encoder, loaded in the background after a cached start: wait for it, so the
    # first pass measures the parse and not the start
    if engine._bundle.vectors is not None:
        engine._bundle.vectors._model()
    t0 = time.perf_counter()
    for text in texts:
        engine.parse(text)
    first = time.perf_counter() - t0
    # warm: each pass timed on its own; the median pass is reported (a busy neighbour on
    # a shared machine slows some passes down), the mean too
    pass_times = []
    for _ in range(passes):
        t0 = time.perf_counter()
        for text in texts:
            engine.parse(text)
        pass_times.append(time.perf_counter() - t0)
    warm = sorted(pass_times)[len(pass_times) // 2] * passes
    mean_rate = len(texts) * passes / sum(pass_times)
    report = evaluate(engine, rows)
    # reliability of the confidence on the TSV: in-scope gold, the best in-scope intent
    bins: dict[int, list[int]] = {}
    for text, gold in rows:
        if gold == "fallback":
            continue
        r = engine.parse(text)
        name, p = r.alternatives[0] if r.alternatives else ("", 0.0)
        b = min(int(p * 10), 9)
        bins.setdefault(b, [0, 0, 0])
        bins[b][0] += 1
        bins[b][1] += int(name == gold)
        bins[b][2] += int(p * 1000)
    cal = engine.model.calibration
    own_rows = _styled(own) if own and Path(own).exists() else []
    result["own"] = _by_style(engine, own_rows) if own_rows else None
    result["latency"] = _latencies(engine, texts + [t for t, _, _ in own_rows], max(3, passes // 4))
    result.update(
        {
            "texts": len(texts),
            "first_pass_per_s": round(len(texts) / first, 1),
            "warm_per_s": round(len(texts) * passes / warm, 1),
            "warm_us_per_parse": round(warm / (len(texts) * passes) * 1e6, 1),
            "warm_mean_per_s": round(mean_rate, 1),
            "rss_mb": round(_rss_mb(), 1),
            "accuracy": round(report.accuracy, 4),
            "min_recall": report.min_recall(),
            "per_intent": report.per_intent,
            "confusions": report.confusions[:10],
            "threshold": engine.threshold,
            "temperature": round(cal.temperature, 4),
            "oof": {
                "accuracy": round(cal.oof_accuracy, 4),
                "in_scope_accuracy": round(cal.oof_accuracy_in_scope, 4),
                "oos_recall": round(cal.oof_oos_recall, 4),
                "ece": round(cal.ece, 4),
                "reliability": cal.reliability,
            },
            "tsv_reliability": {
                f"{b / 10:.1f}-{(b + 1) / 10:.1f}": {
                    "n": v[0],
                    "accuracy": round(v[1] / v[0], 3),
                    "mean_conf": round(v[2] / v[0] / 1000, 3),
                }
                for b, v in sorted(bins.items())
            },
        }
    )
    return result


def run_child(mode: str, cache: str, tsv: str, passes: int, own: str) -> dict[str, Any]:
    env = dict(os.environ)
    env.update({"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"})
    cmd = [sys.executable, __file__, "--child", mode, "--cache", cache, "--tsv", tsv]
    cmd += ["--passes", str(passes), "--own", own]
    out = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True)
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tsv", default=str(DEFAULT_TSV))
    parser.add_argument("--own", default=str(DEFAULT_OWN), help="own set: text, intent, style")
    parser.add_argument("--passes", type=int, default=20)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--child", choices=["cold", "warm"])
    parser.add_argument("--cache")
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.cache, args.tsv, args.passes, args.own)))
        return
    with tempfile.TemporaryDirectory(prefix="nlu-bench-") as cache:
        cold = run_child("cold", cache, args.tsv, args.passes, args.own)
        warm = run_child("warm", cache, args.tsv, args.passes, args.own)
    if args.json:
        print(json.dumps({"cold": cold, "warm": warm}, ensure_ascii=False))
        return
    print(f"cold load (train, empty cache)  {cold['load_s']:.2f} s   peak RSS {cold['rss_mb']} MB")
    print(f"cached load                     {warm['load_s']:.2f} s", end="")
    print(f"   (imports {warm['import_s']:.2f} s)")
    print(
        f"parses/s, one core              warm {warm['warm_per_s']:.0f} median pass "
        f"({warm['warm_us_per_parse']} µs/parse; mean {warm['warm_mean_per_s']:.0f}), "
        f"first pass {warm['first_pass_per_s']:.0f}"
    )
    lat = warm["latency"]
    print(
        f"latency, every text new to the encoder  p50 {lat['p50_ms']} ms, p99 {lat['p99_ms']} ms, "
        f"max {lat['max_ms']} ms ({lat['per_s']:.0f}/s; "
        f"{lat['encoder_share']:.1%} took the encoder)"
    )
    print(f"peak RSS (cached load + parsing) {warm['rss_mb']} MB")
    print(
        f"accuracy on {Path(args.tsv).name}           {warm['accuracy']:.4f} "
        f"({warm['texts']} texts); lowest recall {warm['min_recall'][0]} "
        f"{warm['min_recall'][1]:.3f}"
    )
    oof = warm["oof"]
    print(
        f"out-of-fold on the KB            accuracy {oof['accuracy']:.4f} "
        f"(in-scope {oof['in_scope_accuracy']:.4f}, out-of-scope → fallback "
        f"{oof['oos_recall']:.4f}), ECE {oof['ece']:.4f}"
    )
    print(f"threshold {warm['threshold']:.2f}, temperature {warm['temperature']}")
    if warm["own"]:
        own = warm["own"]
        styles = ", ".join(f"{k} {v[0]:.3f} ({v[1]})" for k, v in own["styles"].items())
        print(f"own set by style                 {styles}")
        print(f"own set: in-scope messages that fell back {own['fallback_in_scope']:.4f}")
    print("\nper intent                 precision  recall  support")
    for name, m in warm["per_intent"].items():
        print(f"  {name:<24} {m['precision']:>8.3f} {m['recall']:>7.3f} {int(m['support']):>8d}")
    print("\nreliability (out-of-fold, in-scope): conf bin ≤, mean confidence, accuracy, n")
    for hi, conf, acc, n in oof["reliability"]:
        print(f"  ≤{hi:.1f}  {conf:.3f}  {acc:.3f}  {n}")
    print("reliability on the TSV (in-scope, best intent): bin, mean confidence, accuracy, n")
    for b, v in warm["tsv_reliability"].items():
        print(f"  {b}  {v['mean_conf']:.3f}  {v['accuracy']:.3f}  {v['n']}")
    if warm["confusions"]:
        print("\nconfusions: " + ", ".join(f"{g}→{p} {n}" for g, p, n in warm["confusions"]))


if __name__ == "__main__":
    main()
