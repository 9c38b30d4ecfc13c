"""The one interface every channel implements (rasa's input/output split).

Inbound: a platform's webhook request becomes ``InboundMessage`` objects
(``MessengerChannel.handle_webhook``). Outbound: ``send`` delivers one stored
message; what a platform cannot show (too many buttons, too long a text) the channel
degrades itself, so the bot never learns any platform's limits.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import httpx

from abonent.config import ChannelSettings
from abonent.core.bounds import MAX_DEPTH, MAX_WEBHOOK_BYTES, too_deep
from abonent.core.text import problem
from abonent.core.types import Button, InboundMessage

_T = TypeVar("_T")


@dataclass(frozen=True)
class OutgoingFile:
    """A photo or document an operator sends, as stored (core.attachments)."""

    id: int
    kind: str  # image | document
    mime: str
    name: str
    size: int
    path: Path
    # ``/files/<token>``: serves the file without signing in, for platforms that take
    # files only by URL; None when no ``public_url`` is configured.
    url: str | None = None

    def read(self) -> bytes:
        return self.path.read_bytes()


@dataclass(frozen=True)
class OutgoingMessage:
    message_id: int
    conversation_id: int
    recipient: str  # the identity's external id on the platform
    text: str
    buttons: tuple[Button, ...] = ()
    # Parts of a split text delivered by an earlier attempt: start after them. Files
    # count as parts after the text's, so a retry never sends one twice.
    skip_parts: int = 0
    files: tuple[OutgoingFile, ...] = ()


@dataclass(frozen=True)
class SendResult:
    external_id: str | None = None
    # The buttons went out as a numbered text menu (they did not fit the platform): the
    # pipeline then reads a customer's bare «2» as a press of the second button.
    numbered: bool = False


class SendError(Exception):
    """A failed send. ``permanent`` stops retries (user blocked the bot, outside a window)."""

    def __init__(
        self,
        reason: str,
        *,
        permanent: bool = False,
        retry_after: float | None = None,
        sent_parts: int = 0,
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.permanent = permanent
        self.retry_after = retry_after
        # How many parts of a split text were delivered before this failure.
        self.sent_parts = sent_parts


class Channel(ABC):
    type: str = ""
    # Clients read this channel's messages from the store (web chat): a reply is
    # delivered when it is written, with no outbox round.
    delivers_from_store: bool = False
    # The platform takes files only as a URL it downloads (Viber), so the outbox
    # prepares ``OutgoingFile.url``.
    files_by_url: bool = False

    def __init__(self, channel_id: str) -> None:
        self.id = channel_id

    @abstractmethod
    async def send(self, message: OutgoingMessage) -> SendResult: ...

    async def start(self) -> None:  # noqa: B027 (optional hook)
        """Open connections (HTTP clients) when the server starts."""

    async def stop(self) -> None:  # noqa: B027 (optional hook)
        """Release what ``start`` opened."""

    def deep_link(self) -> str | None:
        """Where the site widget sends a customer to open this channel, if it knows."""
        return None


# --------------------------------------------------------------------------- webhooks
@dataclass(frozen=True)
class WebhookRequest:
    """A platform's HTTP request as the channel needs it: the raw body, because
    signatures are computed over bytes, never over re-serialised JSON."""

    method: str
    headers: Mapping[str, str]  # keys in lower case
    query: Mapping[str, str]
    body: bytes

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())


FollowUp = Callable[[], Awaitable[None]]


@dataclass
class WebhookResult:
    """What one webhook request produced, and how the platform must be answered."""

    messages: list[InboundMessage] = field(default_factory=list)
    status: int = 200
    body: str = ""
    media_type: str = "text/plain"
    # Calls to make once the messages are stored (Telegram ``answerCallbackQuery``,
    # MAX ``/answers``): the spinner on the customer's button stops only then.
    follow_ups: list[FollowUp] = field(default_factory=list)


class WebhookRejected(Exception):
    """The request is refused: forged (401/403) or malformed (400). Nothing is stored."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


class WebhookUnusable(Exception):
    """An authentic request we cannot use (nested too deep, an id of the wrong type):
    acknowledged with 2xx all the same, so the platform moves on instead of delivering it
    again and holding the channel's later updates behind it. ``reason`` is a short label
    for the log and the metrics."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


class MessengerChannel(Channel):
    """A messenger platform reached over HTTP: webhook in, API calls out."""

    # The platform's own configuration fields, validated when the server starts.
    settings_model: ClassVar[type[ChannelSettings]] = ChannelSettings
    default_api_base: ClassVar[str] = ""
    timeout: ClassVar[float] = 15.0

    def __init__(self, settings: ChannelSettings) -> None:
        if not isinstance(settings, self.settings_model):
            # A generic ``[[channels]]`` entry: re-validated against the platform's model.
            settings = self.settings_model.model_validate(settings.model_dump())
        super().__init__(settings.id)
        self.settings = settings
        self.api_base = (settings.api_base or self.default_api_base).rstrip("/")
        self._http: httpx.AsyncClient | None = None

    @property
    def http(self) -> httpx.AsyncClient:
        if self._http is None:  # used before start() (the CLI): open lazily
            self._http = httpx.AsyncClient(timeout=self.timeout)
        return self._http

    async def start(self) -> None:
        if self._http is None:  # the CLI may have opened it already
            self._http = httpx.AsyncClient(timeout=self.timeout)

    async def stop(self) -> None:
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    @abstractmethod
    async def handle_webhook(self, request: WebhookRequest) -> WebhookResult:
        """Verify the request on its raw bytes, then parse it; raise ``WebhookRejected``."""

    async def register(self, public_url: str) -> str:
        """Point the platform's webhook at ``<public_url>/webhooks/<id>``; a line for people."""
        return f"{self.id}: register {self.webhook_url(public_url)} in the platform's dashboard"

    async def check(self) -> str:
        """One line on the channel's health as the platform sees it."""
        return f"{self.id}: no check available"

    def webhook_url(self, public_url: str) -> str:
        return f"{public_url.rstrip('/')}/webhooks/{self.id}"

    def acknowledge(self) -> WebhookResult:
        """The answer to an authentic request we could not use: what the platform takes
        as "received" (an empty 200 for most; VK wants ``ok``)."""
        return WebhookResult()


def transport_error(exc: httpx.HTTPError) -> SendError:
    """Network trouble (refused, reset, timeout) is always worth another try."""
    return SendError(f"network: {type(exc).__name__}: {exc}")


def require_secret_header(
    request: WebhookRequest, header: str, secret: str, channel_id: str
) -> None:
    """Platforms that echo a configured secret in a header (Telegram, MAX): 403 while no
    secret is configured (never trust whoever knows the URL), 401 when it is missing or
    wrong. Compared in constant time."""
    if not secret:
        raise WebhookRejected(
            403,
            f"channel {channel_id}: the secret must be configured (set `secret` and run "
            "`abonent channels register`); unauthenticated webhooks are refused",
        )
    given = request.header(header)
    if given is None:
        raise WebhookRejected(401, f"missing {header} header")
    if not hmac.compare_digest(given.encode(), secret.encode()):
        raise WebhookRejected(401, f"wrong {header}")


def signed_with(given: str, key: str, body: bytes, prefix: str = "") -> bool:
    """Whether ``given`` is ``prefix`` + the hex HMAC-SHA256 of the raw ``body`` under
    ``key`` (Viber, WhatsApp), compared in constant time."""
    expected = prefix + hmac.new(key.encode(), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(given.strip().lower().encode(), expected.encode())


def parse_json(body: bytes) -> Any:
    """The body as JSON, or 400: a malformed request must be refused, not crash. Nesting
    deeper than any platform's is measured before parsing (``core.bounds``) and is
    unusable, not malformed: the parser would recurse once per level."""
    if len(body) > MAX_WEBHOOK_BYTES:
        raise WebhookUnusable("too_large", f"{len(body)} bytes")
    if too_deep(body):
        raise WebhookUnusable("too_deep", f"JSON nested deeper than {MAX_DEPTH} levels")
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise WebhookRejected(400, f"body is not JSON: {exc}") from exc
    except RecursionError as exc:  # pragma: no cover - too_deep measured it first
        raise WebhookUnusable("too_deep") from exc


def answerable_id(value: Any, limit: int = 256) -> str | None:
    """An id we may send back to the platform (a callback query's, to stop a button's
    spinner): None when the platform cannot have issued it — not a string or integer,
    longer than ``limit``, or text no HTTP request can carry (NUL, a lone surrogate)."""
    if isinstance(value, bool) or not isinstance(value, str | int):
        return None
    if isinstance(value, int) and not -(2**63) <= value < 2**63:
        return None
    text = str(value)
    if not text or len(text) > limit or problem(text) is not None:
        return None
    return text


def unix_time(value: Any, *, ms: bool = False) -> datetime | None:
    """A platform's unix timestamp (seconds, or milliseconds with ``ms``; a number or a
    string of digits) as an aware UTC datetime; None when absent or unusable."""
    if isinstance(value, str):
        try:
            value = int(value)
        except ValueError:
            return None
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        return None
    try:
        return datetime.fromtimestamp(value / 1000 if ms else value, UTC)
    except (OverflowError, OSError, ValueError):
        return None


def person_name(user: Mapping[str, Any]) -> str | None:
    """«Иван Петров» from a platform's ``first_name``/``last_name`` (Telegram, MAX, VK)."""
    parts = (user.get("first_name"), user.get("last_name"))
    return " ".join(p.strip() for p in parts if isinstance(p, str) and p.strip()) or None


# --------------------------------------------------------------------------- API answers
def response_json(response: httpx.Response) -> Any:
    """The answer's JSON, or None when it is not JSON (a proxy's error page)."""
    try:
        return response.json()
    except ValueError:
        return None


def retry_after_header(response: httpx.Response, default: float | None = None) -> float | None:
    """The seconds ``Retry-After`` asks for, else ``default``."""
    value = response.headers.get("retry-after")
    if value is None:
        return default
    try:
        return max(float(value), 0.0)
    except ValueError:
        return default


# --------------------------------------------------------------------------- text
def numbered_text(text: str, buttons: tuple[Button, ...]) -> str:
    """The degraded form of buttons for platforms without them: «1. Передать показания»."""
    if not buttons:
        return text
    lines = [text, ""] + [f"{i}. {b.title}" for i, b in enumerate(buttons, 1)]
    return "\n".join(lines)


def split_text(text: str, limit: int) -> list[str]:
    """Parts of at most ``limit`` characters, cut at a paragraph, line or word where one
    is near, so a long answer reads naturally across several messages."""
    if len(text) <= limit:
        return [text]
    parts: list[str] = []
    rest = text
    while len(rest) > limit:
        window = rest[:limit]
        cut = -1
        for sep in ("\n\n", "\n", ". ", " "):
            at = window.rfind(sep)
            if at >= limit // 2:
                cut = at + len(sep)
                break
        if cut <= 0:
            cut = limit
        parts.append(rest[:cut].rstrip())
        rest = rest[cut:].lstrip()
    if rest:
        parts.append(rest)
    return parts


async def send_parts(count: int, skip: int, send: Callable[[int], Awaitable[_T]]) -> _T | None:
    """Send parts ``skip .. count-1`` in order with ``send(index)``; the last result.

    A failure records how many parts are out (``SendError.sent_parts``), so the outbox's
    retry continues after them instead of repeating what the customer already has.
    """
    last: _T | None = None
    for index in range(skip, count):
        try:
            last = await send(index)
        except SendError as exc:
            exc.sent_parts = index
            raise
    return last


# --------------------------------------------------------------------------- files
def file_link_text(file: OutgoingFile) -> str:
    """A file the platform cannot take, as a message: what it is and where to get it."""
    what = "фото" if file.kind == "image" else "документ"
    size = human_size(file.size)
    if file.url is None:
        return f"Оператор отправил {what} «{file.name}» ({size}), но отправить его сюда не удалось."
    return f"Оператор отправил {what} «{file.name}» ({size}). Открыть: {file.url}"


def human_size(size: int) -> str:
    """«2,4 МБ», «350 КБ»: a size as people read it."""
    if size >= 1024 * 1024:
        return f"{size / (1024 * 1024):.1f} МБ".replace(".", ",")
    return f"{max(1, round(size / 1024))} КБ"


async def download(
    http: httpx.AsyncClient, url: str, limit: int, headers: Mapping[str, str] | None = None
) -> bytes:
    """A platform's file, read no further than ``limit`` bytes (a bigger one is refused
    without filling memory); ``FetchError`` classified for the fetcher's retries."""
    from abonent.core.attachments import FetchError, too_large

    try:
        async with http.stream("GET", url, headers=headers) as response:
            if response.status_code != 200:
                permanent = 400 <= response.status_code < 500 and response.status_code != 429
                raise FetchError(f"download: HTTP {response.status_code}", permanent=permanent)
            declared = response.headers.get("content-length")
            if declared and declared.isdigit() and int(declared) > limit:
                raise FetchError(str(too_large(int(declared), limit)), permanent=True)
            chunks: list[bytes] = []
            total = 0
            async for chunk in response.aiter_bytes():
                total += len(chunk)
                if total > limit:
                    raise FetchError(str(too_large(total, limit)), permanent=True)
                chunks.append(chunk)
    except httpx.HTTPError as exc:
        raise FetchError(f"network: {type(exc).__name__}: {exc}") from exc
    return b"".join(chunks)
