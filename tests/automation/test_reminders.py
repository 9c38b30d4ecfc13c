"""Payment and readings reminders end to end: the real server, fake Telegram and
WhatsApp, accounts loaded by the CSV import, customers who wrote first, and the
injected clock standing on chosen hours of the company's day."""

from __future__ import annotations

import asyncio
import json
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from abonent.automation.reminders import campaigns
from abonent.automation.reminders.preview import preview
from abonent.automation.reminders.sender import ReminderSender
from abonent.billing.csv_import import import_accounts
from abonent.clock import set_clock
from abonent.core.contacts import ContactDirectory
from abonent.db.models import (
    ChannelIdentity,
    Message,
    ReminderConsent,
    ReminderSend,
    ReminderUnreachable,
)
from abonent.db.session import Database
from fakes import telegram as telegram_api
from fakes import whatsapp as whatsapp_api
from fakes.base import Recorded, Reply
from fakes.telegram import FakeTelegram
from fakes.whatsapp import FakeWhatsApp, Number, Sent, graph_error
from support import Clock, LiveServer, free_port, make_settings, moscow

TEMPLATE = "debt_reminder"
HEADER = "account,holder,address,plan,t1,t2,t3,readings_date,balance,phone\n"
ACCOUNTS = {
    # number: (holder, balance)
    "1000000001": ("Иванов Иван Иванович", "1500.50"),
    "1000000002": ("Петров Пётр Петрович", "300.00"),
    "1000000003": ("Сидорова Анна Павловна", "-120.00"),
    "1000000004": ("Кузнецов Олег Игоревич", "800.00"),
    "1000000005": ("Смирнова Мария Олеговна", "200.00"),
}
WA_OLD = "79005550000"  # wrote more than 24 hours before the campaign


class TemplateWhatsApp(FakeWhatsApp):
    """The fake Cloud API plus approved templates: a ``type: template`` message goes
    out whatever the 24-hour window, as Meta sends them; an unknown template name or
    language is error 132001, as Meta answers."""

    approved = frozenset({(TEMPLATE, "ru")})

    def _send(self, request: Recorded, number: Number) -> Reply:
        body = json.loads(request.body)
        if not isinstance(body, dict) or body.get("type") != "template":
            return super()._send(request, number)
        template = body.get("template") or {}
        key = (template.get("name"), (template.get("language") or {}).get("code"))
        if key not in self.approved:
            return graph_error(
                400, 132001, "(#132001) Template name does not exist in the translation"
            )
        to = body.get("to") or body.get("recipient")
        wamid = f"wamid.TPL{len(self.sent):08d}"
        with self._lock:
            self._sent.append(Sent(number.phone_number_id, str(to), "template", body, wamid, ""))
        return Reply(
            200,
            {
                "messaging_product": "whatsapp",
                "contacts": [{"input": to, "wa_id": to}],
                "messages": [{"id": wamid}],
            },
        )


@pytest.fixture
def tg() -> Iterator[FakeTelegram]:
    fake = FakeTelegram()
    fake.start()
    yield fake
    fake.stop()


@pytest.fixture
def wa() -> Iterator[TemplateWhatsApp]:
    fake = TemplateWhatsApp()
    fake.start()
    yield fake
    fake.stop()


@pytest.fixture
def clock() -> Iterator[Clock]:
    # Monday 7 December 2026, 10:00 in Moscow.
    c = Clock(moscow(2026, 12, 7, 10, 0))
    set_clock(c)
    yield c
    set_clock(None)


@pytest.fixture
def server(
    fresh_database_url: str, tg: FakeTelegram, wa: TemplateWhatsApp, clock: Clock, tmp_path: Path
) -> Iterator[LiveServer]:
    port = free_port()
    settings = make_settings(
        fresh_database_url,
        public_url=f"http://127.0.0.1:{port}",
        channels=[
            {
                "id": "tg",
                "type": "telegram",
                "token": telegram_api.TOKEN,
                "secret": telegram_api.SECRET,
                "username": "@energo_test_bot",
                "api_base": tg.url,
            },
            {
                "id": "wa",
                "type": "whatsapp",
                "token": whatsapp_api.TOKEN,
                "secret": whatsapp_api.APP_SECRET,
                "verify_token": whatsapp_api.VERIFY_TOKEN,
                "phone_number_id": whatsapp_api.PHONE_NUMBER_ID,
                "phone": "+7 800 123-45-67",
                "api_base": wa.url,
            },
        ],
        # The test drives its own senders (several of them, stopped mid-way).
        reminders={"enabled": False, "whatsapp_template": f"{TEMPLATE}:ru"},
    )
    live = LiveServer(settings, port=port).start()
    csv = tmp_path / "accounts.csv"
    csv.write_text(
        HEADER
        + "".join(
            f"{n},{h},г. Тест ул. Ленина д. 1,single,100,,,2026-11-20,{b},\n"
            for n, (h, b) in ACCOUNTS.items()
        ),
        encoding="utf-8",
    )
    report = live.call(import_accounts(live.runtime.db, csv))
    assert not report.errors
    yield live
    live.stop()


# --------------------------------------------------------------------------- helpers
def settle(server: LiveServer) -> None:
    for _ in range(3):
        asyncio.run(server.settle())
        time.sleep(0.05)


def tg_says(server: LiveServer, tg: FakeTelegram, chat: int, text: str) -> None:
    r = tg.deliver_update(f"{server.url}/webhooks/tg", tg.text_update(text, chat_id=chat))
    assert r.status_code == 200
    settle(server)


def tg_press(server: LiveServer, tg: FakeTelegram, chat: int, payload: str) -> None:
    r = tg.deliver_update(f"{server.url}/webhooks/tg", tg.button_update(payload, chat_id=chat))
    assert r.status_code == 200
    settle(server)


def wa_says(server: LiveServer, wa: FakeWhatsApp, who: str, text: str) -> None:
    r = wa.post_event(f"{server.url}/webhooks/wa", wa.text_event(text, wa_id=who))
    assert r.status_code == 200
    settle(server)


def tg_names_account(server: LiveServer, tg: FakeTelegram, chat: int, number: str) -> None:
    """The customer asks the bot for their balance: the account joins their list."""
    tg_says(server, tg, chat, "/start")
    tg_press(server, tg, chat, "balance")
    tg_says(server, tg, chat, number)


def wa_names_account(server: LiveServer, wa: FakeWhatsApp, who: str, number: str) -> None:
    r = wa.post_event(
        f"{server.url}/webhooks/wa", wa.button_reply_event("balance", "Узнать баланс", wa_id=who)
    )
    assert r.status_code == 200
    settle(server)
    wa_says(server, wa, who, number)


def sender(server: LiveServer, db: Database | None = None) -> ReminderSender:
    rt = server.runtime
    return ReminderSender(
        db or rt.db, rt.bus, rt.channels, rt.billing, rt.settings, renew_every=0.2
    )


def run_sender(server: LiveServer, s: ReminderSender) -> None:
    """Everything the sender would do now: expand, then send until nothing is due."""

    async def go() -> None:
        await s.schedule()
        while await s.send_due():
            pass
        await s.schedule()

    server.call(go())


def create(server: LiveServer, name: str, **kw: Any) -> None:
    kw.setdefault("kind", "payment_due")
    kw.setdefault("text", None)
    server.call(campaigns.create(server.runtime.db, name=name, **kw))
    server.call(campaigns.move(server.runtime.db, name, "start"))


async def _rows(server: LiveServer, query: Any) -> list[Any]:
    async with server.runtime.db.session() as session:
        return list((await session.scalars(query)).all())


def rows(server: LiveServer, query: Any) -> list[Any]:
    result: list[Any] = server.call(_rows(server, query))
    return result


def reminders_to(tg: FakeTelegram, chat: int) -> list[str]:
    return [s.text for s in tg.sent if str(s.chat_id) == str(chat) and "задолженность" in s.text]


def wa_reminders(wa: FakeWhatsApp, who: str) -> list[Sent]:
    return [s for s in wa.sent_to(who) if s.type == "template" or "задолженность" in s.text]


def progress(server: LiveServer, name: str) -> dict[str, Any]:
    result: dict[str, Any] = server.call(campaigns.progress(server.runtime.db, name)).as_dict()
    return result


def the_preview(server: LiveServer, name: str) -> dict[str, Any]:
    s = sender(server)

    async def go() -> dict[str, Any]:
        row = await campaigns.get(server.runtime.db, name)
        return (await preview(s.audience, row, "https://pay.example/energo")).as_dict()

    result: dict[str, Any] = server.call(go())
    return result


def customers(server: LiveServer, tg: FakeTelegram, wa: FakeWhatsApp, clock: Clock) -> None:
    """Five customers who wrote first: three on Telegram, two on WhatsApp (one of them
    more than a day before the campaign), each of whom named an account to the bot."""
    wa_names_account(server, wa, WA_OLD, "1000000005")
    wa.close_window(WA_OLD)  # the platform's own clock agrees: the window is closed
    clock.advance(25 * 3600)  # Tuesday 11:00
    tg_names_account(server, tg, 1001, "1000000001")
    tg_names_account(server, tg, 1002, "1000000002")
    tg_names_account(server, tg, 1003, "1000000003")  # overpaid: not in the audience
    wa_names_account(server, wa, whatsapp_api.CUSTOMER, "1000000004")


# --------------------------------------------------------------------------- the Bar
def test_a_payment_due_campaign_reaches_each_debtor_once_in_their_channel(
    server: LiveServer, tg: FakeTelegram, wa: TemplateWhatsApp, clock: Clock
) -> None:
    customers(server, tg, wa, clock)
    # The second Telegram customer has said «стоп» before any campaign.
    tg_says(server, tg, 1002, "стоп")
    assert "напоминания об оплате и показаниях больше не будут приходить" in tg.sent[-1].text

    clock.now = moscow(2026, 12, 8, 22, 30)  # Tuesday night: quiet hours
    create(
        server,
        "december-debts",
        text=(
            "Здравствуйте, {name}! По лицевому счёту {account} задолженность {amount}. "
            "Оплатить: {link}"
        ),
    )
    before = the_preview(server, "december-debts")
    assert before["audience"] == 4  # the overpaid account is nobody's business here
    assert before["channels"] == {
        "tg (telegram, text)": 1,
        "wa (whatsapp, text)": 1,
        "wa (whatsapp, template)": 1,
    }
    assert before["skipped"] == {"opted_out": 1}
    assert len(before["samples"]) == 3

    sent_before = len(tg.sent) + len(wa.sent)
    run_sender(server, sender(server))
    # At 22:30 nobody is written to: the reminders wait for the morning.
    assert len(tg.sent) + len(wa.sent) == sent_before
    assert progress(server, "december-debts")["remaining"] == 3

    clock.now = moscow(2026, 12, 9, 9, 5)
    run_sender(server, sender(server))
    [to_ivan] = reminders_to(tg, 1001)
    assert "Иван Иванович" in to_ivan and "1\u00a0500,50\u00a0₽" in to_ivan
    assert f"{server.url}/r/" in to_ivan  # the payment link goes out tracked
    [tg_msg] = [s for s in tg.sent if s.text == to_ivan]
    assert "reminders:off" in tg_msg.payloads
    assert reminders_to(tg, 1002) == []  # opted out
    assert [s.text for s in tg.sent if str(s.chat_id) == "1003" and "задолж" in s.text] == []
    [inside] = wa_reminders(wa, whatsapp_api.CUSTOMER)
    assert inside.type in ("text", "interactive") and "800,00" in inside.text
    [outside] = wa_reminders(wa, WA_OLD)
    assert outside.type == "template"
    template = outside.body["template"]
    assert template["name"] == TEMPLATE and template["language"] == {"code": "ru"}
    [body] = [c for c in template["components"] if c["type"] == "body"]
    assert [p["text"] for p in body["parameters"]][:3] == [
        "Мария Олеговна",
        "1000000005",
        "200,00\u00a0₽",
    ]

    # The preview showed this very audience.
    done = progress(server, "december-debts")
    assert (done["sent"], done["skipped"], done["failed"], done["remaining"]) == (3, 1, 0, 0)
    assert sum(before["channels"].values()) == done["sent"]

    # A restarted scheduler, or a second one, writes nobody again.
    run_sender(server, sender(server))
    run_sender(server, sender(server))
    assert len(reminders_to(tg, 1001)) == 1
    assert len(wa_reminders(wa, whatsapp_api.CUSTOMER)) == 1
    assert len(wa_reminders(wa, WA_OLD)) == 1
    assert server.call(campaigns.get(server.runtime.db, "december-debts")).state == "done"


def test_stop_after_a_reminder_is_confirmed_and_honoured_by_the_next_campaign(
    server: LiveServer, tg: FakeTelegram, wa: TemplateWhatsApp, clock: Clock
) -> None:
    customers(server, tg, wa, clock)
    create(server, "first")
    run_sender(server, sender(server))
    assert len(reminders_to(tg, 1001)) == 1
    [reminder] = [
        m
        for m in rows(
            server,
            select(Message)
            .join(ChannelIdentity, ChannelIdentity.id == Message.identity_id)
            .where(ChannelIdentity.external_id == "1001"),
        )
        if (m.meta or {}).get("reminder")
    ]
    assert reminder.delivery == "sent" and reminder.author == "bot"

    # The reply lands in the customer's conversation, and the bot answers it there.
    tg_press(server, tg, 1001, "reminders:off")
    assert "больше не будут приходить" in tg.sent[-1].text
    customer_reply = rows(
        server, select(Message).where(Message.author == "customer").order_by(Message.id.desc())
    )[0]
    assert customer_reply.conversation_id == reminder.conversation_id
    [consent] = rows(server, select(ReminderConsent))
    assert (consent.state, consent.how, consent.channel_id) == ("out", "button", "tg")
    assert progress(server, "first")["opted_out"] == 1

    create(server, "second")
    run_sender(server, sender(server))
    assert len(reminders_to(tg, 1001)) == 1  # nothing more
    reasons = server.call(campaigns.skip_reasons(server.runtime.db, "second"))
    assert reasons.get("opted_out") == 1

    # «подписаться» turns them back on, and the next campaign writes again.
    tg_says(server, tg, 1001, "подписаться")
    assert "снова включены" in tg.sent[-1].text
    create(server, "third")
    run_sender(server, sender(server))
    assert len(reminders_to(tg, 1001)) == 2


def test_whatsapp_outside_the_window_without_a_template_is_skipped(
    server: LiveServer, tg: FakeTelegram, wa: TemplateWhatsApp, clock: Clock
) -> None:
    customers(server, tg, wa, clock)
    server.runtime.settings.reminders.whatsapp_template = ""
    create(server, "no-template", channel="whatsapp")
    run_sender(server, sender(server))
    assert wa_reminders(wa, WA_OLD) == []
    assert len(wa_reminders(wa, whatsapp_api.CUSTOMER)) == 1
    reasons = server.call(campaigns.skip_reasons(server.runtime.db, "no-template"))
    assert reasons == {"whatsapp_outside_window_no_template": 1}


def test_a_customer_who_blocked_the_bot_is_marked_and_skipped_next_time(
    server: LiveServer, tg: FakeTelegram, wa: TemplateWhatsApp, clock: Clock
) -> None:
    customers(server, tg, wa, clock)
    tg.blocked.add(1001)
    create(server, "blocked", channel="telegram")
    run_sender(server, sender(server))
    status = progress(server, "blocked")
    assert (status["sent"], status["failed"]) == (1, 1)  # 1002 got it
    [mark] = rows(server, select(ReminderUnreachable))
    [identity] = rows(server, select(ChannelIdentity).where(ChannelIdentity.external_id == "1001"))
    assert mark.identity_id == identity.id and "blocked" in mark.reason

    create(server, "blocked-again", channel="telegram")
    run_sender(server, sender(server))
    reasons = server.call(campaigns.skip_reasons(server.runtime.db, "blocked-again"))
    assert reasons.get("blocked_or_unsubscribed") == 1
    assert (
        len(
            [
                r
                for r in tg.requests
                if r.path.endswith("/sendMessage")
                and r.json().get("chat_id") in (1001, "1001")
                and "задолженность" in r.json().get("text", "")
            ]
        )
        == 1
    )


def test_a_rate_limited_reminder_waits_as_asked_and_goes_out_once(
    server: LiveServer, tg: FakeTelegram, wa: TemplateWhatsApp, clock: Clock
) -> None:
    customers(server, tg, wa, clock)
    tg.fail_next(
        "/sendMessage",
        telegram_api.error(429, "Too Many Requests: retry after 2", retry_after=2),
    )
    create(server, "throttled", channel="telegram")
    run_sender(server, sender(server))
    # One of the two debtors was refused with a 429: queued for the time Telegram asked.
    assert len(reminders_to(tg, 1001)) + len(reminders_to(tg, 1002)) == 1
    [row] = rows(server, select(ReminderSend).where(ReminderSend.status == "queued"))
    assert (row.due_at - clock.now).total_seconds() == pytest.approx(2)
    assert progress(server, "throttled")["remaining"] == 1
    clock.advance(3)
    run_sender(server, sender(server))
    assert (len(reminders_to(tg, 1001)), len(reminders_to(tg, 1002))) == (1, 1)


# --------------------------------------------------------------------------- crashes
def many_customers(server: LiveServer, tg: FakeTelegram, count: int) -> list[int]:
    """``count`` Telegram customers who wrote «/start»; each owes on an account of their
    own (linked the way the bot links a named account)."""
    chats = [2000 + i for i in range(count)]
    csv_rows = [
        f"20000000{i:02d},Клиент Номер Первый,адрес,single,1,,,2026-11-01,{100 + i},\n"
        for i in range(count)
    ]
    path = Path(tempfile.mkdtemp()) / "many.csv"
    path.write_text(HEADER + "".join(csv_rows), encoding="utf-8")
    assert not server.call(import_accounts(server.runtime.db, path)).errors
    for chat in chats:
        r = tg.deliver_update(f"{server.url}/webhooks/tg", tg.text_update("/start", chat_id=chat))
        assert r.status_code == 200
    settle(server)

    async def link() -> None:
        async with server.runtime.db.session() as session:
            found = dict(
                (
                    await session.execute(
                        select(ChannelIdentity.external_id, ChannelIdentity.contact_id)
                    )
                ).all()
            )
        for i, chat in enumerate(chats):
            await ContactDirectory(server.runtime.db).link_account(
                found[str(chat)], f"20000000{i:02d}"
            )

    server.call(link())
    return chats


def test_a_sender_killed_mid_campaign_resumes_and_writes_nobody_twice(
    server: LiveServer, tg: FakeTelegram, clock: Clock
) -> None:
    chats = many_customers(server, tg, 12)
    create(server, "crash", channel="telegram")
    first = sender(server)
    passed = 0
    hang = asyncio.Event()

    async def before_send(_prepared: Any) -> None:
        nonlocal passed
        passed += 1
        if passed > 3:
            await hang.wait()  # the process "dies" here, with the platform call unmade

    first.before_send = before_send

    async def sent_rows() -> int:
        async with server.runtime.db.session() as session:
            found = await session.scalars(
                select(ReminderSend.id).where(ReminderSend.status == "sent")
            )
            return len(found.all())

    async def crash() -> None:
        await first.schedule()
        task = asyncio.create_task(first.send_due())
        # Three sent and recorded, four stuck in flight (one per slot of the channel).
        for _ in range(1000):
            if passed >= 3 + 4 and await sent_rows() >= 3:
                break
            await asyncio.sleep(0.01)
        assert passed == 3 + 4
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    server.call(crash())
    got = Counter(str(s.chat_id) for s in tg.sent if "задолженность" in s.text)
    assert sum(got.values()) == 3

    # Another process takes over once the dead one's leases have run out.
    clock.advance(31)
    run_sender(server, sender(server))
    got = Counter(str(s.chat_id) for s in tg.sent if "задолженность" in s.text)
    assert max(got.values()) == 1  # nobody twice
    status = progress(server, "crash")
    # The four caught mid-send are recorded as interrupted (failed), never repeated.
    assert (status["sent"], status["failed"], status["remaining"]) == (8, 4, 0)
    assert sum(got.values()) == 8
    assert set(got) <= {str(c) for c in chats}
    interrupted = rows(server, select(ReminderSend).where(ReminderSend.status == "interrupted"))
    assert len(interrupted) == 4
    failed = rows(
        server,
        select(Message).where(Message.id.in_([r.message_id for r in interrupted])),
    )
    assert {m.delivery for m in failed} == {"failed"}


@pytest.mark.services
def test_two_processes_share_one_campaign_and_each_contact_gets_it_once(
    server: LiveServer, tg: FakeTelegram, clock: Clock
) -> None:
    if server.runtime.db.is_sqlite:
        pytest.skip("two processes share a campaign on PostgreSQL")
    chats = many_customers(server, tg, 30)
    create(server, "shared", channel="telegram")
    url = server.runtime.settings.database_url

    async def race() -> None:
        # Three "processes": each its own database connections and its own sender.
        dbs = [Database(url), Database(url)]
        try:
            racers = [sender(server, dbs[0]), sender(server, dbs[1]), sender(server)]
            for racer in racers:
                racer.batch = 5

            async def work(s: ReminderSender) -> None:
                await s.schedule()
                while await s.send_due():
                    pass

            await asyncio.gather(*(work(r) for r in racers))
        finally:
            for db in dbs:
                await db.dispose()

    server.call(race())
    run_sender(server, sender(server))
    got = Counter(str(s.chat_id) for s in tg.sent if "задолженность" in s.text)
    assert sorted(got) == sorted(str(c) for c in chats)
    assert set(got.values()) == {1}


# --------------------------------------------------------------------------- units
def test_quiet_hours_end_in_the_morning_and_wrap_midnight() -> None:
    from abonent.automation.reminders.quiet import quiet_until

    night = datetime.fromisoformat("2026-12-08T23:10:00+03:00")
    assert quiet_until(night, "21:00-09:00") == datetime.fromisoformat("2026-12-09T09:00:00+03:00")
    early = datetime.fromisoformat("2026-12-09T06:00:00+03:00")
    assert quiet_until(early, "21:00-09:00") == datetime.fromisoformat("2026-12-09T09:00:00+03:00")
    day = datetime.fromisoformat("2026-12-09T12:00:00+03:00")
    assert quiet_until(day, "21:00-09:00") is None
    assert quiet_until(night, "") is None
    with pytest.raises(ValueError):
        quiet_until(day, "25:00-09:00")


def test_a_monthly_campaign_has_one_period_a_month_from_its_start() -> None:
    from zoneinfo import ZoneInfo

    from abonent.db.models import ReminderCampaign

    tz = ZoneInfo("Europe/Moscow")
    row = ReminderCampaign(schedule="monthly", start_at=moscow(2026, 10, 31, 10, 0))
    assert campaigns.period_of(row, moscow(2026, 10, 31, 9, 0), tz) is None
    assert campaigns.period_of(row, moscow(2026, 10, 31, 10, 0), tz) == (
        "2026-10",
        moscow(2026, 10, 31, 10, 0).astimezone(tz),
    )
    # November has no 31st: its period begins on the 30th; before that, October's runs.
    assert campaigns.period_of(row, moscow(2026, 11, 29, 12, 0), tz)[0] == "2026-10"  # type: ignore[index]
    assert campaigns.period_of(row, moscow(2026, 11, 30, 10, 0), tz)[0] == "2026-11"  # type: ignore[index]
    once = ReminderCampaign(schedule="once", start_at=moscow(2026, 12, 1, 10, 0))
    assert campaigns.period_of(once, moscow(2027, 3, 1), tz) == ("once", once.start_at)
