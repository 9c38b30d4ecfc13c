"""The demo page and the widget's static files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import FileResponse, HTMLResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

from abonent.web.deps import RuntimeDep

HERE = Path(__file__).parent
STATIC = HERE / "static"
templates = Jinja2Templates(directory=str(HERE / "templates"))

router = APIRouter(include_in_schema=False)


def mount_static(app: FastAPI) -> None:
    app.mount("/static", StaticFiles(directory=str(STATIC)), name="static")


@router.get("/widget.js")
async def widget_js() -> FileResponse:
    return FileResponse(
        STATIC / "widget.js",
        media_type="application/javascript",
        headers={"Cache-Control": "public, max-age=300", "Access-Control-Allow-Origin": "*"},
    )


@router.get("/", response_class=HTMLResponse)
async def demo_page(request: Request, runtime: RuntimeDep) -> HTMLResponse:
    accounts: list[dict[str, Any]] = runtime.extra.get("demo_accounts", [])
    return templates.TemplateResponse(
        request,
        "demo.html",
        {
            "company_name": runtime.settings.company.name,
            "emergency_phone": runtime.settings.company.emergency_phone,
            "public_url": runtime.settings.public_url.rstrip("/"),
            "accounts": accounts,
        },
    )
