"""Pages in a real browser: Debian's Chromium driven by Playwright.

The ``browser`` fixture (tests/conftest.py) launches it; without the ``playwright``
package or Chromium a browser test skips with the reason, and under ``CI=true`` it fails.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

from support import unavailable

try:
    from playwright.async_api import async_playwright, expect
except ImportError:  # pragma: no cover - depends on the environment
    async_playwright = expect = None  # type: ignore[assignment]

if TYPE_CHECKING:
    from playwright.async_api import Browser, Page

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TIMEOUT_MS = 10_000
NEEDED = "the browser test"


def require() -> None:
    """Skip (under ``CI=true``: fail) a test without Playwright or Chromium."""
    if async_playwright is None:
        unavailable("the 'playwright' Python package is not installed", NEEDED)
    if not os.path.exists(CHROMIUM):
        unavailable(f"Chromium not found at {CHROMIUM} (apt-get install chromium)", NEEDED)


@asynccontextmanager
async def launch() -> AsyncIterator[Browser]:
    """Headless Chromium; ``expect`` and pages wait ``TIMEOUT_MS`` at most."""
    require()
    expect.set_options(timeout=TIMEOUT_MS)
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield browser
        finally:
            await browser.close()


class PageErrors:
    """Uncaught exceptions on the page and, with ``csp``, Content Security Policy
    violations: the pages under test must cause none."""

    def __init__(self, page: Page, *, csp: bool = True) -> None:
        self.errors: list[str] = []
        page.on("pageerror", lambda exc: self.errors.append(str(exc)))
        if csp:
            page.on(
                "console",
                lambda msg: (
                    self.errors.append(msg.text)
                    if msg.type == "error" and "Content Security Policy" in msg.text
                    else None
                ),
            )

    def assert_none(self) -> None:
        assert not self.errors, f"JavaScript errors on the page: {self.errors}"


async def new_page(
    browser: Browser, width: int = 1280, height: int = 800, *, csp: bool = True
) -> tuple[Page, PageErrors]:
    """A page in a fresh context (Russian locale), with its error collector."""
    context = await browser.new_context(viewport={"width": width, "height": height}, locale="ru-RU")
    page = await context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    return page, PageErrors(page, csp=csp)
