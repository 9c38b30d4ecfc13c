"""Quiet hours: local hours in which nobody is written to (the law and good manners)."""

from __future__ import annotations

import re
from datetime import datetime, time, timedelta

_SPAN = re.compile(r"^(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})$")


def parse(spec: str) -> tuple[time, time] | None:
    """«21:00-09:00» as (start, end); None for no quiet hours; ValueError when malformed."""
    spec = spec.strip()
    if not spec:
        return None
    match = _SPAN.match(spec)
    if match is None:
        raise ValueError(f"quiet hours {spec!r} must look like 21:00-09:00")
    h1, m1, h2, m2 = (int(g) for g in match.groups())
    if h1 > 23 or h2 > 24 or m1 > 59 or m2 > 59 or (h2 == 24 and m2):
        raise ValueError(f"quiet hours {spec!r} name a time that does not exist")
    end = time(0, 0) if h2 == 24 else time(h2, m2)
    start = time(h1, m1)
    return (start, end) if start != end else None


def quiet_until(local: datetime, spec: str) -> datetime | None:
    """When the quiet hours around ``local`` (an aware local time) end; None when it is
    not quiet. A reminder due in them waits until then rather than being dropped."""
    span = parse(spec)
    if span is None:
        return None
    start, end = span
    now = local.timetz().replace(tzinfo=None)
    if start < end:
        inside = start <= now < end
        end_day = local.date()
    else:  # across midnight: 21:00-09:00
        inside = now >= start or now < end
        end_day = local.date() + timedelta(days=1) if now >= start else local.date()
    if not inside:
        return None
    ends = datetime.combine(end_day, end, tzinfo=local.tzinfo)
    # A wall-clock time in the zone: normalise through UTC (a DST jump moves it).
    return ends
