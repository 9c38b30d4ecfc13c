"""Workspace users: created, re-passworded and disabled from the CLI or by admins."""

from __future__ import annotations

import re

from sqlalchemy import delete, select, update

from abonent.clock import utcnow
from abonent.db.models import User, UserSession
from abonent.db.session import Database
from abonent.operators.auth import ROLES, hash_password
from abonent.operators.desk import requeue_of

LOGIN_RE = re.compile(r"^[a-z0-9._-]{2,64}$")
MIN_PASSWORD = 8


class UserError(ValueError):
    """A request about users that cannot be done; the message says why, for people."""


def check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise UserError(f"the password must be at least {MIN_PASSWORD} characters long")


async def add_user(
    db: Database,
    login: str,
    password: str,
    *,
    name: str | None = None,
    role: str = "operator",
    groups: list[str] | None = None,
    max_chats: int = 3,
) -> User:
    login = login.strip().lower()
    if not LOGIN_RE.match(login):
        raise UserError("a login is 2–64 characters: latin letters, digits, '.', '_' or '-'")
    if role not in ROLES:
        raise UserError(f"role must be one of {', '.join(ROLES)}")
    if max_chats < 1:
        raise UserError("max_chats must be at least 1")
    check_password(password)
    async with db.transaction() as session:
        if await session.scalar(select(User.id).where(User.login == login)) is not None:
            raise UserError(f"user {login!r} already exists")
        user = User(
            login=login,
            name=(name or login).strip(),
            role=role,
            password_hash=hash_password(password),
            active=True,
            groups=sorted(set(groups or [])),
            max_chats=max_chats,
            status="offline",
            created_at=utcnow(),
        )
        session.add(user)
        await session.flush()
        return user


async def set_password(db: Database, login: str, password: str) -> None:
    """New password; every session of the user ends (a leaked password stops working)."""
    check_password(password)
    async with db.transaction() as session:
        user = await session.scalar(select(User).where(User.login == login.strip().lower()))
        if user is None:
            raise UserError(f"no user {login!r}")
        user.password_hash = hash_password(password)
        await session.execute(delete(UserSession).where(UserSession.user_id == user.id))


async def set_active(db: Database, login: str, active: bool) -> User:
    """Disable (or re-enable) a user; disabling signs them out, takes them offline and
    gives their open conversations back to the queue (the desk's next pass, within
    seconds, hands them to someone online)."""
    async with db.transaction() as session:
        user = await session.scalar(select(User).where(User.login == login.strip().lower()))
        if user is None:
            raise UserError(f"no user {login!r}")
        user.active = active
        if not active:
            now = utcnow()
            await session.execute(delete(UserSession).where(UserSession.user_id == user.id))
            await session.execute(
                update(User)
                .where(User.id == user.id)
                .values(status="offline", status_changed_at=now)
            )
            await requeue_of(session, user.id, now)
        return user


async def list_users(db: Database) -> list[User]:
    async with db.session() as session:
        return list(await session.scalars(select(User).order_by(User.login)))
