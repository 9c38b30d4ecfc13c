"""Engine and sessions.

SQLite allows one writer at a time and its busy handler sleeps in coarse steps, which
shows up as latency spikes under load; so on SQLite the process serialises its own
write transactions with an asyncio lock and readers run freely (WAL), and the calls
run inline rather than on aiosqlite's thread (see ``inline_sqlite``). PostgreSQL needs
no such lock.

A bot's turn is one transaction (``Database.turn``): whatever the dialog writes on the
way (an appeal, a tracked link, readings, the account it linked) commits with the
replies and the new state, or not at all. The code of a flow does not know it runs in a
turn: inside one, ``write``/``transaction`` open a savepoint on the turn's connection
(a rejected submission rolls back only itself) and ``read``/``session`` read through it
(a flow sees what it wrote a moment ago).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import sqlite3
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextvars import ContextVar
from typing import Any, cast

from sqlalchemy import event, exc, make_url, text
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.sql import Executable
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import ClauseElement

from abonent.db import inline_sqlite

# Two-int advisory keys are a key space of their own (the one-bigint locks elsewhere
# never meet these): (this namespace, conversation id) is one conversation's turn.
_TURN_NAMESPACE = 0x41424E54  # "ABNT"
_TURN_LOCK = text("SELECT pg_advisory_xact_lock(:ns, :key)")
_TURN_TRY_LOCK = text("SELECT pg_try_advisory_xact_lock(:ns, :key)")


class TurnBusy(Exception):
    """Another process is in this conversation's turn (``Database.turn(wait=False)``)."""


class TurnScope:
    """The transaction of one turn, owned by the task that opened it.

    Only that task uses it: a task the turn spawns inherits the context variable, and
    must neither share the connection concurrently nor use it after the commit.
    """

    def __init__(self, db: Database, stack: contextlib.AsyncExitStack) -> None:
        self._db = db
        self._stack = stack
        self.owner = asyncio.current_task()
        self.conn: AsyncConnection | None = None
        # SQLite, before the first write: one connection for the turn's reads (the
        # look-up, the flows' accounts …) instead of a pool checkout for each. The first
        # write turns it into the turn's write connection, so that a turn never holds
        # two pool connections (turns waiting for a second one could starve the pool),
        # and a read still open then goes on on the same connection.
        self._reader: AsyncConnection | None = None
        stack.push_async_callback(self._release_reader)

    async def reader(self) -> AsyncConnection:
        """The connection for a read of this turn before its first write."""
        if self._reader is None:
            reader = self._db.reader.connect()
            await reader.start()
            self._reader = reader
        return self._reader

    async def _release_reader(self) -> None:
        reader, self._reader = self._reader, None
        if reader is not None:
            await reader.close()

    async def connection(self) -> AsyncConnection:
        """The turn's connection. SQLite opens it at the first write, since it is the
        process's one writer from then on; PostgreSQL has it from the start, under
        the conversation's lock."""
        if self.conn is None:
            lock = self._db._write_lock
            if lock is not None:
                await self._stack.enter_async_context(lock)
            if self._reader is not None:
                conn = self._reader  # closed by ``_release_reader`` after the commit
                if conn.in_transaction():
                    await conn.rollback()  # SQLAlchemy's autobegun reads: nothing to keep
                await self._stack.enter_async_context(conn.begin())
            else:
                conn = await self._stack.enter_async_context(self._db.engine.begin())
            if self._db.is_sqlite:
                # An explicit BEGIN: sqlite3 would otherwise let the first SAVEPOINT
                # start the transaction, and its RELEASE would commit it. Straight on the
                # driver, like the turn's hot statements (``HotStatement``).
                try:
                    _sqlite_driver(conn).execute("BEGIN IMMEDIATE")
                except sqlite3.Error as error:
                    raise _wrapped("BEGIN IMMEDIATE", (), error) from error
            self.conn = conn
        return self.conn


_SCOPE: ContextVar[TurnScope | None] = ContextVar("abonent_turn", default=None)


class Database:
    def __init__(self, url: str, *, echo: bool = False) -> None:
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        kwargs: dict[str, Any] = {"echo": echo}
        if self.is_sqlite:
            path = make_url(url).database or ":memory:"
            kwargs["async_creator"] = inline_sqlite.creator(path)
            # A turn holds one while it runs (``TurnScope.reader``); they are cheap.
            kwargs["pool_size"] = 20
        else:
            kwargs["pool_size"] = 10
            kwargs["max_overflow"] = 10
            # Not pool_pre_ping: on asyncpg it costs three round trips per checkout.
            kwargs["pool_recycle"] = 1800
        self.engine: AsyncEngine = create_async_engine(url, **kwargs)
        if self.is_sqlite:
            event.listen(self.engine.sync_engine, "connect", _sqlite_pragmas)
        self.sessionmaker = async_sessionmaker(self.engine, expire_on_commit=False)
        # Reads need no transaction of their own: on PostgreSQL that saves the BEGIN and
        # ROLLBACK round trips around every look-up. (SQLite's driver opens none for reads.)
        self.reader: AsyncEngine = (
            self.engine
            if self.is_sqlite
            else self.engine.execution_options(isolation_level="AUTOCOMMIT")
        )
        self.read_sessionmaker = async_sessionmaker(self.reader, expire_on_commit=False)
        self._write_lock = asyncio.Lock() if self.is_sqlite else None

    @contextlib.asynccontextmanager
    async def turn(self, conversation_id: int, *, wait: bool = True) -> AsyncIterator[TurnScope]:
        """One conversation's turn: one transaction, and on PostgreSQL one turn of the
        conversation at a time across every process (an advisory lock held to the
        commit). The next turn, wherever it runs, starts from what this one committed;
        a process that dies mid-turn leaves nothing of it and releases the lock.

        ``wait=False`` raises ``TurnBusy`` at once when another process holds the turn,
        rather than holding a pooled connection while it waits: under load, waiting
        turns would take every connection of the pool."""
        async with contextlib.AsyncExitStack() as stack:
            scope = TurnScope(self, stack)
            if not self.is_sqlite:
                conn = await scope.connection()
                lock = _TURN_LOCK if wait else _TURN_TRY_LOCK
                got = await conn.scalar(lock, {"ns": _TURN_NAMESPACE, "key": conversation_id})
                if not wait and not got:
                    raise TurnBusy(conversation_id)
            token = _SCOPE.set(scope)
            try:
                yield scope
            finally:
                _SCOPE.reset(token)

    def _turn_connection(self, *, opened: bool) -> TurnScope | None:
        """The current task's turn, if it opened one (``opened``: with its connection)."""
        scope = _SCOPE.get()
        if scope is None or scope.owner is not asyncio.current_task() or scope._db is not self:
            return None
        if opened and scope.conn is None:
            return None
        return scope

    @contextlib.asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        """A read session (no commit)."""
        scope = self._turn_connection(opened=True)
        if scope is not None and scope.conn is not None:
            # Joins the turn's transaction; closing it leaves the transaction alone.
            async with AsyncSession(
                bind=scope.conn, join_transaction_mode="rollback_only", expire_on_commit=False
            ) as session:
                yield session
            return
        async with self.read_sessionmaker() as session:
            yield session

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """A write transaction: committed on success, rolled back on any error."""
        scope = self._turn_connection(opened=False)
        if scope is not None:
            conn = await scope.connection()
            async with (
                AsyncSession(
                    bind=conn, join_transaction_mode="create_savepoint", expire_on_commit=False
                ) as session,
                session.begin(),
            ):
                yield session
            return
        lock = self._write_lock or contextlib.nullcontext()
        async with lock, self.sessionmaker() as session, session.begin():
            yield session

    @contextlib.asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncConnection]:
        """A Core write transaction for the message path: no ORM unit of work to pay for."""
        scope = self._turn_connection(opened=False)
        if scope is not None:
            conn = await scope.connection()
            async with conn.begin_nested():
                yield conn
            return
        lock = self._write_lock or contextlib.nullcontext()
        async with lock, self.engine.begin() as conn:
            yield conn

    @contextlib.asynccontextmanager
    async def write_one(self) -> AsyncIterator[AsyncConnection]:
        """``write`` for a single statement that is not expected to fail (an upsert): in a
        turn it runs on the turn's connection without a savepoint (SAVEPOINT and RELEASE
        would triple its cost), so should it fail after all, the turn fails with it."""
        scope = self._turn_connection(opened=False)
        if scope is not None:
            yield await scope.connection()
            return
        async with self.write() as conn:
            yield conn

    @contextlib.asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        scope = self._turn_connection(opened=False)
        if scope is not None:
            yield scope.conn if scope.conn is not None else await scope.reader()
            return
        async with self.reader.connect() as conn:
            yield conn

    async def ping(self) -> None:
        async with self.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    async def dispose(self) -> None:
        await self.engine.dispose()


class HotResult:
    """The rows (processed as SQLAlchemy would) and rowcount of a ``HotStatement``."""

    __slots__ = ("rowcount", "rows")

    def __init__(self, rows: list[tuple[Any, ...]], rowcount: int) -> None:
        self.rows = rows
        self.rowcount = rowcount

    def first(self) -> tuple[Any, ...] | None:
        return self.rows[0] if self.rows else None

    def scalar(self) -> Any:
        return self.rows[0][0] if self.rows else None

    def scalar_one(self) -> Any:
        if len(self.rows) != 1:
            raise (
                exc.NoResultFound("expected one row")
                if not self.rows
                else exc.MultipleResultsFound("expected one row")
            )
        return self.rows[0][0]


class _Plan:
    """One statement compiled for SQLite once: its SQL, and how to make its parameters
    and read its rows without SQLAlchemy's per-call execution machinery."""

    def __init__(self, statement: Executable, dialect: Dialect, keys: list[str], many: bool):
        compiled = cast(ClauseElement, statement).compile(
            dialect=dialect, column_keys=keys, for_executemany=many
        )
        assert isinstance(compiled, SQLCompiler)
        # Columns whose Python-side default or onupdate SQLAlchemy fills in per call.
        self.prefetch: list[tuple[str, Callable[[], Any]]] = []
        for column in [*compiled.insert_prefetch, *compiled.update_prefetch]:
            default = column.default if compiled.isinsert else column.onupdate
            if default is None or not (default.is_scalar or default.is_callable):
                raise _NotHot(f"default of {column} is neither a value nor a function")
            arg = default.arg  # type: ignore[attr-defined]
            self.prefetch.append((column.key, _caller(arg) if default.is_callable else _value(arg)))
        # Constants (an IN of fixed values, a LIMIT) are expanded once; every call has the
        # same names, so the SQL and the order of its parameters stay the same.
        sample = {k: None for k in keys} | {k: None for k, _ in self.prefetch}
        state = compiled.construct_expanded_state(sample)
        self.sql = state.statement
        processors = compiled._bind_processors
        constants = state.parameters
        self.given = set(keys) | {k for k, _ in self.prefetch}
        self.params: list[tuple[str, Any, Any]] = []
        for name in state.positiontup or ():
            base = name if name in self.given else None
            processor = processors.get(name) or (state.processors or {}).get(name)
            self.params.append((name, None if base else constants.get(name), processor))
        try:
            self.result: list[Callable[[Any], Any] | None] = [
                column[3]._cached_result_processor(dialect, None)
                for column in compiled._result_columns
            ]
        except Exception as error:
            # A type whose processing depends on the row's own description (asyncpg's
            # numerics are told by the column's type oid).
            raise _NotHot(f"result processing needs the cursor: {error}") from error
        self.returns_rows = bool(self.result)

    def args(self, values: Mapping[str, Any]) -> tuple[Any, ...]:
        if self.prefetch:
            values = {**values, **{k: make() for k, make in self.prefetch if k not in values}}
        out = []
        for name, constant, processor in self.params:
            value = values[name] if name in self.given else constant
            out.append(processor(value) if processor is not None else value)
        return tuple(out)

    def rows(self, raw: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
        if not any(self.result):
            return raw
        return [
            tuple(p(v) if p is not None else v for p, v in zip(self.result, row, strict=True))
            for row in raw
        ]


class _NotHot(Exception):
    """The statement needs SQLAlchemy's full execution path."""


class HotStatement:
    """A statement of the message path, run straight on the driver connection.

    SQLAlchemy's execution of an already compiled statement (cache key, parameter
    construction, execution context, result set-up, a greenlet hop) cost several times
    what SQLite itself spends on these one-row statements; the message path runs about a
    dozen of them per customer message. Here the statement is compiled once per set of
    parameter names with the engine's dialect, and each call only converts the values
    with the same bind and result processors and calls ``sqlite3`` (PostgreSQL: asyncpg
    through SQLAlchemy's adapter, see ``_asyncpg_run``), on the connection (and so in
    the transaction) the caller holds. A statement this cannot plan takes the ordinary
    ``conn.execute``. The statement must be built once, at import time: plans are
    cached on it."""

    def __init__(self, statement: Executable) -> None:
        self.statement = statement
        self._plans: dict[tuple[str, tuple[str, ...], bool], _Plan | None] = {}

    def _plan(self, dialect: Dialect, keys: tuple[str, ...], many: bool) -> _Plan | None:
        key = (dialect.name, keys, many)
        try:
            return self._plans[key]
        except KeyError:
            pass
        try:
            plan: _Plan | None = _Plan(self.statement, dialect, list(keys), many)
        except _NotHot:
            plan = None
        self._plans[key] = plan
        return plan

    async def run(self, conn: AsyncConnection, params: Mapping[str, Any]) -> HotResult:
        """Execute with one set of parameters; rows of a SELECT or RETURNING."""
        if conn.dialect.name == "sqlite":
            plan = self._plan(conn.dialect, tuple(sorted(params)), False)
            if plan is not None:
                driver = _sqlite_driver(conn)
                args = plan.args(params)
                try:
                    cursor = driver.execute(plan.sql, args)
                    try:
                        raw = cursor.fetchall() if plan.returns_rows else []
                        return HotResult(plan.rows(raw), cursor.rowcount)
                    finally:
                        cursor.close()
                except sqlite3.Error as error:
                    raise _wrapped(plan.sql, args, error) from error
        elif conn.dialect.name == "postgresql" and _ASYNCPG_DIRECT:
            plan = self._plan(conn.dialect, tuple(sorted(params)), False)
            if plan is not None:
                return await _asyncpg_run(conn, plan, plan.args(params))
        result = await conn.execute(self.statement, dict(params))
        rows = [tuple(r) for r in result.all()] if result.returns_rows else []
        return HotResult(rows, result.rowcount)

    async def run_many(self, conn: AsyncConnection, rows: Sequence[Mapping[str, Any]]) -> None:
        """Execute for each of ``rows`` (all with the same keys); no rows back."""
        if len(rows) == 1:
            await self.run(conn, rows[0])
            return
        if conn.dialect.name == "sqlite" and rows:
            plan = self._plan(conn.dialect, tuple(sorted(rows[0])), True)
            if plan is not None and not plan.returns_rows:
                driver = _sqlite_driver(conn)
                args = [plan.args(r) for r in rows]
                try:
                    driver.executemany(plan.sql, args)
                except sqlite3.Error as error:
                    raise _wrapped(plan.sql, args, error) from error
                return
        elif conn.dialect.name == "postgresql" and _ASYNCPG_DIRECT and rows:
            plan = self._plan(conn.dialect, tuple(sorted(rows[0])), True)
            if plan is not None and not plan.returns_rows:
                await _asyncpg_run_many(conn, plan, [plan.args(r) for r in rows])
                return
        await conn.execute(self.statement, [dict(r) for r in rows])


# PostgreSQL: the hot statements go to asyncpg through SQLAlchemy's own adapter of the
# connection (its transaction, prepared-statement cache and error translation), skipping
# only the execution context. It leans on the adapter's internals (SQLAlchemy 2.1): set
# to False to give PostgreSQL the ordinary path back.
_ASYNCPG_DIRECT = True
_STATUS = re.compile(r"(?:SELECT|UPDATE|DELETE|INSERT \d+) (\d+)")


async def _asyncpg_run(conn: AsyncConnection, plan: _Plan, args: tuple[Any, ...]) -> HotResult:
    """What the adapter's cursor does for one statement (``_prepare_and_execute``)."""
    records, status = await _asyncpg_call(conn, plan, args, many=False)
    found = _STATUS.match(status or "")
    rows = plan.rows([tuple(r) for r in records]) if plan.returns_rows else []
    return HotResult(rows, int(found.group(1)) if found else -1)


async def _asyncpg_run_many(
    conn: AsyncConnection, plan: _Plan, args: list[tuple[Any, ...]]
) -> None:
    """Every row in one round trip (the prepared statement's ``executemany``), where
    SQLAlchemy's executemany would render and batch the rows itself first."""
    await _asyncpg_call(conn, plan, args, many=True)


async def _asyncpg_call(
    conn: AsyncConnection, plan: _Plan, args: Any, *, many: bool
) -> tuple[list[Any], str | None]:
    adapter: Any = conn.sync_connection.connection.dbapi_connection  # type: ignore[union-attr]
    async with adapter._execute_mutex:
        if adapter._transaction is None:
            await adapter._start_transaction()  # a no-op in AUTOCOMMIT (the reads)
        try:
            prepared, _ = await adapter._prepare(
                plan.sql,
                conn.dialect._invalidate_schema_cache_asof,  # type: ignore[attr-defined]
            )
            if many:
                await prepared.executemany(args)
                return [], None
            records = await prepared.fetch(*args)
            return records, prepared.get_statusmsg()
        except Exception as error:
            try:
                adapter._handle_exception(error)  # raises the DBAPI error SQLAlchemy maps
            except adapter.dbapi.Error as translated:
                raise exc.DBAPIError.instance(
                    plan.sql, args, translated, adapter.dbapi.Error
                ) from error
            raise


def _sqlite_driver(conn: AsyncConnection) -> sqlite3.Connection:
    """The ``sqlite3`` connection under the caller's (no I/O: ``inline_sqlite`` runs
    SQLite on the event loop, and this is the connection SQLAlchemy would use)."""
    driver = conn.sync_connection.connection.driver_connection  # type: ignore[union-attr]
    assert isinstance(driver, inline_sqlite.InlineConnection)
    return driver.sqlite


def _caller(function: Callable[[Any], Any]) -> Callable[[], Any]:
    return lambda: function(None)  # SQLAlchemy's wrapped default takes the context


def _value(value: Any) -> Callable[[], Any]:
    return lambda: value


def _wrapped(sql: str, args: Any, error: sqlite3.Error) -> exc.StatementError:
    """The SQLAlchemy exception ``conn.execute`` would raise (callers catch IntegrityError)."""
    return exc.DBAPIError.instance(sql, args, error, sqlite3.Error)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    # Checkpoint every ~40 MB of log rather than SQLite's 4 MB: the pages the message
    # path rewrites in every transaction (a conversation's row, the right edge of the
    # messages' and events' b-trees) are copied into the database once per checkpoint,
    # and each checkpoint blocks the event loop on its writes. The log file is cut back
    # to 64 MB after one.
    cursor.execute("PRAGMA wal_autocheckpoint=10000")
    cursor.execute(f"PRAGMA journal_size_limit={64 * 1024 * 1024}")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute(f"PRAGMA busy_timeout={int(inline_sqlite.BUSY_TIMEOUT_S * 1000)}")
    cursor.close()
