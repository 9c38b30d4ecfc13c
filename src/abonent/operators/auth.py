"""Sign-in for the workspace: Argon2 passwords, server-side sessions, CSRF, throttling.

Sessions live in the database (not in a signed cookie) so that several server
processes share them and a disabled user is signed out everywhere at once. The
cookie carries a random token; the table keeps only its SHA-256. Every state-changing
request must echo the session's CSRF token in ``X-CSRF-Token`` (web/deps.py):
SameSite=Lax already stops most cross-site posts, the token stops the rest.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from abonent.clock import utcnow
from abonent.core import eventlog, events
from abonent.core.events import Event
from abonent.db.models import LoginFailure, User, UserSession
from abonent.db.session import Database

ROLES = ("operator", "editor", "supervisor", "admin")
# Who may do what is decided by rank: a supervisor can do what an operator can. An
# editor ranks with operators for chats and may also edit the knowledge base.
RANK = {"operator": 1, "editor": 1, "supervisor": 2, "admin": 3}
# Who may change the knowledge base from the editors' page (supervisors may look).
KB_EDITORS = frozenset({"editor", "admin"})

SESSION_COOKIE = "abonent_session"
SESSION_TTL = timedelta(hours=12)
# Throttling: this many failures per login (or per address) within the window.
MAX_FAILURES = 5
FAILURE_WINDOW = timedelta(minutes=15)

_hasher = PasswordHasher()
# Verified against when the login is unknown, so timing does not reveal which logins exist.
_DUMMY_HASH = _hasher.hash("not a real password")


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class LoginThrottled(Exception):
    """Too many failures: the caller answers 429 and asks to wait."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"too many failed sign-ins, wait {retry_after} s")
        self.retry_after = retry_after


@dataclass(frozen=True)
class SignedIn:
    user: User
    token: str  # for the cookie; never stored
    csrf_token: str
    # ``operator.signed_in``, recorded with the session, for the bus.
    events: tuple[Event, ...] = ()


async def authenticate(db: Database, login: str, password: str, ip: str | None) -> SignedIn | None:
    """A new session for correct credentials of an active user; None otherwise.

    Raises ``LoginThrottled`` before checking anything when this login or this address
    failed too often lately, so guessing is slow even with the right password.

    Each attempt is counted as a failure *before* the password is checked, in one
    transaction with the count (serialised per login and address), and forgotten only
    when it succeeds: twenty wrong passwords sent at once get at most ``MAX_FAILURES``
    checks, not twenty (counting after the check let them all through the gate).
    """
    login = login.strip().lower()[:64]
    now = utcnow()
    since = now - FAILURE_WINDOW
    async with db.transaction() as session:
        await _serialise(session, login, ip)
        recent = select(func.count()).select_from(LoginFailure).where(LoginFailure.at >= since)
        by_login = await session.scalar(recent.where(LoginFailure.login == login)) or 0
        by_ip = await session.scalar(recent.where(LoginFailure.ip == ip)) if ip else 0
        if by_login >= MAX_FAILURES or (by_ip or 0) >= MAX_FAILURES * 4:
            raise LoginThrottled(int(FAILURE_WINDOW.total_seconds()))
        session.add(LoginFailure(login=login, ip=ip, at=now))
        user = await session.scalar(select(User).where(User.login == login))
    if user is None or not user.active:
        verify_password(_DUMMY_HASH, password)
        return None  # the attempt stays counted
    if not verify_password(user.password_hash, password):
        return None
    async with db.transaction() as session:
        # This attempt and the login's earlier failures (the address keeps others').
        await session.execute(delete(LoginFailure).where(LoginFailure.login == login))
        await session.execute(delete(UserSession).where(UserSession.expires_at < now))
        token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(24)
        session.add(
            UserSession(
                token_hash=token_hash(token),
                user_id=user.id,
                csrf_token=csrf,
                created_at=now,
                expires_at=now + SESSION_TTL,
                ip=ip,
            )
        )
        recorded = await eventlog.record(
            session, [Event(events.OPERATOR_SIGNED_IN, {"user_id": user.id})], now
        )
    return SignedIn(user, token, csrf, tuple(recorded))


async def _serialise(session: AsyncSession, login: str, ip: str | None) -> None:
    """On PostgreSQL, one attempt at a time per login and per address (transaction-level
    advisory locks, taken in a fixed order so two attempts never wait on each other);
    SQLite writes one transaction at a time anyway."""
    if session.get_bind().dialect.name != "postgresql":
        return
    keys = sorted({f"login:{login}", *([f"ip:{ip}"] if ip else [])})
    for key in keys:
        await session.execute(
            text("SELECT pg_advisory_xact_lock(hashtextextended(:k, 0))"), {"k": key}
        )


async def session_user(db: Database, token: str) -> tuple[User, UserSession] | None:
    """The active user and session behind a cookie token, if it is valid and not expired."""
    if not token:
        return None
    async with db.session() as session:
        row = (
            await session.execute(
                select(User, UserSession)
                .join(UserSession, UserSession.user_id == User.id)
                .where(UserSession.token_hash == token_hash(token))
            )
        ).first()
    if row is None:
        return None
    user, user_session = row
    if not user.active or user_session.expires_at <= utcnow():
        return None
    return user, user_session


async def sign_out(db: Database, token: str) -> list[Event]:
    """End the session; returns ``operator.signed_out`` (recorded with it) for the bus."""
    async with db.transaction() as session:
        user_id = await session.scalar(
            delete(UserSession)
            .where(UserSession.token_hash == token_hash(token))
            .returning(UserSession.user_id)
        )
        if user_id is None:
            return []
        return await eventlog.record(
            session, [Event(events.OPERATOR_SIGNED_OUT, {"user_id": int(user_id)})]
        )


def csrf_ok(user_session: UserSession, presented: str | None) -> bool:
    return presented is not None and secrets.compare_digest(
        user_session.csrf_token.encode(), presented.encode()
    )
