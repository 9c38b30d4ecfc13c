"""The statistics over HTTP and the command line: who may read them, what a bad
period or filter gets, the exports' contents, Prometheus' new series, and the README
defining every figure with the words the page shows."""

from __future__ import annotations

import asyncio
import csv
import io
import re
from pathlib import Path

import httpx
import pytest
from openpyxl import load_workbook
from typer.testing import CliRunner

from abonent.analytics.definitions import FIGURES
from abonent.analytics.exports import KINDS
from abonent.cli import app
from abonent.db.session import Database
from abonent.operators.users import add_user
from support import PASSWORD, Customer, LiveServer, Operator, on_server, texts

TOKEN = {"Authorization": "Bearer test-operator-token"}
README = Path(__file__).resolve().parents[2] / "README.md"


async def _busy_day(server: LiveServer, http: httpx.AsyncClient) -> None:
    me = Customer(server, http)
    await me.start()
    assert "Оплатить" in texts(await me.say("как оплатить свет без комиссии"))
    await me.say("сколько стоит киловатт")
    await on_server(server, server.runtime.consumers.catch_up())


async def test_the_api_wants_the_token_or_a_supervisor_and_explains_bad_requests(
    live_server: LiveServer,
) -> None:
    db = Database(live_server.settings.database_url)
    await add_user(db, "olga", PASSWORD, name="Ольга")
    await add_user(db, "sveta", PASSWORD, name="Светлана", role="supervisor")
    await db.dispose()
    base = f"{live_server.url}/api/stats/v1"
    async with httpx.AsyncClient(timeout=30) as http:
        await _busy_day(live_server, http)
        missing = await http.get(f"{base}/summary")
        assert missing.status_code == 401 and missing.json()["error"]["code"] == "missing_token"
        wrong = await http.get(f"{base}/summary", headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401

        olga = Operator(live_server, "olga")
        await olga.login()
        assert (await olga.get("/stats/report")).status_code == 403
        sveta = Operator(live_server, "sveta")
        await sveta.login()
        mine = await sveta.get("/stats/report?period=today")
        assert mine.status_code == 200
        assert mine.json()["bot"]["recognised"] >= 1

        bad = {
            "period=lastweek": 422,
            "from=2026-13-01&to=2026-12-01": 422,
            "from=2026-12-05&to=2026-12-01": 422,
            "from=2026-12-01": 422,
            "from=1900-01-01&to=2026-12-01": 422,
            "channel=fax": 422,
            "operator=0": 422,
            f"operator={2**63}": 422,
        }
        for query, status in bad.items():
            r = await http.get(f"{base}/report?{query}", headers=TOKEN)
            assert r.status_code == status, (query, r.text)
            assert set(r.json()["error"]) >= {"code", "message"}, query
        events = await http.get(f"{base}/events?type=operator.fired", headers=TOKEN)
        assert events.status_code == 422 and "operator.fired" in events.json()["error"]["message"]
        unknown = await http.get(f"{base}/export/salaries.csv", headers=TOKEN)
        assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "unknown_report"
        assert (await http.get(f"{base}/export/daily.pdf", headers=TOKEN)).status_code == 422

        # A filter that matches nothing is an empty report, not an error.
        telegram = await http.get(f"{base}/report?period=today&channel=telegram", headers=TOKEN)
        assert telegram.status_code == 200 and telegram.json()["bot"]["free_text"] == 0


async def test_every_export_downloads_as_csv_and_xlsx_with_the_report_figures(
    live_server: LiveServer,
) -> None:
    base = f"{live_server.url}/api/stats/v1"
    async with httpx.AsyncClient(timeout=30) as http:
        await _busy_day(live_server, http)
        report = (await http.get(f"{base}/report?period=today", headers=TOKEN)).json()
        for kind in KINDS:
            as_csv = await http.get(f"{base}/export/{kind}.csv?period=today", headers=TOKEN)
            assert as_csv.status_code == 200, kind
            assert as_csv.headers["content-type"].startswith("text/csv")
            assert f"abonent-{kind}-" in as_csv.headers["content-disposition"]
            as_xlsx = await http.get(f"{base}/export/{kind}.xlsx?period=today", headers=TOKEN)
            assert as_xlsx.status_code == 200, kind
            sheet = load_workbook(io.BytesIO(as_xlsx.content)).active
            assert sheet is not None and sheet.max_row >= 1, kind
        daily = list(
            csv.DictReader(
                io.StringIO(
                    (await http.get(f"{base}/export/daily.csv?period=today", headers=TOKEN)).text
                )
            )
        )
        customer = report["traffic"]["customer_messages"]
        assert [int(r["customer_messages"]) for r in daily] == [customer]
        assert int(daily[0]["recognised"]) == report["bot"]["recognised"]
        hourly = (await http.get(f"{base}/export/hourly.csv?period=today", headers=TOKEN)).text
        assert len(hourly.strip().splitlines()) == 1 + 24  # a header and every hour
        conversations = list(
            csv.DictReader(
                io.StringIO(
                    (
                        await http.get(
                            f"{base}/export/conversations.csv?period=today", headers=TOKEN
                        )
                    ).text.lstrip("\ufeff")
                )
            )
        )
        assert len(conversations) == report["bot"]["conversations"]["total"] == 1
        assert "payment_methods" in conversations[0]["topics"]
        sheet = load_workbook(
            io.BytesIO(
                (await http.get(f"{base}/export/topics.xlsx?period=today", headers=TOKEN)).content
            )
        ).active
        assert sheet is not None
        rows = list(sheet.iter_rows(values_only=True))
        assert rows[0] == ("Тема (id)", "Тема", "Количество", "Доля")
        [payment] = [r for r in rows[1:] if r[0] == "payment_methods"]
        assert payment[1:3] == ("Способы оплаты", 1)
        assert sum(r[3] for r in rows[1:]) == pytest.approx(1.0)


async def test_prometheus_has_intents_latency_queue_and_backlog(live_server: LiveServer) -> None:
    async with httpx.AsyncClient(timeout=30) as http:
        await _busy_day(live_server, http)
        me = Customer(live_server, http)
        await me.start()
        await me.press("operator")
        text = (await http.get(f"{live_server.url}/metrics")).text
    assert re.search(r'^abonent_intents_total\{intent="payment_methods"\} 1\.0$', text, re.M)
    assert re.search(r'^abonent_reply_seconds_count\{channel="webchat"\} [1-9]', text, re.M)
    assert re.search(r'^abonent_reply_seconds_bucket\{channel="webchat",le="0\.5"\}', text, re.M)
    assert re.search(r"^abonent_queue_length 1\.0$", text, re.M)
    assert "abonent_outbox_backlog" in text
    assert re.search(r'^abonent_events_unprocessed\{consumer="statistics"\} \d', text, re.M)


def test_the_readme_defines_every_figure_with_the_pages_words() -> None:
    readme = README.read_text(encoding="utf-8")
    for key, figure in FIGURES.items():
        assert figure.label in readme, key
        assert figure.en in readme.replace("\n", " "), key


def test_the_cli_summary_checks_its_dates(tmp_path: Path) -> None:
    from abonent.config import get_settings

    get_settings.cache_clear()
    runner = CliRunner()
    env = {"ABONENT_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'x.db'}"}
    bad = runner.invoke(app, ["stats", "summary", "--from", "03.12.2026", "--json"], env=env)
    assert bad.exit_code == 2 and "YYYY-MM-DD" in bad.output
    backwards = runner.invoke(
        app, ["stats", "summary", "--from", "2026-12-03", "--to", "2026-12-01"], env=env
    )
    assert backwards.exit_code == 2 and "ends before it starts" in backwards.output
    unknown = runner.invoke(app, ["stats", "export", "salaries"], env=env)
    assert unknown.exit_code == 2 and "unknown report" in unknown.output


async def test_the_cli_exports_and_reports_status(live_server: LiveServer, tmp_path: Path) -> None:
    async with httpx.AsyncClient(timeout=30) as http:
        await _busy_day(live_server, http)
    env = {"ABONENT_DATABASE_URL": live_server.settings.database_url}
    out = tmp_path / "topics.xlsx"

    def run(*args: str) -> str:
        from abonent.config import get_settings

        get_settings.cache_clear()
        result = CliRunner().invoke(app, list(args), env=env)
        get_settings.cache_clear()
        assert result.exit_code == 0, result.output
        return result.output

    written = await asyncio.to_thread(run, "stats", "export", "topics", "-o", str(out))
    assert "2 rows written" in written  # the two topics of the busy day
    sheet = load_workbook(out).active
    assert sheet is not None
    assert {sheet["A2"].value, sheet["A3"].value} >= {"payment_methods"}
    status = await asyncio.to_thread(run, "stats", "status")
    assert '"consumer": "statistics"' in status and '"behind": 0' in status


async def test_a_spreadsheet_too_long_is_refused_with_the_way_out(
    live_server: LiveServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from abonent.web import stats_api

    monkeypatch.setattr(stats_api, "XLSX_MAX_ROWS", 0)
    base = f"{live_server.url}/api/stats/v1"
    async with httpx.AsyncClient(timeout=30) as http:
        await _busy_day(live_server, http)
        r = await http.get(f"{base}/export/conversations.xlsx?period=today", headers=TOKEN)
        assert r.status_code == 422 and r.json()["error"]["code"] == "too_large"
        assert "CSV" in r.json()["error"]["message"]
        streamed = await http.get(f"{base}/export/conversations.csv?period=today", headers=TOKEN)
        assert streamed.status_code == 200
        lines = streamed.text.lstrip("\ufeff").strip().splitlines()
        assert lines[0].startswith("conversation_id,channel") and len(lines) == 2
