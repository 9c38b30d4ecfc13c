"""The one source of "now", so tests can stand on a chosen day of the readings window."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

_override: Callable[[], datetime] | None = None


def utcnow() -> datetime:
    return _override() if _override is not None else datetime.now(UTC)


def set_clock(func: Callable[[], datetime] | None) -> None:
    """Replace the clock (``None`` restores the real one); values must be timezone-aware."""
    global _override
    _override = func
