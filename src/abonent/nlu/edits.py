"""Editors' changes to the knowledge base, kept in the database on top of the YAML files.

The YAML directory stays what the company ships and versions; the editors' page adds to
it without touching the files: examples for a topic, examples of what is not ours
(out of scope), a new topic with its answer, a topic's new answer. Each change is a row
(``kb_edits``) with who and when. ``apply_edits(kb, edits)`` is what the engine builds
from: a new ``KnowledgeBase`` whose fingerprint covers the edits, so the model cache
keys on YAML plus edits and every process that applies the same edits loads the same
model. ``export_files``/``diff`` turn the edits into YAML files an admin commits to the
knowledge base's repository (after which the edits can be cleared).
"""

from __future__ import annotations

import difflib
import hashlib
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml  # type: ignore[import-untyped, unused-ignore]
from pydantic import ValidationError
from sqlalchemy import delete, func, select

from abonent.db.models import KbEdit
from abonent.db.session import Database
from abonent.nlu.kb import OUT_OF_SCOPE_FILE, TITLE_MAX, Answer, Intent, KnowledgeBase

KINDS = ("examples", "out_of_scope", "new_topic", "answer")
TOPIC_ID = re.compile(r"^[a-z][a-z0-9_]{1,63}$")
MAX_TEXTS = 500
MAX_TEXT_CHARS = 1000


class EditError(ValueError):
    """An edit that cannot apply (unknown topic, a taken id, an empty answer)."""


@dataclass(frozen=True)
class Edit:
    id: int
    kind: str
    intent: str | None
    texts: tuple[str, ...]
    title: str | None
    answer: dict[str, Any] | None
    author: str
    created_at: datetime | None

    @classmethod
    def of(cls, row: KbEdit) -> Edit:
        return cls(
            row.id,
            row.kind,
            row.intent,
            tuple(row.texts or ()),
            row.title,
            row.answer,
            row.author_login,
            row.created_at,
        )

    def content(self) -> list[Any]:
        """What the edit changes, without who and when: the fingerprint's part."""
        return [self.kind, self.intent, list(self.texts), self.title, self.answer]

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "intent": self.intent,
            "texts": list(self.texts),
            "title": self.title,
            "answer": self.answer,
            "author": self.author,
            "created_at": self.created_at.isoformat() if self.created_at else None,
        }


def _key(text: str) -> str:
    return " ".join(re.sub(r"[^\w]+", " ", text.lower().replace("ё", "е")).split())


def fingerprint(base: str, edits: Sequence[Edit]) -> str:
    if not edits:
        return base
    digest = hashlib.sha256(base.encode())
    digest.update(json.dumps([e.content() for e in edits], ensure_ascii=False).encode())
    return digest.hexdigest()


def apply_edits(kb: KnowledgeBase, edits: Sequence[Edit]) -> KnowledgeBase:
    """The knowledge base with the edits applied in order. An edit that no longer fits
    (its topic was removed from the YAML since) is skipped, not fatal: the server keeps
    answering and the editors' page lists it in ``warnings``."""
    if not edits:
        return kb
    intents = {k: v.model_copy(deep=True) for k, v in kb.intents.items()}
    out_of_scope = list(kb.out_of_scope)
    warnings = list(kb.warnings)
    for edit in edits:
        if edit.kind == "examples":
            target = intents.get(edit.intent or "")
            if target is None:
                warnings.append(f"edit {edit.id}: topic {edit.intent!r} no longer exists")
                continue
            _move(edit.texts, target.examples, intents, out_of_scope)
        elif edit.kind == "out_of_scope":
            _move(edit.texts, out_of_scope, intents, out_of_scope)
        elif edit.kind == "new_topic":
            if not edit.intent or edit.intent in intents:
                warnings.append(f"edit {edit.id}: topic {edit.intent!r} exists already")
                continue
            topic = Intent(
                id=edit.intent,
                title=edit.title or "",
                kind="faq",
                answer=Answer.model_validate(edit.answer or {}),
            )
            intents[edit.intent] = topic
            _move(edit.texts, topic.examples, intents, out_of_scope)
        elif edit.kind == "answer":
            target = intents.get(edit.intent or "")
            if target is None:
                warnings.append(f"edit {edit.id}: topic {edit.intent!r} no longer exists")
                continue
            if edit.answer is not None:
                target.answer = Answer.model_validate(edit.answer)
            if edit.title:
                target.title = edit.title
    return KnowledgeBase(
        intents, out_of_scope, fingerprint(kb.fingerprint, edits), kb.path, warnings
    )


def _move(
    texts: Iterable[str],
    target: list[str],
    intents: Mapping[str, Intent],
    out_of_scope: list[str],
) -> None:
    """Add ``texts`` to ``target``, taking them out of wherever else they were: an
    editor who files a message under a topic means it belongs there and only there."""
    keys = {_key(t) for t in texts}
    for other in [*(i.examples for i in intents.values()), out_of_scope]:
        if other is not target:
            other[:] = [e for e in other if _key(e) not in keys]
    have = {_key(e) for e in target}
    for text in texts:
        if _key(text) not in have:
            target.append(text)
            have.add(_key(text))


# --------------------------------------------------------------------------- storage
def _clean_texts(texts: Iterable[str]) -> list[str]:
    seen: set[str] = set()
    out: list[str] = []
    for raw in texts:
        text = " ".join(str(raw).split())[:MAX_TEXT_CHARS]
        if text and _key(text) and _key(text) not in seen:
            seen.add(_key(text))
            out.append(text)
    if len(out) > MAX_TEXTS:
        raise EditError(f"at most {MAX_TEXTS} texts in one edit")
    return out


def validate(
    kb: KnowledgeBase,
    kind: str,
    intent: str | None,
    texts: Sequence[str],
    title: str | None,
    answer: Mapping[str, Any] | None,
) -> tuple[list[str], dict[str, Any] | None]:
    """The edit's texts and answer as they will be stored, or ``EditError`` saying why
    not (``kb`` is the knowledge base with the earlier edits applied)."""
    if kind not in KINDS:
        raise EditError(f"kind must be one of {', '.join(KINDS)}")
    cleaned = _clean_texts(texts)
    checked: dict[str, Any] | None = None
    if answer is not None:
        try:
            checked = Answer.model_validate(dict(answer)).model_dump()
        except ValidationError as exc:
            raise EditError(f"the answer is not valid: {exc.errors()[0]['msg']}") from exc
    if title is not None and len(title) > TITLE_MAX:
        raise EditError(f"a title is at most {TITLE_MAX} characters")
    if kind in ("examples", "out_of_scope", "new_topic") and not cleaned:
        raise EditError("choose at least one message or write an example")
    if kind in ("examples", "answer") and (intent is None or intent not in kb.intents):
        raise EditError(f"no topic {intent!r} in the knowledge base")
    if kind == "new_topic":
        if intent is None or not TOPIC_ID.match(intent):
            raise EditError("a new topic's id is latin lower case, digits and _ (2–64)")
        if intent in kb.intents:
            raise EditError(f"topic {intent!r} exists already")
        if checked is None or not str(checked.get("text", "")).strip():
            raise EditError("a new topic needs its answer text")
    if kind == "answer" and checked is None and not title:
        raise EditError("give the new answer (or title)")
    if kind == "answer" and checked is not None and not str(checked.get("text", "")).strip():
        raise EditError("an answer needs its text")
    return cleaned, checked


async def add_edit(
    db: Database,
    base: KnowledgeBase,
    *,
    kind: str,
    intent: str | None,
    texts: Sequence[str] = (),
    title: str | None = None,
    answer: Mapping[str, Any] | None = None,
    author_id: int | None,
    author_login: str,
) -> Edit:
    """Validate against the YAML knowledge base plus the stored edits, then store."""
    current = apply_edits(base, await load_edits(db))
    cleaned, checked = validate(current, kind, intent, texts, title, answer)
    async with db.transaction() as session:
        row = KbEdit(
            kind=kind,
            intent=intent if kind != "out_of_scope" else None,
            texts=cleaned,
            title=title or None,
            answer=checked,
            author_id=author_id,
            author_login=author_login,
        )
        session.add(row)
        await session.flush()
        return Edit.of(row)


async def load_edits(db: Database, upto: int | None = None) -> list[Edit]:
    """The stored edits in order (those up to ``upto`` when given)."""
    query = select(KbEdit).order_by(KbEdit.id)
    if upto is not None:
        query = query.where(KbEdit.id <= upto)
    async with db.session() as session:
        return [Edit.of(row) for row in await session.scalars(query)]


async def last_edit_id(db: Database) -> int:
    async with db.session() as session:
        return int(await session.scalar(select(func.max(KbEdit.id))) or 0)


async def clear_edits(db: Database, upto: int) -> int:
    """Forget the edits up to ``upto`` (after they were exported into the YAML files)."""
    async with db.transaction() as session:
        result = await session.execute(delete(KbEdit).where(KbEdit.id <= upto))
        return int(getattr(result, "rowcount", 0) or 0)


# --------------------------------------------------------------------------- export
class _Dumper(yaml.SafeDumper):  # type: ignore[misc, unused-ignore]
    """Lists indented under their key («examples:\n  - …»), as the shipped files are
    written: an exported file then differs from its original only where edits do."""

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> Any:
        return super().increase_indent(flow, False)


def _str(dumper: yaml.SafeDumper, value: str) -> Any:
    """Multi-line answers as literal blocks («text: |»), the way editors write them."""
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def _dump(data: Any) -> str:
    text: str = yaml.dump(data, Dumper=_Dumper, allow_unicode=True, sort_keys=False, width=100)
    return text


def export_files(kb_dir: Path, edits: Sequence[Edit]) -> dict[str, tuple[str, str]]:
    """The YAML files the edits change: name → (text now, text with the edits).

    Only changed files are rewritten, and in them only the changed keys; comments of a
    rewritten file are lost (the diff shows it)."""
    base = KnowledgeBase.load(kb_dir)
    merged = apply_edits(base, edits)
    changed: dict[str, tuple[str, str]] = {}
    for intent_id, intent in merged.intents.items():
        before = base.intents.get(intent_id)
        if before is not None and before == intent:
            continue
        name = f"{intent_id}.yaml"
        path = kb_dir / name
        old_text = path.read_text(encoding="utf-8") if path.exists() else ""
        data: dict[str, Any] = (yaml.safe_load(old_text) or {}) if old_text else {}
        # Only what the edits changed is rewritten: the rest keeps its YAML as written.
        data["id"] = intent_id
        if intent.title and (before is None or before.title != intent.title):
            data["title"] = intent.title
        data.setdefault("kind", intent.kind)
        if before is None or before.examples != intent.examples:
            data["examples"] = list(intent.examples)
        if intent.answer is not None and (before is None or before.answer != intent.answer):
            data["answer"] = _answer_yaml(intent.answer)
        changed[name] = (old_text, _dump(data))
    if merged.out_of_scope != base.out_of_scope:
        path = kb_dir / OUT_OF_SCOPE_FILE
        old_text = path.read_text(encoding="utf-8") if path.exists() else ""
        raw = yaml.safe_load(old_text) if old_text else None
        if isinstance(raw, dict):
            raw["examples"] = list(merged.out_of_scope)
            new_data: Any = raw
        else:
            new_data = list(merged.out_of_scope)
        changed[OUT_OF_SCOPE_FILE] = (old_text, _dump(new_data))
    return changed


def _answer_yaml(answer: Answer) -> dict[str, Any]:
    data: dict[str, Any] = {"text": answer.text}
    if answer.buttons:
        data["buttons"] = [b.model_dump() for b in answer.buttons]
    if answer.links:
        data["links"] = [link.model_dump() for link in answer.links]
    return data


def diff(kb_dir: Path, edits: Sequence[Edit]) -> str:
    """A unified diff of the YAML files against the files with the edits applied."""
    out: list[str] = []
    for name, (old, new) in sorted(export_files(kb_dir, edits).items()):
        out.extend(
            difflib.unified_diff(
                old.splitlines(keepends=True),
                new.splitlines(keepends=True),
                fromfile=f"a/{name}" if old else "/dev/null",
                tofile=f"b/{name}",
            )
        )
    return "".join(line if line.endswith("\n") else line + "\n" for line in out)


def write_export(kb_dir: Path, edits: Sequence[Edit], target: Path) -> list[str]:
    """Write the knowledge base with the edits into ``target`` (a copy of ``kb_dir``
    with the changed files rewritten; ``target`` may be ``kb_dir`` itself)."""
    target.mkdir(parents=True, exist_ok=True)
    changed = export_files(kb_dir, edits)
    if target.resolve() != kb_dir.resolve():
        for file in sorted(kb_dir.glob("*.yaml")):
            if file.name not in changed:
                (target / file.name).write_bytes(file.read_bytes())
    for name, (_old, new) in changed.items():
        (target / name).write_text(new, encoding="utf-8")
    return sorted(changed)
