"""The knowledge base: one YAML file per intent (see ``abonent/kb/README.md``).

``KnowledgeBase.load(path)`` reads and validates every ``*.yaml`` of a directory,
``_out_of_scope.yaml`` included (its examples teach the classifier what fallback looks
like), and computes a content fingerprint used as the cache key of the trained model and
by the hot reload (``KnowledgeBase.fingerprint_of(path)`` is cheap enough to poll).

``render(intent_id, values)`` fills the placeholders of an answer: a line whose
placeholder has no value is dropped, and so are links and buttons whose placeholders
have none.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, NamedTuple

import yaml  # type: ignore[import-untyped, unused-ignore]
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

DEFAULT_KB_DIR = Path(__file__).resolve().parent.parent / "kb" / "intents"
OUT_OF_SCOPE_FILE = "_out_of_scope.yaml"
OUT_OF_SCOPE_ID = "_out_of_scope"
TITLE_MAX = 24
# Kinds of intent that are subjects a customer can be offered (see ``is_topic``).
TOPIC_KINDS = frozenset({"faq", "flow"})

_PLACEHOLDER = re.compile(r"\{([a-z_][a-z0-9_]*(?:\.[a-z0-9_]+)*)\}")


class KBError(ValueError):
    """A knowledge-base file that cannot be used (the message names the file)."""


class Button(BaseModel):
    model_config = ConfigDict(extra="ignore")
    title: str = Field(min_length=1)
    payload: str = Field(min_length=1)


class Link(BaseModel):
    model_config = ConfigDict(extra="ignore")
    title: str = Field(min_length=1)
    url: str = Field(min_length=1)


class Answer(BaseModel):
    model_config = ConfigDict(extra="ignore")
    text: str = ""
    buttons: list[Button] = Field(default_factory=list)
    links: list[Link] = Field(default_factory=list)


class Intent(BaseModel):
    model_config = ConfigDict(extra="ignore")
    id: str = Field(min_length=1)
    title: str = ""
    kind: Literal["faq", "flow", "service"] = "faq"
    examples: list[str] = Field(default_factory=list)
    keywords: list[str] = Field(default_factory=list)
    answer: Answer | None = None

    @field_validator("examples", "keywords", mode="before")
    @classmethod
    def _strings(cls, value: Any) -> Any:
        if value is None:
            return []
        if isinstance(value, list):
            return [str(v).strip() for v in value if v is not None and str(v).strip()]
        return value


class Rendered(NamedTuple):
    text: str
    buttons: list[Button]
    links: list[Link]


def _fill(template: str, values: Mapping[str, str]) -> str | None:
    """The template with its placeholders filled, or None when one has no value."""
    missing = False

    def sub(match: re.Match[str]) -> str:
        nonlocal missing
        value = values.get(match.group(1))
        if value is None or value == "":
            missing = True
            return ""
        return str(value)

    result = _PLACEHOLDER.sub(sub, template)
    return None if missing else result


def render_answer(answer: Answer, values: Mapping[str, str]) -> Rendered:
    lines = []
    for line in answer.text.splitlines():
        filled = _fill(line, values)
        if filled is not None:
            lines.append(filled)
    text = "\n".join(lines).strip()
    text = re.sub(r"\n{3,}", "\n\n", text)
    buttons = []
    for button in answer.buttons:
        title = _fill(button.title, values)
        payload = _fill(button.payload, values)
        if title is not None and payload is not None:
            buttons.append(Button(title=title, payload=payload))
    links = []
    for link in answer.links:
        title = _fill(link.title, values)
        url = _fill(link.url, values)
        if title is not None and url is not None and url.strip():
            links.append(Link(title=title, url=url))
    return Rendered(text, buttons, links)


def values_from_settings(settings: Any) -> dict[str, str]:
    """Placeholder values (``company.*``, ``links.*``, ``readings.*``) from ``Settings``."""
    values: dict[str, str] = {}
    company = getattr(settings, "company", None)
    if company is not None:
        for key in ("name", "emergency_phone", "call_center_phone"):
            value = getattr(company, key, None)
            if value:
                values[f"company.{key}"] = str(value)
        hours = getattr(company, "working_hours", None)
        if hours is not None and hasattr(hours, "describe"):
            values["company.hours"] = str(hours.describe())
        for key, url in (getattr(company, "links", None) or {}).items():
            if url:
                values[f"links.{key}"] = str(url)
    readings = getattr(settings, "readings", None)
    if readings is not None:
        values["readings.first_day"] = str(readings.first_day)
        values["readings.last_day"] = str(readings.last_day)
    return values


def _kb_files(path: Path) -> list[Path]:
    return sorted(p for p in path.glob("*.yaml") if p.is_file())


class KnowledgeBase:
    """Intents with examples, keywords and answers, plus the out-of-scope examples."""

    def __init__(
        self,
        intents: Mapping[str, Intent],
        out_of_scope: list[str],
        fingerprint: str,
        path: Path | None = None,
        warnings: list[str] | None = None,
    ) -> None:
        self.intents: dict[str, Intent] = dict(intents)
        self.out_of_scope = list(out_of_scope)
        self.fingerprint = fingerprint
        self.path = path
        self.warnings = list(warnings or [])

    # ---------- loading ----------
    @staticmethod
    def fingerprint_of(path: str | Path | None = None) -> str:
        """sha256 of the names and contents of the directory's YAML files."""
        directory = Path(path) if path is not None else DEFAULT_KB_DIR
        digest = hashlib.sha256()
        for file in _kb_files(directory):
            digest.update(file.name.encode())
            digest.update(b"\0")
            digest.update(file.read_bytes())
            digest.update(b"\0")
        return digest.hexdigest()

    @classmethod
    def load(cls, path: str | Path | None = None) -> KnowledgeBase:
        directory = Path(path) if path is not None else DEFAULT_KB_DIR
        if not directory.is_dir():
            raise KBError(f"{directory}: knowledge-base directory not found")
        digest = hashlib.sha256()
        intents: dict[str, Intent] = {}
        out_of_scope: list[str] = []
        warnings: list[str] = []
        for file in _kb_files(directory):
            raw = file.read_bytes()
            digest.update(file.name.encode())
            digest.update(b"\0")
            digest.update(raw)
            digest.update(b"\0")
            try:
                data = yaml.safe_load(raw.decode("utf-8"))
            except (yaml.YAMLError, UnicodeDecodeError) as exc:
                raise KBError(f"{file.name}: not valid YAML: {exc}") from exc
            if file.name == OUT_OF_SCOPE_FILE:
                out_of_scope.extend(_out_of_scope_examples(file.name, data))
                continue
            if file.name.startswith("_"):
                continue
            if not isinstance(data, dict):
                raise KBError(f"{file.name}: expected a mapping with id, examples, answer")
            data.setdefault("id", file.stem)
            try:
                intent = Intent.model_validate(data)
            except ValidationError as exc:
                raise KBError(f"{file.name}: {exc}") from exc
            if intent.id != file.stem:
                raise KBError(f"{file.name}: id {intent.id!r} differs from the file name")
            warnings.extend(_check_intent(file.name, intent))
            intents[intent.id] = intent
        warnings.extend(_check_duplicates(intents, out_of_scope))
        return cls(intents, out_of_scope, digest.hexdigest(), directory, warnings)

    # ---------- use ----------
    @property
    def labels(self) -> list[str]:
        return sorted(self.intents)

    def is_topic(self, intent_id: str) -> bool:
        """A question customers ask (``faq``) or a task the bot does (``flow``): what may
        be offered as "did you mean". Greetings, thanks and calls for an operator
        (``service``) and the out-of-scope examples are not topics."""
        intent = self.intents.get(intent_id)
        return intent is not None and intent.kind in TOPIC_KINDS

    def title(self, intent_id: str) -> str:
        intent = self.intents.get(intent_id)
        return (intent.title or intent.id) if intent else intent_id

    def render(self, intent_id: str, values: Mapping[str, str]) -> Rendered:
        """The intent's answer with placeholders filled (empty when it has none)."""
        intent = self.intents.get(intent_id)
        if intent is None:
            raise KeyError(intent_id)
        if intent.answer is None:
            return Rendered("", [], [])
        return render_answer(intent.answer, values)

    def training_data(self) -> tuple[list[str], list[str]]:
        """(texts, labels); out-of-scope examples carry the label ``fallback``."""
        texts: list[str] = []
        labels: list[str] = []
        for intent_id in self.labels:
            for example in self.intents[intent_id].examples:
                texts.append(example)
                labels.append(intent_id)
        for example in self.out_of_scope:
            texts.append(example)
            labels.append("fallback")
        return texts, labels


def _out_of_scope_examples(name: str, data: Any) -> list[str]:
    if data is None:
        return []
    if isinstance(data, list):
        items = data
    elif isinstance(data, dict):
        items = data.get("examples") or []
    else:
        raise KBError(f"{name}: expected a list of examples or a mapping with examples")
    if not isinstance(items, list):
        raise KBError(f"{name}: examples must be a list")
    return [str(x).strip() for x in items if x is not None and str(x).strip()]


def _check_intent(name: str, intent: Intent) -> list[str]:
    warnings = []
    if not intent.examples:
        warnings.append(f"{name}: no examples")
    if intent.title and len(intent.title) > TITLE_MAX:
        warnings.append(f"{name}: title longer than {TITLE_MAX} characters")
    if intent.kind == "faq" and (intent.answer is None or not intent.answer.text.strip()):
        warnings.append(f"{name}: a faq intent without an answer text")
    return warnings


def _check_duplicates(intents: Mapping[str, Intent], out_of_scope: list[str]) -> list[str]:
    seen: dict[str, str] = {}
    warnings = []
    pairs = [(i.id, e) for i in intents.values() for e in i.examples]
    pairs += [(OUT_OF_SCOPE_ID, e) for e in out_of_scope]
    for owner, example in pairs:
        key = " ".join(re.sub(r"[^\w]+", " ", example.lower().replace("ё", "е")).split())
        other = seen.setdefault(key, owner)
        if other != owner:
            warnings.append(f"example {example!r} is in both {other} and {owner}")
    return warnings
