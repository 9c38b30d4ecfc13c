"""Request dependencies as ``Annotated`` aliases (the FastAPI template's ``deps.py``)."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from abonent.app import Runtime
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
