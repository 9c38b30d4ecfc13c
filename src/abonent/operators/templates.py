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

from abonent.clock import utcnow
from abonent.db.models import ChannelIdentity, Contact, ContactAccount, Conversation, Template, User
from abonent.db.session import Database
from abonent.nlu.layout import en_to_ru, ru_to_en
from abonent.nlu.lemmas import lemma
from abonent.nlu.normalize import SLANG, normalize
from abonent.operators.auth import RANK

CODE_RE = re.compile(r"^[a-z0-9_-]{1,32}$")
MAX_TITLE = 200
MAX_TEXT = 4000
MAX_CATEGORY = 64

# What an unknown placeholder becomes: visible, so the operator replaces it before sending.
PLACEHOLDERS: dict[str, str] = {
    "name": "[имя]",
    "account": "[лицевой счёт]",
    "operator": "[оператор]",
}
_PLACEHOLDER_RE = re.compile(r"\{(" + "|".join(PLACEHOLDERS) + r")\}")

MIN_WORDS_QUERY = 3  # characters of a text query before anything is suggested
MIN_SCORE = 40.0
TITLE_WEIGHT = 1.05
CATEGORY_WEIGHT = 1.02
_LATIN = re.compile(r"[a-z]")
_CYRILLIC = re.compile(r"[а-яё]")
_NOT_CODE = re.compile(r"[^a-z0-9_-]+")
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
    """``{name}``, ``{account}``, ``{operator}`` replaced by ``values``; a missing or empty
    value becomes a visible marker such as ``[имя]``; other braces are left alone."""

    def repl(match: re.Match[str]) -> str:
        key = match.group(1)
        value = (values.get(key) or "").strip()
        return value or PLACEHOLDERS[key]

    return _PLACEHOLDER_RE.sub(repl, text)


async def conversation_values(
    db: Database, conversation_id: int | None, user: User
) -> dict[str, str | None]:
    """Placeholder values for ``user`` answering in a conversation: the contact's name,
    their most recent account, the operator's name.

    An operator gets the customer's values only in a conversation assigned to them
    (supervisors and admins in any); otherwise those stay markers. Raises
    ``TemplateNotFound`` for an unknown conversation.
    """
    values: dict[str, str | None] = {"name": None, "account": None, "operator": user.name}
    if conversation_id is None:
        return values
    async with db.session() as session:
        conversation = await session.get(Conversation, conversation_id)
        if conversation is None:
            raise TemplateNotFound(f"conversation {conversation_id} does not exist")
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
        if not (name or "").strip():
            name = await session.scalar(
                select(ChannelIdentity.display_name)
                .where(
                    ChannelIdentity.contact_id == conversation.contact_id,
                    ChannelIdentity.display_name.is_not(None),
                    ChannelIdentity.display_name != "",
                )
                .order_by(ChannelIdentity.id.desc())
                .limit(1)
            )
        account = await session.scalar(
            select(ContactAccount.account_number)
            .where(ContactAccount.contact_id == conversation.contact_id)
            .order_by(ContactAccount.last_used_at.desc(), ContactAccount.id.desc())
            .limit(1)
        )
    values["name"] = (name or "").strip() or None
    values["account"] = account
    return values


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
        found: list[tuple[float, TemplateView]] = []
        for template in self.templates:
            if not template.visible_to(user_id):
                continue
            code = template.code
            if code == prefix:
                score = 110.0
            elif code.startswith(prefix):
                score = 90.0 + 10.0 * len(prefix) / len(code)
            else:
                score = fuzz.ratio(prefix, code) * 0.8
                if len(prefix) >= 3 and len(code) > len(prefix):
                    score = max(score, fuzz.ratio(prefix, code[: len(prefix)]) * 0.75)
                if score < 56:
                    continue
            found.append((score, template))
        return found


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
        raise TemplateNotFound(f"template {template_id} does not exist")
    return template


def _layout_code(raw: str) -> str:
    code = raw.strip().lower()
    if _CYRILLIC.search(code):  # typed on the Russian layout: «/ефкша» means «/tarif»
        code = ru_to_en(code).lower()
    return _NOT_CODE.sub("", code)


def _ranked(
    found: list[tuple[float, TemplateView]], user_id: int, limit: int
) -> list[TemplateView]:
    # Scores are compared whole: near-equal ones tie, and then the operator's own come first.
    found.sort(key=lambda st: (-round(st[0]), st[1].owner_id != user_id, st[1].code))
    return [t for _, t in found[:limit]]


async def suggest(db: Database, user_id: int, query: str, limit: int = 5) -> list[TemplateView]:
    """Templates the operator probably means by ``query``: ``/code`` (by code prefix, then
    fuzzily) or words of the text (typo-tolerant). Nothing for an empty or short query."""
    query = query.strip()
    if limit <= 0 or not query:
        return []
    if query.startswith("/"):
        parts = query[1:].split()
        prefix = _layout_code(parts[0]) if parts else ""
        if not prefix:
            return []
        return _ranked((await _index(db)).by_code(prefix, user_id), user_id, limit)
    if len(normalize(query).replace(" ", "")) < MIN_WORDS_QUERY:
        return []
    index = await _index(db)
    found = index.by_words(query, user_id)
    lowered = query.lower()
    if _LATIN.search(lowered) and not _CYRILLIC.search(lowered):
        # Russian typed on the English layout («nfhba» → «тарифы»): keep the better reading.
        converted = index.by_words(en_to_ru(lowered), user_id)
        if max((s for s, _ in converted), default=0.0) > max((s for s, _ in found), default=0.0):
            found = converted
    return _ranked(found, user_id, limit)


# --------------------------------------------------------------------------- writing
def _clean(
    code: str, title: str, text: str, category: str | None
) -> tuple[str, str, str, str | None]:
    code = code.strip().lower().removeprefix("/")
    if not CODE_RE.match(code):
        raise TemplateError(
            "a code is 1–32 characters: latin letters, digits, '_' or '-' (e.g. 'tariff')"
        )
    title = " ".join(title.split())
    if not title:
        raise TemplateError("the title must not be empty")
    if len(title) > MAX_TITLE:
        raise TemplateError(f"the title must be at most {MAX_TITLE} characters")
    text = text.strip()
    if not text:
        raise TemplateError("the text must not be empty")
    if len(text) > MAX_TEXT:
        raise TemplateError(f"the text must be at most {MAX_TEXT} characters")
    category = " ".join((category or "").split()) or None
    if category is not None and len(category) > MAX_CATEGORY:
        raise TemplateError(f"the category must be at most {MAX_CATEGORY} characters")
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
        raise TemplateError(f"the code '{code}' is already used by a shared template")
    if clash[0] == owner_id:
        raise TemplateError(f"the code '{code}' is already used by your own template")
    raise TemplateError(f"the code '{code}' is already used by an operator's own template")


def _editable(user: User, template_id: int, template: Template | None) -> Template:
    """The template if ``user`` may change it: another operator's is as good as absent;
    a shared one is the admins'."""
    if template is None or template.owner_id not in (None, user.id):
        raise TemplateNotFound(f"template {template_id} does not exist")
    if template.owner_id is None and user.role != "admin":
        raise TemplateForbidden("only an admin may change shared templates")
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
        raise TemplateForbidden("only an admin may create shared templates")
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
