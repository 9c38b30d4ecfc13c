"""Canned answers: shared ones (managed by admins) and each operator's own.

Suggestions run on every keystroke of an operator, so they never scan the table: each
process keeps an index of all templates (there are hundreds, not millions) and asks the
database only for a fingerprint (count, highest id, latest change) to notice what
another process changed. A change made here drops the index at once.

Matching is word-based rather than one fuzzy ratio over the whole text, because an
operator types a few words, often half of the last one and often with a typo: every
query word is looked up among the templates' words and their lemmas exactly, as a
prefix, and with rapidfuzz (whole word, and the same length head of a longer word), and
a template scores the mean of its best hit per query word. Title and category words
weigh a little more than the body's.

Codes may be Cyrillic or Latin (``/привет``, ``/tariff``): a typed code is compared as
typed, as if typed on the other keyboard layout, and in informal translit, so
``/privet``, ``/ghbdtn`` and ``/привет`` all find ``/привет``. "/" alone lists everything.

Placeholders are filled only from what this conversation says: the contact's name, the
account the customer named *in this conversation*, the operator, the company's profile.
What is unknown stays a visible blank such as «[имя]», and an operator's message with a
blank left in it is refused (``unfilled``), so a customer never gets one.
"""

from __future__ import annotations

import re
import weakref
from bisect import bisect_left
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from rapidfuzz import fuzz, process
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from abonent.billing.accounts import normalise_account_number
from abonent.bot.texts import P_ACCOUNT
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
from abonent.nlu.layout import en_to_ru, ru_to_en
from abonent.nlu.lemmas import lemma
from abonent.nlu.normalize import SLANG, normalize
from abonent.nlu.translit import to_latin
from abonent.operators.auth import RANK

CODE_RE = re.compile(r"^[a-zа-я0-9_-]{1,32}$")
MAX_TITLE = 200
MAX_TEXT = 4000
MAX_CATEGORY = 64

# What an unknown placeholder becomes: visible, so the operator replaces it before sending.
PLACEHOLDERS: dict[str, str] = {
    "name": "[имя]",
    "account": "[лицевой счёт]",
    "operator": "[оператор]",
}
# The company's profile, named as in the knowledge base's answers ({links.payment} …).
_SETTINGS_KEY = r"(?:company|links|readings)\.[a-z_]+"
_PLACEHOLDER_RE = re.compile(r"\{(" + "|".join(PLACEHOLDERS) + "|" + _SETTINGS_KEY + r")\}")
_MISSING_SETTING = "[нет в настройках: {key}]"
# Blanks left in an operator's text: our markers, or a placeholder pasted unfilled.
_BLANK_RE = re.compile(
    "|".join(re.escape(m) for m in PLACEHOLDERS.values())
    + r"|\[нет в настройках: [a-z_.]+\]|"
    + _PLACEHOLDER_RE.pattern
)
# A customer's message that can be an account number (not a sentence around one).
_MAX_ACCOUNT_TEXT = 40

MIN_WORDS_QUERY = 3  # characters of a text query before anything is suggested
LIST_ALL = 50  # what "/" alone lists, at most
MIN_SCORE = 40.0
TITLE_WEIGHT = 1.05
CATEGORY_WEIGHT = 1.02
_LATIN = re.compile(r"[a-z]")
_CYRILLIC = re.compile(r"[а-яё]")
_NOT_CODE = re.compile(r"[^a-zа-я0-9_-]+")
# Words too common in answers to say which template is meant.
_STOP_WORDS = (
    "и в во на по с со к ко у о об от до из за не ни но а же ли бы что как для это или "
    "ваш ваша ваше ваши вас вам вы мы мне меня нас нам уже еще все так при над под без "
    "про его ее их то там тут"
)
_STOP = frozenset(_STOP_WORDS.split())


class TemplateError(ValueError):
    """A template that cannot be saved; the message says why, for people."""


class TemplateNotFound(LookupError):
    """No such template (or conversation) among what the user may see."""


class TemplateForbidden(PermissionError):
    """The user sees the template but may not do this with it."""


@dataclass(frozen=True)
class TemplateView:
    id: int
    code: str
    title: str
    text: str
    category: str | None
    owner_id: int | None
    updated_at: datetime

    @property
    def shared(self) -> bool:
        return self.owner_id is None

    def visible_to(self, user_id: int) -> bool:
        return self.owner_id is None or self.owner_id == user_id

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "code": self.code,
            "title": self.title,
            "text": self.text,
            "category": self.category,
            "shared": self.shared,
            "owner_id": self.owner_id,
            "updated_at": self.updated_at.isoformat(),
        }


def _view(row: Template) -> TemplateView:
    return TemplateView(
        id=row.id,
        code=row.code,
        title=row.title,
        text=row.text,
        category=row.category,
        owner_id=row.owner_id,
        updated_at=row.updated_at,
    )


# --------------------------------------------------------------------------- placeholders
def fill(text: str, values: Mapping[str, str | None]) -> str:
    """``{name}``, ``{account}``, ``{operator}`` and the company's ``{links.payment}``…
    replaced by ``values``; a missing or empty value becomes a visible blank such as
    ``[имя]``; other braces are left alone."""

    def repl(match: re.Match[str]) -> str:
        key = match.group(1)
        value = (values.get(key) or "").strip()
        return value or PLACEHOLDERS.get(key) or _MISSING_SETTING.format(key=key)

    return _PLACEHOLDER_RE.sub(repl, text)


def unfilled(text: str) -> list[str]:
    """The blanks still in a text about to be sent («[имя]», ``{account}``), each once."""
    return list(dict.fromkeys(m.group(0) for m in _BLANK_RE.finditer(text)))


async def conversation_values(
    db: Database,
    conversation_id: int | None,
    user: User,
    company: Mapping[str, str] | None = None,
) -> dict[str, str | None]:
    """Placeholder values for ``user`` answering in a conversation: the contact's name,
    the account the customer named in this conversation, the operator's name, and the
    company's profile (``company``: ``values_from_settings``).

    An operator gets the customer's values only in a conversation assigned to them
    (supervisors and admins in any); otherwise those stay blanks. Raises
    ``TemplateNotFound`` for an unknown conversation.
    """
    values: dict[str, str | None] = {**(company or {}), "operator": user.name}
    values.update(name=None, account=None)
    if conversation_id is None:
        return values
    async with db.session() as session:
        conversation = await session.get(Conversation, conversation_id)
        if conversation is None:
            raise TemplateNotFound(f"Диалог {conversation_id} не найден.")
        if RANK.get(user.role, 0) < RANK["supervisor"] and conversation.assignee_id != user.id:
            return values
        name = await session.scalar(
            select(Contact.name).where(Contact.id == conversation.contact_id)
        )
        if not (name or "").strip():
            name = await session.scalar(
                select(ChannelIdentity.display_name).where(
                    ChannelIdentity.id == conversation.identity_id
                )
            )
        values["name"] = (name or "").strip() or None
        values["account"] = await _account_named_in(session, conversation)
    return values


async def _account_named_in(session: AsyncSession, conversation: Conversation) -> str | None:
    """The account the customer last named in this conversation. Not "the contact's
    latest account": that may come from another chat, and a template must not quote a
    number this customer has not given here.

    The bot keeps an account it accepted on the customer's message (``meta.account``);
    older messages carry none, so for them a message that is just a number (typed, or a
    button of their own accounts) counts when it is one of the contact's accounts — the
    bot links only accounts the billing knows."""
    said = (
        await session.execute(
            select(Message.text, Message.payload, Message.meta)
            .where(Message.conversation_id == conversation.id, Message.author == "customer")
            .order_by(Message.id.desc())
            .limit(500)
        )
    ).all()
    for _, _, meta in said:
        if isinstance(meta, dict) and meta.get("account"):
            return str(meta["account"])
    linked = set(
        await session.scalars(
            select(ContactAccount.account_number).where(
                ContactAccount.contact_id == conversation.contact_id
            )
        )
    )
    for text, payload, _ in said:
        if payload and payload.startswith(P_ACCOUNT):
            number = str(payload[len(P_ACCOUNT) :])
        elif text and len(text) <= _MAX_ACCOUNT_TEXT:
            number = normalise_account_number(text)
        else:
            continue
        if number in linked:
            return number
    return None


# --------------------------------------------------------------------------- the index
_BRACED = re.compile(r"\{[a-z_]+\}")


def _words(text: str) -> list[str]:
    return [w for w in normalize(_BRACED.sub(" ", text)).split() if len(w) >= 2]


class _Index:
    """Every template of the database, with a word index for suggestions."""

    def __init__(self, fingerprint: tuple[Any, ...], templates: list[TemplateView]) -> None:
        self.fingerprint = fingerprint
        self.templates = templates
        self.by_id = {t.id: t for t in templates}
        postings: dict[str, dict[int, float]] = {}
        for pos, t in enumerate(templates):
            fields = (
                (t.code.replace("_", " ").replace("-", " "), TITLE_WEIGHT),
                (t.title, TITLE_WEIGHT),
                (t.category or "", CATEGORY_WEIGHT),
                (t.text, 1.0),
            )
            for field, weight in fields:
                for word in _words(field):
                    for form in {word, lemma(word)}:
                        seen = postings.setdefault(form, {})
                        if weight > seen.get(pos, 0.0):
                            seen[pos] = weight
        self.postings = postings
        self.vocab = sorted(postings)
        self._longer: dict[int, tuple[list[str], list[str]]] = {}

    def _heads(self, n: int) -> tuple[list[str], list[str]]:
        """Words longer than ``n`` and their first ``n`` letters (for half-typed words)."""
        cached = self._longer.get(n)
        if cached is None:
            longer = [v for v in self.vocab if len(v) > n]
            cached = (longer, [v[:n] for v in longer])
            self._longer[n] = cached
        return cached

    def word_hits(self, word: str) -> dict[int, float]:
        """Template position → how well its best word matches ``word`` (0–105)."""
        hits: dict[str, float] = {}

        def hit(found: str, score: float) -> None:
            if score > hits.get(found, 0.0):
                hits[found] = score

        for form in {word, lemma(word)}:
            if form in self.postings:
                hit(form, 100.0)
        if len(word) >= 3:
            i = bisect_left(self.vocab, word)
            while i < len(self.vocab) and self.vocab[i].startswith(word):
                found = self.vocab[i]
                hit(found, 80.0 + 20.0 * len(word) / len(found))
                i += 1
        if len(word) >= 4:
            for found, score, _ in process.extract(
                word, self.vocab, scorer=fuzz.ratio, score_cutoff=75, limit=None
            ):
                hit(found, score * 0.95)
            longer, heads = self._heads(len(word))
            for _, score, index in process.extract(
                word, heads, scorer=fuzz.ratio, score_cutoff=80, limit=None
            ):
                hit(longer[index], score * 0.9)
        out: dict[int, float] = {}
        for found, score in hits.items():
            for pos, weight in self.postings[found].items():
                value = score * weight
                if value > out.get(pos, 0.0):
                    out[pos] = value
        return out

    def by_words(self, query: str, user_id: int) -> list[tuple[float, TemplateView]]:
        tokens: list[str] = []
        for token in normalize(query).split():
            tokens.extend(SLANG.get(token, token).split())
        words = [t for t in tokens if len(t) >= 2 and t not in _STOP] or [
            t for t in tokens if len(t) >= 2
        ]
        if not words:
            return []
        totals: dict[int, float] = {}
        for word in words:
            for pos, score in self.word_hits(word).items():
                totals[pos] = totals.get(pos, 0.0) + score
        found: list[tuple[float, TemplateView]] = []
        for pos, total in totals.items():
            template = self.templates[pos]
            score = total / len(words)
            if score >= MIN_SCORE and template.visible_to(user_id):
                found.append((score, template))
        return found

    def by_code(self, prefix: str, user_id: int) -> list[tuple[float, TemplateView]]:
        """By code: as typed, as if typed on the other layout, and in translit."""
        readings = _code_readings(prefix)
        found: list[tuple[float, TemplateView]] = []
        for template in self.templates:
            if not template.visible_to(user_id):
                continue
            score = max(
                _code_score(typed, key) * weight
                for typed, weight in readings
                for key in _code_keys(template.code)
            )
            if score >= 56:
                found.append((score, template))
        return found


def _fold(code: str) -> str:
    return code.strip().lower().replace("ё", "е")


def _code_keys(code: str) -> set[str]:
    """A code and, for a Cyrillic one, its translit spellings («привет» → «privet»)."""
    code = _fold(code)
    keys = {code}
    if _CYRILLIC.search(code):
        keys |= {to_latin(code), to_latin(code, 1)}
    return keys


def _code_readings(prefix: str) -> list[tuple[str, float]]:
    """What a typed code may mean, each with how much to trust that reading: as typed;
    typed on the other keyboard layout («/ефкша» is «/tarif», «/ghbdtn» is «/привет»);
    Cyrillic typed for a Latin code in translit («/привет» finds «/privet»)."""
    readings = [(prefix, 1.0)]
    if _CYRILLIC.search(prefix):
        readings.append((_NOT_CODE.sub("", ru_to_en(prefix).lower()), 0.97))
        readings.append((_NOT_CODE.sub("", to_latin(prefix)), 0.95))
    elif _LATIN.search(prefix):
        readings.append((_NOT_CODE.sub("", en_to_ru(prefix).lower()), 0.97))
    return [(typed, weight) for typed, weight in readings if typed]


def _code_score(typed: str, code: str) -> float:
    if code == typed:
        return 110.0
    if code.startswith(typed):
        return 90.0 + 10.0 * len(typed) / len(code)
    score = fuzz.ratio(typed, code) * 0.8
    if len(typed) >= 3 and len(code) > len(typed):
        score = max(score, fuzz.ratio(typed, code[: len(typed)]) * 0.75)
    return score


_indexes: weakref.WeakKeyDictionary[Database, _Index] = weakref.WeakKeyDictionary()


async def _fingerprint(db: Database) -> tuple[Any, ...]:
    async with db.session() as session:
        row = (
            await session.execute(
                select(
                    func.count(Template.id), func.max(Template.id), func.max(Template.updated_at)
                )
            )
        ).one()
    return tuple(row)


async def _index(db: Database) -> _Index:
    """The process's index of ``db``'s templates, rebuilt when the table changed."""
    fingerprint = await _fingerprint(db)
    index = _indexes.get(db)
    if index is not None and index.fingerprint == fingerprint:
        return index
    async with db.session() as session:
        rows = await session.scalars(select(Template).order_by(Template.id))
        templates = [_view(r) for r in rows]
    index = _Index(fingerprint, templates)
    _indexes[db] = index
    return index


def _invalidate(db: Database) -> None:
    _indexes.pop(db, None)


# --------------------------------------------------------------------------- reading
async def visible(db: Database, user_id: int) -> list[TemplateView]:
    """What ``user_id`` sees: shared templates and their own, by category, title."""
    index = await _index(db)
    found = [t for t in index.templates if t.visible_to(user_id)]
    found.sort(key=lambda t: ((t.category or "").lower(), t.title.lower(), t.code))
    return found


async def get(db: Database, user_id: int, template_id: int) -> TemplateView:
    template = (await _index(db)).by_id.get(template_id)
    if template is None or not template.visible_to(user_id):
        raise TemplateNotFound(f"Шаблон {template_id} не найден.")
    return template


def _ranked(
    found: list[tuple[float, TemplateView]], user_id: int, limit: int
) -> list[TemplateView]:
    # Scores are compared whole: near-equal ones tie, and then the operator's own come first.
    found.sort(key=lambda st: (-round(st[0]), st[1].owner_id != user_id, st[1].code))
    return [t for _, t in found[:limit]]


async def suggest(db: Database, user_id: int, query: str, limit: int = 5) -> list[TemplateView]:
    """Templates the operator probably means by ``query``: "/" alone lists them all;
    ``/code`` finds by code (prefix, other layout, translit, then fuzzily) and, from three
    letters, by the words of the title and text too («/оплат»); plain words search the
    titles and texts (typo-tolerant, by lemma). Nothing for an empty or short query."""
    query = query.strip()
    if limit <= 0 or not query:
        return []
    if query.startswith("/"):
        parts = query[1:].split()
        prefix = _NOT_CODE.sub("", _fold(parts[0])) if parts else ""
        if not prefix:
            if parts:  # "/?!": nothing a code can hold
                return []
            # By code, as the operator will type it next time; their own first.
            every = sorted(
                await visible(db, user_id), key=lambda t: (t.owner_id != user_id, _fold(t.code))
            )
            return every[: min(limit, LIST_ALL)]
        index = await _index(db)
        best: dict[int, tuple[float, TemplateView]] = {
            t.id: (score, t) for score, t in index.by_code(prefix, user_id)
        }
        if len(prefix) >= MIN_WORDS_QUERY:
            # Below a good code match, above a vague one.
            for score, t in _by_words_any_layout(index, prefix, user_id):
                scaled = score * 0.85
                if scaled > best.get(t.id, (0.0, t))[0]:
                    best[t.id] = (scaled, t)
        return _ranked(list(best.values()), user_id, limit)
    if len(normalize(query).replace(" ", "")) < MIN_WORDS_QUERY:
        return []
    return _ranked(_by_words_any_layout(await _index(db), query, user_id), user_id, limit)


def _by_words_any_layout(
    index: _Index, query: str, user_id: int
) -> list[tuple[float, TemplateView]]:
    found = index.by_words(query, user_id)
    lowered = query.lower()
    if _LATIN.search(lowered) and not _CYRILLIC.search(lowered):
        # Russian typed on the English layout («nfhba» → «тарифы»): keep the better reading.
        converted = index.by_words(en_to_ru(lowered), user_id)
        if max((s for s, _ in converted), default=0.0) > max((s for s, _ in found), default=0.0):
            found = converted
    return found


# --------------------------------------------------------------------------- writing
def _clean(
    code: str, title: str, text: str, category: str | None
) -> tuple[str, str, str, str | None]:
    code = _fold(code).removeprefix("/")
    if not CODE_RE.match(code):
        raise TemplateError(
            "Код — от 1 до 32 символов: русские или латинские буквы, цифры, «_» или «-» "
            "(например, «привет» или «tariff»)."
        )
    title = " ".join(title.split())
    if not title:
        raise TemplateError("Укажите название шаблона.")
    if len(title) > MAX_TITLE:
        raise TemplateError(f"Название — не длиннее {MAX_TITLE} символов.")
    text = text.strip()
    if not text:
        raise TemplateError("Текст шаблона не может быть пустым.")
    if len(text) > MAX_TEXT:
        raise TemplateError(f"Текст — не длиннее {MAX_TEXT} символов.")
    category = " ".join((category or "").split()) or None
    if category is not None and len(category) > MAX_CATEGORY:
        raise TemplateError(f"Категория — не длиннее {MAX_CATEGORY} символов.")
    return code, title, text, category


async def _check_code_free(
    session: AsyncSession, code: str, owner_id: int | None, exclude_id: int | None
) -> None:
    """A code is unique among the templates anyone sees: a personal one must not clash
    with the shared ones or the owner's others; a shared one with any template at all."""
    query = select(Template.owner_id).where(Template.code == code)
    if owner_id is not None:
        query = query.where((Template.owner_id.is_(None)) | (Template.owner_id == owner_id))
    if exclude_id is not None:
        query = query.where(Template.id != exclude_id)
    clash = (await session.execute(query.limit(1))).first()
    if clash is None:
        return
    if clash[0] is None:
        raise TemplateError(f"Код «{code}» уже занят общим шаблоном.")
    if clash[0] == owner_id:
        raise TemplateError(f"Код «{code}» уже занят вашим шаблоном.")
    raise TemplateError(f"Код «{code}» уже занят личным шаблоном одного из операторов.")


def _editable(user: User, template_id: int, template: Template | None) -> Template:
    """The template if ``user`` may change it: another operator's is as good as absent;
    a shared one is the admins'."""
    if template is None or template.owner_id not in (None, user.id):
        raise TemplateNotFound(f"Шаблон {template_id} не найден.")
    if template.owner_id is None and user.role != "admin":
        raise TemplateForbidden("Общие шаблоны меняет только администратор.")
    return template


async def create(
    db: Database,
    user: User,
    *,
    code: str,
    title: str,
    text: str,
    category: str | None = None,
    shared: bool = False,
) -> TemplateView:
    """A new template: the user's own, or (admins only) a shared one."""
    if shared and user.role != "admin":
        raise TemplateForbidden("Общие шаблоны создаёт только администратор.")
    code, title, text, category = _clean(code, title, text, category)
    owner_id = None if shared else user.id
    try:
        async with db.transaction() as session:
            await _check_code_free(session, code, owner_id, None)
            now = utcnow()
            row = Template(
                code=code,
                title=title,
                text=text,
                category=category,
                owner_id=owner_id,
                created_at=now,
                updated_at=now,
            )
            session.add(row)
            await session.flush()
            return _view(row)
    finally:
        _invalidate(db)


async def update(
    db: Database,
    user: User,
    template_id: int,
    *,
    code: str | None = None,
    title: str | None = None,
    text: str | None = None,
    category: str | None = None,
) -> TemplateView:
    """Change the fields given (``None`` = keep; an empty category clears it); shared
    templates by admins, personal ones by their owner."""
    try:
        async with db.transaction() as session:
            row = _editable(user, template_id, await session.get(Template, template_id))
            new = _clean(
                row.code if code is None else code,
                row.title if title is None else title,
                row.text if text is None else text,
                row.category if category is None else category,
            )
            if new[0] != row.code:
                await _check_code_free(session, new[0], row.owner_id, row.id)
            row.code, row.title, row.text, row.category = new
            row.updated_at = utcnow()
            await session.flush()
            return _view(row)
    finally:
        _invalidate(db)


async def delete(db: Database, user: User, template_id: int) -> None:
    try:
        async with db.transaction() as session:
            row = _editable(user, template_id, await session.get(Template, template_id))
            await session.delete(row)
    finally:
        _invalidate(db)
