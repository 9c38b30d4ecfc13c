"""Retraining while everyone keeps working: a separate process, a verdict, a swap everywhere.

An editor presses «Переобучить»: ``start_training`` writes a ``nlu_trainings`` row and
takes the ``train`` lease in the same transaction (two processes asked at once: one
wins, the other answers 409 with the run under way), and ``spawn`` starts
``abonent nlu train --job N`` as a child process, so the server's own threads never
spend a second on it. The child (``run_job``) renews the lease while it works and writes
its progress into the row (the page draws it; the log has it too).

The verdict is on held-out checks only: a fixed fifth of the knowledge base's examples
(chosen by a hash of the text, so the same fifth for both models) is kept out of two
check models, one trained on the knowledge base as the running model has it and one on
the knowledge base with the new edits. Both are scored on that fifth, split into the
YAML's own examples (the "knowledge-base fold") and the editors' examples. The new model
is accepted only if neither score falls more than ``nlu.retrain_tolerance`` below the
current model's. Then the full model is trained into the shared cache and the row is
marked ``accepted``; every server process polls for the newest accepted row
(``ModelFollower``) and swaps the model in, loading it from the cache (or training the
same model itself where the cache is not shared).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.exc import IntegrityError

from abonent.clock import utcnow
from abonent.db.models import Message, NluLease, NluTraining
from abonent.db.session import Database
from abonent.nlu.base import FALLBACK
from abonent.nlu.classifier import TrainConfig
from abonent.nlu.edits import Edit, apply_edits, last_edit_id, load_edits
from abonent.nlu.kb import KnowledgeBase

log = logging.getLogger(__name__)

LEASE = "train"
LEASE_SECONDS = 60.0
RENEW_SECONDS = 10.0
HOLDOUT_MOD = 5
MAX_CHANGED = 200
RECENT_LIMIT = 1000


class Busy(Exception):
    """Another retrain holds the lease."""

    def __init__(self, training_id: int | None) -> None:
        super().__init__("a retraining is under way")
        self.training_id = training_id


# --------------------------------------------------------------------------- lease
async def _ensure_lease_row(db: Database) -> None:
    async with db.session() as session:
        if await session.get(NluLease, LEASE) is not None:
            return
    try:
        async with db.transaction() as session:
            session.add(NluLease(name=LEASE, holder=None, expires_at=None))
    except IntegrityError:  # another process inserted it first
        pass


async def renew_lease(db: Database, holder: str, seconds: float = LEASE_SECONDS) -> bool:
    """Extend ``holder``'s lease; False when it lost it (expired and taken)."""
    async with db.transaction() as session:
        result = await session.execute(
            update(NluLease)
            .where(NluLease.name == LEASE, NluLease.holder == holder)
            .values(expires_at=utcnow() + timedelta(seconds=seconds))
        )
        return bool(getattr(result, "rowcount", 0))


async def release_lease(db: Database, holder: str) -> None:
    async with db.transaction() as session:
        await session.execute(
            update(NluLease)
            .where(NluLease.name == LEASE, NluLease.holder == holder)
            .values(holder=None, expires_at=None)
        )


def _holder(training_id: int) -> str:
    return f"training:{training_id}"


async def _take(db: Database, user_id: int | None) -> NluTraining:
    """The new run's row, holding the lease (``_NotTaken`` when another run holds it).

    The lease is taken by a conditional UPDATE of one row, which PostgreSQL serialises
    by the row lock (the second writer re-checks the condition and finds it taken) and
    SQLite by its single writer."""
    await _ensure_lease_row(db)
    upto = await last_edit_id(db)
    now = utcnow()
    async with db.transaction() as session:
        row = NluTraining(
            status="running",
            requested_by=user_id,
            edits_upto=upto,
            progress=0.0,
            stage="starting",
            started_at=now,
        )
        session.add(row)
        await session.flush()
        result = await session.execute(
            update(NluLease)
            .where(
                NluLease.name == LEASE,
                or_(NluLease.expires_at.is_(None), NluLease.expires_at < now),
            )
            .values(holder=_holder(row.id), expires_at=now + timedelta(seconds=LEASE_SECONDS))
        )
        if not getattr(result, "rowcount", 0):
            # undoes the row above: the transaction rolls back on the way out
            raise _NotTaken
    return row


class _NotTaken(Exception):
    pass


async def start_training(db: Database, user_id: int | None) -> NluTraining:
    """The new run's row, holding the lease; ``Busy`` with the run that holds it."""
    try:
        return await _take(db, user_id)
    except _NotTaken:
        raise Busy(await _running_id(db)) from None


async def _running_id(db: Database) -> int | None:
    async with db.session() as session:
        lease = await session.get(NluLease, LEASE)
    if lease is None or not lease.holder:
        return None
    return int(lease.holder.split(":", 1)[1])


async def latest_accepted(db: Database) -> NluTraining | None:
    async with db.session() as session:
        row: NluTraining | None = await session.scalar(
            select(NluTraining)
            .where(NluTraining.status == "accepted")
            .order_by(NluTraining.id.desc())
            .limit(1)
        )
        return row


async def training(db: Database, training_id: int | None = None) -> dict[str, Any] | None:
    """A run as the page shows it (the newest when no id); a run whose process died
    shows as failed once its lease has run out."""
    async with db.session() as session:
        query = select(NluTraining).order_by(NluTraining.id.desc()).limit(1)
        if training_id is not None:
            query = select(NluTraining).where(NluTraining.id == training_id)
        row = await session.scalar(query)
        if row is None:
            return None
        lease = await session.get(NluLease, LEASE)
    status = row.status
    error = row.error
    if status == "running":
        alive = (
            lease is not None
            and lease.holder == _holder(row.id)
            and lease.expires_at is not None
            and lease.expires_at >= utcnow()
        )
        if not alive:
            status, error = "failed", error or "the training process stopped"
    return {
        "id": row.id,
        "status": status,
        "progress": round(row.progress, 3),
        "stage": row.stage,
        "edits_upto": row.edits_upto,
        "report": row.report,
        "error": error,
        "started_at": row.started_at.isoformat(),
        "finished_at": row.finished_at.isoformat() if row.finished_at else None,
    }


# --------------------------------------------------------------------------- the child
def spawn(
    training_id: int,
    database_url: str,
    kb_dir: Path,
    cache_dir: Path | None,
    config: TrainConfig | None = None,
) -> subprocess.Popen[bytes]:
    """``abonent nlu train --job N`` as a child process; its log goes to the server's.

    It trains with the running engine's configuration, so the model it caches is the
    one every server then loads (a different configuration would be a cache miss)."""
    command = [
        sys.executable,
        "-m",
        "abonent",
        "nlu",
        "train",
        "--job",
        str(training_id),
        "--kb",
        str(kb_dir),
    ]
    if cache_dir is not None:
        command += ["--cache-dir", str(cache_dir)]
    if config is not None:
        command += ["--config", json.dumps(config.to_dict())]
    env = dict(os.environ, ABONENT_DATABASE_URL=database_url)
    # Its own session: a server stopped meanwhile (Ctrl-C, a rolling restart) does not
    # take the run down with it; the run finishes and leaves its verdict in the database.
    return subprocess.Popen(command, env=env, stdin=subprocess.DEVNULL, start_new_session=True)


def holdout(text: str) -> bool:
    """The fixed held-out fifth: the same texts are out of both check models."""
    digest = hashlib.sha256(" ".join(text.lower().split()).encode()).digest()
    return digest[0] % HOLDOUT_MOD == 0


def without(kb: KnowledgeBase, texts: set[str]) -> KnowledgeBase:
    """``kb`` with the held-out texts removed (its fingerprint says so, for the cache)."""
    intents = {}
    for key, intent in kb.intents.items():
        copy = intent.model_copy(deep=True)
        copy.examples = [e for e in copy.examples if e not in texts]
        intents[key] = copy
    out = [e for e in kb.out_of_scope if e not in texts]
    digest = hashlib.sha256((kb.fingerprint + ":holdout").encode())
    for text in sorted(texts):
        digest.update(text.encode() + b"\0")
    return KnowledgeBase(intents, out, digest.hexdigest(), kb.path, kb.warnings)


@dataclass
class Check:
    """Held-out accuracy on the knowledge base's own fold and on the editors' examples."""

    kb: float
    kb_n: int
    review: float
    review_n: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "kb": round(self.kb, 4),
            "kb_n": self.kb_n,
            "review": round(self.review, 4),
            "review_n": self.review_n,
        }


def _accuracy(parse: Callable[[str], str], rows: Sequence[tuple[str, str]]) -> float:
    if not rows:
        return 1.0
    return sum(parse(text) == label for text, label in rows) / len(rows)


def held_out_rows(
    yaml_kb: KnowledgeBase, new_kb: KnowledgeBase
) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """(text, expected) of the held-out fifth: the YAML's own examples as the new
    knowledge base labels them, and the editors' examples."""
    yaml_texts = {e for i in yaml_kb.intents.values() for e in i.examples} | set(
        yaml_kb.out_of_scope
    )
    kb_rows: list[tuple[str, str]] = []
    review_rows: list[tuple[str, str]] = []
    texts, labels = new_kb.training_data()
    for text, label in zip(texts, labels, strict=True):
        if holdout(text):
            (kb_rows if text in yaml_texts else review_rows).append((text, label))
    return kb_rows, review_rows


class Progress:
    """Where the run is, 0..1, from the steps and the trainings' own fold messages."""

    _FOLD = re.compile(r"fold (\d+)/(\d+)")

    def __init__(self) -> None:
        self.value = 0.0
        self.stage = "starting"
        self._span = (0.0, 1.0)
        self._lock = threading.Lock()

    def step(self, start: float, end: float, stage: str) -> None:
        with self._lock:
            self._span = (start, end)
            self.value, self.stage = start, stage
        log.info("retraining: %s (%.0f%%)", stage, start * 100)

    def hear(self, message: str) -> None:
        """A training's own progress line, mapped into the current step's span."""
        found = self._FOLD.search(message)
        with self._lock:
            start, end = self._span
            if found:
                done, total = int(found.group(1)), max(int(found.group(2)), 1)
                self.value = start + (end - start) * min(done / (total + 1), 1.0)
            stage = self.stage.split(":", 1)[0]
            self.stage = f"{stage}: {message}"[:200]
        log.info("retraining: %s", message)

    def snapshot(self) -> tuple[float, str]:
        with self._lock:
            return self.value, self.stage


async def _recent_texts(db: Database, days: int) -> list[str]:
    since = utcnow() - timedelta(days=days)
    async with db.session() as session:
        rows = await session.scalars(
            select(Message.text)
            .where(Message.author == "customer", Message.created_at >= since)
            .order_by(Message.id.desc())
            .limit(RECENT_LIMIT)
        )
        seen: set[str] = set()
        out = []
        for text in rows:
            if text and text not in seen:
                seen.add(text)
                out.append(text)
        return out


async def run_job(
    db: Database,
    training_id: int,
    kb_dir: Path,
    cache_dir: Path | None,
    *,
    config: TrainConfig | None = None,
    tolerance: float = 0.01,
    changed_days: int = 7,
) -> dict[str, Any]:
    """Train, check, decide (the child process's work); returns the run's report."""
    holder = _holder(training_id)
    progress = Progress()
    done = asyncio.Event()

    async def heartbeat() -> None:
        """Progress when it moved (the page polls it each second), the lease every
        ``RENEW_SECONDS``: few writes, since on SQLite every write takes the one writer."""
        last: tuple[float, str] | None = None
        renewed = time.monotonic()
        while not done.is_set():
            now = progress.snapshot()
            if now != last:
                async with db.transaction() as session:
                    await session.execute(
                        update(NluTraining)
                        .where(NluTraining.id == training_id)
                        .values(progress=now[0], stage=now[1])
                    )
                last = now
            if time.monotonic() - renewed >= RENEW_SECONDS:
                if not await renew_lease(db, holder):
                    log.error("retraining %d lost its lease", training_id)
                renewed = time.monotonic()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(done.wait(), 1.0)

    beat = asyncio.create_task(heartbeat())
    try:
        async with db.session() as session:
            row = await session.get(NluTraining, training_id)
        if row is None:
            raise RuntimeError(f"no training {training_id}")
        cfg = config or TrainConfig()
        current = await latest_accepted(db)
        old_edits = await load_edits(db, current.edits_upto) if current else []
        new_edits = await load_edits(db, row.edits_upto)
        recent = await _recent_texts(db, changed_days)
        report = await asyncio.to_thread(
            _train_and_check,
            kb_dir,
            cache_dir,
            cfg,
            old_edits,
            new_edits,
            recent,
            tolerance,
            progress,
        )
        status = "accepted" if report["accepted"] else "rejected"
        fingerprint = report.pop("fingerprint")
        async with db.transaction() as session:
            await session.execute(
                update(NluTraining)
                .where(NluTraining.id == training_id)
                .values(
                    status=status,
                    progress=1.0,
                    stage="done",
                    report=report,
                    fingerprint=fingerprint,
                    finished_at=utcnow(),
                )
            )
        log.info(
            "retraining %d %s: held-out %.3f → %.3f (knowledge base), %.3f → %.3f (editors')",
            training_id,
            status,
            report["before"]["kb"],
            report["after"]["kb"],
            report["before"]["review"],
            report["after"]["review"],
        )
        return report
    except Exception as exc:
        log.exception("retraining %d failed", training_id)
        async with db.transaction() as session:
            await session.execute(
                update(NluTraining)
                .where(NluTraining.id == training_id)
                .values(status="failed", error=str(exc)[:2000], finished_at=utcnow())
            )
        raise
    finally:
        done.set()
        await beat
        await release_lease(db, holder)


def _train_and_check(
    kb_dir: Path,
    cache_dir: Path | None,
    config: TrainConfig,
    old_edits: Sequence[Edit],
    new_edits: Sequence[Edit],
    recent: Sequence[str],
    tolerance: float,
    progress: Progress,
) -> dict[str, Any]:
    from abonent.nlu.engine import Engine, build_bundle

    started = time.monotonic()
    yaml_kb = KnowledgeBase.load(kb_dir)
    old_kb = apply_edits(yaml_kb, old_edits)
    new_kb = apply_edits(yaml_kb, new_edits)
    kb_rows, review_rows = held_out_rows(yaml_kb, new_kb)
    held = {text for text, _ in kb_rows + review_rows}

    def engine_of(kb: KnowledgeBase, start: float, end: float, stage: str) -> Engine:
        progress.step(start, end, stage)
        bundle = build_bundle(kb, config, cache_dir, True, progress=progress.hear)
        return Engine(bundle, kb_dir, config, cache_dir)

    def score(engine: Engine) -> Check:
        def parse(text: str) -> str:
            return str(engine.parse(text).intent)

        return Check(
            _accuracy(parse, kb_rows),
            len(kb_rows),
            _accuracy(parse, review_rows),
            len(review_rows),
        )

    before = score(engine_of(without(old_kb, held), 0.02, 0.3, "check model, current"))
    after = score(engine_of(without(new_kb, held), 0.3, 0.6, "check model, with the edits"))
    accepted = after.kb >= before.kb - tolerance and after.review >= before.review - tolerance
    changed: list[dict[str, str]] = []
    if accepted:
        current = engine_of(old_kb, 0.6, 0.7, "the model in use")
        new = engine_of(new_kb, 0.7, 0.97, "the new model")
        progress.step(0.97, 1.0, "comparing recent messages")
        for text in recent:
            a, b = current.parse(text).intent, new.parse(text).intent
            if a != b:
                changed.append({"text": text, "before": a, "after": b})
                if len(changed) >= MAX_CHANGED:
                    break
    return {
        "accepted": accepted,
        "before": before.to_dict(),
        "after": after.to_dict(),
        "tolerance": tolerance,
        "edits": len(new_edits),
        "changed": changed,
        "recent_checked": len(recent),
        "fingerprint": new_kb.fingerprint[:64],
        "seconds": round(time.monotonic() - started, 1),
        "fallback": FALLBACK,
    }


# --------------------------------------------------------------------------- the servers
class ModelFollower:
    """Each server process: polls for the newest accepted run and swaps its model in.

    A DB row rather than the live bus: a process that was down or missed a beat finds
    the row on its next poll, and one started later applies it at start."""

    def __init__(self, db: Database, understander: Any, interval: float = 10.0) -> None:
        self.db = db
        self.understander = understander
        self.interval = interval
        self.applied: int | None = None
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()

    def engine(self) -> Any:
        """The trained engine in use (None while the keywords stand in)."""
        from abonent.nlu.engine import Engine

        if isinstance(self.understander, Engine):
            return self.understander
        return getattr(self.understander, "engine", None)

    async def poll_once(self) -> bool:
        """Apply the newest accepted run if it is not in use yet; True when swapped."""
        engine = self.engine()
        if engine is None:
            return False
        row = await latest_accepted(self.db)
        if row is None or row.id == self.applied:
            return False
        edits = await load_edits(self.db, row.edits_upto)
        swapped = bool(await asyncio.to_thread(engine.use_edits, edits))
        self.applied = row.id
        if swapped:
            log.info("consultant model of retraining %d in use (%d edits)", row.id, len(edits))
        return swapped

    def wake(self) -> None:
        self._wake.set()

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._loop(), name="nlu-follower")

    async def _loop(self) -> None:
        while True:
            try:
                await self.poll_once()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("could not follow the retrained model; trying again")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.interval)
            self._wake.clear()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
