"""The accounts CSV import: bad rows reported by line, good rows loaded, history on change."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import func, select

from abonent.billing.csv_import import HEADER, ImportFailed, import_accounts
from abonent.db.models import Account, ReadingsRecord
from abonent.db.session import Database

D = Decimal
HEAD = ",".join(HEADER)

MIXED = "\n".join(
    [
        HEAD,  # 1
        '1000000001,Иванов Иван Иванович,"г. Энск, ул. Ленина, д. 15, кв. 7",single,12500,,,'
        "2026-10-25,1234.56,+79123456789",  # 2
        "1000000002,Петров Пётр,г. Энск,dual,1,,,2026-10-25,0,",  # 3
        "1000000003,Сидоров Алексей,г. Энск,two_zone,15230,6120.5,,2026-10-25,-350,",  # 4
        "1000000004,Козлов Андрей,г. Энск,two_zone,15230,,,2026-10-25,0,",  # 5
        "1000000005,Попов Сергей,г. Энск,single,100,,,2026-10-25,abc,",  # 6
        "1000000001,Иванов Иван Иванович,г. Энск,single,99999,,,2026-10-26,0,",  # 7
        "12345abc,Лебедева Ирина,г. Энск,single,1,,,2026-10-25,0,",  # 8
        "1000000008,,г. Энск,single,1,,,2026-10-25,0,",  # 9
        "1000000009,Волкова Татьяна,г. Энск,single,100,,,,0,",  # 10
        "1000000010,Морозов Николай,г. Энск,single,100,,,25.10.2026,0,",  # 11
        "1000000011,Новикова Анна,г. Энск,single,-5,,,2026-10-25,0,",  # 12
        "1000000012,Соколов Павел,г. Энск,single,100,,,2026-10-25,0,8 (912) 345-67-89",  # 13
        "1000000013,Федорова Наталья,г. Энск,single,100,,,2026-10-25,0,12345",  # 14
        "1000000014,Кузнецова Елена,г. Энск,three_zone,4215,6130,5342.125,2026-10-23,0.5,",  # 15
        "1000000015,Смирнов Дмитрий,г. Энск,single,100,200,,2026-10-25,0,",  # 16
        '1000000016,Михайлов Виктор,"г. Энск,',  # 17
        'ул. Вокзальная, д. 6",single,100,,,2026-10-25,0,',  # 18
        "1000000017,Орлов Олег,г. Энск,single,100,,,2026-10-25,0",  # 19
        "",  # 20
        "1000000018,Новый Абонент,г. Энск,two_zone,,,,,0,",  # 21
    ]
).encode("utf-8")
MIXED += b"\n1000000019,\xff\xfe broken,x,single,1,,,2026-10-25,0,\n"  # 22
MIXED += "1000000020,Зайцев Игорь,г. Энск,single,,,,,0,\n".encode()  # 23

EXPECTED_ERRORS = [
    (3, 'plan must be single, two_zone or three_zone, got "dual"'),
    (5, "t2 is required for two_zone"),
    (6, "balance is not a number"),
    (7, "duplicate account in file"),
    (8, "account must be digits only"),
    (9, "holder is empty"),
    (10, "readings_date is required when readings are given"),
    (11, "readings_date must be a date YYYY-MM-DD"),
    (12, "t1 must not be negative"),
    (14, 'phone must be +7 followed by 10 digits, got "12345"'),
    (16, "t2 must be empty for single"),
    (19, "expected 10 fields, found 9"),
    (22, "the line is not valid UTF-8"),
]
LOADED = {
    "1000000001",
    "1000000003",
    "1000000012",
    "1000000014",
    "1000000016",
    "1000000018",
    "1000000020",
}


def write(tmp_path: Path, content: str | bytes, name: str = "accounts.csv") -> Path:
    path = tmp_path / name
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    return path


async def accounts(db: Database) -> dict[str, Account]:
    async with db.session() as session:
        return {a.number: a for a in await session.scalars(select(Account))}


async def history(db: Database) -> list[ReadingsRecord]:
    async with db.session() as session:
        return list(await session.scalars(select(ReadingsRecord).order_by(ReadingsRecord.id)))


@pytest.mark.parametrize("batch_size", [1000, 2])
async def test_mixed_file(db: Database, tmp_path: Path, batch_size: int) -> None:
    path = write(tmp_path, b"\xef\xbb\xbf" + MIXED)  # with a UTF-8 BOM, as Excel saves it
    report = await import_accounts(db, path, batch_size=batch_size)
    assert report.errors == EXPECTED_ERRORS
    assert report.rejected == len(EXPECTED_ERRORS)
    assert report.loaded == len(LOADED)

    stored = await accounts(db)
    assert set(stored) == LOADED
    first = stored["1000000001"]  # the first of the duplicates wins
    assert (first.holder, first.address, first.plan) == (
        "Иванов Иван Иванович",
        "г. Энск, ул. Ленина, д. 15, кв. 7",
        "single",
    )
    assert (first.t1, first.t2, first.t3) == (D("12500"), None, None)
    assert first.readings_date == date(2026, 10, 25)
    assert first.balance == D("1234.56")
    assert first.phone == "+79123456789"
    assert stored["1000000003"].balance == D("-350")
    assert stored["1000000003"].t2 == D("6120.5")
    assert stored["1000000012"].phone == "+79123456789"
    assert stored["1000000014"].t3 == D("5342.125")
    assert stored["1000000014"].balance == D("0.5")
    assert stored["1000000016"].address == "г. Энск,\nул. Вокзальная, д. 6"
    fresh = stored["1000000018"]
    assert (fresh.t1, fresh.t2, fresh.readings_date) == (None, None, None)

    records = await history(db)
    # One per new account with readings; none for accounts without readings.
    assert sorted(r.account_number for r in records) == sorted(
        LOADED - {"1000000018", "1000000020"}
    )
    record = next(r for r in records if r.account_number == "1000000003")
    assert (record.t1, record.t2, record.t3) == (D("15230"), D("6120.5"), None)
    assert record.taken_on == date(2026, 10, 25)
    assert record.source == "import"
    assert record.consumption is None and record.cost is None
    assert report.history == len(records)


async def test_reimport_updates_and_appends_history_only_on_change(
    db: Database, tmp_path: Path
) -> None:
    first = write(
        tmp_path,
        "\n".join(
            [
                HEAD,
                "1000000001,Иванов Иван,г. Энск,single,12500,,,2026-10-25,100.00,",
                "1000000002,Петров Пётр,г. Энск,two_zone,15230,6120,,2026-10-25,0,",
                "1000000003,Сидоров Алексей,г. Энск,single,500,,,2026-10-25,0,",
            ]
        ),
        "first.csv",
    )
    report = await import_accounts(db, first)
    assert (report.loaded, report.history, report.errors) == (3, 3, [])

    second = write(
        tmp_path,
        "\n".join(
            [
                HEAD,
                # Balance, holder and phone change; readings stay: no history.
                "1000000001,Иванов Иван Иванович,г. Энск,single,12500,,,2026-10-25,-20.5,"
                "+79123456789",
                # New readings: history.
                "1000000002,Петров Пётр,г. Энск,two_zone,15400,6200,,2026-11-20,0,",
                # The same readings corrected on the same date: history.
                "1000000003,Сидоров Алексей,г. Энск,single,505,,,2026-10-25,0,",
            ]
        ),
        "second.csv",
    )
    report = await import_accounts(db, second)
    assert (report.loaded, report.history, report.errors) == (3, 2, [])
    stored = await accounts(db)
    assert stored["1000000001"].holder == "Иванов Иван Иванович"
    assert stored["1000000001"].balance == D("-20.50")
    assert stored["1000000001"].phone == "+79123456789"
    assert (stored["1000000002"].t1, stored["1000000002"].t2) == (D("15400"), D("6200"))
    assert stored["1000000002"].readings_date == date(2026, 11, 20)
    assert stored["1000000003"].t1 == D("505")
    records = await history(db)
    assert [(r.account_number, r.t1) for r in records] == [
        ("1000000001", D("12500")),
        ("1000000002", D("15230")),
        ("1000000003", D("500")),
        ("1000000002", D("15400")),
        ("1000000003", D("505")),
    ]

    # The same file again changes nothing.
    report = await import_accounts(db, second)
    assert (report.loaded, report.history) == (3, 0)
    assert len(await history(db)) == 5


async def test_stored_newer_readings_are_kept(db: Database, tmp_path: Path) -> None:
    """Readings submitted through the bot after the export must survive the next import."""
    await import_accounts(
        db,
        write(tmp_path, f"{HEAD}\n1000000001,Иванов Иван,г. Энск,single,12500,,,2026-11-20,0,"),
    )
    older = write(
        tmp_path,
        f"{HEAD}\n1000000001,Иванов Иван,г. Энск,single,12400,,,2026-10-25,99,",
        "older.csv",
    )
    report = await import_accounts(db, older)
    assert (report.loaded, report.history, report.kept_newer_readings) == (1, 0, 1)
    row = (await accounts(db))["1000000001"]
    assert (row.t1, row.readings_date, row.balance) == (D("12500"), date(2026, 11, 20), D("99"))

    # A plan change takes the file's readings whatever their date.
    changed = write(
        tmp_path,
        f"{HEAD}\n1000000001,Иванов Иван,г. Энск,two_zone,100,50,,2026-10-25,99,",
        "changed.csv",
    )
    report = await import_accounts(db, changed)
    assert (report.history, report.kept_newer_readings) == (1, 0)
    row = (await accounts(db))["1000000001"]
    assert (row.plan, row.t1, row.t2, row.readings_date) == (
        "two_zone",
        D("100"),
        D("50"),
        date(2026, 10, 25),
    )


async def test_columns_in_another_order(db: Database, tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "phone,balance,readings_date,t3,t2,t1,plan,address, holder ,ACCOUNT\n"
        "+79123456789,10,2026-10-25,,,500,single,г. Энск,Иванов Иван,1000000001\n",
    )
    report = await import_accounts(db, path)
    assert (report.loaded, report.errors) == (1, [])
    row = (await accounts(db))["1000000001"]
    assert (row.holder, row.t1, row.phone) == ("Иванов Иван", D("500"), "+79123456789")


async def test_crlf_and_trailing_empty_column(db: Database, tmp_path: Path) -> None:
    """What a spreadsheet saves: CRLF line ends and an empty column after the last one."""
    path = write(
        tmp_path,
        f"{HEAD},\r\n"
        "1000000001,Иванов Иван,г. Энск,single,500,,,2026-10-25,10,,\r\n"
        "1000000002,Петров Пётр,г. Энск,single,500,,,2026-10-25,10\r\n",
    )
    report = await import_accounts(db, path)
    assert report.errors == [(3, "expected 11 fields, found 9")]
    row = (await accounts(db))["1000000001"]
    assert (row.holder, row.phone) == ("Иванов Иван", None)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", "the file is empty"),
        ("\n\n", "the file is empty"),
        (
            "account,holder,address,plan,t1,t2,t3,readings_date,balance\n1,a,b,single,,,,,0\n",
            "missing column(s): phone",
        ),
        (
            "account;holder;address;plan;t1;t2;t3;readings_date;balance;phone\n",
            "missing column(s): account, holder",
        ),
        (HEAD + ",email\n", "unknown column(s): 'email'"),
        (HEAD + ",phone\n", "repeated column(s): phone"),
    ],
)
async def test_bad_header_refuses_the_whole_file(
    db: Database, tmp_path: Path, content: str, message: str
) -> None:
    with pytest.raises(ImportFailed, match=message.replace("(", r"\(").replace(")", r"\)")):
        await import_accounts(db, write(tmp_path, content))
    assert await accounts(db) == {}


async def test_missing_file(db: Database, tmp_path: Path) -> None:
    with pytest.raises(ImportFailed, match="cannot read"):
        await import_accounts(db, tmp_path / "nope.csv")


async def test_number_formats_and_limits(db: Database, tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "\n".join(
            [
                HEAD,
                '1000000001,А Б,г. Энск,single,"12500,5",,,2026-10-25,"1 234,56",',  # 2
                "1000000002,А Б,г. Энск,single,1.2345,,,2026-10-25,0,",  # 3
                "1000000003,А Б,г. Энск,single,1,,,2026-10-25,1.234,",  # 4
                "1000000004,А Б,г. Энск,single,1e3,,,2026-10-25,0,",  # 5
                "1000000005,А Б,г. Энск,single,NaN,,,2026-10-25,0,",  # 6
                "1000000006,А Б,г. Энск,single,1,,,2026-02-30,0,",  # 7
                "123456789012345678901,А Б,г. Энск,single,1,,,2026-10-25,0,",  # 8
                "1000000008,А Б,г. Энск,single,1,,,2026-10-25,,",  # 9
                "1000000009,А Б,г. Энск,weird,,x,,,0,",  # 10
                "1000000010,А Б,г. Энск,single,,,,2026-10-25,0,",  # 11
                "1000000011," + "Я" * 201 + ",г. Энск,single,1,,,2026-10-25,0,",  # 12
                "1000000012,А Б,г. Энск,single,123456789012,,,2026-10-25,0,",  # 13
            ]
        ),
    )
    report = await import_accounts(db, path)
    assert report.errors == [
        (3, "t1 has more than 3 decimal places"),
        (4, "balance has more than 2 decimal places"),
        (5, "t1 is not a number"),
        (6, "t1 is not a number"),
        (7, "readings_date must be a date YYYY-MM-DD"),
        (8, "account is longer than 20 digits"),
        (9, "balance is empty (write 0 when nothing is owed)"),
        (
            10,
            'plan must be single, two_zone or three_zone, got "weird"; t2 is not a number; '
            "readings_date is required when readings are given",
        ),
        (11, "t1 is required for single"),
        (12, "holder is longer than 200 characters"),
        (13, "t1 is too large"),
    ]
    row = (await accounts(db))["1000000001"]
    assert (row.t1, row.balance) == (D("12500.5"), D("1234.56"))


async def test_errors_are_capped(db: Database, tmp_path: Path) -> None:
    lines = [HEAD] + [f"{n},А Б,г. Энск,single,1,,,2026-10-25,x," for n in range(1, 51)]
    report = await import_accounts(db, write(tmp_path, "\n".join(lines)), max_errors=10)
    assert report.rejected == 50
    assert [line for line, _ in report.errors] == list(range(2, 12))


async def test_large_file_in_batches(db: Database, tmp_path: Path) -> None:
    """Many batches; every account and its history row arrive once."""
    count = 2500
    lines = [HEAD] + [
        f"{2000000000 + n},Абонент {n},г. Энск,single,{n}.5,,,2026-10-25,{n % 7}.10,"
        for n in range(count)
    ]
    report = await import_accounts(db, write(tmp_path, "\n".join(lines)), batch_size=400)
    assert (report.loaded, report.history, report.errors) == (count, count, [])
    async with db.session() as session:
        assert await session.scalar(select(func.count()).select_from(Account)) == count
        assert await session.scalar(select(func.count()).select_from(ReadingsRecord)) == count
        row = await session.get(Account, "2000001234")
        assert row is not None and row.t1 == D("1234.5") and row.balance == D("2.10")
