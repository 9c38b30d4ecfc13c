"""The supervisors' reports page in a real browser (Debian Chromium driven by Playwright).

A small day is lived through the real server, with the clock standing still between
steps so delays are known to the second: one web-chat customer asks how to pay
without a fee (the bot answers), another writes something the bot cannot read and
asks for an operator, who goes on the line, gets the chat, answers after 95 s and
closes it; the customer rates 5. A supervisor then opens the reports: the cards must
show what ``/stats/summary`` says, every chart must be drawn under the page's CSP,
a topic must open its conversations, the links must lead to the read-only view, the
CSV export must download with the topic's row, and the period and filters must live
in the address.
"""

from __future__ import annotations

import asyncio
import csv
import functools
import io
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest

import chromium
from abonent import clock
from abonent.db.session import Database
from abonent.operators.users import add_user
from chromium import expect
from support import (
    PASSWORD,
    Clock,
    Customer,
    LiveServer,
    Operator,
    make_settings,
    moscow,
    on_server,
)

if TYPE_CHECKING:
    from playwright.async_api import Browser, Page

DAY = "2026-12-02"  # a Wednesday; 10:00 is inside the working hours
CHARTS = ("series", "hours", "topics", "delays", "timeline", "csat")
new_page = functools.partial(chromium.new_page, width=1400, height=1000)


@pytest.fixture
def world(fresh_database_url: str) -> Iterator[tuple[LiveServer, Clock]]:
    async def seed() -> None:
        db = Database(fresh_database_url)
        try:
            await add_user(db, "anna", PASSWORD, name="Анна Петрова")
            await add_user(db, "sveta", PASSWORD, name="Светлана Главная", role="supervisor")
        finally:
            await db.dispose()

    asyncio.run(seed())
    now = Clock(moscow(2026, 12, 2, 10, 0))
    clock.set_clock(now)
    settings = make_settings(fresh_database_url, public_url="https://cc.example.ru")
    server = LiveServer(settings).start()
    try:
        yield server, now
    finally:
        server.stop()


class ConsoleErrors:
    """Every console error (a failed request, a CSP report …), on top of the uncaught
    exceptions and CSP violations ``chromium.PageErrors`` collects."""

    def __init__(self, page: Page) -> None:
        self.errors: list[str] = []
        page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)

    def assert_none(self) -> None:
        assert not self.errors, f"console errors: {self.errors}"


async def card(page: Page, name: str) -> str:
    return (await page.locator(f"[data-card='{name}'] .card-value").inner_text()).strip()


async def ready(page: Page) -> None:
    """Wait until the report, the timeline and the events log of the query are drawn."""
    await expect(page.locator("main[data-state='ready']")).to_have_count(1)


CHARTS_DRAWN = """(names) => names.map((name) => {
  const canvas = document.getElementById("rp-chart-" + name);
  if (!canvas) return [name, "no canvas"];
  const chart = window.Chart && window.Chart.getChart(canvas);
  if (!chart) return [name, "no chart"];
  const pixels = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
  let inked = 0;
  for (let i = 3; i < pixels.length; i += 4) if (pixels[i]) inked++;
  return [name, canvas.width > 0 && canvas.height > 0 && inked > 100 ? "ok" : "blank"];
})"""

CHART_DATA = """(name) => window.Chart.getChart(document.getElementById("rp-chart-" + name))
  .data.datasets.map((d) => d.data)"""

TOPIC_BAR = """() => {
  const chart = window.Chart.getChart(document.getElementById("rp-chart-topics"));
  const bar = chart.getDatasetMeta(0).data[0];
  return { x: (bar.x + bar.base) / 2, y: bar.y };
}"""


async def live_a_day(server: LiveServer, now: Clock, http: httpx.AsyncClient) -> dict[str, Any]:
    """The scripted day; returns the ids the page must show."""
    paying = Customer(server, http)
    await paying.start()
    answer = await paying.say("как оплатить свет без комиссии")
    assert answer, "the bot did not answer"

    lost = Customer(server, http)
    await lost.start()
    await lost.say("фывапролдж олдж")
    now.advance(5)
    await lost.press("operator")

    anna = Operator(server, "anna")
    now.advance(10)
    assert (await anna.login()).status_code == 200
    now.advance(10)
    await anna.online()  # the waiting chat is given to her
    now.advance(75)
    await on_server(server, server.runtime.desk.seen(anna.id))
    sent = await anna.post(
        f"/conversations/{lost.conversation_id}/messages", {"text": "Здравствуйте! Чем помочь?"}
    )
    assert sent.status_code == 201, sent.text
    await server.settle()
    now.advance(30)
    closed = await anna.post(
        f"/conversations/{lost.conversation_id}/close", {"resolution": "ответили"}
    )
    assert closed.status_code == 200, closed.text
    await lost.replies()
    await lost.press("csat:5")
    now.advance(600)
    await on_server(server, server.runtime.desk.seen(anna.id))
    assert (await anna.post("/status", {"status": "break"})).status_code == 200
    now.advance(300)
    await anna.post("/logout")
    await server.settle()
    await on_server(server, server.runtime.consumers.catch_up())
    await anna.http.aclose()
    return {"paying": paying.conversation_id, "lost": lost.conversation_id}


async def test_reports_page_shows_the_figures_drills_down_and_exports(
    browser: Browser, world: tuple[LiveServer, Clock], tmp_path: Path
) -> None:
    server, now = world
    base = server.url
    async with httpx.AsyncClient(timeout=10) as http:
        ids = await live_a_day(server, now, http)

        # Who may open the page: nobody signed in goes to the sign-in form, an operator
        # gets the 403 page.
        anonymous = await http.get(f"{base}/operator/reports?period=today")
        assert anonymous.status_code == 303
        assert anonymous.headers["location"].startswith("/operator/login?next=")
        anna = Operator(server, "anna")
        assert (await anna.login()).status_code == 200
        refused = await anna.http.get("/operator/reports")
        assert refused.status_code == 403
        assert "только старшим операторам" in refused.text
        await anna.http.aclose()

        sveta = Operator(server, "sveta")
        assert (await sveta.login()).status_code == 200
        summary = (await sveta.get("/stats/summary?period=today")).json()
        figures = (await sveta.get("/stats/definitions")).json()["figures"]
        await sveta.http.aclose()
    assert summary["period"]["from"] == DAY
    assert summary["conversations"]["total"] == 2
    assert summary["bot"]["topics"] == {"payment_methods": 1}

    page, errors = await new_page(browser)
    console = ConsoleErrors(page)
    await page.goto(f"{base}/operator/reports?period=today")
    await expect(page).to_have_url(
        f"{base}/operator/login?next=%2Foperator%2Freports%3Fperiod%3Dtoday"
    )
    await page.get_by_label("Логин").fill("sveta")
    await page.get_by_label("Пароль").fill(PASSWORD)
    await page.get_by_role("button", name="Войти").click()
    await expect(page).to_have_url(f"{base}/operator/reports?period=today")
    await ready(page)
    await expect(page.get_by_role("link", name="Отчёты")).to_be_visible()
    await expect(page.get_by_role("button", name="Сегодня")).to_have_attribute(
        "aria-pressed", "true"
    )

    # The cards say what the summary says.
    conv = summary["conversations"]
    assert await card(page, "conversations") == str(conv["total"])
    assert await card(page, "to_operator") == str(conv["to_operator"])
    assert await card(page, "bot_only") == str(conv["bot_only"])
    assert await card(page, "recognised") == str(summary["bot"]["recognised"])
    assert await card(page, "fallback") == str(summary["bot"]["fallback"])
    assert await card(page, "queued") == str(summary["queue"]["queued"])
    assert await card(page, "csat_answered") == str(summary["csat"]["answered"])
    assert summary["links"]["sent"] > 0
    assert await card(page, "links_sent") == str(summary["links"]["sent"])
    await expect(page.locator("#rp-links tbody tr td[data-col='url']")).not_to_have_count(0)
    row = page.locator("#rp-operator-table tr[data-login='anna']")
    replies = summary["operators"]["anna"]["replies"]
    assert replies == 1
    await expect(row.locator("td[data-col='replies']")).to_have_text(str(replies))
    # 95 s from the hand-off (T0 + 5 s) to the answer, in Russian words.
    assert summary["operators"]["anna"]["first_response_s"]["median"] == 95.0
    await expect(row.locator("td[data-col='first_median']")).to_have_text("1 мин 35 с")
    await expect(row.locator("td[data-col='break_s']")).to_have_text("5 мин")
    await expect(page.locator("[data-card='recognition_rate'] .card-value")).to_have_text("50 %")

    # Every label explains itself on focus (and on hover), from /stats/definitions.
    label = page.locator("[data-card='recognised'] .term")
    await expect(label).to_have_attribute("aria-describedby", "rp-def-recognised")
    await label.focus()
    await expect(page.locator("#rp-tip")).to_be_visible()
    await expect(page.locator("#rp-tip")).to_have_text(figures["recognised"]["definition"])
    await page.locator("[data-card='fallback'] .term").hover()
    await expect(page.locator("#rp-tip")).to_have_text(figures["fallback"]["definition"])

    # Every chart is a Chart.js chart with something drawn.
    drawn = dict(await page.evaluate(CHARTS_DRAWN, list(CHARTS)))
    assert drawn == dict.fromkeys(CHARTS, "ok"), drawn
    assert await page.evaluate(CHART_DATA, "topics") == [[1]]
    assert await page.evaluate(CHART_DATA, "csat") == [[0, 0, 0, 0, 1]]
    online, on_break = await page.evaluate(CHART_DATA, "timeline")
    assert len(online) == 1 and len(on_break) == 1, (online, on_break)
    assert online[0]["y"] == "Анна Петрова" and online[0]["x"][0] == pytest.approx(10, abs=0.01)

    # A topic opens its conversations; each links to the read-only view.
    topic = page.locator("#rp-topics button[data-intent='payment_methods']")
    await topic.click()
    drill = page.locator("#rp-drill")
    await expect(drill).to_be_visible()
    await expect(drill.locator("h3")).to_contain_text("Диалоги по теме")
    listed = drill.locator(f"tr[data-conversation='{ids['paying']}']")
    await expect(listed).to_have_count(1)
    await expect(drill.locator("tbody tr")).to_have_count(1)
    await expect(listed.locator("a")).to_have_attribute(
        "href", f"/operator/supervisor?conversation={ids['paying']}"
    )
    # … and so does its bar in the chart.
    await page.get_by_role("button", name="Закрыть").click()
    await expect(drill).to_be_hidden()
    bar = await page.evaluate(TOPIC_BAR)
    await page.locator("#rp-chart-topics").click(position=bar)
    await expect(drill).to_be_visible()
    await expect(listed).to_have_count(1)
    # The hand-overs list theirs too.
    handed = page.locator("[data-card='to_operator'] button")
    await expect(handed).to_have_text("Показать диалоги")
    await handed.click()
    await expect(drill.locator("h3")).to_have_text("Диалоги, переданные операторам")
    await expect(drill.locator(f"tr[data-conversation='{ids['lost']}']")).to_have_count(1)
    await expect(drill.locator("tbody tr")).to_have_count(1)
    # Its export holds exactly the conversations listed.
    async with page.expect_download() as info:
        await drill.locator("[data-export='conversations'] a[data-format='csv']").click()
    listed_csv = tmp_path / "handed.csv"
    await (await info.value).save_as(listed_csv)
    exported = list(csv.DictReader(io.StringIO(listed_csv.read_text(encoding="utf-8-sig"))))
    assert [int(r["conversation_id"]) for r in exported] == [ids["lost"]]

    # The CSV export of the table next to it downloads with the period's row.
    link = page.locator("[data-export='topics'] a[data-format='csv']")
    assert await link.get_attribute("href") == (
        "/api/workspace/v1/stats/export/topics.csv?period=today"
    )
    async with page.expect_download() as info:
        await link.click()
    download = await info.value
    assert download.suggested_filename == f"abonent-topics-{DAY}-{DAY}.csv"
    saved = tmp_path / "topics.csv"
    await download.save_as(saved)
    rows = list(csv.DictReader(io.StringIO(saved.read_text(encoding="utf-8-sig"))))
    assert [(r["intent"], r["count"]) for r in rows] == [("payment_methods", "1")]
    xlsx = page.locator("[data-export='topics'] a[data-format='xlsx']")
    assert await xlsx.get_attribute("href") == (
        "/api/workspace/v1/stats/export/topics.xlsx?period=today"
    )

    # The events log lists the operator's day and filters by type.
    events = page.locator("#rp-events tbody tr")
    signed_in = events.and_(page.locator("[data-type='operator.signed_in']"))
    await expect(signed_in.first).to_be_visible()
    await page.locator("#rp-events-type").select_option("conversation.closed")
    await expect(events).to_have_count(1)
    await expect(events.first).to_have_attribute("data-type", "conversation.closed")
    await expect(events.first.locator("td[data-col='details']")).to_contain_text("ответили")

    # The period and the filters live in the address: a reload shows the same view.
    await page.get_by_role("button", name="7 дней").click()
    await expect(page).to_have_url(f"{base}/operator/reports?period=7d")
    await ready(page)
    await page.locator("#rp-channel").select_option("telegram")
    await expect(page).to_have_url(f"{base}/operator/reports?period=7d&channel=telegram")
    await ready(page)
    await expect(page.locator("[data-card='conversations'] .card-value")).to_have_text("0")
    await page.reload()
    await ready(page)
    await expect(page.get_by_role("button", name="7 дней")).to_have_attribute(
        "aria-pressed", "true"
    )
    await expect(page.locator("#rp-channel")).to_have_value("telegram")
    await expect(page.locator("[data-card='conversations'] .card-value")).to_have_text("0")
    await page.locator("#rp-channel").select_option("")
    await ready(page)
    await page.locator("#rp-from").fill(DAY)
    await page.locator("#rp-to").fill(DAY)
    await page.get_by_role("button", name="Показать", exact=True).click()
    await expect(page).to_have_url(f"{base}/operator/reports?from={DAY}&to={DAY}")
    await ready(page)
    assert await card(page, "conversations") == str(conv["total"])

    # The slowest reply leads to the conversation, opened read-only on the supervisor page.
    slowest = page.locator(f"#rp-slowest tr[data-conversation='{ids['lost']}'] a")
    await expect(slowest).to_have_count(1)
    await slowest.click()
    await expect(page).to_have_url(f"{base}/operator/supervisor?conversation={ids['lost']}")
    await expect(page.locator("#sv-log .msg-customer").first).to_contain_text("фывапролдж")
    await expect(page.locator("#sv-view-sub")).to_contain_text("только просмотр")

    errors.assert_none()
    console.assert_none()
