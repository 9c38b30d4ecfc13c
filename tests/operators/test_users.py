"""Workspace users from the command line, and the demo's ready-made logins."""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy import select
from typer.testing import CliRunner

from abonent.cli import app
from abonent.config import get_settings
from abonent.db.models import Template, User, UserSession
from abonent.db.session import Database
from abonent.demo import seed_demo_users
from abonent.operators.auth import authenticate, verify_password

runner = CliRunner()


def _users(url: str, *args: str, input: str | None = None) -> tuple[int, str]:
    get_settings.cache_clear()  # the command must read this test's database URL
    result = runner.invoke(app, ["users", *args], env={"ABONENT_DATABASE_URL": url}, input=input)
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.output


async def _user(db: Database, login: str) -> User | None:
    async with db.session() as session:
        return await session.scalar(select(User).where(User.login == login))


def _on(url: str, action: Any) -> Any:
    """Run ``action(db)`` on a database of its own (the commands run their own loops)."""

    async def main() -> Any:
        db = Database(url)
        try:
            return await action(db)
        finally:
            await db.dispose()

    return asyncio.run(main())


async def _no_sessions(db: Database) -> bool:
    async with db.session() as session:
        return await session.scalar(select(UserSession)) is None


def test_add_passwd_disable(fresh_database_url: str) -> None:
    url = fresh_database_url
    code, out = _users(
        url,
        "add",
        "Olga",
        "--role",
        "supervisor",
        "--name",
        "Ольга",
        input="first-password\nfirst-password\n",
    )
    assert code == 0 and "created supervisor olga" in out
    user = _on(url, lambda db: _user(db, "olga"))
    assert user is not None and user.name == "Ольга" and user.role == "supervisor"
    assert user.password_hash.startswith("$argon2id$")
    assert verify_password(user.password_hash, "first-password")

    code, out = _users(url, "add", "olga", "--password", "another-one")
    assert code == 1 and "already exists" in out
    code, out = _users(url, "add", "petr", "--password", "short")
    assert code == 1 and "at least 8" in out
    code, out = _users(url, "add", "petr", "--role", "boss", "--password", "long-enough")
    assert code == 1 and "role must be one of" in out

    signed = _on(url, lambda db: authenticate(db, "olga", "first-password", "127.0.0.1"))
    assert signed is not None
    code, _ = _users(url, "passwd", "olga", "--password", "second-password")
    assert code == 0
    assert _on(url, _no_sessions)  # a new password ends every session
    assert _on(url, lambda db: authenticate(db, "olga", "first-password", None)) is None
    assert _on(url, lambda db: authenticate(db, "olga", "second-password", None)) is not None

    code, out = _users(url, "disable", "olga")
    assert code == 0 and "disabled" in out
    assert _on(url, lambda db: authenticate(db, "olga", "second-password", None)) is None
    code, out = _users(url, "list")
    assert "olga\tsupervisor\toffline\tdisabled" in out
    code, out = _users(url, "disable", "nobody")
    assert code == 1 and "no user" in out


async def test_demo_users_and_templates_are_seeded_once(db: Database) -> None:
    logins = await seed_demo_users(db)
    await seed_demo_users(db)
    assert {role for _, _, role in logins} == {"operator", "supervisor", "admin"}
    for login, password, role in logins:
        user = await _user(db, login)
        assert user is not None and user.role == role
        assert await authenticate(db, login, password, None) is not None
    async with db.session() as session:
        codes = list(await session.scalars(select(Template.code)))
    assert sorted(codes) == sorted(set(codes)) and "показания" in codes
