"""Accounts CSV import (docs/accounts-csv.md): the supplier's nightly export into the tables.

A real supplier exports about a million accounts, so the file is streamed in batches: it is
read and validated in a worker thread batch by batch, and each batch is upserted in its own
transaction with one multi-row ``INSERT … ON CONFLICT DO UPDATE``. A bad row never stops the
good ones; it is reported with its line number so that whoever fixes the export can find it.
"""

from __future__ import annotations

import asyncio
import csv
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import IO, Any

from sqlalchemy import Table, select, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from abonent.billing.accounts import normalise_phone
from abonent.billing.base import PLANS, ZONES
from abonent.billing.readings import KOPECK, WATT_HOUR
from abonent.clock import utcnow
from abonent.db.models import Account, ReadingsRecord
from abonent.db.session import Database

HEADER = (
    "account",
    "holder",
    "address",
    "plan",
    "t1",
    "t2",
    "t3",
    "readings_date",
    "balance",
    "phone",
)
READING_COLUMNS = ("t1", "t2", "t3")
HISTORY_SOURCE = "import"
# Column sizes of the schema: a longer value would fail the whole batch on PostgreSQL.
MAX_ACCOUNT = 20
MAX_HOLDER = 200
MAX_ADDRESS = 400
# Numeric(14, 3) and Numeric(14, 2).
MAX_KWH = Decimal("99999999999.999")
MAX_RUBLES = Decimal("999999999999.99")
# Rows per SELECT … IN (…): well under every driver's parameter limit.
_LOOKUP_CHUNK = 500
_DATE_RE = re.compile(r"\d{4}-\d{2}-\d{2}")
_PLANS_TEXT = ", ".join(PLANS[:-1]) + " or " + PLANS[-1]
_PLANS_ZONES = {plan: len(zones) for plan, zones in ZONES.items()}


class ImportFailed(Exception):
    """The file as a whole cannot be imported: missing, unreadable or with a wrong header."""


@dataclass
class ImportReport:
    # Accounts inserted or updated.
    loaded: int = 0
    # (line number in the file, the header being line 1; reason), in file order. Capped at
    # ``max_errors`` entries so a systematically broken export cannot exhaust memory.
    errors: list[tuple[int, str]] = field(default_factory=list)
    # Bad rows in total, including those beyond the cap of ``errors``.
    rejected: int = 0
    # readings_history rows appended (new readings or a changed readings date).
    history: int = 0
    # Accounts whose stored readings were newer than the file's and were kept.
    kept_newer_readings: int = 0


@dataclass(frozen=True)
class _Row:
    line: int
    number: str
    holder: str
    address: str
    plan: str
    readings: tuple[Decimal | None, Decimal | None, Decimal | None]
    readings_date: date | None
    balance: Decimal
    phone: str | None


class _Source:
    """The open file, read record by record in a worker thread.

    Lines are decoded one by one so that a line that is not UTF-8 is reported as a bad row
    instead of aborting the import half-way through.
    """

    def __init__(self, path: Path) -> None:
        try:
            self._file: IO[bytes] = path.open("rb")
        except OSError as exc:
            raise ImportFailed(f"cannot read {path}: {exc.strerror or exc}") from exc
        self._bad_lines: set[int] = set()
        self._physical = 0
        self._reader = csv.reader(self._lines())
        self._last_line = 0
        self.done = False
        self.width = len(HEADER)
        try:
            self.columns = self._read_header()
        except BaseException:
            self._file.close()
            raise

    def _lines(self) -> Iterator[str]:
        for raw in self._file:
            self._physical += 1
            if self._physical == 1 and raw.startswith(b"\xef\xbb\xbf"):
                raw = raw[3:]
            try:
                yield raw.decode("utf-8")
            except UnicodeDecodeError:
                self._bad_lines.add(self._physical)
                yield raw.decode("utf-8", errors="replace")

    def _next_record(self) -> tuple[int, list[str] | None, str | None]:
        """(first line of the record, fields, error); fields None at the end of the file."""
        start = self._last_line + 1
        try:
            fields = next(self._reader)
        except StopIteration:
            self.done = True
            return start, None, None
        except csv.Error as exc:
            self._last_line = self._reader.line_num
            return start, [], f"cannot parse the line: {exc}"
        self._last_line = self._reader.line_num
        if any(start <= n <= self._last_line for n in self._bad_lines):
            self._bad_lines.difference_update(range(start, self._last_line + 1))
            return start, [], "the line is not valid UTF-8"
        return start, fields, None

    def _read_header(self) -> dict[str, int]:
        while True:
            line, fields, error = self._next_record()
            if fields is None:
                raise ImportFailed("the file is empty; expected a header: " + ",".join(HEADER))
            if error:
                raise ImportFailed(f"line {line}: {error}")
            if any(f.strip() for f in fields):
                break
        names = [f.strip().lower() for f in fields]
        missing = [c for c in HEADER if c not in names]
        # Nameless columns are spreadsheet leftovers (a trailing comma on every line): ignored.
        unknown = [n for n in names if n and n not in HEADER]
        duplicated = sorted({n for n in names if n and names.count(n) > 1})
        problems = []
        if missing:
            problems.append("missing column(s): " + ", ".join(missing))
        if unknown:
            problems.append("unknown column(s): " + ", ".join(repr(n) for n in unknown))
        if duplicated:
            problems.append("repeated column(s): " + ", ".join(duplicated))
        if problems:
            raise ImportFailed(
                f"line {line}: wrong header, "
                + "; ".join(problems)
                + "; expected: "
                + ",".join(HEADER)
            )
        self.width = len(names)
        return {name: names.index(name) for name in HEADER}

    def read_batch(self, size: int) -> tuple[list[_Row], list[tuple[int, str]]]:
        rows: list[_Row] = []
        errors: list[tuple[int, str]] = []
        while len(rows) + len(errors) < size:
            line, fields, error = self._next_record()
            if fields is None:
                break
            if error:
                errors.append((line, error))
                continue
            if not any(f.strip() for f in fields):
                continue  # a blank line
            if len(fields) != self.width:
                errors.append((line, f"expected {self.width} fields, found {len(fields)}"))
                continue
            values = {name: fields[i].strip() for name, i in self.columns.items()}
            row, problems = _validate(line, values)
            if row is None:
                errors.append((line, "; ".join(problems)))
            else:
                rows.append(row)
        return rows, errors

    def close(self) -> None:
        self._file.close()


def _number(text: str) -> Decimal | None:
    """A decimal as exports write it: "12500.5", "12500,5" or "1 234,56"; None if not one."""
    compact = text.replace(" ", "").replace("\u00a0", "")
    if "," in compact and "." not in compact:
        compact = compact.replace(",", ".")
    if not re.fullmatch(r"[+-]?(\d+(\.\d*)?|\.\d+)", compact):
        return None
    try:
        return Decimal(compact)
    except InvalidOperation:  # pragma: no cover - the pattern admits only valid decimals
        return None


def _decimal_places(value: Decimal) -> int:
    exponent = value.as_tuple().exponent
    return -exponent if isinstance(exponent, int) and exponent < 0 else 0


def _validate(line: int, v: dict[str, str]) -> tuple[_Row | None, list[str]]:
    """The row ready to store, or every problem with it (all of them, so one pass fixes it)."""
    problems: list[str] = []
    number = v["account"]
    if not number:
        problems.append("account is empty")
    elif not (number.isascii() and number.isdigit()):
        problems.append("account must be digits only")
    elif len(number) > MAX_ACCOUNT:
        problems.append(f"account is longer than {MAX_ACCOUNT} digits")
    for name, limit in (("holder", MAX_HOLDER), ("address", MAX_ADDRESS)):
        if not v[name]:
            problems.append(f"{name} is empty")
        elif len(v[name]) > limit:
            problems.append(f"{name} is longer than {limit} characters")

    plan = v["plan"].lower()
    if plan not in PLANS:
        shown = f', got "{v["plan"]}"' if v["plan"] else ", got nothing"
        problems.append(f"plan must be {_PLANS_TEXT}{shown}")

    readings: list[Decimal | None] = []
    for column in READING_COLUMNS:
        text = v[column]
        if not text:
            readings.append(None)
            continue
        value = _number(text)
        if value is None:
            problems.append(f"{column} is not a number")
        elif value < 0:
            problems.append(f"{column} must not be negative")
        elif _decimal_places(value) > 3:
            problems.append(f"{column} has more than 3 decimal places")
        elif value > MAX_KWH:
            problems.append(f"{column} is too large")
        readings.append(value.quantize(WATT_HOUR) if value is not None else None)

    readings_date: date | None = None
    if v["readings_date"]:
        try:
            if not _DATE_RE.fullmatch(v["readings_date"]):
                raise ValueError
            readings_date = date.fromisoformat(v["readings_date"])
        except ValueError:
            problems.append("readings_date must be a date YYYY-MM-DD")

    if plan in PLANS:
        used = _PLANS_ZONES[plan]
        given = [v[c] != "" for c in READING_COLUMNS]
        # No readings at all is allowed: a new meter the billing has no readings for yet.
        if any(given[:used]) or v["readings_date"]:
            problems.extend(
                f"{column} is required for {plan}"
                for column, present in zip(READING_COLUMNS[:used], given[:used], strict=True)
                if not present
            )
        problems.extend(
            f"{column} must be empty for {plan}"
            for column, present in zip(READING_COLUMNS[used:], given[used:], strict=True)
            if present
        )
    if any(v[c] for c in READING_COLUMNS) and not v["readings_date"]:
        problems.append("readings_date is required when readings are given")

    balance = _number(v["balance"]) if v["balance"] else None
    if not v["balance"]:
        problems.append("balance is empty (write 0 when nothing is owed)")
    elif balance is None:
        problems.append("balance is not a number")
    elif _decimal_places(balance) > 2:
        problems.append("balance has more than 2 decimal places")
    elif abs(balance) > MAX_RUBLES:
        problems.append("balance is too large")

    phone: str | None = None
    if v["phone"]:
        phone = normalise_phone(v["phone"])
        if phone is None:
            problems.append(f'phone must be +7 followed by 10 digits, got "{v["phone"]}"')

    if problems:
        return None, problems
    assert balance is not None
    t1, t2, t3 = readings
    return (
        _Row(
            line=line,
            number=number,
            holder=v["holder"],
            address=v["address"],
            plan=plan,
            readings=(t1, t2, t3),
            readings_date=readings_date,
            balance=balance.quantize(KOPECK),
            phone=phone,
        ),
        [],
    )


def _seen_key(number: str) -> int:
    """A compact set key: "1" in front keeps leading zeros apart ("012" vs "12")."""
    return int("1" + number)


async def import_accounts(
    db: Database, path: Path, *, batch_size: int = 1000, max_errors: int = 10_000
) -> ImportReport:
    """Upsert every good row of the file by ``account``; report the bad ones.

    Each batch is committed on its own, so a crash half-way leaves the first part loaded and
    re-running the import is safe (an upsert changes nothing that is already right, and a
    readings history row is only appended when readings changed).

    When the same account appears twice, the first row wins and the later ones are reported
    as duplicates; the check keeps the account numbers seen (as ints, about 65 MB per million
    accounts), not the rows. Stored readings with a later date than the file's are kept (for
    the same plan): they were submitted through the bot after the export was made, and an
    import must not move readings back in time.

    Raises ImportFailed when the file cannot be read or its header is wrong; nothing is
    loaded then.
    """
    if batch_size < 1:
        raise ValueError("batch_size must be positive")
    report = ImportReport()
    seen: set[int] = set()
    next_analyze = batch_size
    source = await asyncio.to_thread(_Source, path)
    try:
        while not source.done:
            rows, errors = await asyncio.to_thread(source.read_batch, batch_size)
            fresh: list[_Row] = []
            for row in rows:
                key = _seen_key(row.number)
                if key in seen:
                    errors.append((row.line, "duplicate account in file"))
                else:
                    seen.add(key)
                    fresh.append(row)
            if fresh:
                history, kept = await _write_batch(db, fresh)
                report.loaded += len(fresh)
                report.history += history
                report.kept_newer_readings += kept
                if report.loaded >= next_analyze:
                    await _refresh_statistics(db)
                    next_analyze *= 10
            report.rejected += len(errors)
            room = max_errors - len(report.errors)
            report.errors.extend(sorted(errors)[:room])
    finally:
        source.close()
    return report


async def _refresh_statistics(db: Database) -> None:
    """Let PostgreSQL re-plan for the table the import is growing.

    Statements prepared while ``accounts`` was empty (the batch lookup, the foreign-key check
    of each history row) keep a sequential-scan plan, and every batch then scans the whole
    table: a first import of a million accounts would take hours. ANALYZE invalidates those
    plans. It runs after 1, 10, 100, … batches, so a routine import into a full table pays
    for a few cheap ANALYZE runs only.
    """
    if db.engine.dialect.name == "postgresql":
        async with db.transaction() as session:
            await session.execute(text("ANALYZE accounts, readings_history"))


@dataclass(frozen=True)
class _Stored:
    plan: str
    readings: tuple[Decimal | None, Decimal | None, Decimal | None]
    readings_date: date | None


def _kwh(value: Decimal | None) -> Decimal | None:
    return None if value is None else Decimal(value).quantize(WATT_HOUR)


async def _stored(session: AsyncSession, numbers: Sequence[str]) -> dict[str, _Stored]:
    found: dict[str, _Stored] = {}
    for i in range(0, len(numbers), _LOOKUP_CHUNK):
        chunk = numbers[i : i + _LOOKUP_CHUNK]
        result = await session.execute(
            select(
                Account.number,
                Account.plan,
                Account.t1,
                Account.t2,
                Account.t3,
                Account.readings_date,
            ).where(Account.number.in_(chunk))
        )
        for number, plan, t1, t2, t3, readings_date in result:
            found[number] = _Stored(plan, (_kwh(t1), _kwh(t2), _kwh(t3)), readings_date)
    return found


def _table(model: type[Account | ReadingsRecord]) -> Table:
    table = model.__table__
    assert isinstance(table, Table)
    return table


def _upsert(table: Table, dialect: str) -> Any:
    if dialect == "postgresql":
        pg = postgresql.insert(table)
        return pg.on_conflict_do_update(
            index_elements=[table.c.number],
            set_={c.name: pg.excluded[c.name] for c in table.columns if c.name != "number"},
        )
    if dialect == "sqlite":
        lite = sqlite.insert(table)
        return lite.on_conflict_do_update(
            index_elements=[table.c.number],
            set_={c.name: lite.excluded[c.name] for c in table.columns if c.name != "number"},
        )
    raise ImportFailed(f"the {dialect} database is not supported by the accounts import")


async def _write_batch(db: Database, rows: Sequence[_Row]) -> tuple[int, int]:
    """Upsert the rows and append history where readings changed: (history rows, kept)."""
    now = utcnow()
    accounts: list[dict[str, Any]] = []
    history: list[dict[str, Any]] = []
    kept = 0
    async with db.transaction() as session:
        stored = await _stored(session, [r.number for r in rows])
        for row in rows:
            readings, readings_date = row.readings, row.readings_date
            before = stored.get(row.number)
            if (
                before is not None
                and before.plan == row.plan
                and before.readings_date is not None
                and (readings_date is None or before.readings_date > readings_date)
            ):
                readings, readings_date = before.readings, before.readings_date
                kept += 1
            elif readings_date is not None and (
                before is None
                or (before.readings, before.readings_date) != (readings, readings_date)
            ):
                history.append(
                    {
                        "account_number": row.number,
                        "t1": readings[0],
                        "t2": readings[1],
                        "t3": readings[2],
                        "taken_on": readings_date,
                        "source": HISTORY_SOURCE,
                        "created_at": now,
                    }
                )
            accounts.append(
                {
                    "number": row.number,
                    "holder": row.holder,
                    "address": row.address,
                    "plan": row.plan,
                    "t1": readings[0],
                    "t2": readings[1],
                    "t3": readings[2],
                    "readings_date": readings_date,
                    "balance": row.balance,
                    "phone": row.phone,
                    "updated_at": now,
                }
            )
        await session.execute(_upsert(_table(Account), db.engine.dialect.name), accounts)
        if history:
            await session.execute(_table(ReadingsRecord).insert(), history)
    return len(history), kept
