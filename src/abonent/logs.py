"""Logging set-up with personal data masked on the way out.

Code avoids logging message texts, names and addresses at all; this filter is the
safety net for what slips through: account-like digit runs, phone numbers, e-mails,
and the messenger tokens some platforms put in URLs.
"""

from __future__ import annotations

import logging
import re

_PHONE = re.compile(r"(?<!\d)(?:\+7|8)[\s(-]*\d{3}[\s)-]*\d{3}[\s-]*\d{2}[\s-]*\d{2}(?!\d)")
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+\.[\w.]+")
_DIGITS = re.compile(r"(?<![\d.])\d{6,}(?![\d.])")
# Secrets that platforms put in URLs: Telegram's bot token, ``access_token=`` parameters.
_BOT_TOKEN = re.compile(r"/bot\d+:[\w-]+")
_TOKEN_PARAM = re.compile(r"(access_token|token|secret)=[^&\s]+", re.IGNORECASE)


def mask_pii(text: str) -> str:
    text = _BOT_TOKEN.sub("/bot***", text)
    text = _TOKEN_PARAM.sub(lambda m: m.group(1) + "=***", text)
    text = _EMAIL.sub("***@***", text)
    text = _PHONE.sub(lambda m: "+7******" + re.sub(r"\D", "", m.group())[-2:], text)
    return _DIGITS.sub(lambda m: "*" * (len(m.group()) - 4) + m.group()[-4:], text)


class PiiFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = mask_pii(message)
        if masked != message:
            record.msg, record.args = masked, None
        return True


def setup_logging(level: str = "INFO") -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(PiiFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    logging.getLogger("alembic").setLevel(logging.WARNING)
    # httpx logs every request URL at INFO; platform URLs carry tokens and phone ids.
    for name in ("httpx", "httpcore"):
        logging.getLogger(name).setLevel(logging.WARNING)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers[:] = []
        logger.propagate = True
