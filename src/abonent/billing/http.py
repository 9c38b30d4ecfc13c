"""The utility's own billing over HTTP: the contract of docs/billing-http-api.md (v1).

Billing is the source of truth for accounts, balances and readings; we ask it and, when it
is down, neither keep the customer waiting nor lose what they gave us:

* reads have a per-try timeout and are retried with exponential backoff on connection
  errors, timeouts, 5xx and 429 (a ``Retry-After`` is honoured when it is short enough to
  wait for);
* a circuit breaker opens after ``breaker_failures`` consecutive failures: for
  ``breaker_open_seconds`` every call fails at once, then one probe is let through and its
  outcome closes or reopens the circuit — an outage answers in milliseconds, not in
  timeouts, and billing coming back is noticed by the first call after the pause;
* an account billing told us about is reused for ``cache_seconds`` (a conversation reads
  it on every step) and, while billing cannot answer, for up to ``STALE_FOR``: the readings
  flow still checks new readings against what billing last said;
* a submission is tried once, synchronously, within ``submit_timeout``, so the customer
  normally sees billing's own figures; when billing cannot answer it is written to the
  durable queue (``billing.queue``) in the bot's turn and the customer is told the readings
  are accepted and will be passed on. The delivery loop sends it later with the same
  submission id and ``Idempotency-Key``, so billing stores it once.

Every body is validated; one that does not follow the contract is a failure of billing
(``BillingError``), never an exception that reaches the customer as a 5xx. Paths and
queries carry account numbers and phones, so URLs are never logged: log lines name the
endpoint's template and the status or the exception class.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import email.utils
import logging
import time
import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any, Literal, TypeVar

import httpx
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from abonent.billing.accounts import normalise_account_number, normalise_phone
from abonent.billing.base import (
    PLANS,
    ZONES,
    AccountInfo,
    BillingError,
    PeriodSubmission,
    Plan,
    ReadingsAlreadySubmitted,
    ReadingsRejected,
    SubmissionResult,
    ZoneResult,
)
from abonent.billing.local import REJECT_UNKNOWN_ACCOUNT, REJECT_WRONG_COUNT
from abonent.billing.queue import (
    Delivery,
    QueuedSubmission,
    enqueue,
    has_waiting,
    waiting_in_period,
)
from abonent.billing.readings import (
    KOPECK,
    WATT_HOUR,
    compute_zones,
    plain_decimal,
    total_consumption,
    total_cost,
)
from abonent.clock import utcnow
from abonent.config import BillingSettings, TariffSettings, ThreeZone, TwoZone
from abonent.db.session import Database

log = logging.getLogger(__name__)

API_VERSION = "1"
# How long an account billing told us about stands in for billing while it is down.
STALE_FOR = 3600.0
# Accounts remembered per process (a conversation's, for its next steps and outages).
CACHE_SIZE = 10_000
# Billing's tariffs are asked for at most this often.
TARIFFS_FOR = 600.0
# A Retry-After longer than this is not waited for by a customer: the read fails.
MAX_RETRY_WAIT = 5.0

# Billing's reasons for refusing readings, as the customer is told them (the sentence is
# «Не удалось сохранить показания: {reason}.»), when billing sends no message of its own.
REFUSALS = {
    "lower_than_last": "показания меньше последних принятых",
    "wrong_zone_count": "число показаний не совпадает с тарифом",
    "negative": "показание не может быть отрицательным",
    "unknown_account": REJECT_UNKNOWN_ACCOUNT,
    "closed_account": "лицевой счёт закрыт",
    "window_closed": "показания сейчас не принимаются",
    "already_submitted": "показания за этот период уже переданы",
}
REFUSED_OTHER = "биллинг не принял показания"

T = TypeVar("T")


# --------------------------------------------------------------------------- the wire


def _decimal(value: Any) -> Any:
    """Readings and money come as strings ("12500.5") or JSON numbers; floats go through
    their text so that 0.1 stays 0.1."""
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int | float | str):
        try:
            return Decimal(str(value).strip().replace(",", "."))
        except InvalidOperation as exc:
            raise ValueError("not a number") from exc
    return value


Number = Annotated[Decimal, BeforeValidator(_decimal)]


def _text(value: Any) -> Any:
    """Account numbers and phones may come as JSON numbers from a quick implementation."""
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


Text = Annotated[str, BeforeValidator(_text)]
Day = date


class _Wire(BaseModel):
    model_config = ConfigDict(extra="ignore")


class WireReadings(_Wire):
    # ``date`` on the wire; named otherwise here, where ``date`` is the type.
    taken: Day | None = Field(default=None, alias="date")
    values: dict[str, Number]


class WirePeriod(_Wire):
    taken_on: date
    values: dict[str, Number]
    # What the period's submission counted from (the readings before the period).
    base: WireReadings | None = None


class WireAccount(_Wire):
    number: Text
    holder: str = ""
    address: str = ""
    plan: Plan
    phone: Text | None = None
    balance: Number = Decimal(0)
    due_date: date | None = None
    last_readings: WireReadings | None = None
    period_submission: WirePeriod | None = None


class WireAccounts(_Wire):
    accounts: list[WireAccount]


class WireAccepted(_Wire):
    submission_id: str
    status: Literal["accepted"]
    previous: WireReadings | None = None
    consumption: dict[str, Number] | None = None
    tariffs: dict[str, Number] | None = None
    cost: dict[str, Number] | None = None
    replaced: WirePeriod | None = None


class WireRefusal(_Wire):
    error: str = ""
    reason: str = ""
    zone: str | None = None
    message: str | None = None
    period_submission: WirePeriod | None = None


class WireTariffs(_Wire):
    single: Number | None = None
    two_zone: dict[str, Number] | None = None
    three_zone: dict[str, Number] | None = None


class _Malformed(Exception):
    """A body that does not follow the contract (after pydantic's own checks)."""


def _zone_values(plan: str, values: dict[str, Decimal], what: str) -> tuple[Decimal, ...]:
    missing = [z for z in ZONES[plan] if z not in values]
    if missing:
        raise _Malformed(f"{what} lack zones {missing} of plan {plan}")
    return tuple(Decimal(values[z]).quantize(WATT_HOUR) for z in ZONES[plan])


def _period(plan: str, wire: WirePeriod, account: AccountInfo) -> PeriodSubmission:
    values = _zone_values(plan, wire.values, "period_submission.values")
    if wire.base is None:
        return PeriodSubmission(wire.taken_on, values, account.last_readings, account.readings_date)
    base = _zone_values(plan, wire.base.values, "period_submission.base")
    return PeriodSubmission(wire.taken_on, values, base, wire.base.taken)


def _account(wire: WireAccount) -> tuple[AccountInfo, PeriodSubmission | None]:
    plan = wire.plan
    if wire.last_readings is None:
        last = tuple(Decimal("0.000") for _ in ZONES[plan])
        when = None
    else:
        last = _zone_values(plan, wire.last_readings.values, "last_readings.values")
        when = wire.last_readings.taken
    account = AccountInfo(
        number=normalise_account_number(wire.number),
        holder=wire.holder.strip(),
        address=wire.address.strip(),
        plan=plan,
        last_readings=last,
        readings_date=when,
        balance=wire.balance.quantize(KOPECK),
        phone=normalise_phone(wire.phone) if wire.phone else None,
        due_date=wire.due_date,
    )
    period = _period(plan, wire.period_submission, account) if wire.period_submission else None
    return account, period


def _tariffs(wire: WireTariffs) -> TariffSettings:
    two = wire.two_zone
    three = wire.three_zone
    return TariffSettings(
        single=wire.single,
        two_zone=TwoZone(day=two["day"], night=two["night"]) if two else None,
        three_zone=(
            ThreeZone(peak=three["peak"], half_peak=three["half_peak"], night=three["night"])
            if three
            else None
        ),
    )


def _retry_after(response: httpx.Response) -> float | None:
    raw = response.headers.get("retry-after")
    if not raw:
        return None
    try:
        return max(float(raw), 0.0)
    except ValueError:
        pass
    try:
        moment = email.utils.parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return max((moment - datetime.now(UTC)).total_seconds(), 0.0)


# --------------------------------------------------------------------------- breaker


class CircuitBreaker:
    """Closed → (``failures`` in a row) → open for ``open_for`` seconds → half-open: one
    probe; its success closes the circuit, its failure opens it again."""

    def __init__(
        self, failures: int, open_for: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.failures = failures
        self.open_for = open_for
        self.clock = clock
        self.consecutive = 0
        self.open_until: float | None = None
        self._probing = False

    @property
    def state(self) -> Literal["closed", "open", "half_open"]:
        if self.open_until is None:
            return "closed"
        return "open" if self.clock() < self.open_until or self._probing else "half_open"

    def remaining(self) -> float:
        """Seconds until a probe may go (0 when the circuit is closed)."""
        if self.open_until is None:
            return 0.0
        return max(self.open_until - self.clock(), 0.0)

    def check(self) -> None:
        """Raise BillingError at once while the circuit is open; let one probe through."""
        if self.open_until is None:
            return
        if self.clock() < self.open_until or self._probing:
            raise BillingError(f"billing circuit open ({self.remaining():.0f}s left)")
        self._probing = True

    def success(self) -> None:
        self.consecutive = 0
        self.open_until = None
        self._probing = False

    def failure(self) -> None:
        self.consecutive += 1
        if self._probing or self.consecutive >= self.failures:
            if self.open_until is None or self._probing:
                log.warning("billing circuit opened for %.0fs", self.open_for)
            self.open_until = self.clock() + self.open_for
            self._probing = False


# --------------------------------------------------------------------------- client


@dataclass(frozen=True)
class _Known:
    account: AccountInfo
    period: PeriodSubmission | None
    at: float
    # The same moment on the wall clock, for «по данным на …» when served stale.
    told_at: datetime | None = None


class _Refused(Exception):
    """Billing refused a submission (409/422/404): final, not retried."""

    def __init__(self, status: int, refusal: WireRefusal) -> None:
        super().__init__(refusal.reason or refusal.error or str(status))
        self.status = status
        self.refusal = refusal


class HttpBilling:
    """``Billing`` over the v1 contract, with the queue for submissions it cannot make."""

    def __init__(
        self,
        settings: BillingSettings,
        db: Database,
        tariffs: TariffSettings,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.db = db
        self.local_tariffs = tariffs
        self.base = settings.url.rstrip("/")
        self.breaker = CircuitBreaker(
            settings.breaker_failures, settings.breaker_open_seconds, clock
        )
        self._sleep = sleep
        self._clock = clock
        headers = {"Accept": "application/json", "Abonent-Api-Version": API_VERSION}
        if settings.token:
            headers["Authorization"] = f"Bearer {settings.token}"
        self.http = httpx.AsyncClient(
            headers=headers, timeout=httpx.Timeout(settings.timeout), transport=transport
        )
        self._known: OrderedDict[str, _Known] = OrderedDict()
        self._tariffs: tuple[float, TariffSettings | None] | None = None

    async def close(self) -> None:
        await self.http.aclose()

    # ------------------------------------------------------------------ transport

    async def _call(
        self,
        method: str,
        path: str,
        label: str,
        parse: Callable[[httpx.Response], T],
        *,
        params: dict[str, str] | None = None,
        body: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        seconds: float | None = None,
        retries: int = 0,
    ) -> T:
        """One call with retries; ``parse`` maps an answered status to the result (raising
        ``_Malformed`` for a body off the contract, ``_Refused`` for a final refusal).

        Every failure counts towards the breaker; a success (an answer that parses,
        a refusal included) resets it. ``label`` is what the logs may say.
        """
        attempt = 0
        while True:
            self.breaker.check()
            retry_after: float | None = None
            try:
                response = await self.http.request(
                    method,
                    self.base + path,
                    params=params,
                    json=body,
                    headers=headers,
                    timeout=httpx.Timeout(seconds or self.settings.timeout),
                )
            except httpx.TimeoutException:
                reason = f"{label}: no answer in time"
            except httpx.HTTPError as exc:
                reason = f"{label}: unreachable ({exc.__class__.__name__})"
            else:
                status = response.status_code
                if status in (401, 403):
                    self.breaker.failure()
                    raise BillingError(f"{label}: {status}, the token was refused")
                if status >= 500 or status == 429:
                    reason = f"{label}: {status}"
                    retry_after = _retry_after(response)
                else:
                    try:
                        result = parse(response)
                    except _Refused:
                        self.breaker.success()
                        raise
                    except (ValidationError, _Malformed, ValueError) as exc:
                        self.breaker.failure()
                        raise BillingError(
                            f"{label}: {status} answer is off the contract ({_why(exc)})"
                        ) from exc
                    self.breaker.success()
                    return result
            self.breaker.failure()
            if attempt >= retries:
                raise BillingError(reason)
            wait = self.settings.retry_backoff * 2**attempt
            if retry_after is not None:
                if retry_after > MAX_RETRY_WAIT:
                    raise BillingError(f"{reason}, retry after {retry_after:.0f}s")
                wait = retry_after
            attempt += 1
            log.info("billing %s, try %d of %d in %.2fs", reason, attempt + 1, retries + 1, wait)
            await self._sleep(wait)

    # ------------------------------------------------------------------ accounts

    def _remember(self, account: AccountInfo, period: PeriodSubmission | None) -> None:
        self._known[account.number] = _Known(account, period, self._clock(), utcnow())
        self._known.move_to_end(account.number)
        while len(self._known) > CACHE_SIZE:
            self._known.popitem(last=False)

    def _forget(self, number: str) -> None:
        self._known.pop(number, None)

    async def _fetch(self, number: str) -> _Known | None:
        """The account as billing tells it now, else (billing down) as it last told it."""
        key = normalise_account_number(number)
        known = self._known.get(key)
        now = self._clock()
        if known is not None and now - known.at < self.settings.cache_seconds:
            return known
        if not key.isdigit():
            return None  # nothing billing could know; no need to ask

        def parse(response: httpx.Response) -> tuple[AccountInfo, PeriodSubmission | None] | None:
            if response.status_code == 404:
                return None
            if response.status_code != 200:
                raise _Malformed(f"status {response.status_code}")
            return _account(WireAccount.model_validate_json(response.content))

        try:
            found = await self._call(
                "GET",
                f"/accounts/{key}",
                "GET /accounts/{number}",
                parse,
                retries=self.settings.retries,
            )
        except BillingError as exc:
            if known is not None and now - known.at < STALE_FOR:
                log.warning("billing unavailable (%s): answering from its last known data", exc)
                return dataclasses.replace(
                    known, account=dataclasses.replace(known.account, as_of=known.told_at)
                )
            raise
        if found is None:
            self._forget(key)
            return None
        account, period = found
        self._remember(account, period)
        return self._known[account.number]

    async def get_account(self, number: str) -> AccountInfo | None:
        known = await self._fetch(number)
        return known.account if known is not None else None

    async def find_accounts_by_phone(self, phone: str) -> list[AccountInfo]:
        normalised = normalise_phone(phone)
        if normalised is None:
            return []

        def parse(response: httpx.Response) -> list[tuple[AccountInfo, PeriodSubmission | None]]:
            if response.status_code == 404:
                return []
            if response.status_code != 200:
                raise _Malformed(f"status {response.status_code}")
            return [
                _account(a) for a in WireAccounts.model_validate_json(response.content).accounts
            ]

        found = await self._call(
            "GET",
            "/accounts",
            "GET /accounts?phone=…",
            parse,
            params={"phone": normalised},
            retries=self.settings.retries,
        )
        for account, period in found:
            self._remember(account, period)
        return sorted((a for a, _ in found), key=lambda a: a.number)

    async def period_submission(self, number: str, today: date) -> PeriodSubmission | None:
        known = await self._fetch(number)
        if known is None:
            return None
        account = known.account
        waiting = await waiting_in_period(self.db, account.number, account.plan, today)
        if waiting is not None:
            # Ours, not delivered yet: billing does not know it, the customer does.
            base = known.period or PeriodSubmission(
                waiting.taken_on, waiting.values, account.last_readings, account.readings_date
            )
            return PeriodSubmission(waiting.taken_on, waiting.values, base.base, base.base_date)
        return known.period

    # ------------------------------------------------------------------ tariffs

    def _known_tariffs(self) -> TariffSettings:
        """Billing's prices as last told, else the configured ones; no request."""
        if self._tariffs is not None and self._tariffs[1] is not None:
            return self._tariffs[1]
        return self.local_tariffs

    async def tariffs(self) -> TariffSettings:
        """Billing's tariffs where it owns them (``GET /tariffs``), else the configured
        ones. Asked at most every ``TARIFFS_FOR`` seconds and never while the circuit is
        open: prices are an extra, not worth a customer's wait."""
        now = self._clock()
        if self._tariffs is not None and now - self._tariffs[0] < TARIFFS_FOR:
            return self._tariffs[1] or self.local_tariffs
        if self.breaker.state != "closed":
            return self._known_tariffs()

        def parse(response: httpx.Response) -> TariffSettings | None:
            if response.status_code == 404:
                return None  # billing does not own the prices
            if response.status_code != 200:
                raise _Malformed(f"status {response.status_code}")
            return _tariffs(WireTariffs.model_validate_json(response.content))

        try:
            owned = await self._call("GET", "/tariffs", "GET /tariffs", parse)
        except BillingError as exc:
            log.info("billing tariffs unavailable (%s): using the ones known", exc)
            return self._known_tariffs()
        self._tariffs = (now, owned)
        return owned or self.local_tariffs

    # ------------------------------------------------------------------ readings

    def _submission_body(
        self,
        submission_id: str,
        number: str,
        plan: str,
        values: Sequence[Decimal],
        taken_on: date,
        source: str,
        replace: bool,
    ) -> dict[str, Any]:
        return {
            "submission_id": submission_id,
            "account": number,
            "taken_on": taken_on.isoformat(),
            "values": {z: plain_decimal(v) for z, v in zip(ZONES[plan], values, strict=True)},
            "source": source,
            "replace": replace,
        }

    async def _post(self, body: dict[str, Any], seconds: float) -> tuple[int, WireAccepted]:
        def parse(response: httpx.Response) -> tuple[int, WireAccepted]:
            status = response.status_code
            if status in (200, 201):
                accepted = WireAccepted.model_validate_json(response.content)
                if accepted.submission_id != body["submission_id"]:
                    raise _Malformed("the answer is about another submission")
                return status, accepted
            if status in (404, 409, 422):
                try:
                    refusal = WireRefusal.model_validate_json(response.content or b"{}")
                except ValidationError:
                    refusal = WireRefusal()
                if status == 404:
                    refusal = refusal.model_copy(update={"reason": "unknown_account"})
                raise _Refused(status, refusal)
            raise _Malformed(f"status {status}")

        return await self._call(
            "POST",
            "/readings",
            "POST /readings",
            parse,
            body=body,
            headers={
                "Idempotency-Key": str(body["submission_id"]),
                "Content-Type": "application/json",
            },
            seconds=seconds,
        )

    async def submit_readings(
        self,
        number: str,
        values: Sequence[Decimal],
        taken_on: date,
        *,
        source: str,
        conversation_id: int | None = None,
        replace: bool = False,
        submission_id: str | None = None,
    ) -> SubmissionResult:
        """Billing's confirmation when it answers within ``submit_timeout``; otherwise the
        submission is queued and the result, marked ``queued``, is computed from what
        billing last told about the account (a cost only where a tariff is known)."""
        sid = submission_id or str(uuid.uuid4())
        known = await self._fetch(number)
        if known is None:
            raise ReadingsRejected(REJECT_UNKNOWN_ACCOUNT)
        account = known.account
        given = tuple(Decimal(v).quantize(WATT_HOUR) for v in values)
        if len(given) != len(account.zones):
            raise ReadingsRejected(
                REJECT_WRONG_COUNT.format(need=len(account.zones), given=len(given))
            )
        earlier = await self.period_submission(account.number, taken_on) if replace else None
        basis = earlier.as_base(account) if earlier is not None else account
        body = self._submission_body(
            sid, account.number, account.plan, given, taken_on, source, replace
        )
        try:
            if await has_waiting(self.db, account.number):
                # Earlier readings of the account are still queued: these go after them.
                raise BillingError("earlier readings of the account are still queued")
            status, accepted = await self._post(body, self.settings.submit_timeout)
        except _Refused as refused:
            self._forget(account.number)
            raise _refusal_error(refused, account) from None
        except BillingError as exc:
            log.warning("billing unavailable for a submission (%s): queued", exc)
            await self._keep(sid, account, given, taken_on, source, replace, conversation_id)
            return await self._estimate(basis, given, taken_on, earlier)
        self._forget(account.number)
        await self._keep(
            sid,
            account,
            given,
            taken_on,
            source,
            replace,
            conversation_id,
            delivered={
                "status": status,
                **accepted.model_dump(mode="json", exclude_none=True, by_alias=True),
            },
        )
        return await self._confirmed(basis, given, taken_on, accepted, earlier)

    async def _keep(
        self,
        sid: str,
        account: AccountInfo,
        given: tuple[Decimal, ...],
        taken_on: date,
        source: str,
        replace: bool,
        conversation_id: int | None,
        *,
        delivered: dict[str, Any] | None = None,
    ) -> None:
        """The submission's row in the queue, in the caller's turn: waiting for billing,
        or (``delivered``) already confirmed by it, kept as the record of what it said."""
        await enqueue(
            self.db,
            submission_id=sid,
            account_number=account.number,
            plan=account.plan,
            values=given,
            taken_on=taken_on,
            source=source,
            replace=replace,
            conversation_id=conversation_id,
            delivered=delivered,
        )

    async def _estimate(
        self,
        basis: AccountInfo,
        given: tuple[Decimal, ...],
        taken_on: date,
        earlier: PeriodSubmission | None,
    ) -> SubmissionResult:
        # Billing is not asked for its prices now: it has just failed to answer.
        zones = compute_zones(basis, given, self._known_tariffs())
        return SubmissionResult(
            account=dataclasses.replace(basis, last_readings=given, readings_date=taken_on),
            zones=zones,
            previous_date=basis.readings_date,
            total_consumption=total_consumption(zones),
            total_cost=total_cost(zones),
            replaced=earlier,
            queued=True,
        )

    async def _confirmed(
        self,
        basis: AccountInfo,
        given: tuple[Decimal, ...],
        taken_on: date,
        accepted: WireAccepted,
        earlier: PeriodSubmission | None,
    ) -> SubmissionResult:
        """The figures billing confirmed; what it left out is derived from what it sent
        (its previous readings and tariffs) or, for prices, from the configured tariffs."""
        plan = basis.plan
        previous = basis.last_readings
        previous_date = basis.readings_date
        if accepted.previous is not None:
            try:
                previous = _zone_values(plan, accepted.previous.values, "previous.values")
                previous_date = accepted.previous.taken
            except _Malformed:
                pass
        own = await self.tariffs() if accepted.tariffs is None else None
        local = compute_zones(
            dataclasses.replace(basis, last_readings=previous), given, own or self.local_tariffs
        )
        zones: list[ZoneResult] = []
        for zone in local:
            consumption = (accepted.consumption or {}).get(zone.zone, zone.consumption)
            tariff = (
                accepted.tariffs.get(zone.zone) if accepted.tariffs is not None else zone.tariff
            )
            cost = (accepted.cost or {}).get(zone.zone)
            if cost is None and tariff is not None:
                cost = (consumption * tariff).quantize(KOPECK)
            zones.append(
                dataclasses.replace(
                    zone,
                    consumption=Decimal(consumption).quantize(WATT_HOUR),
                    tariff=tariff,
                    cost=None if cost is None else Decimal(cost).quantize(KOPECK),
                )
            )
        replaced = earlier
        if accepted.replaced is not None:
            with contextlib.suppress(_Malformed):
                replaced = _period(plan, accepted.replaced, basis)
        return SubmissionResult(
            account=dataclasses.replace(basis, last_readings=given, readings_date=taken_on),
            zones=tuple(zones),
            previous_date=previous_date,
            total_consumption=total_consumption(zones),
            total_cost=total_cost(zones),
            replaced=replaced,
        )

    async def deliver(self, submission: QueuedSubmission) -> Delivery:
        """One delivery of a queued submission, for ``billing.queue.ReadingsDelivery``."""
        if submission.plan not in PLANS or len(submission.values) != len(ZONES[submission.plan]):
            return Delivery("rejected", "the queued row does not match its plan")
        body = self._submission_body(
            submission.submission_id,
            submission.account_number,
            submission.plan,
            submission.values,
            submission.taken_on,
            submission.source,
            submission.replace,
        )
        try:
            status, accepted = await self._post(body, self.settings.timeout)
        except _Refused as refused:
            self._forget(submission.account_number)
            refusal = refused.refusal
            reason = refusal.reason or refusal.error or f"refused with {refused.status}"
            detail = {
                "status": refused.status,
                **refusal.model_dump(mode="json", exclude_none=True, by_alias=True),
            }
            return Delivery("rejected", reason, detail)
        except BillingError as exc:
            return Delivery("unavailable", str(exc), retry_after=self.breaker.remaining() or None)
        self._forget(submission.account_number)
        return Delivery(
            "accepted",
            detail={
                "status": status,
                **accepted.model_dump(mode="json", exclude_none=True, by_alias=True),
            },
        )


def _refusal_error(refused: _Refused, account: AccountInfo) -> Exception:
    refusal = refused.refusal
    if refused.status == 409 and refusal.period_submission is not None:
        try:
            return ReadingsAlreadySubmitted(
                _period(account.plan, refusal.period_submission, account)
            )
        except _Malformed:
            pass
    message = (refusal.message or "").strip().rstrip(".")
    reason = message or REFUSALS.get(refusal.reason or refusal.error, REFUSED_OTHER)
    zone = refusal.zone if refusal.zone in account.zones else None
    return ReadingsRejected(reason, zone)


def _why(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        return f"{exc.error_count()} errors"
    return exc.__class__.__name__ if not str(exc) else str(exc)[:120]
