"""``/docs`` in a real browser with every address but the server's own blocked: the API
documentation must render from the package alone, as on a utility's closed network."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import httpx
import pytest

import chromium
from chromium import expect
from support import LiveServer, make_settings

if TYPE_CHECKING:
    from playwright.async_api import Browser, Route


@pytest.fixture
def server(fresh_database_url: str) -> Iterator[LiveServer]:
    live = LiveServer(make_settings(fresh_database_url)).start()
    try:
        yield live
    finally:
        live.stop()


async def test_docs_render_the_operations_without_network(
    server: LiveServer, browser: Browser
) -> None:
    page, errors = await chromium.new_page(browser, csp=False)
    outside: list[str] = []

    async def only_local(route: Route) -> None:
        if urlsplit(route.request.url).hostname == "127.0.0.1":
            await route.continue_()
        else:
            outside.append(route.request.url)
            await route.abort()

    await page.context.route("**/*", only_local)
    await page.goto(f"{server.url}/docs")
    await expect(page.locator(".swagger-ui .info .title")).to_contain_text("Abonent")
    # The client API's operations are listed, each with its method and path.
    operation = page.locator(".opblock-summary", has_text="/api/client/v1/messages").first
    await expect(operation).to_be_visible()
    await operation.click()
    await expect(page.locator(".opblock-body").first).to_be_visible()
    assert await page.locator(".opblock").count() >= 10
    assert outside == [], f"/docs asked for addresses outside the server: {outside}"
    errors.assert_none()


def test_docs_page_names_only_packaged_assets(server: LiveServer) -> None:
    html = httpx.get(f"{server.url}/docs").text
    assert "cdn." not in html and "https://" not in html
    for asset in ("swagger-ui-bundle.js", "swagger-ui.css", "swagger-ui-favicon-32x32.png"):
        assert f"/static/vendor/{asset}" in html
    bundle = httpx.get(f"{server.url}/static/vendor/swagger-ui-bundle.js")
    assert bundle.status_code == 200 and "SwaggerUIBundle" in bundle.text
    # ReDoc would load from a CDN as well: it is not offered.
    assert httpx.get(f"{server.url}/redoc").status_code == 404
