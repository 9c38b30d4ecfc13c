"""Limits on what a request may make us do before any parser sees it.

``json.loads`` recurses once per nesting level: a body of 100,000 ``[`` is a
``RecursionError`` (a 500 and a traceback), and a large body is memory and CPU spent
before a single field is checked. So every JSON body is measured first — its size, then
its nesting depth — by :func:`json_depth`, whose work is all in C (``bytes.replace``,
``split`` and ``translate``, a numpy running sum), so measuring a megabyte costs a few
milliseconds and never recurses.
"""

from __future__ import annotations

import numpy as np

# No platform nests its updates deeper than ~10 levels; the APIs' bodies are flatter.
MAX_DEPTH = 32
# A messenger's update is a few kilobytes; WhatsApp batches stay far below this.
MAX_WEBHOOK_BYTES = 1024 * 1024
# The client and workspace APIs' JSON bodies: a 4,096-character message, escaped.
MAX_API_BYTES = 64 * 1024

_OPEN_CLOSE = bytes.maketrans(b"[{]}", b"\x01\x01\xff\xff")
_OTHER = bytes(b for b in range(256) if b not in b"[{]}")


def json_depth(body: bytes) -> int:
    """How deeply ``body`` nests arrays and objects (0 for a scalar). Brackets inside
    strings do not count; malformed JSON gives some number, and the parser refuses it."""
    # Escaped backslashes and quotes first, so every remaining quote opens or closes a
    # string: then the even pieces between quotes are what lies outside strings.
    outside = b"".join(body.replace(b"\\\\", b"").replace(b'\\"', b"").split(b'"')[::2])
    brackets = outside.translate(_OPEN_CLOSE, _OTHER)
    if not brackets:
        return 0
    steps = np.frombuffer(brackets, dtype=np.int8)
    return max(0, int(np.cumsum(steps, dtype=np.int64).max()))


def too_deep(body: bytes, limit: int = MAX_DEPTH) -> bool:
    """Whether ``body`` nests deeper than ``limit``; most bodies have fewer brackets than
    the limit in all, and are let through on that count alone."""
    if body.count(b"[") + body.count(b"{") <= limit:
        return False
    return json_depth(body) > limit
