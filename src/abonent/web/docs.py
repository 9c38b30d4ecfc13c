"""The interactive API documentation at ``/docs``, served from the package.

FastAPI's default page loads Swagger UI from a CDN, so on the closed networks many
utilities run it stays blank. The assets are vendored under ``static/vendor/`` (see
the README there for the pinned version and checksums) and the page names only them;
Swagger UI's online validator is switched off for the same reason.
"""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.openapi.docs import get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import HTMLResponse

DOCS_URL = "/docs"
OAUTH2_REDIRECT_URL = "/docs/oauth2-redirect"
VENDOR = "/static/vendor"
# Pinned together with the files in static/vendor/ (vendor/README.md).
SWAGGER_UI_VERSION = "5.35.0"

router = APIRouter(include_in_schema=False)


@router.get(DOCS_URL)
async def swagger_ui() -> HTMLResponse:
    return get_swagger_ui_html(
        openapi_url="/openapi.json",
        title="Abonent API",
        swagger_js_url=f"{VENDOR}/swagger-ui-bundle.js?v={SWAGGER_UI_VERSION}",
        swagger_css_url=f"{VENDOR}/swagger-ui.css?v={SWAGGER_UI_VERSION}",
        swagger_favicon_url=f"{VENDOR}/swagger-ui-favicon-32x32.png",
        oauth2_redirect_url=OAUTH2_REDIRECT_URL,
        # validatorUrl: the badge would call validator.swagger.io from the browser.
        swagger_ui_parameters={"validatorUrl": None},
    )


@router.get(OAUTH2_REDIRECT_URL)
async def swagger_ui_redirect() -> HTMLResponse:
    return get_swagger_ui_oauth2_redirect_html()
