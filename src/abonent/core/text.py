"""Text the databases can store, checked once where it comes in.

PostgreSQL refuses a NUL character in ``text`` and ``jsonb`` (SQLite keeps it), and
neither driver can encode a lone UTF-16 surrogate (``"\\ud800"`` is valid JSON, so a
client can send one). Left alone, such input is a 500 on one database and a stored
oddity on the other. So there are two rules, one per kind of sender:

- an API client is told: :func:`problem` names what is wrong, and the request models
  (``web/fields.py``) answer 422 in the API's error format;
- a messenger platform is not asked: it would deliver the same webhook again and again.
  :func:`clean_inbound` strips what cannot be stored and fits the identifiers to their
  columns, where every platform's message enters the pipeline.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from typing import Any, TypeVar

from abonent.core.types import InboundMessage

_SURROGATES = re.compile(r"[\ud800-\udfff]")
REPLACEMENT = "\ufffd"

# Column sizes of what a platform names (db/models.py): longer ids are hashed, so a
# redelivery still finds its first copy; longer names are cut.
EXTERNAL_ID_LENGTH = 128
PAYLOAD_LENGTH = 256
NAME_LENGTH = 200
PHONE_LENGTH = 32

T = TypeVar("T")


def problem(text: str) -> str | None:
    """Why ``text`` cannot be accepted from an API client, or None when it can."""
    if "\x00" in text:
        return "must not contain the NUL character (\\u0000)"
    if _SURROGATES.search(text):
        return "must be valid Unicode (a lone surrogate such as \\ud800 was sent)"
    return None


def clean(text: str) -> str:
    """``text`` without NUL characters, lone surrogates replaced by U+FFFD (what
    :func:`problem` refuses from an API client, and nothing else)."""
    if "\x00" in text:
        text = text.replace("\x00", "")
    return _SURROGATES.sub(REPLACEMENT, text)


def clean_value(value: T) -> T:
    """Every string inside ``value`` (dicts, lists, tuples, dataclasses) cleaned."""
    result: Any
    if isinstance(value, str):
        result = clean(value)
    elif isinstance(value, dict):
        result = {clean_value(k): clean_value(v) for k, v in value.items()}
    elif isinstance(value, list | tuple):
        result = type(value)(clean_value(v) for v in value)
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        changes = {
            f.name: clean_value(getattr(value, f.name)) for f in dataclasses.fields(value) if f.init
        }
        result = dataclasses.replace(value, **changes)
    else:
        result = value
    return result  # type: ignore[no-any-return]


def fit_id(value: str, length: int = EXTERNAL_ID_LENGTH) -> str:
    """An identifier that fits its column: a longer one becomes its digest (stable, so
    deduplication on it still works)."""
    if len(value) <= length:
        return value
    return "sha256:" + hashlib.sha256(value.encode("utf-8", "replace")).hexdigest()


def _cut(value: str | None, length: int) -> str | None:
    return value[:length] if value is not None else None


def clean_inbound(msg: InboundMessage) -> InboundMessage:
    """A platform's message as the database can store it, whatever the platform sent."""
    msg = clean_value(msg)
    return dataclasses.replace(
        msg,
        external_user_id=fit_id(msg.external_user_id),
        external_id=fit_id(msg.external_id) if msg.external_id is not None else None,
        payload=_cut(msg.payload, PAYLOAD_LENGTH),
        display_name=_cut(msg.display_name, NAME_LENGTH),
        phone=_cut(msg.phone, PHONE_LENGTH),
    )


def cleaning_reasons(msg: InboundMessage) -> list[str]:
    """Why :func:`clean_inbound` changes ``msg`` ("nul", "surrogate", "long_id",
    "long_field"), for the metrics; empty when it is stored as sent."""
    reasons: list[str] = []
    strings = list(_strings(dataclasses.asdict(msg)))
    if any("\x00" in s for s in strings):
        reasons.append("nul")
    if any(_SURROGATES.search(s) for s in strings):
        reasons.append("surrogate")
    ids = (msg.external_user_id, msg.external_id or "")
    if any(len(i) > EXTERNAL_ID_LENGTH for i in ids):
        reasons.append("long_id")
    fields = ((msg.payload, PAYLOAD_LENGTH), (msg.display_name, NAME_LENGTH))
    if any(v is not None and len(v) > n for v, n in (*fields, (msg.phone, PHONE_LENGTH))):
        reasons.append("long_field")
    return reasons


def _strings(value: Any) -> Any:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from _strings(k)
            yield from _strings(v)
    elif isinstance(value, list | tuple):
        for v in value:
            yield from _strings(v)
