"""HttpBilling against a fake billing on 127.0.0.1 speaking the v1 contract: answers,
slow answers, 5xx, malformed bodies, an outage and the circuit breaker."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import date
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import select

from abonent.billing import build_billing, build_delivery
from abonent.billing.base import BillingError, ReadingsAlreadySubmitted, ReadingsRejected
from abonent.billing.http import HttpBilling
from abonent.billing.local import LocalBilling
from abonent.config import BillingSettings, TariffSettings
from abonent.core.bus import LocalBus
from abonent.db.models import BillingSubmission
from abonent.db.session import Database
from fakes.base import Reply
from fakes.billing import TOKEN, FakeBilling
from support import free_port

NUMBER = "5000123456"
TODAY = date(2026, 12, 3)
PRICES = TariffSettings.model_validate({"two_zone": {"day": "7.36", "night": "3.79"}})


@pytest.fixture
def fake() -> Iterator[FakeBilling]:
    with FakeBilling() as server:
        assert isinstance(server, FakeBilling)
        server.add_account(NUMBER, last={"day": "12500", "night": "5300"}, phone="+79001234567")
        yield server


class Waits:
    """Stands in for asyncio.sleep: records the pauses instead of taking them."""

    def __init__(self) -> None:
        self.pauses: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.pauses.append(seconds)


class Ticks:
    """A monotonic clock the test moves."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make(
    db: Database, url: str, *, sleep: Any = None, clock: Any = None, **settings: Any
) -> HttpBilling:
    values: dict[str, Any] = {"type": "http", "url": url, "token": TOKEN, "cache_seconds": 0}
    values.update(settings)
    extra: dict[str, Any] = {}
    if sleep is not None:
        extra["sleep"] = sleep
    if clock is not None:
        extra["clock"] = clock
    return HttpBilling(BillingSettings(**values), db, PRICES, **extra)


async def test_an_account_as_billing_tells_it(db: Database, fake: FakeBilling) -> None:
    billing = make(db, fake.url)
    try:
        account = await billing.get_account("50001 23456")
        assert account is not None
        assert (account.number, account.plan, account.holder) == (
            NUMBER,
            "two_zone",
            "Петров Пётр Петрович",
        )
        assert account.last_readings == (Decimal("12500.000"), Decimal("5300.000"))
        assert account.readings_date == date(2026, 11, 20)
        assert account.balance == Decimal("1520.40")
        assert account.due_date == date(2026, 12, 25)
        assert await billing.get_account("5000999999") is None
        by_phone = await billing.find_accounts_by_phone("8 (900) 123-45-67")
        assert [a.number for a in by_phone] == [NUMBER]
        assert await billing.find_accounts_by_phone("+79990000000") == []
    finally:
        await billing.close()
    request = fake.calls(f"/accounts/{NUMBER}")[0]
    assert request.headers["authorization"] == f"Bearer {TOKEN}"
    assert request.headers["abonent-api-version"] == "1"
    assert fake.calls("/accounts")[0].query == {"phone": "+79001234567"}


async def test_a_submission_is_confirmed_by_billing_once(db: Database, fake: FakeBilling) -> None:
    billing = make(db, fake.url)
    try:
        result = await billing.submit_readings(
            NUMBER,
            [Decimal("12650"), Decimal("5360")],
            TODAY,
            source="bot",
            submission_id="7d7c6f7e-0000-4000-8000-000000000001",
        )
        # The same submission again (a turn handled twice): billing answers the same.
        again = await billing.submit_readings(
            NUMBER,
            [Decimal("12650"), Decimal("5360")],
            TODAY,
            source="bot",
            submission_id="7d7c6f7e-0000-4000-8000-000000000001",
        )
    finally:
        await billing.close()
    assert not result.queued and not again.queued
    assert [z.consumption for z in result.zones] == [Decimal("150.000"), Decimal("60.000")]
    assert result.total_cost == Decimal("1104.00") + Decimal("227.40")
    assert len(fake.accepted) == 1
    assert fake.accepted[0]["values"] == {"day": "12650", "night": "5360"}
    post = fake.posts[0]
    assert post.headers["idempotency-key"] == post.json()["submission_id"]
    async with db.session() as session:
        rows = list(await session.scalars(select(BillingSubmission)))
    assert [(r.state, r.readings) for r in rows] == [
        ("delivered", {"day": "12650", "night": "5360"})
    ]


async def test_billing_refusals_reach_the_customer(db: Database, fake: FakeBilling) -> None:
    billing = make(db, fake.url)
    try:
        with pytest.raises(ReadingsRejected) as lower:
            await billing.submit_readings(
                NUMBER, [Decimal("12000"), Decimal("5360")], TODAY, source="bot"
            )
        assert lower.value.zone == "day"
        assert "меньше" in lower.value.reason
        await billing.submit_readings(
            NUMBER, [Decimal("12600"), Decimal("5360")], TODAY, source="bot"
        )
        with pytest.raises(ReadingsAlreadySubmitted) as already:
            await billing.submit_readings(
                NUMBER, [Decimal("12700"), Decimal("5400")], TODAY, source="bot"
            )
        assert already.value.earlier.values == (Decimal("12600.000"), Decimal("5360.000"))
        assert already.value.earlier.base == (Decimal("12500.000"), Decimal("5300.000"))
    finally:
        await billing.close()


async def test_a_slow_billing_times_out_and_a_slow_submission_is_queued(
    db: Database, fake: FakeBilling
) -> None:
    billing = make(db, fake.url, timeout=0.3, submit_timeout=0.3, retries=0, cache_seconds=60)
    try:
        assert await billing.get_account(NUMBER) is not None  # known before it slows down
        fake.delay = 1.0
        started = time.monotonic()
        with pytest.raises(BillingError):
            await billing.find_accounts_by_phone("+79001234567")
        assert time.monotonic() - started < 0.9
        result = await billing.submit_readings(
            NUMBER, [Decimal("12650"), Decimal("5360")], TODAY, source="bot"
        )
    finally:
        fake.delay = 0
        await billing.close()
    assert result.queued
    # Counted from what billing last told, priced by the configured tariffs.
    assert result.total_consumption == Decimal("210.000")
    assert result.total_cost == Decimal("1331.40")
    async with db.session() as session:
        states = list(await session.scalars(select(BillingSubmission.state)))
    assert states == ["pending"]


async def test_5xx_is_retried_with_backoff_and_retry_after(db: Database, fake: FakeBilling) -> None:
    waits = Waits()
    billing = make(db, fake.url, retries=2, retry_backoff=0.25, sleep=waits)
    try:
        fake.fail_next(f"/accounts/{NUMBER}", Reply(502, text="Bad Gateway"), times=2)
        assert await billing.get_account(NUMBER) is not None
        assert len(fake.calls(f"/accounts/{NUMBER}")) == 3
        assert waits.pauses == [0.25, 0.5]
        fake.fail_next(
            f"/accounts/{NUMBER}", Reply(429, {"error": "slow down"}, headers={"Retry-After": "2"})
        )
        assert await billing.get_account(NUMBER) is not None
        assert waits.pauses[-1] == 2.0
        # Three failures in a row and no more tries: billing is unavailable (for an
        # account it never told about; a known one is answered from what it last said).
        fake.fail_next("/accounts/5000000002", Reply(503, {"error": "busy"}), times=3)
        with pytest.raises(BillingError):
            await billing.get_account("5000000002")
        assert len(fake.calls("/accounts/5000000002")) == 3
    finally:
        await billing.close()


@pytest.mark.parametrize(
    "reply",
    [
        Reply(200, text="<html>Service temporarily unavailable</html>"),
        Reply(200, {"number": NUMBER, "holder": "x"}),  # no plan
        Reply(200, {"number": NUMBER, "plan": "two_zone", "last_readings": {"values": {"day": 1}}}),
        Reply(200, {"number": NUMBER, "plan": "tariff-x"}),
        Reply(200, {"number": NUMBER, "plan": "single", "balance": "много"}),
        Reply(302, text=""),
    ],
)
async def test_a_malformed_answer_is_billing_unavailable(
    db: Database, fake: FakeBilling, reply: Reply
) -> None:
    billing = make(db, fake.url, retries=0)
    try:
        fake.fail_next(f"/accounts/{NUMBER}", reply)
        with pytest.raises(BillingError):
            await billing.get_account(NUMBER)
        # The next, well-formed answer is used again.
        assert await billing.get_account(NUMBER) is not None
    finally:
        await billing.close()


async def test_a_malformed_submission_answer_queues_the_readings(
    db: Database, fake: FakeBilling
) -> None:
    billing = make(db, fake.url, retries=0)
    try:
        fake.fail_next("/readings", Reply(200, {"status": "ok"}))
        result = await billing.submit_readings(
            NUMBER, [Decimal("12650"), Decimal("5360")], TODAY, source="bot"
        )
    finally:
        await billing.close()
    assert result.queued


async def test_an_outage_opens_the_circuit_and_a_probe_closes_it(
    db: Database, fake: FakeBilling
) -> None:
    ticks = Ticks()
    billing = make(
        db,
        fake.url,
        retries=0,
        breaker_failures=3,
        breaker_open_seconds=30,
        clock=ticks,
        sleep=Waits(),
    )
    try:
        fake.down = True
        for _ in range(3):
            with pytest.raises(BillingError):
                await billing.get_account("5000000001")
        asked = len(fake.requests)
        started = time.monotonic()
        with pytest.raises(BillingError, match="circuit open"):
            await billing.get_account("5000000001")
        assert time.monotonic() - started < 0.05
        assert len(fake.requests) == asked  # failed fast: billing was not asked
        ticks.now += 31
        with pytest.raises(BillingError):  # the probe, billing still down: open again
            await billing.get_account("5000000001")
        assert len(fake.requests) == asked + 1
        with pytest.raises(BillingError, match="circuit open"):
            await billing.get_account(NUMBER)
        fake.down = False
        ticks.now += 31
        assert await billing.get_account(NUMBER) is not None  # the probe succeeds
        assert billing.breaker.state == "closed"
        assert await billing.get_account(NUMBER) is not None
    finally:
        await billing.close()


async def test_unreachable_billing_and_a_refused_token(db: Database, fake: FakeBilling) -> None:
    nowhere = make(db, f"http://127.0.0.1:{free_port()}", retries=1, sleep=Waits())
    wrong = make(db, fake.url, token="wrong")
    try:
        with pytest.raises(BillingError, match="unreachable"):
            await nowhere.get_account(NUMBER)
        with pytest.raises(BillingError, match="401"):
            await wrong.get_account(NUMBER)
    finally:
        await nowhere.close()
        await wrong.close()


async def test_while_billing_is_down_the_last_known_account_is_used(
    db: Database, fake: FakeBilling
) -> None:
    billing = make(db, fake.url, retries=0)
    try:
        assert await billing.get_account(NUMBER) is not None
        fake.down = True
        account = await billing.get_account(NUMBER)
        assert account is not None and account.last_readings[0] == Decimal("12500.000")
        with pytest.raises(BillingError):
            await billing.get_account("5000000009")  # never seen: nothing to fall back on
    finally:
        await billing.close()


async def test_billing_owned_tariffs_price_the_submission(db: Database, fake: FakeBilling) -> None:
    fake.tariffs = {"two_zone": {"day": "8.00", "night": "4.00"}}
    billing = make(db, fake.url)
    try:
        result = await billing.submit_readings(
            NUMBER, [Decimal("12600"), Decimal("5300")], TODAY, source="bot"
        )
    finally:
        await billing.close()
    assert [z.tariff for z in result.zones] == [Decimal("8.00"), Decimal("4.00")]
    assert result.total_cost == Decimal("800.00")


def test_billing_settings_keep_old_configs_and_need_an_address() -> None:
    assert BillingSettings.model_validate({"backend": "local"}).type == "local"
    assert BillingSettings().type == "local"
    with pytest.raises(ValueError, match=r"billing\.url"):
        BillingSettings(type="http")
    http = BillingSettings(type="http", url="https://billing.example.ru/abonent/v1")
    assert (http.timeout, http.retries, http.breaker_failures) == (3.0, 2, 5)


async def test_build_billing_follows_the_settings(db: Database, fake: FakeBilling) -> None:
    local = build_billing(BillingSettings(), PRICES, db)
    assert isinstance(local, LocalBilling)
    assert build_delivery(local, db, LocalBus()) is None
    remote = build_billing(BillingSettings(type="http", url=fake.url, token=TOKEN), PRICES, db)
    try:
        assert isinstance(remote, HttpBilling)
        assert build_delivery(remote, db, LocalBus()) is not None
        assert await remote.get_account(NUMBER) is not None
    finally:
        await remote.close()
        await local.close()


async def test_logs_name_no_phone_or_account(
    db: Database, fake: FakeBilling, caplog: pytest.LogCaptureFixture
) -> None:
    """Ours: httpx's own request lines are silenced by ``setup_logging`` (abonent.logs)."""
    caplog.set_level("DEBUG", logger="abonent")
    billing = make(db, fake.url, retries=1, sleep=Waits(), cache_seconds=60)
    try:
        assert await billing.get_account(NUMBER) is not None
        fake.down = True
        with pytest.raises(BillingError):
            await billing.find_accounts_by_phone("+79001234567")
        assert await billing.get_account(NUMBER) is not None  # from what billing last told
        await billing.submit_readings(
            NUMBER, [Decimal("12650"), Decimal("5360")], TODAY, source="bot"
        )
    finally:
        await billing.close()
    ours = "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("abonent"))
    assert "billing unavailable" in ours
    assert "9001234567" not in ours
    assert NUMBER not in ours
