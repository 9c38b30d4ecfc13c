"""Personal data never reaches the log output."""

from __future__ import annotations

import logging

import pytest

from abonent.logs import PiiFilter, mask_pii


@pytest.mark.parametrize(
    ("raw", "masked"),
    [
        ("account 1000000001 not found", "account ******0001 not found"),
        ("phone +7 912 345-67-89 linked", "phone +7******89 linked"),
        ("phone 89123456789", "phone +7******89"),
        ("mail ivanov@mail.ru", "mail ***@***"),
        ("message 42 of conversation 7", "message 42 of conversation 7"),
        ("readings 12500.5 saved", "readings 12500.5 saved"),
        (
            "POST https://api.telegram.org/bot123456789:AAF-x_y/sendMessage 200",
            "POST https://api.telegram.org/bot***/sendMessage 200",
        ),
        (
            "GET /method/groups.getById?access_token=vk1.a.xyz&v=5.199",
            "GET /method/groups.getById?access_token=***&v=5.199",
        ),
    ],
)
def test_mask_pii(raw: str, masked: str) -> None:
    assert mask_pii(raw) == masked


def test_filter_masks_formatted_records(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("abonent.test")
    logger.addFilter(PiiFilter())
    with caplog.at_level(logging.INFO, logger="abonent.test"):
        logger.info("looked up %s for %s", "1234567890", "+79120000001")
    assert "1234567890" not in caplog.text and "+79120000001" not in caplog.text
    assert "******7890" in caplog.text
