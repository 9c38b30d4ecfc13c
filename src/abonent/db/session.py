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
from collections.abc import AsyncIterator
from contextvars import ContextVar
from typing import Any

from sqlalchemy import event, make_url, text
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

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

    async def connection(self) -> AsyncConnection:
        """The turn's connection. SQLite opens it at the first write, since it is the
        process's one writer from then on; PostgreSQL has it from the start, under
        the conversation's lock."""
        if self.conn is None:
            lock = self._db._write_lock
            if lock is not None:
                await self._stack.enter_async_context(lock)
            conn = await self._stack.enter_async_context(self._db.engine.begin())
            if self._db.is_sqlite:
                # An explicit BEGIN: sqlite3 would otherwise let the first SAVEPOINT
                # start the transaction, and its RELEASE would commit it.
                await conn.exec_driver_sql("BEGIN IMMEDIATE")
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
            kwargs["pool_size"] = 8
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
    async def read(self) -> AsyncIterator[AsyncConnection]:
        scope = self._turn_connection(opened=True)
        if scope is not None and scope.conn is not None:
            yield scope.conn
            return
        async with self.reader.connect() as conn:
            yield conn

    async def ping(self) -> None:
        async with self.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    async def dispose(self) -> None:
        await self.engine.dispose()


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute(f"PRAGMA busy_timeout={int(inline_sqlite.BUSY_TIMEOUT_S * 1000)}")
    cursor.close()
