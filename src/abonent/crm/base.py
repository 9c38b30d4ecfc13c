"""The Crm interface: who a customer is in the company's own records.

Operators see names and phones the messengers give (a nickname, a shared number); the
company's CRM knows the person behind them. The card asks it by phone, else by account,
and must still open when the CRM is down: a slow CRM never keeps an operator from a chat.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Protocol

from pydantic import BaseModel, Field, model_validator


@dataclass(frozen=True)
class CrmPerson:
    """A person as a CRM knows them; every field may be missing in someone's records."""

    name: str | None
    phones: list[str] = field(default_factory=list)
    email: str | None = None
    # Normalised personal account numbers the CRM ties to this person.
    accounts: list[str] = field(default_factory=list)
    # Free-form labels a company may keep ("льготник", "юрлицо", "VIP") and a note for operators.
    segment: str | None = None
    note: str | None = None


class CrmError(Exception):
    """The CRM could not answer (down, timed out, refused our token, spoke nonsense).

    The message says why for the logs; it never carries personal data.
    """


class Crm(Protocol):
    async def find(self, phone: str | None, account: str | None) -> CrmPerson | None:
        """The person with this phone (``+7…``), else the holder of this account; None if
        the CRM knows neither. Raises CrmError when the CRM cannot be asked."""
        ...

    async def close(self) -> None:
        """Release connections (called once, at shutdown)."""
        ...


class CrmSettings(BaseModel):
    """``[crm]`` in the TOML (``ABONENT_CRM__TYPE``, ``…__URL``, ``…__TOKEN``, ``…__TIMEOUT``)."""

    type: Literal["local", "http"] = "local"
    url: str = ""
    token: str = ""
    # Seconds for a whole look-up; the card waits no longer than this for the CRM.
    timeout: float = Field(default=3.0, gt=0, le=30)

    @model_validator(mode="after")
    def _http_needs_url(self) -> CrmSettings:
        if self.type == "http" and not self.url.startswith(("http://", "https://")):
            raise ValueError("crm.url must be an http(s):// address when crm.type is 'http'")
        return self
