"""Canned answers: rights, code uniqueness, suggestions, placeholders, the API and its page."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator, Iterator, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from sqlalchemy import select

from abonent.clock import utcnow
from abonent.db.models import (
    ChannelIdentity,
    Contact,
    ContactAccount,
    Conversation,
    Message,
    Template,
    User,
)
from abonent.db.session import Database
from abonent.operators import auth, templates, users
from abonent.operators.auth import SESSION_COOKIE, authenticate
from abonent.operators.templates import TemplateError, TemplateForbidden, TemplateNotFound
from abonent.operators.users import add_user
from chromium import expect, new_page
from support import LiveServer, make_settings

if TYPE_CHECKING:
    from playwright.async_api import Browser

PASSWORD = "correct horse battery"
_hash = functools.cache(auth.hash_password)


@pytest.fixture(autouse=True)
def _hash_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """Argon2 takes most of a second per hash: the users here share one password."""
    monkeypatch.setattr(users, "hash_password", _hash)


async def _users(db: Database) -> tuple[User, User, User]:
    admin = await add_user(db, "boss", PASSWORD, name="Анна Админова", role="admin")
    op = await add_user(db, "olga", PASSWORD, name="Ольга")
    other = await add_user(db, "petr", PASSWORD, name="Пётр")
    return admin, op, other


async def _library(db: Database, admin: User) -> dict[str, int]:
    """A small shared library like a real one."""
    rows = [
        (
            "tariff",
            "Действующие тарифы",
            "Тарифы на электроэнергию с 1 июля: 6,43 ₽ за кВт·ч.",
            "Тарифы",
        ),
        (
            "readings",
            "Как передать показания",
            "Передать показания счётчика можно в чате или в личном кабинете до 25 числа.",
            "Показания",
        ),
        (
            "meter",
            "Замена счётчика",
            "Заявку на замену прибора учёта оставьте на сайте.",
            "Показания",
        ),
        (
            "pay",
            "Оплата",
            "Оплатить счёт можно по ссылке в личном кабинете без комиссии.",
            "Оплата",
        ),
        ("hello", "Приветствие", "Здравствуйте, {name}! Меня зовут {operator}.", "Общее"),
        ("debt", "Задолженность", "По лицевому счёту {account} есть долг {не трогать}.", "Оплата"),
    ]
    ids = {}
    for code, title, text, category in rows:
        t = await templates.create(
            db, admin, code=code, title=title, text=text, category=category, shared=True
        )
        ids[code] = t.id
    return ids


async def _conversation(
    db: Database,
    *,
    assignee_id: int | None,
    name: str | None,
    display_name: str | None,
    accounts: list[str],
    said: Sequence[tuple[str, str | None]] = (),
    metas: Sequence[dict[str, Any] | None] = (),
    contact_id: int | None = None,
) -> int:
    """A conversation of a new contact (or of ``contact_id``) whose linked accounts are
    ``accounts`` and whose customer wrote ``said`` (text, button payload) in it."""
    async with db.transaction() as s:
        if contact_id is None:
            contact = Contact(name=name)
            s.add(contact)
            await s.flush()
        else:
            found = await s.get(Contact, contact_id)
            assert found is not None
            contact = found
        identity = ChannelIdentity(
            contact_id=contact.id,
            channel_id="webchat",
            external_id=f"visitor-{contact.id}-{len(said)}-{utcnow().timestamp()}",
            display_name=display_name,
        )
        s.add(identity)
        await s.flush()
        conversation = Conversation(
            contact_id=contact.id,
            identity_id=identity.id,
            channel_id="webchat",
            status="assigned" if assignee_id else "queued",
            assignee_id=assignee_id,
            bot_state={},
        )
        s.add(conversation)
        await s.flush()
        now = utcnow()
        for i, number in enumerate(accounts):
            s.add(
                ContactAccount(
                    contact_id=contact.id,
                    account_number=number,
                    last_used_at=now + timedelta(seconds=i),
                )
            )
        for i, (text, payload) in enumerate(said):
            s.add(
                Message(
                    conversation_id=conversation.id,
                    identity_id=identity.id,
                    channel_id="webchat",
                    author="customer",
                    text=text,
                    payload=payload,
                    meta=metas[i] if i < len(metas) else None,
                )
            )
        await s.flush()
        return conversation.id


def _codes(found: list[templates.TemplateView]) -> list[str]:
    return [t.code for t in found]


# --------------------------------------------------------------------------- the service
async def test_codes_are_unique_among_what_a_user_sees(db: Database) -> None:
    admin, op, other = await _users(db)
    await templates.create(
        db, admin, code="hello", title="Привет", text="Здравствуйте!", shared=True
    )
    with pytest.raises(TemplateError, match="уже занят общим шаблоном"):
        await templates.create(db, op, code="hello", title="Моё", text="Привет")
    mine = await templates.create(db, op, code="/Thanks", title="Спасибо", text="Спасибо!")
    assert mine.code == "thanks" and mine.owner_id == op.id and not mine.shared
    with pytest.raises(TemplateError, match="уже занят вашим шаблоном"):
        await templates.create(db, op, code="thanks", title="Ещё", text="Ещё раз спасибо")
    # another operator does not see Olga's template: the same code is theirs to take
    await templates.create(db, other, code="thanks", title="Благодарю", text="Благодарю!")
    # but a shared template would clash for both of them
    with pytest.raises(TemplateError, match="личным шаблоном одного из операторов"):
        await templates.create(db, admin, code="thanks", title="Общее", text="Спасибо", shared=True)
    # renaming into a taken code is refused too
    with pytest.raises(TemplateError, match="общим шаблоном"):
        await templates.update(db, op, mine.id, code="hello")

    # Russian codes are codes like any other: folded to lower case, «ё» as «е»
    russian = await templates.create(db, op, code="/Перерасчёт", title="Перерасчёт", text="…")
    assert russian.code == "перерасчет"
    with pytest.raises(TemplateError, match="уже занят вашим шаблоном"):
        await templates.create(db, op, code="ПЕРЕРАСЧЕТ", title="Ещё", text="…")
    for bad in ("", "a b", "x" * 33, "semi;colon", "привет!"):
        with pytest.raises(TemplateError, match="русские или латинские буквы"):
            await templates.create(db, op, code=bad, title="t", text="t")
    with pytest.raises(TemplateError, match="название"):
        await templates.create(db, op, code="ok", title="  ", text="t")
    with pytest.raises(TemplateError, match="Текст шаблона"):
        await templates.create(db, op, code="ok", title="t", text="\n")
    assert _codes(await templates.visible(db, op.id)) == ["перерасчет", "hello", "thanks"]


async def test_rights_shared_by_admins_personal_by_owner(db: Database) -> None:
    admin, op, other = await _users(db)
    with pytest.raises(TemplateForbidden):
        await templates.create(db, op, code="x", title="t", text="t", shared=True)
    shared = await templates.create(
        db, admin, code="tariff", title="Тарифы", text="6,43", shared=True
    )
    with pytest.raises(TemplateForbidden):
        await templates.update(db, op, shared.id, text="0 ₽")
    with pytest.raises(TemplateForbidden):
        await templates.delete(db, op, shared.id)
    edited = await templates.update(db, admin, shared.id, text="6,50 ₽", category="Тарифы")
    assert edited.text == "6,50 ₽" and edited.category == "Тарифы" and edited.shared
    cleared = await templates.update(db, admin, shared.id, category="")
    assert cleared.category is None

    own = await templates.create(db, op, code="mine", title="Моё", text="Текст")
    with pytest.raises(TemplateNotFound):  # others (admins too) do not even see it
        await templates.update(db, other, own.id, text="чужое")
    with pytest.raises(TemplateNotFound):
        await templates.delete(db, admin, own.id)
    assert (await templates.update(db, op, own.id, title="Моё новое")).title == "Моё новое"
    await templates.delete(db, op, own.id)
    await templates.delete(db, admin, shared.id)
    assert await templates.visible(db, op.id) == []
    with pytest.raises(TemplateNotFound):
        await templates.delete(db, admin, shared.id)


async def test_suggestions_by_code_and_by_words_with_typos(db: Database) -> None:
    admin, op, _ = await _users(db)
    ids = await _library(db, admin)

    assert _codes(await templates.suggest(db, op.id, "/tar"))[:1] == ["tariff"]
    assert _codes(await templates.suggest(db, op.id, "/readings")) == ["readings"]
    assert _codes(await templates.suggest(db, op.id, "/tarf"))[:1] == ["tariff"]  # fuzzy code
    assert _codes(await templates.suggest(db, op.id, "/ефкшаа"))[:1] == ["tariff"]  # RU layout
    assert await templates.suggest(db, op.id, "/zzz") == []

    for query in ("тариф", "тарив", "тарифы", "nfhba"):
        assert _codes(await templates.suggest(db, op.id, query))[:1] == ["tariff"], query
    for query in ("показания", "показния", "передать пок"):
        assert _codes(await templates.suggest(db, op.id, query))[:1] == ["readings"], query
    assert _codes(await templates.suggest(db, op.id, "замена счетчика"))[:1] == ["meter"]
    assert _codes(await templates.suggest(db, op.id, "оплатить без комисии"))[:1] == ["pay"]
    assert _codes(await templates.suggest(db, op.id, "задолж"))[:1] == ["debt"]

    for nothing in ("", "  ", "/?!", "т", "та", "ква-ква-ква"):
        assert await templates.suggest(db, op.id, nothing) == [], nothing
    assert len(await templates.suggest(db, op.id, "счет", limit=2)) <= 2

    # the operator's own template ranks above an equally good shared one
    own = await templates.create(
        db, op, code="tariff2", title="Действующие тарифы", text="Мой вариант про тарифы."
    )
    found = await templates.suggest(db, op.id, "тариф")
    assert [t.id for t in found[:2]] == [own.id, ids["tariff"]]
    # …and nobody else is offered it
    other = await add_user(db, "ivan", PASSWORD)
    assert own.id not in [t.id for t in await templates.suggest(db, other.id, "тариф")]


async def test_index_follows_changes_made_elsewhere(db: Database, fresh_database_url: str) -> None:
    """Another process (here: another Database object) changes a template: seen at once."""
    admin, op, _ = await _users(db)
    await _library(db, admin)
    assert _codes(await templates.suggest(db, op.id, "тариф"))[:1] == ["tariff"]
    elsewhere = Database(fresh_database_url)
    try:
        t = await templates.create(
            elsewhere,
            admin,
            code="storm",
            title="Авария",
            text="Ведутся аварийные работы.",
            shared=True,
        )
        assert _codes(await templates.suggest(db, op.id, "аварийные")) == ["storm"]
        await templates.update(elsewhere, admin, t.id, text="Плановое отключение света.")
        assert await templates.suggest(db, op.id, "аварийные") == []
        assert _codes(await templates.suggest(db, op.id, "отключение")) == ["storm"]
        await templates.delete(elsewhere, admin, t.id)
        assert await templates.suggest(db, op.id, "отключение") == []
    finally:
        await elsewhere.dispose()


def test_fill_replaces_known_placeholders_only() -> None:
    text = "Здравствуйте, {name}! Счёт {account}. {operator}. {unknown} {name"
    assert templates.fill(text, {"name": "Мария", "account": "1001", "operator": "Ольга"}) == (
        "Здравствуйте, Мария! Счёт 1001. Ольга. {unknown} {name"
    )
    blanked = templates.fill(text, {"name": " ", "operator": "Ольга"})
    assert blanked == "Здравствуйте, [имя]! Счёт [лицевой счёт]. Ольга. {unknown} {name"
    assert templates.unfilled(blanked) == ["[имя]", "[лицевой счёт]"]
    # the company's profile, named as in the knowledge base's answers
    company = "Оплата: {links.payment}. Звоните {company.call_center_phone}."
    assert templates.fill(company, {"company.call_center_phone": "8 800 100-00-00"}) == (
        "Оплата: [нет в настройках: links.payment]. Звоните 8 800 100-00-00."
    )
    assert templates.unfilled("Оплата: [нет в настройках: links.payment].") == [
        "[нет в настройках: links.payment]"
    ]
    # a placeholder pasted unfilled is a blank too; ordinary brackets and braces are not
    assert templates.unfilled("Здравствуйте, {name}! {name}") == ["{name}"]
    assert templates.unfilled("Счёт [12345] на {сумму}, [имя клиента]") == []


async def test_conversation_values(db: Database) -> None:
    admin, op, other = await _users(db)
    mine = await _conversation(
        db,
        assignee_id=op.id,
        name=None,
        display_name="Мария",
        accounts=["1001", "2002"],
        said=[("Передать показания", "readings"), ("л/с 10-01", None), ("спасибо", None)],
    )
    named = await _conversation(
        db, assignee_id=op.id, name="Иван Петров", display_name="vanya", accounts=[]
    )
    values = await templates.conversation_values(db, mine, op)
    # 2002 is the contact's latest account, but in this chat the customer named 1001
    assert values == {"name": "Мария", "account": "1001", "operator": "Ольга"}
    values = await templates.conversation_values(db, named, op)
    assert values == {"name": "Иван Петров", "account": None, "operator": "Ольга"}
    # not their conversation: no customer data for another operator; supervisors+ see it
    assert await templates.conversation_values(db, mine, other) == {
        "name": None,
        "account": None,
        "operator": "Пётр",
    }
    assert (await templates.conversation_values(db, mine, admin))["name"] == "Мария"
    with pytest.raises(TemplateNotFound):
        await templates.conversation_values(db, 999_999, op)


async def test_russian_codes_other_layout_translit_and_the_whole_list(db: Database) -> None:
    """What an operator types after «/»: a Russian code, the same on the Latin layout or
    in translit, half of it, or nothing yet (then every template is offered)."""
    admin, op, _ = await _users(db)
    await _library(db, admin)
    await templates.create(
        db, admin, code="привет", title="Здравствуйте", text="Добрый день!", shared=True
    )
    await templates.create(
        db, admin, code="оплата", title="Способы оплаты", text="По ссылке.", shared=True
    )
    for query in ("/привет", "/При", "/privet", "/ghbdtn", "/прив"):
        assert _codes(await templates.suggest(db, op.id, query))[:1] == ["привет"], query
    assert _codes(await templates.suggest(db, op.id, "/ефкша"))[:1] == ["tariff"]  # RU layout
    assert _codes(await templates.suggest(db, op.id, "/еуфкша"))[:1] != ["привет"]
    # a Cyrillic code typed for a Latin one, in translit: «/тариф» is «/tarif»
    assert _codes(await templates.suggest(db, op.id, "/тариф"))[:1] == ["tariff"]
    # words after «/» search titles and texts too, by lemma and prefix
    for query in ("оплат", "/оплат", "ОПЛАТА", "оплатить"):
        assert _codes(await templates.suggest(db, op.id, query))[:1] in (["оплата"], ["pay"]), query
    assert set(_codes(await templates.suggest(db, op.id, "оплат"))[:2]) == {"оплата", "pay"}
    # a code is a word of its template too
    assert _codes(await templates.suggest(db, op.id, "привет"))[:1] == ["привет"]

    everything = await templates.suggest(db, op.id, "/", limit=50)
    assert _codes(everything) == [
        "debt",
        "hello",
        "meter",
        "pay",
        "readings",
        "tariff",
        "оплата",
        "привет",
    ]
    own = await templates.create(db, op, code="мой", title="Моё", text="Моё.")
    assert (await templates.suggest(db, op.id, "/", limit=3))[0].id == own.id


async def test_the_account_is_the_one_named_in_this_conversation(db: Database) -> None:
    """Last chat the customer named 1001; today (this chat) they pressed the button of
    2002. A template must quote 2002 here, and nothing in a chat where none was named."""
    _, op, _ = await _users(db)
    earlier = await _conversation(
        db,
        assignee_id=op.id,
        name="Мария",
        display_name=None,
        accounts=["2002", "1001"],  # 1001 used last
        said=[("1001", None)],
    )
    contact = await _contact_of(db, earlier)
    today = await _conversation(
        db,
        assignee_id=op.id,
        name=None,
        display_name=None,
        accounts=[],
        said=[("Счёт 2002", "acct:2002"), ("Соедините с оператором", "operator")],
        contact_id=contact,
    )
    silent = await _conversation(
        db,
        assignee_id=op.id,
        name=None,
        display_name=None,
        accounts=[],
        said=[("Здравствуйте, вопрос по счёту 1001", None), ("9999", None)],
        contact_id=contact,
    )
    assert (await templates.conversation_values(db, earlier, op))["account"] == "1001"
    assert (await templates.conversation_values(db, today, op))["account"] == "2002"
    # a sentence around a number and a number that is not the customer's are not named accounts
    assert (await templates.conversation_values(db, silent, op))["account"] is None
    filled = templates.fill("Счёт {account}.", await templates.conversation_values(db, silent, op))
    assert filled == "Счёт [лицевой счёт]." and templates.unfilled(filled) == ["[лицевой счёт]"]
    # the bot keeps the account it accepted on the message that named it, in a sentence too
    aside = await _conversation(
        db,
        assignee_id=op.id,
        name=None,
        display_name=None,
        accounts=[],
        said=[("мой л/с 2002, проверьте начисления", None), ("а оплатить как?", None)],
        metas=[{"account": "2002", "intent": None}, {"intent": "payment_methods"}],
        contact_id=contact,
    )
    assert (await templates.conversation_values(db, aside, op))["account"] == "2002"


async def _contact_of(db: Database, conversation_id: int) -> int:
    async with db.session() as s:
        conversation = await s.get(Conversation, conversation_id)
        assert conversation is not None
        return conversation.contact_id


async def test_the_demo_set(db: Database) -> None:
    """``abonent demo`` ships a utility's everyday answers; with the demo company's
    profile every blank but the customer's own name and account is filled."""
    from abonent.config import Settings
    from abonent.demo import DEMO_TEMPLATES, seed_demo_users
    from abonent.nlu.kb import values_from_settings

    await seed_demo_users(db)
    await seed_demo_users(db)  # a second start adds nothing twice
    async with db.session() as s:
        rows = list(await s.scalars(select(Template)))
    assert len(rows) == len(DEMO_TEMPLATES) >= 12
    assert all(templates.CODE_RE.match(r.code) and r.owner_id is None for r in rows)
    admin = await add_user(db, "chief", PASSWORD, name="Ольга", role="admin")
    demo_profile = Settings.model_validate(_demo_toml())
    company = values_from_settings(demo_profile)
    values = await templates.conversation_values(db, None, admin, company)
    left = {b for r in rows for b in templates.unfilled(templates.fill(r.text, values))}
    assert left <= {"[имя]", "[лицевой счёт]"}, left
    for query, code in (
        ("/", "авария"),
        ("/привет", "привет"),
        ("оплат", "оплата"),
        ("поверка счетчика", "поверка"),
        ("фото счётчика", "фото"),
        ("/ожид", "ожидание"),
        ("подожд", "ожидание"),
        ("номер лицевого", "лс"),
        ("нет света", "авария"),
        ("до какого числа показания", "срок"),
    ):
        assert _codes(await templates.suggest(db, admin.id, query))[:1] == [code], query


def _demo_toml() -> dict[str, Any]:
    import tomllib
    from pathlib import Path

    import abonent.demo

    with (Path(abonent.demo.__file__).parent / "demo.toml").open("rb") as handle:
        return tomllib.load(handle)


# --------------------------------------------------------------------------- the API
API = "/api/workspace/v1/templates"


@pytest.fixture
def server(fresh_database_url: str) -> Iterator[LiveServer]:
    live = LiveServer(make_settings(fresh_database_url))
    live.start()
    yield live
    live.stop()


class Browser:
    """A signed-in workspace user: session cookie plus the CSRF header."""

    def __init__(self, http: httpx.AsyncClient, csrf: str) -> None:
        self.http = http
        self.csrf = csrf

    async def call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = {"X-CSRF-Token": self.csrf} if method != "GET" else {}
        return await self.http.request(method, path, headers=headers, **kwargs)


@pytest.fixture
async def sign_in(server: LiveServer) -> AsyncIterator[Any]:
    clients: list[httpx.AsyncClient] = []

    async def make(login: str) -> Browser:
        http = httpx.AsyncClient(base_url=server.url, timeout=30)
        clients.append(http)
        r = await http.post("/api/workspace/v1/login", json={"login": login, "password": PASSWORD})
        assert r.status_code == 200, r.text
        return Browser(http, r.json()["csrf_token"])

    yield make
    for http in clients:
        await http.aclose()


async def test_api_crud_and_rights(server: LiveServer, sign_in: Any, db: Database) -> None:
    await _users(db)
    boss, olga, petr = await sign_in("boss"), await sign_in("olga"), await sign_in("petr")

    r = await boss.call(
        "POST",
        API,
        json={
            "code": "tariff",
            "title": "Тарифы",
            "text": "6,43 ₽",
            "shared": True,
            "category": "Тарифы",
        },
    )
    assert r.status_code == 201, r.text
    shared = r.json()["template"]
    assert shared["shared"] is True and shared["can_edit"] is True

    r = await olga.call("POST", API, json={"code": "x", "title": "t", "text": "t", "shared": True})
    assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden"
    r = await olga.http.post(API, json={"code": "x", "title": "t", "text": "t"})  # no CSRF
    assert r.status_code == 403 and r.json()["error"]["code"] == "csrf"
    r = await olga.http.post(
        API, json={"code": "x", "title": "t", "text": "t"}, headers={"X-CSRF-Token": "forged"}
    )
    assert r.status_code == 403 and r.json()["error"]["code"] == "csrf"
    r = await httpx.AsyncClient(base_url=server.url).get(API)
    assert r.status_code == 401

    r = await olga.call("POST", API, json={"code": "tariff", "title": "t", "text": "t"})
    assert r.status_code == 400 and "уже занят" in r.json()["error"]["message"]
    r = await olga.call("POST", API, json={"code": "Не код", "title": "t", "text": "t"})
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_template"
    r = await olga.call("POST", API, json={"code": "mine", "title": "Моё", "text": "Привет"})
    assert r.status_code == 201
    mine = r.json()["template"]
    assert mine["shared"] is False and mine["can_edit"] is True

    listed = (await olga.call("GET", API)).json()
    assert [(t["code"], t["can_edit"]) for t in listed["templates"]] == [
        ("mine", True),
        ("tariff", False),
    ]
    assert listed["categories"] == ["Тарифы"]
    assert [t["code"] for t in (await petr.call("GET", API)).json()["templates"]] == ["tariff"]

    r = await olga.call("PUT", f"{API}/{shared['id']}", json={"text": "0 ₽"})
    assert r.status_code == 403
    r = await olga.call("DELETE", f"{API}/{shared['id']}")
    assert r.status_code == 403
    r = await petr.call("PUT", f"{API}/{mine['id']}", json={"text": "чужое"})
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    r = await olga.call("PUT", f"{API}/{mine['id']}", json={"text": "Добрый день"})
    assert r.status_code == 200 and r.json()["template"]["text"] == "Добрый день"
    r = await boss.call("PUT", f"{API}/{shared['id']}", json={"text": "6,50 ₽", "category": ""})
    assert r.status_code == 200 and r.json()["template"]["category"] is None
    r = await olga.http.delete(f"{API}/{mine['id']}")  # no CSRF
    assert r.status_code == 403
    r = await olga.call("DELETE", f"{API}/{mine['id']}")
    assert r.status_code == 204
    r = await olga.call("DELETE", f"{API}/{mine['id']}")
    assert r.status_code == 404
    r = await boss.call("DELETE", f"{API}/{shared['id']}")
    assert r.status_code == 204
    assert (await boss.call("GET", API)).json() == {"templates": [], "categories": []}


async def test_api_suggest_fills_placeholders(
    server: LiveServer, sign_in: Any, db: Database
) -> None:
    admin, op, _ = await _users(db)
    await _library(db, admin)
    conversation = await _conversation(
        db,
        assignee_id=op.id,
        name="Мария",
        display_name="masha",
        accounts=["100200300"],
        said=[("100 200 300", None)],
    )
    olga, petr = await sign_in("olga"), await sign_in("petr")

    r = await olga.call(
        "GET", f"{API}/suggest", params={"q": "/hel", "conversation_id": conversation}
    )
    assert r.status_code == 200, r.text
    [hello] = r.json()["suggestions"]
    assert hello["code"] == "hello" and hello["shared"] is True
    assert hello["text"] == "Здравствуйте, Мария! Меня зовут Ольга."
    assert hello["blanks"] == []
    assert set(hello) == {"id", "code", "title", "category", "text", "blanks", "shared"}

    r = await olga.call(
        "GET", f"{API}/suggest", params={"q": "задолженость", "conversation_id": conversation}
    )
    assert r.json()["suggestions"][0]["text"] == (
        "По лицевому счёту 100200300 есть долг {не трогать}."
    )
    # without a conversation, or in somebody else's, the operator sees markers to replace
    r = await olga.call("GET", f"{API}/suggest", params={"q": "/hello"})
    assert r.json()["suggestions"][0]["text"] == "Здравствуйте, [имя]! Меня зовут Ольга."
    assert r.json()["suggestions"][0]["blanks"] == ["[имя]"]
    r = await petr.call(
        "GET", f"{API}/suggest", params={"q": "/hello", "conversation_id": conversation}
    )
    assert r.json()["suggestions"][0]["text"] == "Здравствуйте, [имя]! Меня зовут Пётр."

    r = await olga.call("GET", f"{API}/suggest", params={"q": "тарив"})
    assert [s["code"] for s in r.json()["suggestions"]][:1] == ["tariff"]
    assert (await olga.call("GET", f"{API}/suggest", params={"q": ""})).json() == {
        "suggestions": []
    }
    # "/" alone: everything, by code
    r = await olga.call("GET", f"{API}/suggest", params={"q": "/", "limit": 50})
    assert [s["code"] for s in r.json()["suggestions"]] == [
        "debt",
        "hello",
        "meter",
        "pay",
        "readings",
        "tariff",
    ]
    r = await olga.call("GET", f"{API}/suggest", params={"q": "/", "limit": 51})
    assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_request"
    r = await olga.call("GET", f"{API}/suggest", params={"q": "/hello", "conversation_id": 999999})
    assert r.status_code == 404
    r = await olga.call("GET", f"{API}/suggest", params={"q": "/hello", "conversation_id": 10**20})
    assert r.status_code == 422
    r = await olga.call("PUT", f"{API}/{10**20}", json={"text": "x"})
    assert r.status_code == 422


async def test_admin_page(server: LiveServer, sign_in: Any, db: Database) -> None:
    await add_user(db, "boss", PASSWORD, name="<img src=x onerror=alert(1)>", role="admin")
    await add_user(db, "olga", PASSWORD, name="Ольга")
    boss, olga = await sign_in("boss"), await sign_in("olga")
    page = await boss.call("GET", "/operator/templates")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert f'<meta name="csrf-token" content="{boss.csrf}">' in page.text
    assert '<script src="/static/operator_templates.js?v=' in page.text
    assert "<img src=x" not in page.text and "&lt;img src=x" in page.text
    assert 'id="f-shared"' in page.text  # admins may create shared templates
    own = await olga.call("GET", "/operator/templates")  # operators manage their own
    assert own.status_code == 200 and 'id="f-shared"' not in own.text
    async with httpx.AsyncClient(base_url=server.url) as anonymous:
        r = await anonymous.get("/operator/templates")
        assert r.status_code == 303 and r.headers["location"].startswith("/operator/login")

    js = await boss.http.get("/static/operator_templates.js")
    assert js.status_code == 200
    assert "innerHTML" not in js.text and "X-CSRF-Token" in js.text


# --------------------------------------------------------------------------- in a browser
async def test_admin_page_in_a_browser(
    server: LiveServer, sign_in: Any, db: Database, browser: Browser
) -> None:
    """Create, fail on a taken code, edit, try a suggestion, delete; markup stays text."""
    await add_user(db, "boss", PASSWORD, name="Босс", role="admin")
    signed = server.call(authenticate(server.runtime.db, "boss", PASSWORD, "127.0.0.1"))
    xss = '<img src=x onerror="window.__pwned=1">'
    page, errors = await new_page(browser)
    await page.context.add_cookies(
        [{"name": SESSION_COOKIE, "value": signed.token, "url": server.url}]
    )
    native: list[str] = []
    page.on(
        "dialog",
        lambda dialog: (native.append(dialog.message), asyncio.ensure_future(dialog.dismiss())),
    )
    await page.goto(f"{server.url}/operator/templates")
    await expect(page.locator("#list-status")).to_contain_text("Шаблонов пока нет")

    await page.fill("#f-code", "tariff")
    await page.fill("#f-title", f"Тарифы {xss}")
    await page.fill("#f-category", "Тарифы")
    await page.fill("#f-text", f"Здравствуйте, {{name}}! {xss}")
    await page.click("#f-submit")
    item = page.locator("#list tr", has_text="/tariff")
    await expect(item).to_contain_text(xss)  # shown as text
    await expect(page.locator("#list h4")).to_have_text(["Тарифы"])

    await page.fill("#f-code", "tariff")
    await page.fill("#f-title", "Дубль")
    await page.fill("#f-text", "Дубль")
    await page.click("#f-submit")
    await expect(page.locator("#form-error")).to_contain_text("Код «tariff» уже занят")

    await page.click("button[aria-label='Изменить шаблон /tariff']")
    await expect(page.locator("#f-code")).to_have_value("tariff")
    await page.fill("#f-text", "Тариф 6,43 ₽ за кВт·ч")
    await page.click("#f-submit")
    await expect(item).to_contain_text("Тариф 6,43 ₽ за кВт·ч")

    await page.fill("#try-query", "тарив")
    await expect(page.locator("#try-results li")).to_contain_text(["/tariff"])

    # a Russian code is welcome; an impossible one is explained in Russian
    await page.fill("#f-code", "привет!")
    await page.fill("#f-title", "Приветствие")
    await page.fill("#f-text", "Здравствуйте!")
    await page.click("#f-submit")
    await expect(page.locator("#form-error")).to_contain_text("русские или латинские буквы")
    await page.fill("#f-code", "привет")
    await page.click("#f-submit")
    await expect(page.locator("#list tr", has_text="/привет")).to_be_visible()
    await page.fill("#try-query", "/privet")
    await expect(page.locator("#try-results li").first).to_contain_text("/привет")

    # deleting asks in the page (not the browser's confirm()), and «Отмена» keeps it
    for code in ("tariff", "привет"):
        await page.click(f"button[aria-label='Удалить шаблон /{code}']")
        confirm = page.locator("dialog.confirm-dialog")
        await expect(confirm).to_contain_text(f"Удалить шаблон /{code}?")
        await confirm.get_by_role("button", name="Отмена").click()
        await expect(confirm).to_have_count(0)
        await expect(page.locator("#list tr", has_text=f"/{code}")).to_be_visible()
        await page.click(f"button[aria-label='Удалить шаблон /{code}']")
        await page.locator("dialog.confirm-dialog").get_by_role("button", name="Удалить").click()
        await expect(page.locator("#list tr", has_text=f"/{code}")).to_have_count(0)
    await expect(page.locator("#list-status")).to_contain_text("Шаблонов пока нет")
    assert await page.evaluate("window.__pwned") is None
    assert await page.locator("#list img, #try-results img").count() == 0
    errors.assert_none()
    assert native == [], "the page used the browser's own dialogs"
    assert await templates.visible(db, signed.user.id) == []
