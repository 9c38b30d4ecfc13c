"""The operator workspace pages: sign-in, the desk, the shift view, the reports.

The pages are thin shells: all data comes from the workspace JSON API and the
WebSocket, fetched by plain scripts in ``static/``. The server only decides who may
open which page (so nobody sees a desk that would then fail on every request) and
hands the script the session's CSRF token in a ``<meta>`` tag.

Every page is sent with a strict Content-Security-Policy: scripts only from this
origin, no inline script at all. The scripts already put every customer string into
the page as text; the policy is the second lock on the same door.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from abonent.app import Runtime
from abonent.db.models import User, UserSession
from abonent.operators.auth import RANK, SESSION_COOKIE, session_user
from abonent.web.deps import RuntimeDep, Signed

HERE = Path(__file__).parent
STATIC = HERE / "static"
templates = Jinja2Templates(directory=str(HERE / "templates"))

router = APIRouter(include_in_schema=False)

API_BASE = "/api/workspace/v1"
ASSETS = (
    "operator.css",
    "operator.js",
    "supervisor.js",
    "operator_templates.js",
    "integrations.js",
    "kb_editor.js",
    "reminders.js",
    "reports.css",
    "reports.js",
    "vendor/chart.umd.min.js",
)

SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
        "frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}

STATUS_LABELS = {"online": "На линии", "break": "Перерыв", "offline": "Не в сети"}
# The role identifiers stay English (config, CLI); people read these, in one word each place.
ROLE_LABELS = {
    "operator": "оператор",
    "editor": "редактор",
    "supervisor": "старший оператор",
    "admin": "администратор",
}


def _asset_versions() -> dict[str, str]:
    """Short content hashes for cache-busting ``?v=`` query strings."""
    versions: dict[str, str] = {}
    for name in ASSETS:
        path = STATIC / name
        try:
            versions[name] = hashlib.sha256(path.read_bytes()).hexdigest()[:10]
        except OSError:
            versions[name] = "0"
    return versions


_VERSIONS = _asset_versions()


def _render(
    request: Request, name: str, context: dict[str, Any], status_code: int = 200
) -> HTMLResponse:
    values: dict[str, Any] = {
        "api_base": API_BASE,
        "v": _VERSIONS,
        "status_labels": STATUS_LABELS,
        "role_labels": ROLE_LABELS,
        "user": None,
        "csrf_token": "",
        "company_name": "",
    }
    values.update(context)
    response = templates.TemplateResponse(request, name, values, status_code=status_code)
    response.headers.update(SECURITY_HEADERS)
    return response


async def _signed(request: Request, runtime: Runtime) -> tuple[User, UserSession] | None:
    return await session_user(runtime.db, request.cookies.get(SESSION_COOKIE, ""))


def _to_login(request: Request) -> RedirectResponse:
    target = request.url.path
    if request.url.query:
        target += "?" + request.url.query
    response = RedirectResponse(f"/operator/login?next={quote(target, safe='')}", status_code=303)
    response.headers["Cache-Control"] = "no-store"
    return response


def _safe_next(value: str | None) -> str:
    """Only a local path of the workspace: never another site (an open redirect)."""
    if not value or not value.startswith("/operator") or value.startswith("//"):
        return "/operator"
    if any(c in value for c in "\\\r\n"):
        return "/operator"
    return value


def _user_context(user: User, user_session: UserSession, runtime: Runtime) -> dict[str, Any]:
    return {
        "user": user,
        "csrf_token": user_session.csrf_token,
        "company_name": runtime.settings.company.name,
        "is_supervisor": RANK.get(user.role, 0) >= RANK["supervisor"],
        "is_admin": RANK.get(user.role, 0) >= RANK["admin"],
    }


@router.get("/operator/login", response_class=HTMLResponse)
async def login_page(request: Request, runtime: RuntimeDep, next: str | None = None) -> Response:
    target = _safe_next(next)
    if await _signed(request, runtime) is not None:
        return RedirectResponse(target, status_code=303)
    return _render(
        request,
        "operator_login.html",
        {"next": target, "company_name": runtime.settings.company.name, "mode": "login"},
    )


@router.get("/operator/logout", response_class=HTMLResponse)
async def logout_page(request: Request, runtime: RuntimeDep) -> Response:
    """A confirmation page: signing out is a POST (with the CSRF token) made by the
    script, so a link on another site cannot sign an operator out."""
    found = await _signed(request, runtime)
    if found is None:
        return RedirectResponse("/operator/login", status_code=303)
    user, user_session = found
    context = _user_context(user, user_session, runtime)
    context.update({"next": "/operator", "mode": "logout"})
    return _render(request, "operator_login.html", context)


@router.get("/operator", response_class=HTMLResponse)
async def workspace_page(request: Request, runtime: RuntimeDep) -> Response:
    found = await _signed(request, runtime)
    if found is None:
        return _to_login(request)
    user, user_session = found
    return _render(request, "operator_workspace.html", _user_context(user, user_session, runtime))


async def _supervisors_page(request: Request, runtime: Runtime, name: str) -> Response:
    """A page for supervisors and admins: anyone else signed in gets a 403 page saying
    so (not an empty page whose every request would fail)."""
    found = await _signed(request, runtime)
    if found is None:
        return _to_login(request)
    user, user_session = found
    context = _user_context(user, user_session, runtime)
    if not context["is_supervisor"]:
        context["message"] = "Эта страница доступна только старшим операторам и администраторам."
        return _render(request, "operator_base.html", context, status_code=403)
    return _render(request, name, context)


@router.get("/operator/supervisor", response_class=HTMLResponse)
async def supervisor_page(request: Request, runtime: RuntimeDep) -> Response:
    return await _supervisors_page(request, runtime, "operator_supervisor.html")


@router.get("/operator/reports", response_class=HTMLResponse)
async def reports_page(request: Request, runtime: RuntimeDep) -> Response:
    """The statistics: the page only draws what /api/workspace/v1/stats answers, so it
    shows exactly the figures of the exports and of ``abonent stats summary``."""
    return await _supervisors_page(request, runtime, "operator_reports.html")


@router.get("/operator/templates", response_class=HTMLResponse)
async def templates_page(request: Request, runtime: RuntimeDep) -> Response:
    """Canned answers: everyone manages their own, admins the shared ones too (the page
    and its API are web/templates_api.py's; only the sign-in check is here)."""
    from abonent.web.templates_api import render_templates_page

    found = await _signed(request, runtime)
    if found is None:
        return _to_login(request)
    return render_templates_page(request, Signed(*found))
