"""Shared fixtures: a migrated database per test, on SQLite or on PostgreSQL.

The suite runs twice (see scripts/test.sh): plain, on SQLite; then with
``ABONENT_TEST_DATABASE_URL`` and ``ABONENT_TEST_REDIS_URL`` pointing at PostgreSQL and
Redis. Tests needing a service call ``require_postgres()``/``require_redis()``: on a
developer's laptop they skip with the reason, under ``CI=true`` they fail.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from abonent import clock
from abonent.db.migrate import upgrade
from abonent.db.models import Base
from abonent.db.session import Database
from support import PG_URL, REDIS_URL, LiveServer, make_settings, seed_demo, unavailable

if TYPE_CHECKING:
    from playwright.async_api import Browser


def require_postgres() -> str:
    if not PG_URL:
        unavailable("PostgreSQL not configured (set ABONENT_TEST_DATABASE_URL)")
    return PG_URL


def require_redis() -> str:
    if not REDIS_URL:
        unavailable("Redis not configured (set ABONENT_TEST_REDIS_URL)")
    return REDIS_URL


def _pg_admin_url(url: str, dbname: str) -> str:
    base, _, _ = url.rpartition("/")
    return f"{base}/{dbname}"


async def _create_pg_database(url: str, name: str) -> None:
    engine = create_async_engine(url, isolation_level="AUTOCOMMIT")
    async with engine.connect() as conn:
        await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        await conn.execute(text(f'CREATE DATABASE "{name}"'))
    await engine.dispose()


async def _drop_pg_database(url: str, name: str) -> None:
    engine = create_async_engine(url, isolation_level="AUTOCOMMIT")
    async with engine.connect() as conn:
        await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    await engine.dispose()


async def _migrate(url: str) -> None:
    engine = create_async_engine(url)
    await upgrade(engine)
    await engine.dispose()


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A migrated database for the session: a SQLite template file, or a fresh PG database."""
    if PG_URL:
        name = f"abonent_t_{os.getpid()}_{uuid.uuid4().hex[:6]}"
        url = _pg_admin_url(PG_URL, name)
        asyncio.run(_create_pg_database(PG_URL, name))
        asyncio.run(_migrate(url))
        yield url
        asyncio.run(_drop_pg_database(PG_URL, name))
    else:
        path = tmp_path_factory.mktemp("dbtemplate") / "template.db"
        url = f"sqlite+aiosqlite:///{path}"
        asyncio.run(_migrate(url))
        yield url


@pytest.fixture
def fresh_database_url(database_url: str, tmp_path: Path) -> str:
    """An empty migrated database for one test (a copied SQLite file, or truncated PG tables)."""
    if database_url.startswith("sqlite"):
        src = Path(database_url.split(":///", 1)[1])
        dst = tmp_path / "abonent.db"
        shutil.copy(src, dst)
        return f"sqlite+aiosqlite:///{dst}"

    async def truncate() -> None:
        engine = create_async_engine(database_url)
        names = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
        async with engine.begin() as conn:
            await conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
        await engine.dispose()

    asyncio.run(truncate())
    return database_url


@pytest.fixture
async def db(fresh_database_url: str) -> AsyncIterator[Database]:
    database = Database(fresh_database_url)
    yield database
    await database.dispose()


@pytest.fixture(autouse=True)
def _real_clock() -> Iterator[None]:
    yield
    clock.set_clock(None)


@pytest.fixture(autouse=True)
def _own_environment() -> Iterator[None]:
    """The CLI run in-process sets ABONENT_CONFIG and ABONENT_DATABASE_URL for its
    command; they must not become the next test's settings."""
    saved = {k: v for k, v in os.environ.items() if k.startswith("ABONENT_")}
    yield
    for key in [k for k in os.environ if k.startswith("ABONENT_")]:
        if key not in saved:
            del os.environ[key]
    os.environ.update(saved)


@pytest.fixture
def live_server(fresh_database_url: str) -> Iterator[LiveServer]:
    """The real server on a free port, demo accounts loaded, the readings window always open."""
    accounts = seed_demo(fresh_database_url)
    server = LiveServer(make_settings(fresh_database_url))
    server.accounts = accounts
    server.start()
    yield server
    server.stop()


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    """A client for the test's own requests, closed after it."""
    async with httpx.AsyncClient(timeout=10) as client:
        yield client


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    """Headless Chromium for the browser tests (see ``chromium``)."""
    from chromium import launch

    async with launch() as b:
        yield b
