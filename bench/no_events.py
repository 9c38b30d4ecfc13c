"""``abonent`` with the durable event log switched off: the baseline of the events' cost.

``bench/stats.py --compare-load --before no-events`` runs ``bench/load.py`` against
servers started by this script, alternating with the unmodified build of the same
checkout: the only difference is that ``core.eventlog.record`` stamps the events (the
live bus still carries them to the workspace, as it did before the log) without
inserting a row, so no consumer has anything to apply. The ratio of the two throughputs
is what writing and consuming events costs the message path.

    .venv/bin/python bench/no_events.py serve --config abonent.toml
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from abonent.clock import utcnow
from abonent.core import eventlog
from abonent.core.events import Event


async def _stamp_only(
    conn: Any, events: Sequence[Event], now: datetime | None = None
) -> list[Event]:
    """``eventlog.record`` without the insert: what the bus gets is unchanged."""
    moment = now or utcnow()
    return [
        e if e.occurred_at is not None else dataclasses.replace(e, occurred_at=moment)
        for e in events
    ]


def main() -> None:
    eventlog.record = _stamp_only  # type: ignore[assignment]
    from abonent.cli import main as abonent_main

    abonent_main()


if __name__ == "__main__":
    main()
