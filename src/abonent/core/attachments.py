"""Files customers and operators send: photos of meters and receipts, PDFs.

A file is accepted by what it *is*, not by what it is called: its first bytes name the
type (``filetype``), and an image must also open as one (Pillow), so a script renamed
``meter.jpg`` is refused. HEIC photos (iPhones) are turned into JPEG on arrival, because
neither the operators' browsers nor most messengers show HEIC.

The bytes are kept in the attachments directory (``[attachments] dir``; by default
``attachments/`` next to the SQLite database) under a random name that never comes from
the sender, in two-letter subfolders; the database row (``attachments``) holds what is
shown: the cleaned-up original name, type, size. Nothing here is ever served from a
static directory: the client API hands a file to the customer whose chat it is, the
workspace to signed-in operators (each view audited), and ``/files/<token>`` to a
messenger that takes files only by URL, until the link expires.

A messenger's file arrives as a reference (Telegram's ``file_id``, a media URL): the
row is written ``pending`` with the message, and ``Fetcher`` downloads it from the
platform afterwards, with retries, so a slow platform never holds up the webhook. An
operator who opens a file that is not fetched yet has it fetched at once.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import logging
import os
import re
import secrets
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import TYPE_CHECKING, Any

import filetype
from PIL import Image, ImageOps, UnidentifiedImageError
from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from abonent.clock import utcnow
from abonent.core import eventlog, events
from abonent.core.bus import LocalBus
from abonent.core.events import Event
from abonent.core.types import RemoteFile
from abonent.core.worker import Worker
from abonent.db.models import Attachment
from abonent.db.session import Database

if TYPE_CHECKING:
    from abonent.channels.base import Channel

log = logging.getLogger(__name__)

try:  # HEIC/HEIF support is a plugin of its own; without it such photos are refused.
    from pillow_heif import register_heif_opener

    register_heif_opener()
    HEIC_SUPPORTED = True
except ImportError:  # pragma: no cover (a dependency; only a broken install lacks it)
    HEIC_SUPPORTED = False

IMAGE_TYPES = {"image/jpeg": "jpg", "image/png": "png", "image/webp": "webp"}
HEIC_TYPES = frozenset({"image/heic", "image/heif"})
DOCUMENT_TYPES = {"application/pdf": "pdf"}
# What a platform says a file is, for deciding whether to fetch it at all.
FETCHED_TYPES = frozenset({*IMAGE_TYPES, *HEIC_TYPES, *DOCUMENT_TYPES})
# Pillow's own guard against decompression bombs is a warning up to twice this; a meter
# photo never comes near 60 megapixels.
MAX_PIXELS = 60_000_000
NAME_LIMIT = 120
_KEY = re.compile(r"^[0-9a-f]{32}$")
FETCH_ATTEMPTS = 8
# How long a claimed file is another process's: renewed as each fetch starts, so a
# process that dies leaves its files to the others within this, however many it held.
FETCH_LEASE = timedelta(seconds=60)


class AttachmentRejected(Exception):
    """A file that is refused: ``code`` is what the widget turns into Russian words."""

    def __init__(self, status: int, code: str, message: str, **details: Any) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details


@dataclass(frozen=True)
class Checked:
    """A file that passed the checks, as it will be stored."""

    data: bytes
    mime: str
    kind: str  # image | document
    ext: str
    width: int | None = None
    height: int | None = None


def too_large(size: int, limit: int) -> AttachmentRejected:
    return AttachmentRejected(
        413,
        "file_too_large",
        f"The file is {size} bytes; at most {limit} bytes are accepted.",
        size=size,
        limit=limit,
    )


def check(data: bytes, max_bytes: int) -> Checked:
    """The file's real type from its content, or ``AttachmentRejected``."""
    if len(data) > max_bytes:
        raise too_large(len(data), max_bytes)
    if not data:
        raise AttachmentRejected(422, "empty_file", "The file is empty.")
    guess = filetype.guess(data)
    mime = guess.mime if guess is not None else None
    if mime in DOCUMENT_TYPES:
        return Checked(data, mime, "document", DOCUMENT_TYPES[mime])
    if mime in IMAGE_TYPES:
        data = _without_metadata(data, mime)
        width, height = _image_size(data)
        return Checked(data, mime, "image", IMAGE_TYPES[mime], width, height)
    if mime in HEIC_TYPES:
        if not HEIC_SUPPORTED:
            raise _unsupported(mime, "HEIC photos cannot be read on this server")
        converted = _heic_to_jpeg(data)
        if len(converted) > max_bytes:
            raise too_large(len(converted), max_bytes)
        width, height = _image_size(converted)
        return Checked(converted, "image/jpeg", "image", "jpg", width, height)
    raise _unsupported(mime, None)


def _unsupported(mime: str | None, why: str | None) -> AttachmentRejected:
    return AttachmentRejected(
        415,
        "unsupported_type",
        why or "Only JPEG, PNG, WebP or HEIC photos and PDF documents are accepted.",
        detected=mime or "unknown",
    )


def _open_image(data: bytes) -> Image.Image:
    try:
        image = Image.open(io.BytesIO(data))
        image.verify()  # the whole structure, not just the header
        image = Image.open(io.BytesIO(data))  # verify() leaves the object unusable
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise AttachmentRejected(
            415, "unsupported_type", "The image is damaged or not an image.", detected="broken"
        ) from exc
    except Image.DecompressionBombError as exc:
        raise AttachmentRejected(
            413, "image_too_large", "The image has too many pixels.", limit=MAX_PIXELS
        ) from exc
    if image.width * image.height > MAX_PIXELS:
        raise AttachmentRejected(
            413, "image_too_large", "The image has too many pixels.", limit=MAX_PIXELS
        )
    return image


def _image_size(data: bytes) -> tuple[int, int]:
    image = _open_image(data)
    return image.width, image.height


_SAVE_AS = {"image/jpeg": "JPEG", "image/png": "PNG", "image/webp": "WEBP"}


def _without_metadata(data: bytes, mime: str) -> bytes:
    """A phone's photo carries EXIF: where it was taken (the customer's home), when,
    with which phone. Operators and messengers need the picture only, so a photo with
    EXIF is saved again without it, turned upright as its orientation tag said; one
    without is kept byte for byte."""
    image = _open_image(data)
    if not image.getexif() and "exif" not in image.info and "xmp" not in image.info:
        return data
    upright = ImageOps.exif_transpose(image)
    out = io.BytesIO()
    kind = _SAVE_AS[mime]
    if kind == "JPEG":
        upright.convert("RGB").save(out, kind, quality=90)
    else:
        upright.save(out, kind)
    return out.getvalue()


def _heic_to_jpeg(data: bytes) -> bytes:
    image = ImageOps.exif_transpose(_open_image(data))
    out = io.BytesIO()
    image.convert("RGB").save(out, "JPEG", quality=90)  # no EXIF: see _without_metadata
    return out.getvalue()


def display_name(raw: str | None, ext: str, kind: str) -> str:
    """The sender's file name, made harmless: no folders (``../../etc/passwd`` is
    ``passwd``), no control characters, the real extension, a sane length. It is only
    ever shown (and offered as a download name), never used as a path."""
    name = (raw or "").replace("\x00", "")
    name = PurePosixPath(PureWindowsPath(name).name).name
    name = "".join(
        c for c in unicodedata.normalize("NFC", name) if unicodedata.category(c)[0] != "C"
    )
    name = name.strip().strip(".").strip()
    stem = name.rsplit(".", 1)[0] if "." in name else name
    stem = stem.strip()[: NAME_LIMIT - len(ext) - 1].strip()
    if not stem:
        stem = "фото" if kind == "image" else "документ"
    return f"{stem}.{ext}"


# --------------------------------------------------------------------------- storage
class Store:
    """The attachments directory: files by random key, written atomically, private."""

    def __init__(self, root: Path, max_bytes: int) -> None:
        self.root = root
        self.max_bytes = max_bytes

    def path(self, key: str) -> Path:
        """Where the file of ``key`` lives; a key that is not one of ours is refused
        before it can name any path."""
        if not _KEY.match(key):
            raise ValueError("not an attachment key")
        return self.root / key[:2] / key

    async def save(self, data: bytes) -> tuple[str, str]:
        """Write the bytes under a new random key; returns (key, sha256)."""
        key = secrets.token_hex(16)
        await asyncio.to_thread(self._write, key, data)
        return key, hashlib.sha256(data).hexdigest()

    def _write(self, key: str, data: bytes) -> None:
        target = self.path(key)
        target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        tmp = target.with_name(f".{key}.part")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.replace(tmp, target)

    async def read(self, key: str) -> bytes:
        return await asyncio.to_thread(self.path(key).read_bytes)

    async def delete(self, key: str) -> None:
        await asyncio.to_thread(self.path(key).unlink, missing_ok=True)


def default_root(database_url: str) -> Path:
    """``attachments/`` beside the SQLite file, or in the working directory."""
    if database_url.startswith("sqlite") and ":memory:" not in database_url:
        path = database_url.split(":///", 1)[-1].split("?", 1)[0]
        if path:
            return Path(path).resolve().parent / "attachments"
    return Path.cwd() / "attachments"


# --------------------------------------------------------------------------- rows
def describe(row: Any) -> dict[str, Any]:
    """What clients are told of a file (on the message it came with)."""
    return {
        "id": row.id,
        "kind": row.kind,
        "mime": row.mime,
        "size": row.size,
        "name": row.filename,
        "width": row.width,
        "height": row.height,
    }


def event_data(files: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """What the durable log keeps of a message's files: kinds and sizes, never names."""
    return [{"kind": f.get("kind"), "mime": f.get("mime"), "size": f.get("size")} for f in files]


async def create(
    conn: AsyncConnection,
    store: Store,
    checked: Checked,
    *,
    filename: str | None,
    identity_id: int,
    conversation_id: int | None,
    author: str,
    user_id: int | None = None,
    message_id: int | None = None,
) -> Attachment:
    """A stored file's row, on the caller's transaction (with the message it belongs to)."""
    key, digest = await store.save(checked.data)
    row = Attachment(
        message_id=message_id,
        conversation_id=conversation_id,
        identity_id=identity_id,
        author=author,
        user_id=user_id,
        kind=checked.kind,
        mime=checked.mime,
        size=len(checked.data),
        filename=display_name(filename, checked.ext, checked.kind),
        storage_key=key,
        sha256=digest,
        width=checked.width,
        height=checked.height,
        status="stored",
        remote=None,
        attempts=0,
        next_attempt_at=None,
        error=None,
        link_token=None,
        link_expires_at=None,
        created_at=utcnow(),
    )
    values = {c.key: getattr(row, c.key) for c in Attachment.__table__.columns if c.key != "id"}
    row.id = int(
        (await conn.execute(insert(Attachment).returning(Attachment.id), values)).scalar_one()
    )
    return row


async def add_pending(
    conn: AsyncConnection,
    remotes: Iterable[RemoteFile],
    *,
    message_id: int,
    conversation_id: int,
    identity_id: int,
    channel_id: str,
    now: datetime,
) -> list[dict[str, Any]]:
    """Rows for a messenger's files, to be fetched; their descriptions for the message."""
    described: list[dict[str, Any]] = []
    for remote in remotes:
        ext = "pdf" if remote.kind == "document" else "jpg"
        name = display_name(remote.name, _ext_of(remote.name) or ext, remote.kind)
        values = {
            "message_id": message_id,
            "conversation_id": conversation_id,
            "identity_id": identity_id,
            "author": "customer",
            "user_id": None,
            "kind": remote.kind,
            "mime": remote.mime
            or ("application/pdf" if remote.kind == "document" else "image/jpeg"),
            "size": remote.size or 0,
            "filename": name,
            "storage_key": None,
            "sha256": None,
            "width": None,
            "height": None,
            "status": "pending",
            "remote": {"channel_id": channel_id, **remote.ref},
            "attempts": 0,
            "next_attempt_at": now,
            "error": None,
            "link_token": None,
            "link_expires_at": None,
            "created_at": now,
        }
        att_id = int(
            (await conn.execute(insert(Attachment).returning(Attachment.id), values)).scalar_one()
        )
        described.append(
            {
                "id": att_id,
                "kind": remote.kind,
                "mime": values["mime"],
                "size": values["size"],
                "name": name,
                "width": None,
                "height": None,
            }
        )
    return described


async def link(
    conn: AsyncConnection,
    ids: Iterable[int],
    *,
    message_id: int,
    conversation_id: int,
    identity_id: int,
) -> list[dict[str, Any]]:
    """Attach uploaded files (rows without a message yet, of this identity) to the
    message written with them; their descriptions for the message. A file of another
    chat, or one already sent, is left alone: an id is no key to someone else's file."""
    wanted = list(dict.fromkeys(ids))
    if not wanted:
        return []
    await conn.execute(
        update(Attachment)
        .where(
            Attachment.id.in_(wanted),
            Attachment.identity_id == identity_id,
            Attachment.message_id.is_(None),
        )
        .values(message_id=message_id, conversation_id=conversation_id)
    )
    rows = (
        await conn.execute(
            select(Attachment).where(Attachment.id.in_(wanted), Attachment.message_id == message_id)
        )
    ).all()
    by_id = {row.id: describe(row) for row in rows}
    return [by_id[i] for i in wanted if i in by_id]


def _ext_of(name: str | None) -> str | None:
    if not name or "." not in name:
        return None
    ext = name.rsplit(".", 1)[1].lower()
    return ext if ext in {"jpg", "jpeg", "png", "webp", "pdf", "heic"} else None


async def get(db: Database, attachment_id: int) -> Attachment | None:
    async with db.session() as session:
        return await session.get(Attachment, attachment_id)


async def public_link(db: Database, attachment_id: int, valid: timedelta) -> str:
    """A token for ``/files/<token>`` (messengers that take files by URL), made once."""
    now = utcnow()
    async with db.write() as conn:
        row = (
            await conn.execute(
                select(Attachment.link_token, Attachment.link_expires_at).where(
                    Attachment.id == attachment_id
                )
            )
        ).first()
        if row is None:
            raise LookupError(attachment_id)
        if row[0] and row[1] is not None and row[1] > now + valid / 2:
            return str(row[0])
        token = secrets.token_urlsafe(32)
        await conn.execute(
            update(Attachment)
            .where(Attachment.id == attachment_id)
            .values(link_token=token, link_expires_at=now + valid)
        )
    return token


# --------------------------------------------------------------------------- fetching
@dataclass(frozen=True)
class Fetched:
    data: bytes
    name: str | None = None


class FetchError(Exception):
    """The platform did not give the file: ``permanent`` when asking again is useless."""

    def __init__(self, reason: str, *, permanent: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.permanent = permanent


class Fetcher(Worker):
    """Downloads messengers' files into the store: a loop woken by new messages, shared
    by processes the way the outbox is (a claimed row is leased)."""

    def __init__(
        self,
        db: Database,
        bus: LocalBus,
        store: Store,
        channels: Mapping[str, Channel],
        *,
        poll: float = 5.0,
    ) -> None:
        super().__init__(
            bus,
            {events.MESSAGE_RECEIVED},
            name="attachment-fetcher",
            poll=poll,
            logger=log,
            failure="attachment fetch pass failed",
            eager=True,
        )
        self.db = db
        self.bus = bus
        self.store = store
        self.channels = channels
        self._locks: dict[int, asyncio.Lock] = {}

    def _on_event(self, event: Event) -> None:
        if event.data.get("attachments"):
            self.wake()

    async def _step(self) -> bool:
        return await self.run_once()

    async def run_once(self) -> bool:
        """Fetch what is due; True when there was something."""
        now = utcnow()
        async with self.db.write() as conn:
            query = (
                select(Attachment.id)
                .where(Attachment.status == "pending", Attachment.next_attempt_at <= now)
                .order_by(Attachment.id)
                .limit(20)
            )
            if conn.dialect.name == "postgresql":
                query = query.with_for_update(skip_locked=True)
            ids = list((await conn.execute(query)).scalars())
            if ids:
                await conn.execute(
                    update(Attachment)
                    .where(Attachment.id.in_(ids))
                    .values(next_attempt_at=now + FETCH_LEASE)
                )
        for att_id in ids:
            if await self._renew(att_id):
                await self.fetch(att_id)
        return bool(ids)

    async def _renew(self, attachment_id: int) -> bool:
        """The lease from now for the file about to be fetched; False when it is no longer
        due (fetched meanwhile on an operator's request, or failed for good)."""
        async with self.db.write() as conn:
            renewed = await conn.execute(
                update(Attachment)
                .where(Attachment.id == attachment_id, Attachment.status == "pending")
                .values(next_attempt_at=utcnow() + FETCH_LEASE)
            )
        return bool(renewed.rowcount)

    async def fetch(self, attachment_id: int) -> Attachment | None:
        """Fetch one file now (an operator is waiting for it, or the loop's turn); the
        row as it is afterwards."""
        lock = self._locks.setdefault(attachment_id, asyncio.Lock())
        try:
            async with lock:
                return await self._fetch(attachment_id)
        finally:
            if not lock.locked():
                self._locks.pop(attachment_id, None)

    async def _fetch(self, attachment_id: int) -> Attachment | None:
        row = await get(self.db, attachment_id)
        if row is None or row.status != "pending":
            return row
        remote = dict(row.remote or {})
        channel = self.channels.get(str(remote.get("channel_id")))
        fetch = getattr(channel, "fetch_file", None)
        attempts = row.attempts + 1
        try:
            if fetch is None:
                raise FetchError("the channel cannot fetch files", permanent=True)
            got: Fetched = await fetch(remote, self.store.max_bytes)
            checked = check(got.data, self.store.max_bytes)
        except (FetchError, AttachmentRejected) as exc:
            permanent = isinstance(exc, AttachmentRejected) or exc.permanent
            reason = exc.reason if isinstance(exc, FetchError) else exc.code
            final = permanent or attempts >= FETCH_ATTEMPTS
            delay = timedelta(seconds=min(2**attempts, 600))
            async with self.db.write() as conn:
                await conn.execute(
                    update(Attachment)
                    .where(Attachment.id == attachment_id, Attachment.status == "pending")
                    .values(
                        status="failed" if final else "pending",
                        attempts=attempts,
                        error=reason,
                        next_attempt_at=None if final else utcnow() + delay,
                    )
                )
            log.warning(
                "attachment %s: fetch failed (%s)%s",
                attachment_id,
                reason,
                "" if final else ", will retry",
            )
            return await get(self.db, attachment_id)
        key, digest = await self.store.save(checked.data)
        name = display_name(got.name or row.filename, checked.ext, checked.kind)
        now = utcnow()
        async with self.db.write() as conn:
            done = await conn.execute(
                update(Attachment)
                .where(Attachment.id == attachment_id, Attachment.status == "pending")
                .values(
                    status="stored",
                    storage_key=key,
                    sha256=digest,
                    size=len(checked.data),
                    mime=checked.mime,
                    kind=checked.kind,
                    filename=name,
                    width=checked.width,
                    height=checked.height,
                    attempts=attempts,
                    error=None,
                    next_attempt_at=None,
                )
            )
            recorded: list[Event] = []
            if done.rowcount:
                recorded = await eventlog.record(
                    conn,
                    [
                        Event(
                            events.ATTACHMENT_STORED,
                            {
                                "attachment_id": attachment_id,
                                "message_id": row.message_id,
                                "conversation_id": row.conversation_id,
                                "channel_id": remote.get("channel_id"),
                                "kind": checked.kind,
                                "mime": checked.mime,
                                "size": len(checked.data),
                            },
                        )
                    ],
                    now,
                )
        if not recorded:
            # Another process stored the same file first: this copy belongs to nothing.
            await self.store.delete(key)
        await self.bus.publish_many(recorded)
        return await get(self.db, attachment_id)
