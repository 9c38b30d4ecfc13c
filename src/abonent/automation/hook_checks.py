"""The companies' own readings checks, run inside the customer's turn.

Unlike the event hooks, these are on the message path: the customer waits for them, so
each has a short time limit, and a check that fails (raises, or runs out of time) is
logged with its name, counted and then ignored — the submission goes on as if the check
had accepted it. A broken company script must never keep customers from submitting
their readings; a check that vetoes says why in Russian and the customer types again.

This module imports nothing of the bot or of the hooks' runtime, so that the readings
flow can call it without importing anything above itself.
"""

from __future__ import annotations

import asyncio
import logging
import traceback
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from abonent.billing.base import AccountInfo

log = logging.getLogger("abonent.hooks")

# The longest veto text kept: it goes to the customer as one bubble.
MAX_MESSAGE = 1000


@dataclass(frozen=True)
class ReadingsCheck:
    """What a readings check is asked about: the readings the customer typed (one value
    per zone of ``account.zones``, in that order) before they are stored."""

    account: AccountInfo
    values: tuple[Decimal, ...]
    # The company's local date of the submission.
    today: date
    conversation_id: int
    contact_id: int
    channel_id: str
    # The customer is replacing readings already submitted in this billing period.
    replacing: bool = False

    @property
    def previous(self) -> tuple[Decimal, ...]:
        """The last accepted readings, zone by zone (what ``values`` are compared with)."""
        return self.account.last_readings


CheckFunction = Callable[[ReadingsCheck], Awaitable[str | None]]


@dataclass(frozen=True)
class NamedCheck:
    name: str
    module: str
    function: CheckFunction


# (hook name, error text): told to whoever records failures (metrics, the status page).
FailureSink = Callable[[str, str], None]


class ReadingsChecks:
    """The checks of every loaded hook set, in load order: the first veto wins."""

    def __init__(
        self,
        checks: Sequence[NamedCheck],
        *,
        timeout: float = 3.0,
        on_failure: FailureSink | None = None,
    ) -> None:
        self.checks = list(checks)
        self.timeout = timeout
        self.on_failure = on_failure

    def __bool__(self) -> bool:
        return bool(self.checks)

    async def veto_readings(
        self,
        account: AccountInfo,
        values: Sequence[Decimal],
        today: date,
        *,
        conversation_id: int,
        contact_id: int,
        channel_id: str,
        replacing: bool = False,
    ) -> str | None:
        """``veto`` as the readings flow calls it, without building the context itself."""
        ctx = ReadingsCheck(
            account=account,
            values=tuple(values),
            today=today,
            conversation_id=conversation_id,
            contact_id=contact_id,
            channel_id=channel_id,
            replacing=replacing,
        )
        return await self.veto(ctx)

    async def veto(self, ctx: ReadingsCheck) -> str | None:
        """The first check's refusal (a message for the customer), or None to go on."""
        for check in self.checks:
            try:
                async with asyncio.timeout(self.timeout):
                    answer = await check.function(ctx)
            except (asyncio.CancelledError, KeyboardInterrupt):
                raise
            except BaseException as exc:  # a company script's sys.exit() included
                error = (
                    f"TimeoutError: took longer than {self.timeout:g} s"
                    if isinstance(exc, TimeoutError)
                    else f"{type(exc).__name__}: {exc}"
                )
                log.error(
                    "readings check %s failed, ignored (the submission goes on): %s\n%s",
                    check.name,
                    error,
                    "".join(traceback.format_exception(exc)).rstrip(),
                )
                if self.on_failure is not None:
                    self.on_failure(check.name, error)
                continue
            if answer is None:
                continue
            if not isinstance(answer, str) or not answer.strip():
                log.error(
                    "readings check %s returned %r, not a message or None: ignored",
                    check.name,
                    type(answer).__name__,
                )
                if self.on_failure is not None:
                    self.on_failure(check.name, f"returned {type(answer).__name__}")
                continue
            return answer.strip()[:MAX_MESSAGE]
        return None
