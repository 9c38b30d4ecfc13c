"""Python hooks: the examples of examples/hooks through the real server, and the runtime's
guarantees (off the message path, time limits, errors recorded, runs never doubled).

The hook sets below (``failing``, ``hanging``, ``broken``) are loaded by the servers of
these tests as ``automation.test_hooks:<name>``, the way a company names its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any, cast

import httpx
import pytest
from sqlalchemy import func, select

from abonent.automation.hook_runtime import (
    HookConsumer,
    HookLoadError,
    HookRunner,
    build_hooks,
    load_hooks,
    start_cursor_at_end,
)
from abonent.automation.hooks import HookApi, HookEvent, HookServices, HookSet, ReadingsCheck
from abonent.clock import set_clock, utcnow
from abonent.config import HooksSettings
from abonent.core import eventlog, events
from abonent.core.bus import LocalBus
from abonent.core.eventlog import EventConsumers
from abonent.core.events import Event
from abonent.db.models import (
    ContactCardDetail,
    Conversation,
    ConversationTag,
    HookError,
    HookRun,
    HookStat,
    Message,
    User,
)
from abonent.db.session import Database
from abonent.operators.card import customer_card
from fakes.crm import TOKEN, FakeCrm
from support import (
    ALWAYS_OPEN,
    Clock,
    LiveServer,
    account_history,
    make_settings,
    seed_demo,
    seed_users,
    texts,
    to_values,
    web_chat,
)

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "hooks"
EMERGENCY = ALWAYS_OPEN["emergency_phone"]
HERE = __name__  # "automation.test_hooks": what the servers import
IVANOV = "1000234561"  # a demo account: single zone, last reading 12 500 kWh
_DAY = timedelta(days=1)

# --------------------------------------------------------------------------- test hook sets
failing = HookSet("failing")
hanging = HookSet("hanging")
broken = HookSet("broken")


@failing.on("message.received")
async def explode(event: HookEvent, api: HookApi) -> None:
    raise ValueError("boom in the company script")


@hanging.on("message.received")
async def stall(event: HookEvent, api: HookApi) -> None:
    await asyncio.sleep(60)


@broken.readings_check
async def explodes(ctx: ReadingsCheck) -> str | None:
    raise RuntimeError("the check's own bug")


# --------------------------------------------------------------------------- helpers
StartServer = Callable[..., Awaitable[LiveServer]]


@pytest.fixture
def hooks_server(fresh_database_url: str) -> Iterator[StartServer]:
    """``start(modules, **hooks settings)``: the real server with these hook modules, the
    demo accounts and one operator (``anna``, for the card's audit), the examples' folder
    on the path and no entry points."""
    servers: list[LiveServer] = []

    def start_now(
        modules: list[str], crm: dict[str, Any] | None, hooks: dict[str, Any]
    ) -> LiveServer:
        seed_demo(fresh_database_url)
        seed_users(fresh_database_url, {"anna": {"name": "Анна"}})
        config = {"modules": modules, "paths": [str(EXAMPLES)], "entry_points": False, **hooks}
        extra: dict[str, Any] = {"hooks": config, "company": ALWAYS_OPEN}
        if crm is not None:
            extra["crm"] = crm
        server = LiveServer(make_settings(fresh_database_url, **extra)).start()
        servers.append(server)
        return server

    async def start(
        modules: list[str], *, crm: dict[str, Any] | None = None, **hooks: Any
    ) -> LiveServer:
        # In a thread: seeding runs an event loop of its own.
        return await asyncio.to_thread(start_now, modules, crm, hooks)

    yield start
    for server in servers:
        server.stop()


async def eventually(check: Callable[[], Awaitable[Any]], limit: float = 20.0) -> Any:
    """``check()``'s first truthy result, polled (hooks run off the message path)."""
    deadline = time.monotonic() + limit
    while True:
        result = await check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {limit} s: {check.__name__}")
        await asyncio.sleep(0.1)


async def status_of(server: LiveServer, name: str) -> dict[str, Any]:
    entries = await asyncio.wrap_future(
        asyncio.run_coroutine_threadsafe(server.runtime.hooks.status(), server.loop)  # type: ignore[arg-type]
    )
    [entry] = [e for e in entries if e["name"] == name]
    return dict(entry)


async def rows(url: str, query: Any) -> list[Any]:
    db = Database(url)
    try:
        async with db.session() as session:
            return list((await session.execute(query)).all())
    finally:
        await db.dispose()


# --------------------------------------------------------------------------- the examples
async def test_no_power_report_is_answered_tagged_noted_and_queued(
    hooks_server: StartServer, fresh_database_url: str
) -> None:
    server = await hooks_server(["company_hooks"])
    async with web_chat(server) as me:
        await me.say("Здравствуйте, в Заречном районе нет света с утра")

        async def emergency_reply() -> list[dict[str, Any]]:
            return [m for m in await me.replies() if EMERGENCY in m["text"]]

        [reply] = await eventually(emergency_reply)
        assert reply["author"] == "bot"
        assert "аварийную службу" in reply["text"]
        conv = me.conversation_id

        async def tagged() -> list[Any]:
            return await rows(
                fresh_database_url,
                select(ConversationTag.tag, ConversationTag.source).where(
                    ConversationTag.conversation_id == conv
                ),
            )

        assert [tuple(r) for r in await eventually(tagged)] == [("нет света", "company.no_power")]
        notes = await rows(
            fresh_database_url,
            select(Message.text).where(Message.conversation_id == conv, Message.author == "note"),
        )
        assert any("район «Заречном»" in n[0] for n in notes), notes
        [status] = await rows(
            fresh_database_url, select(Conversation.status).where(Conversation.id == conv)
        )
        assert status[0] == "queued"
        # The operator's card shows the tag.
        card = await asyncio.wrap_future(
            asyncio.run_coroutine_threadsafe(
                customer_card(
                    server.runtime.db,
                    server.runtime.billing,
                    server.runtime.crm,
                    await _contact_of(fresh_database_url, conv),
                    await _user_id(fresh_database_url),
                    conv,
                ),
                server.loop,  # type: ignore[arg-type]
            )
        )
        assert card["tags"] == ["нет света"]
        # A second report in the same chat is not handled again.
        await me.say("свет так и не дали, нет света до сих пор")
        await asyncio.sleep(2.5)
        again = [m for m in await me.replies() if EMERGENCY in m["text"]]
        assert again == []
    entry = await status_of(server, "company.no_power")
    assert entry["handled"] >= 2 and entry["errors"] == 0
    assert entry["module"] == "company_hooks" and entry["event_types"] == ["message.received"]


async def _contact_of(url: str, conv: int) -> int:
    [row] = await rows(url, select(Conversation.contact_id).where(Conversation.id == conv))
    return int(row[0])


async def _user_id(url: str) -> int:
    [row] = await rows(url, select(User.id).where(User.login == "anna"))
    return int(row[0])


@pytest.fixture
def fake_crm() -> Iterator[FakeCrm]:
    fake = FakeCrm()
    fake.start()
    yield fake
    fake.stop()


async def test_crm_phone_example_puts_the_crm_phone_on_the_card(
    hooks_server: StartServer, fresh_database_url: str, fake_crm: FakeCrm
) -> None:
    server = await hooks_server(
        ["company_hooks"], crm={"type": "http", "url": fake_crm.url, "token": TOKEN}
    )
    number = IVANOV
    fake_crm.add_person("Иванов Иван Иванович", phones=["+79990001122"], accounts=[number])
    async with web_chat(server) as me:
        await me.press("balance")
        assert "К оплате" in texts(await me.say(number))
        await me.press("operator")
        conv = me.conversation_id
        contact = await _contact_of(fresh_database_url, conv)

        async def card_phone() -> list[Any]:
            return await rows(
                fresh_database_url,
                select(ContactCardDetail.phone, ContactCardDetail.source).where(
                    ContactCardDetail.contact_id == contact
                ),
            )

        assert [tuple(r) for r in await eventually(card_phone)] == [
            ("+79990001122", "company.crm_phone")
        ]
        assert {"account": number} in fake_crm.lookups
        notes = await rows(
            fresh_database_url,
            select(Message.text).where(Message.conversation_id == conv, Message.author == "note"),
        )
        assert [n[0] for n in notes] == [
            f"Телефон из CRM по счёту {number}: +79990001122 (Иванов Иван Иванович)"
        ]
        card = await asyncio.wrap_future(
            asyncio.run_coroutine_threadsafe(
                customer_card(
                    server.runtime.db,
                    server.runtime.billing,
                    server.runtime.crm,
                    contact,
                    await _user_id(fresh_database_url),
                    conv,
                ),
                server.loop,  # type: ignore[arg-type]
            )
        )
        assert card["contact"]["phone"] == "+79990001122"
        assert card["contact"]["phone_source"] == "integration"


async def test_readings_check_vetoes_and_nothing_is_stored(
    hooks_server: StartServer, fresh_database_url: str
) -> None:
    server = await hooks_server(["company_hooks"])
    number = IVANOV
    _, before = await account_history(fresh_database_url, number)
    async with web_chat(server) as me:
        await to_values(me, number)
        refused = texts(await me.say("125003"))
        assert "Показание 125003 длиннее, чем может показать ваш счётчик" in refused
        assert "не больше 5 цифр до запятой" in refused
        _, after = await account_history(fresh_database_url, number)
        assert len(after) == len(before)
        # The customer types it again, right this time: accepted and stored.
        accepted = texts(await me.say("12600"))
        assert "Показания приняты" in accepted
    account, stored = await account_history(fresh_database_url, number)
    assert len(stored) == len(before) + 1 and str(account.t1) == "12600.000"


async def test_a_readings_check_that_raises_lets_the_submission_through(
    hooks_server: StartServer, fresh_database_url: str
) -> None:
    server = await hooks_server([f"{HERE}:broken"])
    number = IVANOV
    _, before = await account_history(fresh_database_url, number)
    async with web_chat(server) as me:
        await to_values(me, number)
        assert "Показания приняты" in texts(await me.say("12600"))
    _, stored = await account_history(fresh_database_url, number)
    assert len(stored) == len(before) + 1

    async def counted() -> dict[str, Any] | None:
        entry = await status_of(server, "broken.explodes")
        return entry if entry["errors"] == 1 else None

    entry = await eventually(counted)
    assert entry["kind"] == "readings_check"
    assert entry["recent_errors"][0]["event_type"] == "readings.check"
    assert entry["recent_errors"][0]["error"] == "RuntimeError: the check's own bug"


# --------------------------------------------------------------------------- failures
async def test_a_hook_that_raises_is_recorded_and_the_conversation_goes_on(
    hooks_server: StartServer, fresh_database_url: str
) -> None:
    server = await hooks_server([f"{HERE}:failing"], attempts=1)
    async with web_chat(server) as me:
        first = await me.say("Какие у вас тарифы?")
        assert first, "the bot answers whatever the hook does"

        async def failed() -> dict[str, Any] | None:
            entry = await status_of(server, "failing.explode")
            return entry if entry["errors"] >= 1 else None

        entry = await eventually(failed)
        assert entry["handled"] == 0
        assert entry["recent_errors"][0]["error"] == "ValueError: boom in the company script"
        assert entry["recent_errors"][0]["event_type"] == "message.received"
        # The next message is answered too, and its run fails on its own.
        assert await me.say("Как передать показания?")
    runs = await rows(fresh_database_url, select(HookRun.status, HookRun.last_error))
    assert runs and all(r[0] in ("failed", "pending", "running") for r in runs)
    assert runs[0][1] == "ValueError: boom in the company script"
    async with httpx.AsyncClient() as http:
        metrics = (await http.get(f"{server.url}/metrics")).text
    assert 'abonent_hook_runs_total{hook="failing.explode",outcome="error"}' in metrics


async def test_a_hook_that_hangs_is_stopped_at_its_time_limit(
    hooks_server: StartServer, fresh_database_url: str
) -> None:
    server = await hooks_server([f"{HERE}:hanging"], timeout=0.5, attempts=1)
    async with web_chat(server) as me:
        assert await me.say("Здравствуйте")

        async def timed_out() -> dict[str, Any] | None:
            entry = await status_of(server, "hanging.stall")
            return entry if entry["errors"] == 1 else None

        entry = await eventually(timed_out)
        assert entry["recent_errors"][0]["error"] == "TimeoutError: did not finish in 0.5 s"
        assert await me.say("Какие у вас тарифы?")
    [run] = await rows(
        fresh_database_url, select(HookRun.status).where(HookRun.hook == "hanging.stall").limit(1)
    )
    assert run[0] == "failed"


async def test_a_module_that_cannot_be_imported_is_reported_and_the_rest_runs(
    hooks_server: StartServer,
) -> None:
    server = await hooks_server(["no_such_company_module", "company_hooks"])
    entry = await status_of(server, "no_such_company_module")
    assert entry["kind"] == "load_error"
    assert entry["load_error"] == "ModuleNotFoundError: No module named 'no_such_company_module'"
    assert (await status_of(server, "company.no_power"))["load_error"] is None
    async with web_chat(server) as me:
        assert await me.say("Здравствуйте")


def test_strict_loading_refuses_to_start_with_a_broken_module(tmp_path: Path) -> None:
    settings = HooksSettings(modules=["no_such_company_module"], entry_points=False, strict=True)
    with pytest.raises(HookLoadError, match="no_such_company_module"):
        build_hooks(settings, Database(f"sqlite+aiosqlite:///{tmp_path}/x.db"), LocalBus())


def test_mistakes_in_a_hook_set_fail_at_import() -> None:
    hooks = HookSet("typos")
    with pytest.raises(ValueError, match="matches no event type"):
        hooks.on("conversaton.queued")
    with pytest.raises(TypeError, match="must be 'async def'"):
        hooks.on("message.received")(lambda event, api: None)  # type: ignore[type-var]
    loaded = load_hooks(HooksSettings(modules=[f"{HERE}:nothing_here"], entry_points=False))
    assert (
        loaded.errors[0].error == f"AttributeError: module {HERE} has no attribute 'nothing_here'"
    )


# --------------------------------------------------------------------------- the queue
def _counting(seen: list[int]) -> HookSet:
    hooks = HookSet("counting")

    @hooks.on("message.*")
    async def count(event: HookEvent, api: HookApi) -> None:
        await asyncio.sleep(0.02)
        seen.append(event.id)

    return hooks


async def _record(db: Database, n: int) -> None:
    async with db.write() as conn:
        await eventlog.record(
            conn,
            [
                Event(events.MESSAGE_RECEIVED, {"message_id": 10_000 + i, "channel_id": "web"})
                for i in range(n)
            ],
        )


def _unused_api(handler: Any, event: HookEvent) -> HookApi:
    """The counting hook calls nothing: an API without the running parts does."""
    return HookApi(cast(HookServices, None), handler.name, event)


async def test_a_first_start_begins_at_the_end_of_the_log(db: Database) -> None:
    seen: list[int] = []
    handlers = _counting(seen).handlers
    await _record(db, 3)  # history from before the hooks were installed
    await start_cursor_at_end(db)
    consumers = EventConsumers(db, LocalBus(), [HookConsumer(handlers, max_age=_DAY)])
    await _record(db, 2)
    assert await consumers.catch_up() == 2
    runner = HookRunner(db, LocalBus(), handlers, _unused_api)
    assert await runner.run_once() == 2
    assert len(seen) == 2


@pytest.mark.services
async def test_two_processes_never_run_a_hook_twice_for_one_event(
    fresh_database_url: str,
) -> None:
    if fresh_database_url.startswith("sqlite"):
        pytest.skip("several processes share the queue on PostgreSQL")
    seen: list[int] = []
    handlers = _counting(seen).handlers
    one, two = Database(fresh_database_url), Database(fresh_database_url)
    try:
        await start_cursor_at_end(one)
        await _record(one, 40)
        # Both read the log at once: the cursor's lock lets one queue each event.
        queues = [
            EventConsumers(d, LocalBus(), [HookConsumer(handlers, max_age=_DAY)], batch=7)
            for d in (one, two)
        ]
        await asyncio.gather(*(q.catch_up() for q in queues))
        [[queued]] = await rows(fresh_database_url, select(func.count()).select_from(HookRun))
        assert queued == 40
        runners = [HookRunner(d, LocalBus(), handlers, _unused_api, batch=5) for d in (one, two)]

        async def drain(runner: HookRunner) -> int:
            total = 0
            while done := await runner.run_once():
                total += done
            return total

        shares = await asyncio.gather(*(drain(r) for r in runners))
        assert sum(shares) == 40 and all(shares), shares
        assert len(seen) == 40 and len(set(seen)) == 40
        [[handled]] = await rows(fresh_database_url, select(HookStat.handled))
        assert handled == 40
        assert not await rows(fresh_database_url, select(HookError.id))
    finally:
        await one.dispose()
        await two.dispose()


async def test_a_failed_run_is_retried_after_its_backoff_and_a_dead_runs_lease_taken_over(
    db: Database,
) -> None:
    clock_ = Clock(utcnow())
    set_clock(clock_)
    calls: list[int] = []
    stuck = asyncio.Event()
    flaky = HookSet("flaky")

    @flaky.on("message.received")
    async def once_wrong(event: HookEvent, api: HookApi) -> None:
        calls.append(event.id)
        if len(calls) == 1:
            raise ConnectionError("CRM refused")
        if len(calls) == 3:
            stuck.set()
            await asyncio.sleep(60)  # the process "dies" in the middle of this one

    await start_cursor_at_end(db)
    consumers = EventConsumers(db, LocalBus(), [HookConsumer(flaky.handlers, max_age=_DAY)])
    await _record(db, 1)
    await consumers.catch_up()
    runner = HookRunner(db, LocalBus(), flaky.handlers, _unused_api, attempts=3)
    assert await runner.run_once() == 1
    [(status, error)] = await rows(db.url, select(HookRun.status, HookRun.last_error))
    assert (status, error) == ("pending", "ConnectionError: CRM refused")
    assert await runner.run_once() == 0  # not before its backoff
    clock_.advance(6)
    assert await runner.run_once() == 1
    assert [r[0] for r in await rows(db.url, select(HookRun.status))] == ["done"]
    assert [tuple(r) for r in await rows(db.url, select(HookStat.handled, HookStat.errors))] == [
        (1, 1)
    ]
    # A second event: its first runner is killed mid-run; another takes it over later.
    await _record(db, 1)
    await consumers.catch_up()
    dying = asyncio.create_task(runner.run_once())
    await stuck.wait()
    dying.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await dying
    other = HookRunner(db, LocalBus(), flaky.handlers, _unused_api, attempts=3)
    assert await other.run_once() == 0  # leased by the "dead" one
    clock_.advance(31)
    assert await other.run_once() == 1
    assert len(calls) == 4 and calls[2] == calls[3]  # at least once: the event seen twice
    assert sorted(r[0] for r in await rows(db.url, select(HookRun.status))) == ["done", "done"]
