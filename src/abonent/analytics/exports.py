"""Every report as a table, for CSV and XLSX downloads and BI tools.

The tables are made from the same ``Stats`` answers as the page and the JSON API.
CSV headers are stable English keys (BI tools and scripts read them); the XLSX sheet
shows the Russian header a supervisor reads. Text that a spreadsheet would take for
a formula (``=…``) is quoted, so an export never runs anything when opened.
"""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator, Sequence
from typing import Any

from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.styles import Font

from abonent.analytics.reports import Period, Scope, Stats

KINDS = (
    "daily",
    "hourly",
    "conversations",
    "operators",
    "timeline",
    "events",
    "topics",
    "links",
    "channels",
    "slowest",
)
# A report longer than this is cut (the conversations' CSV is streamed whole instead).
MAX_ROWS = 200_000
# Writing a spreadsheet costs ~0.3 ms a row: beyond this, a CSV is the right format.
XLSX_MAX_ROWS = 100_000

CONVERSATION_COLUMNS = [
    "conversation_id",
    "channel",
    "channel_id",
    "started_at",
    "closed_at",
    "status",
    "customer_messages",
    "bot_messages",
    "operator_messages",
    "handed_over",
    "operator",
    "first_response_s",
    "handle_s",
    "transfers",
    "left_queue",
    "topics",
    "fallbacks",
    "readings",
    "links_sent",
    "profanity",
    "csat",
]

LABELS: dict[str, str] = {
    "day": "День",
    "hour": "Час",
    "customer_messages": "Сообщений клиентов",
    "bot_messages": "Сообщений бота",
    "operator_messages": "Сообщений операторов",
    "conversations": "Диалоги",
    "bot_only": "Решено ботом",
    "to_operator": "Переданы операторам",
    "recognised": "Распознано",
    "fallback": "Не распознано",
    "readings": "Переданы показания",
    "balance": "Запросы баланса",
    "appeals": "Обращения",
    "links_sent": "Отправлено ссылок",
    "links_clicked": "Переходы по ссылкам",
    "profanity": "Ненормативная лексика",
    "queued": "В очередь",
    "abandoned": "Ушли из очереди",
    "csat_asked": "Опрошено",
    "csat_answered": "Оценили",
    "conversation_id": "Диалог",
    "channel": "Канал",
    "channel_id": "Id канала",
    "started_at": "Начало",
    "closed_at": "Закрыт",
    "status": "Статус",
    "handed_over": "Передан операторам",
    "operator": "Оператор",
    "first_response_s": "Первый ответ, с",
    "handle_s": "Обслуживание, с",
    "transfers": "Переводов",
    "left_queue": "Уходов из очереди",
    "topics": "Темы",
    "fallbacks": "Не распознано",
    "csat": "Оценка",
    "login": "Логин",
    "name": "Имя",
    "replies": "Ответов",
    "closed": "Закрыто",
    "first_response_median_s": "Первый ответ, медиана, с",
    "first_response_p90_s": "Первый ответ, p90, с",
    "first_response_max_s": "Первый ответ, макс., с",
    "first_response_work_median_s": "Первый ответ в рабочее время, медиана, с",
    "response_median_s": "Время ответа, медиана, с",
    "response_p90_s": "Время ответа, p90, с",
    "response_max_s": "Время ответа, макс., с",
    "online_s": "На линии, с",
    "break_s": "Перерыв, с",
    "csat_average": "Средняя оценка",
    "intervals": "Интервалы",
    "at": "Время",
    "type": "Событие",
    "details": "Подробности",
    "intent": "Тема (id)",
    "title": "Тема",
    "count": "Количество",
    "share": "Доля",
    "url": "Ссылка",
    "sent": "Отправлено",
    "clicked": "Переходов",
    "clicks": "Кликов всего",
    "click_through": "Кликабельность",
    "webchat": "Веб-чат",
    "telegram": "Telegram",
    "whatsapp": "WhatsApp",
    "viber": "Viber",
    "vk": "ВКонтакте",
    "max": "MAX",
    "kind": "Вид",
    "asked_at": "Вопрос",
    "answered_at": "Ответ",
    "seconds": "Секунд",
    "work_seconds": "Секунд в рабочее время",
}


class ExportError(ValueError):
    """An export that cannot be made; the message says why."""


def _conversation_export(row: dict[str, Any]) -> dict[str, Any]:
    return {**row, "topics": " ".join(row["topics"])}


async def stream_csv(
    stats: Stats,
    kind: str,
    period: Period,
    scope: Scope,
    *,
    topic: str | None = None,
    handed_over: bool | None = None,
    types: Sequence[str] = (),
) -> AsyncIterator[bytes]:
    """The CSV of one report in pieces: the conversations page by page from the
    database, however many there are (one row each); other reports at once."""
    if kind != "conversations":
        columns, rows = await table(
            stats, kind, period, scope, topic=topic, handed_over=handed_over, types=types
        )
        yield to_csv(columns, rows)
        return
    yield to_csv(CONVERSATION_COLUMNS, [])  # the header
    async for page in stats.conversation_pages(period, scope, topic=topic, handed_over=handed_over):
        rows = [_conversation_export(r) for r in page]
        yield to_csv(CONVERSATION_COLUMNS, rows, header=False)


async def table(
    stats: Stats,
    kind: str,
    period: Period,
    scope: Scope,
    *,
    topic: str | None = None,
    handed_over: bool | None = None,
    types: Sequence[str] = (),
    limit: int = MAX_ROWS,
) -> tuple[list[str], list[dict[str, Any]]]:
    """(columns, rows) of one report; ``topic`` and ``handed_over`` narrow the
    conversations (a drill-down), ``types`` the operators' events. At most ``limit``
    rows: ask for one more than you can take to learn that the report is longer."""
    if kind in ("daily", "hourly"):
        rows = await stats.series(period, scope, hourly=kind == "hourly")
        return (list(rows[0]) if rows else ["day"]), rows
    if kind == "conversations":
        rows = []
        async for page in stats.conversation_pages(
            period, scope, topic=topic, handed_over=handed_over
        ):
            rows += [_conversation_export(r) for r in page]
            if len(rows) > limit:
                break
        return CONVERSATION_COLUMNS, rows[:limit]
    if kind == "timeline":
        timeline = await stats.timeline(period, scope)
        rows = [
            {
                "login": op["login"],
                "name": op["name"],
                "day": day["day"],
                "online_s": day["online_s"],
                "break_s": day["break_s"],
                "intervals": "; ".join(
                    f"{i['status']} {i['start'][11:16]}–{i['end'][11:16]}" for i in day["intervals"]
                ),
            }
            for op in timeline["operators"]
            for day in op["days"]
        ]
        return ["login", "name", "day", "online_s", "break_s", "intervals"], rows
    if kind == "events":
        log = await stats.operator_log(period, scope, types=types, limit=limit)
        rows = [
            {
                "at": e["at"],
                "login": e["login"],
                "type": e["type"],
                "conversation_id": e["conversation_id"],
                "details": ", ".join(f"{k}={v}" for k, v in sorted(e["data"].items())),
            }
            for e in log["events"]
        ]
        return ["at", "login", "type", "conversation_id", "details"], rows
    report = await stats.report(period, scope)
    if kind == "operators":
        rows = [_operator(r) for r in report["operators"]["operators"]]
        return _columns(rows, ["login"]), rows
    if kind == "topics":
        rows = [dict(t) for t in report["bot"]["topics"]]
        return ["intent", "title", "count", "share"], rows
    if kind == "links":
        rows = [dict(link) for link in report["bot"]["links"]["top"]]
        return ["url", "sent", "clicked", "clicks", "click_through"], rows
    if kind == "channels":
        rows = [
            {"channel": channel, **counts, "conversations": conversations}
            for channel, counts in sorted(report["traffic"]["messages"].items())
            for conversations in [report["traffic"]["conversations"]["by_channel"].get(channel, 0)]
        ]
        return _columns(rows, ["channel"]), rows
    if kind == "slowest":
        rows = [dict(r) for r in report["operators"]["slowest"]]
        return _columns(rows, ["conversation_id"]), rows
    raise ExportError(f"unknown report {kind!r}; one of {', '.join(KINDS)}")


def _operator(row: dict[str, Any]) -> dict[str, Any]:
    first, work, later = row["first_response_s"], row["first_response_work_s"], row["response_s"]
    return {
        "login": row["login"],
        "name": row["name"],
        "conversations": row["conversations"],
        "replies": row["replies"],
        "transfers": row["transfers"],
        "closed": row["closed"],
        "handle_s": row["handle_s"],
        "first_response_median_s": first["median"],
        "first_response_p90_s": first["p90"],
        "first_response_max_s": first["max"],
        "first_response_work_median_s": work["median"],
        "response_median_s": later["median"],
        "response_p90_s": later["p90"],
        "response_max_s": later["max"],
        "online_s": row["online_s"],
        "break_s": row["break_s"],
        "csat_asked": row["csat"]["asked"],
        "csat_answered": row["csat"]["answered"],
        "csat_average": row["csat"]["average"],
    }


def _columns(rows: list[dict[str, Any]], default: list[str]) -> list[str]:
    return list(rows[0]) if rows else default


def to_csv(columns: Sequence[str], rows: Sequence[dict[str, Any]], *, header: bool = True) -> bytes:
    """UTF-8 with a BOM, so that Excel opens the Cyrillic right on a double click;
    ``header=False``: rows to follow an earlier piece."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(columns), extrasaction="ignore")
    if header:
        out.write("\ufeff")
        writer.writeheader()
    for row in rows:
        writer.writerow({k: _plain(row.get(k)) for k in columns})
    return out.getvalue().encode("utf-8")


def to_xlsx(columns: Sequence[str], rows: Sequence[dict[str, Any]], title: str) -> bytes:
    book = Workbook(write_only=True)
    sheet = book.create_sheet(title[:31] or "report")
    sheet.freeze_panes = "A2"
    header = []
    for key in columns:
        cell = _header_cell(sheet, LABELS.get(key, key))
        header.append(cell)
    sheet.append(header)
    for row in rows:
        sheet.append([_plain(row.get(k)) for k in columns])
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def _header_cell(sheet: Any, text: str) -> Any:
    cell = WriteOnlyCell(sheet, value=text)
    cell.font = Font(bold=True)
    return cell


def _plain(value: Any) -> Any:
    if isinstance(value, bool):
        return "да" if value else "нет"
    if isinstance(value, list | tuple):
        value = " ".join(str(v) for v in value)
    elif isinstance(value, dict):
        value = ", ".join(f"{k}={v}" for k, v in value.items())
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value
