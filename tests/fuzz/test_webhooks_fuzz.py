"""Hypothesis over every platform's webhook: genuine bodies with hostile fields, posted
with the platform's real signature or secret. Whatever arrives, the answer is below 500,
the log holds no traceback, and the channel answers the next normal message."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fuzz.hub import PLATFORMS, Hub, dumps
from fuzz.strategies import mutated

EXAMPLES = 30


@pytest.mark.parametrize("platform", PLATFORMS)
def test_hostile_fields_never_fail_the_channel(hub: Hub, platform: str) -> None:
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    )
    @given(data=st.data(), press=st.booleans())
    def post_one(data: st.DataObject, press: bool) -> None:
        base = hub.press(platform, "menu") if press else hub.base(platform)
        body, depth = mutated(base, data)
        r = hub.post(platform, dumps(body, depth))
        assert r.status_code < 500, f"{platform}: {r.status_code} {r.text[:200]} for {body!r:.300}"

    post_one()
    assert hub.problems_after() == []
    hub.still_answers(platform)
    assert hub.problems_after() == []
