"""Request dependencies as ``Annotated`` aliases (the FastAPI template's ``deps.py``)."""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Path, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from abonent.app import Runtime
from abonent.db.models import User, UserSession
from abonent.operators.auth import RANK, SESSION_COOKIE, csrf_ok, session_user
from abonent.web.errors import ApiError

_bearer = HTTPBearer(auto_error=False)


async def get_runtime(request: Request) -> Runtime:
    """Async on purpose: a plain ``def`` dependency would run on a worker thread."""
    runtime: Runtime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
BearerDep = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]


async def require_operator_token(runtime: RuntimeDep, credentials: BearerDep) -> None:
    expected = runtime.settings.operators.api_token
    if not expected:
        raise ApiError(503, "not_configured", "Set operators.api_token to use the operator API.")
    if credentials is None:
        raise ApiError(401, "missing_token", "Send 'Authorization: Bearer <operator API token>'.")
    if not hmac.compare_digest(credentials.credentials.encode(), expected.encode()):
        raise ApiError(401, "invalid_token", "The operator API token is not valid.")


OperatorAccess = Depends(require_operator_token)


# --------------------------------------------------------------------------- workspace
# Ids beyond a bigint would reach PostgreSQL as an error instead of a plain "not found".
MAX_ID = 2**63 - 1
IdPath = Annotated[int, Path(ge=1, le=MAX_ID)]


@dataclass(frozen=True)
class Signed:
    """The signed-in workspace user of this request, with their session."""

    user: User
    session: UserSession

    @property
    def id(self) -> int:
        return self.user.id

    def can(self, role: str) -> bool:
        return RANK[self.user.role] >= RANK[role]


_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


async def signed_in(request: Request, runtime: RuntimeDep) -> Signed:
    """The user behind the session cookie; state-changing requests must carry the CSRF
    token of that session in ``X-CSRF-Token``."""
    found = await session_user(runtime.db, request.cookies.get(SESSION_COOKIE, ""))
    if found is None:
        raise ApiError(401, "not_signed_in", "Sign in to the workspace.")
    user, user_session = found
    if request.method not in _SAFE_METHODS and not csrf_ok(
        user_session, request.headers.get("x-csrf-token")
    ):
        raise ApiError(403, "csrf", "The CSRF token is missing or wrong; reload the page.")
    return Signed(user, user_session)


CurrentUser = Annotated[Signed, Depends(signed_in)]


def require_role(role: str) -> Callable[[Signed], Awaitable[Signed]]:
    """A dependency that lets through users of ``role`` or a higher one."""

    async def check(user: CurrentUser) -> Signed:
        if not user.can(role):
            raise ApiError(403, "forbidden", f"This needs the {role} role.")
        return user

    return check


Supervisor = Annotated[Signed, Depends(require_role("supervisor"))]
Admin = Annotated[Signed, Depends(require_role("admin"))]
