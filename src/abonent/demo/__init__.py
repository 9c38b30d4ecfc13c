"""Demo data for ``abonent demo``: accounts in the fictional town of Энск.

The accounts go through the same CSV import a supplier uses, so the demo also shows that
path working; re-seeding on every start is safe (an upsert, and readings submitted through the
demo chat are newer than the file's and are kept).
"""

from __future__ import annotations

import csv
from pathlib import Path

from sqlalchemy import select

from abonent.billing.base import PLANS, AccountInfo
from abonent.billing.csv_import import import_accounts
from abonent.billing.local import LocalBilling
from abonent.config import TariffSettings
from abonent.db.models import Template, User
from abonent.db.session import Database
from abonent.operators.users import add_user

DEMO_ACCOUNTS_CSV: Path = Path(__file__).with_name("accounts.csv")


def _first_of_each_plan() -> list[str]:
    firsts: dict[str, str] = {}
    with DEMO_ACCOUNTS_CSV.open(encoding="utf-8-sig", newline="") as handle:
        for row in csv.DictReader(handle):
            firsts.setdefault(row["plan"], row["account"])
    return [firsts[plan] for plan in PLANS if plan in firsts]


async def seed_demo_accounts(db: Database) -> list[AccountInfo]:
    """Load the demo accounts; return one of each plan for the start-up banner to suggest.

    Raises RuntimeError if the bundled file has a bad row: that is a bug in the package, and
    a demo with accounts silently missing would mislead whoever is trying it.
    """
    report = await import_accounts(db, DEMO_ACCOUNTS_CSV)
    if report.errors:
        raise RuntimeError(f"bad rows in {DEMO_ACCOUNTS_CSV}: {report.errors}")
    billing = LocalBilling(db, TariffSettings())  # the demo's accounts are local ones
    found = [await billing.get_account(number) for number in _first_of_each_plan()]
    return [account for account in found if account is not None]


DEMO_USERS = (
    # login, password, name, role
    ("operator", "operator-demo", "Анна Операторова", "operator"),
    ("supervisor", "supervisor-demo", "Светлана Старшая", "supervisor"),
    ("admin", "admin-demo", "Администратор", "admin"),
)

# A utility's everyday canned answers. Codes are Russian, as operators type them; what
# differs between companies (phones, links, the readings window) comes from the company
# profile through placeholders, so the texts stay true when the profile changes.
DEMO_TEMPLATES = (
    # code, title, category, text
    (
        "привет",
        "Приветствие",
        "Общее",
        "Здравствуйте, {name}! Меня зовут {operator}, я помогу вам. Опишите, пожалуйста, "
        "ваш вопрос.",
    ),
    (
        "лс",
        "Попросить номер лицевого счёта",
        "Общее",
        "Подскажите, пожалуйста, номер вашего лицевого счёта — он напечатан в квитанции. "
        "По нему я найду ваши начисления и показания.",
    ),
    (
        "ожидание",
        "Просьба подождать",
        "Общее",
        "Спасибо, проверяю информацию — это займёт несколько минут. Пожалуйста, не закрывайте чат.",
    ),
    (
        "специалист",
        "Передача специалисту",
        "Общее",
        "Ваш вопрос требует проверки специалистом. Я передаю его коллеге вместе со всей "
        "перепиской — повторять ничего не придётся.",
    ),
    (
        "прощание",
        "Завершение диалога",
        "Общее",
        "Спасибо за обращение! Если появятся вопросы — пишите в этот чат или звоните "
        "в контакт-центр {company.call_center_phone}. Хорошего дня!",
    ),
    (
        "показания",
        "Как передать показания",
        "Показания",
        "Показания можно передать прямо в этом чате (кнопка «Передать показания» в меню), "
        "в личном кабинете {links.cabinet} или по телефону {company.call_center_phone}. "
        "Лицевой счёт: {account}.",
    ),
    (
        "срок",
        "Срок передачи показаний",
        "Показания",
        "Показания принимаются с {readings.first_day} по {readings.last_day} число "
        "месяца. Если не передать их вовремя, начисление за месяц делается по среднему "
        "расходу, а после трёх месяцев без показаний — по нормативу потребления.",
    ),
    (
        "фото",
        "Фото счётчика",
        "Показания",
        "Пришлите, пожалуйста, фотографию счётчика: чтобы на ней были хорошо видны все "
        "цифры показаний и заводской номер прибора.",
    ),
    (
        "поверка",
        "Поверка и замена счётчика",
        "Показания",
        "С 1 июля 2020 года установку, замену и поверку счётчиков электроэнергии "
        "организует гарантирующий поставщик (в многоквартирных домах) или сетевая "
        "организация (в частных домах), для жильцов бесплатно. Дата следующей поверки "
        "указана в паспорте счётчика. Если срок поверки истёк или счётчик неисправен, "
        "сообщите нам — мы оформим заявку.",
    ),
    (
        "оплата",
        "Способы оплаты",
        "Оплата",
        "Оплатить электроэнергию можно онлайн по ссылке {links.payment} или в личном "
        "кабинете {links.cabinet}. Оплатить нужно до 15-го числа следующего месяца.",
    ),
    (
        "долг",
        "Задолженность по счёту",
        "Оплата",
        "По лицевому счёту {account} есть задолженность. Чтобы избежать пеней и "
        "ограничения подачи электроэнергии, оплатите её, пожалуйста, по ссылке "
        "{links.payment}.",
    ),
    (
        "перерасчет",
        "Перерасчёт",
        "Начисления",
        "Для перерасчёта пришлите, пожалуйста, фото счётчика с текущими показаниями. "
        "Мы проверим начисления по лицевому счёту {account} и сообщим результат.",
    ),
    (
        "авария",
        "Нет света",
        "Отключения",
        "Если пропал свет, позвоните в аварийную службу: {company.emergency_phone}. "
        "Назовите адрес и скажите, нет ли света у соседей — так "
        "бригада быстрее найдёт причину.",
    ),
    (
        "данные",
        "Безопасность данных",
        "Общее",
        "Пожалуйста, не присылайте в чат данные банковской карты и паспорта: для "
        "ответа нам достаточно номера лицевого счёта и адреса.",
    ),
)


async def seed_demo_users(db: Database) -> list[tuple[str, str, str]]:
    """The demo's workspace users and shared templates; existing ones are left alone.
    Returns (login, password, role) for the start-up banner."""
    async with db.session() as session:
        existing = set(await session.scalars(select(User.login)))
        codes = set(await session.scalars(select(Template.code)))
    for login, password, name, role in DEMO_USERS:
        if login not in existing:
            await add_user(db, login, password, name=name, role=role)
    async with db.transaction() as session:
        for code, title, category, text in DEMO_TEMPLATES:
            if code not in codes:
                session.add(Template(code=code, title=title, category=category, text=text))
    return [(login, password, role) for login, password, _, role in DEMO_USERS]
