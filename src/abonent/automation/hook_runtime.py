"""Running the Python hooks: loading the company's modules, queueing runs from the event
log, running them off the message path, and the status admins see.

Why a queue between the log and the handlers: a durable consumer applies its events in
the transaction that moves its cursor, but a handler has effects outside that
transaction (a reply, a CRM call) and may be slow. So the consumer only queues, in its
transaction, one ``hook_runs`` row per event and handler (unique: once, however the log
is read), and a worker claims due rows the way the outbox sender does — leased, the
lease renewed by a heartbeat while the run lasts, several processes sharing the work —
and runs each with a time limit. A failure is recorded with the hook's name and retried
with backoff, then given up; a process killed mid-run leaves its rows to be taken over
when the lease runs out, so a handler may see an event twice (at least once).

Loading is operator-friendly: a module that cannot be imported is logged at start and
listed on the integrations page, and the chat centre serves customers meanwhile (a
typo in a company script must not take the channels down); ``[hooks] strict = true``
makes it stop ``abonent serve`` instead.
"""

from __future__ import annotations

import asyncio
import functools
import importlib
import logging
import sys
import traceback
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from importlib.metadata import entry_points
from pathlib import Path
from types import ModuleType
from typing import Any

from sqlalchemy import delete, func, insert, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from abonent.automation.hook_checks import NamedCheck, ReadingsChecks
from abonent.automation.hooks import Handler, HookApi, HookEvent, HookServices, HookSet
from abonent.clock import utcnow
from abonent.config import HooksSettings
from abonent.core import events
from abonent.core.bus import LocalBus
from abonent.core.eventlog import StoredEvent
from abonent.core.worker import Worker
from abonent.db.models import EventCursor, EventRecord, HookError, HookRun, HookStat, Message
from abonent.db.session import Database
from abonent.logs import mask_pii

log = logging.getLogger("abonent.hooks")

CONSUMER = "hooks"
ENTRY_POINT_GROUP = "abonent.hooks"
# A dead process's runs are taken over once this runs out; a live one renews it.
LEASE = timedelta(seconds=30)
RENEW_EVERY = 5.0
CLAIM_BATCH = 20
PARALLEL = 8
# Finished runs are kept this long for the status page, then pruned.
KEEP_RUNS = timedelta(days=7)
KEEP_ERRORS = timedelta(days=30)
RECENT_ERRORS = 5
# What a readings check's failure is filed under on the status page.
CHECK_EVENT = "readings.check"

# (hook, outcome): done | error | timeout | given_up | check_error.
OutcomeSink = Callable[[str, str], None]


def backoff(attempts: int) -> float:
    """Seconds before the next try of a failed run: 5, 10, 20 … capped at 10 minutes."""
    return float(min(5 * 2 ** max(attempts - 1, 0), 600))


# --------------------------------------------------------------------------- loading
@dataclass(frozen=True)
class LoadError:
    """A configured module (or entry point) that could not be loaded, and why."""

    source: str
    error: str


@dataclass
class Loaded:
    sets: list[HookSet] = field(default_factory=list)
    errors: list[LoadError] = field(default_factory=list)

    @property
    def handlers(self) -> list[Handler]:
        return [h for s in self.sets for h in s.handlers]

    @property
    def checks(self) -> list[NamedCheck]:
        return [NamedCheck(n, m, f) for s in self.sets for n, m, f in s.checks]


class HookLoadError(RuntimeError):
    """``[hooks] strict = true`` and a hook module could not be loaded."""


def load_hooks(settings: HooksSettings) -> Loaded:
    """Import the configured modules and the ``abonent.hooks`` entry points; what fails
    is logged and kept in ``errors``, the rest loads."""
    for folder in settings.paths:
        path = str(Path(folder).expanduser().resolve())
        if path not in sys.path:
            sys.path.insert(0, path)
    loaded = Loaded()
    sources: list[tuple[str, Callable[[], object]]] = [
        (spec, functools.partial(_import, spec)) for spec in settings.modules
    ]
    if settings.entry_points:
        for ep in entry_points(group=ENTRY_POINT_GROUP):
            sources.append((f"entry point {ep.name} ({ep.value})", ep.load))
    names: set[str] = set()
    for source, get in sources:
        try:
            found = _hook_set(get(), source)
            if any(found is s for s in loaded.sets):
                continue  # configured and declared as an entry point too
            own = {h.name for h in found.handlers} | {c[0] for c in found.checks}
            clash = sorted(own & names)
            if clash:
                raise ValueError(f"hook names already loaded from another set: {', '.join(clash)}")
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
            log.error(
                "hook module %s could not be loaded; its hooks do not run: %s\n%s",
                source,
                error,
                "".join(traceback.format_exception(exc)).rstrip(),
            )
            loaded.errors.append(LoadError(source, mask_pii(error)))
            continue
        names |= own
        loaded.sets.append(found)
        log.info(
            "hook set %s loaded from %s: %s",
            found.name,
            source,
            ", ".join([h.name for h in found.handlers] + [c[0] for c in found.checks]) or "empty",
        )
    return loaded


def _import(spec: str) -> object:
    """``package.module`` (its ``hooks``) or ``package.module:attribute``."""
    module_name, _, attribute = spec.partition(":")
    module = importlib.import_module(module_name.strip())
    if not attribute:
        return module
    try:
        return getattr(module, attribute.strip())
    except AttributeError:
        raise AttributeError(f"module {module_name} has no attribute {attribute!r}") from None


def _hook_set(found: object, source: str) -> HookSet:
    if isinstance(found, ModuleType):
        found = getattr(found, "hooks", None)
        if found is None:
            raise AttributeError(f"{source} defines no module-level 'hooks = HookSet(...)'")
    if not isinstance(found, HookSet):
        raise TypeError(f"{source} gives a {type(found).__name__}, not a HookSet")
    return found


# --------------------------------------------------------------------------- queueing
class HookConsumer:
    """The event log's durable consumer: one queued run per event and interested handler."""

    name = CONSUMER

    def __init__(
        self,
        handlers: Sequence[Handler],
        *,
        max_age: timedelta,
        on_queued: Callable[[], None] | None = None,
    ) -> None:
        self.handlers = list(handlers)
        self.max_age = max_age
        self.on_queued = on_queued

    async def apply(self, conn: AsyncConnection, batch: list[StoredEvent]) -> None:
        now = utcnow()
        oldest = now - self.max_age
        rows: list[dict[str, Any]] = []
        stale = 0
        for event in batch:
            wanted = [h for h in self.handlers if h.wants(event.type)]
            if not wanted:
                continue
            if event.occurred_at < oldest:
                stale += 1
                continue
            rows += [
                {
                    "event_id": event.id,
                    "event_type": event.type,
                    "hook": h.name,
                    "conversation_id": event.conversation_id,
                    "status": "pending",
                    "attempts": 0,
                    "next_attempt_at": now,
                    "created_at": now,
                }
                for h in wanted
            ]
        if stale:
            log.warning("%d events older than %s were not given to the hooks", stale, self.max_age)
        if not rows:
            return
        insert_ = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
        await conn.execute(
            insert_(HookRun).on_conflict_do_nothing(index_elements=["event_id", "hook"]), rows
        )
        if self.on_queued is not None:
            self.on_queued()


async def start_cursor_at_end(db: Database) -> None:
    """A new deployment's hooks begin with the events from now on: without this the
    consumer would start at the log's beginning and reply to months-old conversations."""
    async with db.write() as conn:
        query = select(EventRecord.tx, EventRecord.id)
        if conn.dialect.name == "postgresql":
            query = query.order_by(EventRecord.tx.desc(), EventRecord.id.desc())
        else:
            query = query.order_by(EventRecord.id.desc())
        last = (await conn.execute(query.limit(1))).first()
        insert_ = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
        await conn.execute(
            insert_(EventCursor)
            .values(
                consumer=CONSUMER,
                tx=int(last[0]) if last else 0,
                last_id=int(last[1]) if last else 0,
                processed=0,
                updated_at=utcnow(),
                paused_at=None,
            )
            .on_conflict_do_nothing()
        )


# --------------------------------------------------------------------------- running
@dataclass
class _Claimed:
    id: int
    hook: str
    attempts: int
    event_type: str
    event: HookEvent | None


MakeApi = Callable[[Handler, HookEvent], HookApi]


class HookRunner(Worker):
    """Claims due runs and runs them; several processes share the queue."""

    def __init__(
        self,
        db: Database,
        bus: LocalBus,
        handlers: Sequence[Handler],
        make_api: MakeApi,
        *,
        timeout: float = 10.0,
        attempts: int = 5,
        poll: float = 1.0,
        batch: int = CLAIM_BATCH,
        parallel: int = PARALLEL,
        renew_every: float = RENEW_EVERY,
        lease: timedelta = LEASE,
        on_outcome: OutcomeSink | None = None,
    ) -> None:
        super().__init__(
            bus,
            set(),
            name="hook-runner",
            poll=poll,
            logger=log,
            failure="hook runner pass failed; retrying",
            eager=True,
        )
        self.db = db
        self.handlers = {h.name: h for h in handlers}
        self.make_api = make_api
        self.timeout = timeout
        self.attempts = attempts
        self.batch = batch
        self.renew_every = renew_every
        self.lease = lease
        self.on_outcome = on_outcome
        self._slots = asyncio.Semaphore(parallel)
        self._last_prune = 0.0

    async def _step(self) -> bool:
        now = asyncio.get_running_loop().time()
        if now - self._last_prune > 3600:
            self._last_prune = now
            await self.prune()
        return await self.run_once() > 0

    async def run_once(self) -> int:
        """One pass: claim due runs, run them, record each; how many were claimed."""
        if not self.handlers:
            return 0
        token = uuid.uuid4().hex
        claimed = await self._claim(token)
        if not claimed:
            return 0
        held = {c.id for c in claimed}
        stop = asyncio.Event()
        heartbeat = asyncio.create_task(self._heartbeat(token, held, stop), name="hook-lease")
        try:
            await asyncio.gather(*(self._run_one(token, c, held) for c in claimed))
        finally:
            stop.set()
            try:
                await heartbeat
            except asyncio.CancelledError:
                heartbeat.cancel()
                raise
        return len(claimed)

    def _due(self, now: datetime) -> Any:
        return or_(
            (HookRun.status == "pending") & (HookRun.next_attempt_at <= now),
            # A process died mid-run: its lease ran out, take the run over.
            (HookRun.status == "running") & (HookRun.locked_until < now),
        )

    async def _claim(self, token: str) -> list[_Claimed]:
        now = utcnow()
        async with self.db.write() as conn:
            query = (
                select(HookRun.id)
                .where(self._due(now), HookRun.hook.in_(list(self.handlers)))
                .order_by(HookRun.id)
                .limit(self.batch)
            )
            if conn.dialect.name == "postgresql":
                query = query.with_for_update(skip_locked=True)
            ids = list((await conn.execute(query)).scalars())
            if not ids:
                return []
            # The due condition again: on SQLite nothing locked the rows between.
            await conn.execute(
                update(HookRun)
                .where(HookRun.id.in_(ids), self._due(now))
                .values(
                    status="running",
                    claim=token,
                    locked_until=now + self.lease,
                    attempts=HookRun.attempts + 1,
                )
            )
            rows = (
                await conn.execute(
                    select(
                        HookRun.id,
                        HookRun.hook,
                        HookRun.attempts,
                        HookRun.event_type,
                        EventRecord.id,
                        EventRecord.occurred_at,
                        EventRecord.conversation_id,
                        EventRecord.data,
                    )
                    .outerjoin(EventRecord, EventRecord.id == HookRun.event_id)
                    .where(HookRun.claim == token, HookRun.status == "running")
                    .order_by(HookRun.id)
                )
            ).all()
            texts = await _texts(conn, rows)
        claimed: list[_Claimed] = []
        for run_id, hook, attempts, event_type, event_id, at, conv_id, data in rows:
            event = None
            if event_id is not None:
                data = dict(data or {})
                event = HookEvent(
                    id=int(event_id),
                    type=event_type,
                    occurred_at=at,
                    conversation_id=conv_id,
                    data=data,
                    text=_text_of(texts, event_type, data),
                )
            claimed.append(_Claimed(int(run_id), hook, int(attempts), event_type, event))
        return claimed

    async def _heartbeat(self, token: str, held: set[int], stop: asyncio.Event) -> None:
        """Keep the lease of this pass's unfinished runs; a failed renewal is only logged
        (should they all fail, the runs are taken over, as a dead process's are)."""
        while True:
            try:
                await asyncio.wait_for(stop.wait(), timeout=self.renew_every)
                return
            except TimeoutError:
                pass
            ids = sorted(held)
            if not ids:
                continue
            try:
                async with self.db.write() as conn:
                    await conn.execute(
                        update(HookRun)
                        .where(
                            HookRun.id.in_(ids),
                            HookRun.claim == token,
                            HookRun.status == "running",
                        )
                        .values(locked_until=utcnow() + self.lease)
                    )
            except Exception:
                log.exception("could not renew the lease of %d hook runs", len(ids))

    async def _run_one(self, token: str, claimed: _Claimed, held: set[int]) -> None:
        handler = self.handlers[claimed.hook]
        error: str | None = None
        outcome = "done"
        final = False
        async with self._slots:
            if claimed.event is None:
                error, outcome, final = "the event is no longer in the log", "error", True
            elif claimed.attempts > self.attempts:
                # Claimed that often and never recorded: the process died running it.
                error = f"given up: the process running it stopped {claimed.attempts - 1} times"
                outcome, final = "given_up", True
            else:
                limit = handler.timeout or self.timeout
                deadline = asyncio.timeout(limit)
                try:
                    async with deadline:
                        await handler.function(claimed.event, self.make_api(handler, claimed.event))
                except (asyncio.CancelledError, KeyboardInterrupt):
                    raise
                except BaseException as exc:  # a company script's sys.exit() included
                    if isinstance(exc, TimeoutError) and deadline.expired():
                        error, outcome = f"TimeoutError: did not finish in {limit:g} s", "timeout"
                    else:
                        error, outcome = f"{type(exc).__name__}: {exc}", "error"
                    log.error(
                        "hook %s failed on %s event %s (attempt %d of %d): %s\n%s",
                        handler.name,
                        claimed.event_type,
                        claimed.event.id,
                        claimed.attempts,
                        self.attempts,
                        error,
                        "".join(traceback.format_exception(exc)).rstrip(),
                    )
            if error is not None and claimed.attempts >= self.attempts:
                final = True
                if outcome != "given_up":
                    log.warning("hook %s: run %s given up", handler.name, claimed.id)
        try:
            recorded = await self._record(token, claimed, error, final)
        except Exception:
            log.exception(
                "could not record hook run %s; it is run again after its lease", claimed.id
            )
            return
        held.discard(claimed.id)
        if recorded and self.on_outcome is not None:
            self.on_outcome(handler.name, outcome)

    async def _record(self, token: str, claimed: _Claimed, error: str | None, final: bool) -> bool:
        """The run's outcome, if this pass still holds it (a stall past the lease lets
        another process take it over: then that one's outcome counts)."""
        now = utcnow()
        mine = (HookRun.id == claimed.id, HookRun.claim == token, HookRun.status == "running")
        async with self.db.write() as conn:
            if error is None:
                values: dict[str, Any] = {
                    "status": "done",
                    "finished_at": now,
                    "locked_until": None,
                    "last_error": None,
                }
            else:
                shown = mask_pii(error)[:2000]
                values = {
                    "status": "failed" if final else "pending",
                    "locked_until": None,
                    "last_error": shown,
                    "finished_at": now if final else None,
                    "next_attempt_at": now + timedelta(seconds=backoff(claimed.attempts)),
                }
            done = await conn.execute(update(HookRun).where(*mine).values(**values))
            if not done.rowcount:
                return False
            await count(
                conn,
                claimed.hook,
                handled=1 if error is None else 0,
                errors=0 if error is None else 1,
            )
            if error is not None:
                await conn.execute(
                    insert(HookError).values(
                        hook=claimed.hook,
                        event_type=claimed.event_type,
                        event_id=claimed.event.id if claimed.event else None,
                        error=shown,
                        at=now,
                    )
                )
        return True

    async def prune(self) -> None:
        now = utcnow()
        async with self.db.write() as conn:
            await conn.execute(
                delete(HookRun).where(
                    HookRun.status.in_(("done", "failed")), HookRun.finished_at < now - KEEP_RUNS
                )
            )
            # Runs of a hook no process loads any more would wait for ever.
            await conn.execute(
                delete(HookRun).where(
                    HookRun.status == "pending", HookRun.created_at < now - KEEP_RUNS
                )
            )
            await conn.execute(delete(HookError).where(HookError.at < now - KEEP_ERRORS))


def _text_of(texts: dict[int, str], event_type: str, data: dict[str, Any]) -> str | None:
    message_id = data.get("message_id")
    if event_type != events.MESSAGE_RECEIVED or not isinstance(message_id, int):
        return None
    return texts.get(message_id)


async def _texts(conn: AsyncConnection, rows: Sequence[Any]) -> dict[int, str]:
    """The customers' texts of the claimed ``message.received`` events (not in the log)."""
    ids = [
        r[7].get("message_id")
        for r in rows
        if r[3] == events.MESSAGE_RECEIVED and isinstance(r[7], dict)
    ]
    ids = [i for i in ids if isinstance(i, int)]
    if not ids:
        return {}
    found = await conn.execute(select(Message.id, Message.text).where(Message.id.in_(ids)))
    return {int(i): str(t) for i, t in found}


async def count(conn: AsyncConnection, hook: str, *, handled: int, errors: int) -> None:
    now = utcnow()
    insert_ = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    statement = insert_(HookStat).values(hook=hook, handled=handled, errors=errors, updated_at=now)
    await conn.execute(
        statement.on_conflict_do_update(
            index_elements=["hook"],
            set_={
                "handled": HookStat.handled + statement.excluded.handled,
                "errors": HookStat.errors + statement.excluded.errors,
                "updated_at": now,
            },
        )
    )


# --------------------------------------------------------------------------- the whole
class Hooks:
    """The loaded hooks of this process: their consumer, runner, readings checks and the
    status shown to admins (``Runtime.hooks``)."""

    def __init__(
        self,
        loaded: Loaded,
        settings: HooksSettings,
        db: Database,
        bus: LocalBus,
        *,
        on_outcome: OutcomeSink | None = None,
    ) -> None:
        self.loaded = loaded
        self.settings = settings
        self.db = db
        self.on_outcome = on_outcome
        self.services: HookServices | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        handlers = loaded.handlers
        self.checks = ReadingsChecks(
            loaded.checks, timeout=settings.check_timeout, on_failure=self._check_failed
        )
        self.runner = HookRunner(
            db,
            bus,
            handlers,
            self._make_api,
            timeout=settings.timeout,
            attempts=settings.attempts,
            on_outcome=on_outcome,
        )
        self.consumer = HookConsumer(
            handlers,
            max_age=timedelta(hours=settings.max_event_age_hours),
            on_queued=self._queued,
        )

    @property
    def consumers(self) -> list[HookConsumer]:
        """For the event log's consumers: none when no handler is loaded."""
        return [self.consumer] if self.loaded.handlers else []

    def attach(self, services: HookServices) -> None:
        self.services = services

    def count_outcomes(self, sink: OutcomeSink) -> None:
        """Tell ``sink`` (the Prometheus counter) each run's and failed check's outcome."""
        self.on_outcome = sink
        self.runner.on_outcome = sink

    def _make_api(self, handler: Handler, event: HookEvent) -> HookApi:
        if self.services is None:
            raise RuntimeError("the hooks' services are not attached")
        return HookApi(self.services, handler.name, event)

    def _queued(self) -> None:
        """Runs were queued in a transaction about to commit: look again just after."""
        loop = asyncio.get_running_loop()
        loop.call_later(0.2, self.runner.wake)

    def _check_failed(self, hook: str, error: str) -> None:
        """Counted off the turn (its transaction may yet roll back, and must not wait)."""
        if self.on_outcome is not None:
            self.on_outcome(hook, "check_error")
        task = asyncio.get_running_loop().create_task(self._record_check_failure(hook, error))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _record_check_failure(self, hook: str, error: str) -> None:
        try:
            async with self.db.write() as conn:
                await count(conn, hook, handled=0, errors=1)
                await conn.execute(
                    insert(HookError).values(
                        hook=hook, event_type=CHECK_EVENT, error=mask_pii(error)[:2000], at=utcnow()
                    )
                )
        except Exception:
            log.exception("could not record the failure of readings check %s", hook)

    async def start(self) -> None:
        """Before the event consumers start: a first start begins at the log's end."""
        if not self.loaded.handlers:
            return
        await start_cursor_at_end(self.db)
        await self.runner.start()

    async def stop(self) -> None:
        await self.runner.stop()
        if self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def status(self) -> list[dict[str, Any]]:
        """Each hook: name, module, kind, event types, handled and error counts, runs
        waiting, recent errors [{at, event_type, error}]; then the modules that failed to
        load (``load_error``). Counts come from the database: every process shows the same."""
        entries: list[dict[str, Any]] = [
            {
                "name": h.name,
                "module": h.module,
                "kind": "event",
                "event_types": list(h.patterns),
            }
            for h in self.loaded.handlers
        ]
        entries += [
            {
                "name": c.name,
                "module": c.module,
                "kind": "readings_check",
                "event_types": [CHECK_EVENT],
            }
            for c in self.loaded.checks
        ]
        names = [e["name"] for e in entries]
        stats: dict[str, tuple[int, int]] = {}
        waiting: dict[str, int] = {}
        recent: dict[str, list[dict[str, Any]]] = {n: [] for n in names}
        if names:
            async with self.db.read() as conn:
                for hook, handled, errors in await conn.execute(
                    select(HookStat.hook, HookStat.handled, HookStat.errors).where(
                        HookStat.hook.in_(names)
                    )
                ):
                    stats[hook] = (int(handled), int(errors))
                for hook, n in await conn.execute(
                    select(HookRun.hook, func.count())
                    .where(HookRun.hook.in_(names), HookRun.status.in_(("pending", "running")))
                    .group_by(HookRun.hook)
                ):
                    waiting[hook] = int(n)
                for name in names:
                    rows = await conn.execute(
                        select(HookError.at, HookError.event_type, HookError.error)
                        .where(HookError.hook == name)
                        .order_by(HookError.id.desc())
                        .limit(RECENT_ERRORS)
                    )
                    recent[name] = [
                        {"at": at.isoformat(), "event_type": kind, "error": error}
                        for at, kind, error in rows
                    ]
        for entry in entries:
            handled, errors = stats.get(entry["name"], (0, 0))
            entry.update(
                handled=handled,
                errors=errors,
                waiting=waiting.get(entry["name"], 0),
                recent_errors=recent.get(entry["name"], []),
                load_error=None,
            )
        entries += [
            {
                "name": e.source,
                "module": e.source,
                "kind": "load_error",
                "event_types": [],
                "handled": 0,
                "errors": 0,
                "waiting": 0,
                "recent_errors": [],
                "load_error": e.error,
            }
            for e in self.loaded.errors
        ]
        return entries


def build_hooks(
    settings: HooksSettings, db: Database, bus: LocalBus, *, on_outcome: OutcomeSink | None = None
) -> Hooks:
    """The configured hooks, loaded; ``attach`` the running parts before they run."""
    loaded = load_hooks(settings)
    if settings.strict and loaded.errors:
        raise HookLoadError(
            "hook modules could not be loaded ([hooks] strict = true): "
            + "; ".join(f"{e.source}: {e.error}" for e in loaded.errors)
        )
    return Hooks(loaded, settings, db, bus, on_outcome=on_outcome)
