"""A company CRM over HTTP, through a small adapter the company writes.

Every CRM has its own API (1С, Bitrix24, amoCRM, a home-grown one), so we do not speak any
of them: the company puts a thin adapter in front of theirs that implements this contract.

    GET {url}/persons?phone=%2B79123456789     (the phone as +7 and ten digits)
    GET {url}/persons?account=1000234561       (a personal account number, digits only)
    Authorization: Bearer {token}
    Accept: application/json

    200 {"persons": [{"name": "Иванов Иван Иванович",      all fields optional
                      "phones": ["+79123456789"],
                      "email": "ivanov@example.ru",
                      "accounts": ["1000234561"],
                      "segment": "льготник",                a label operators see
                      "note": "звонить после 18:00"}]}     a note operators see
    200 {"persons": []} or 404                → nobody known
    401/403                                   → our token is wrong (shown as "CRM unavailable")
    anything else, or no answer in time       → the CRM is unavailable; the card opens without it

We ask by phone first and by account only when the phone finds nobody; the first person of
the answer is used. The whole look-up (both requests) is bounded by ``timeout`` seconds:
an operator waits for the card, not for the CRM. Queries carry phones, so URLs are never
logged and errors name only the status or the exception class.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
from pydantic import BaseModel, ValidationError, field_validator

from abonent.billing.accounts import normalise_account_number, normalise_phone
from abonent.crm.base import CrmError, CrmPerson


class _WirePerson(BaseModel):
    model_config = {"extra": "ignore"}

    name: str | None = None
    phones: list[str] = []
    email: str | None = None
    accounts: list[str] = []
    segment: str | None = None
    note: str | None = None

    @field_validator("phones", "accounts", mode="before")
    @classmethod
    def _strings(cls, value: Any) -> Any:
        """Adapters written in a hurry send numbers as JSON numbers, or null for none."""
        if value is None:
            return []
        if isinstance(value, list):
            return [str(item) for item in value if item is not None]
        return value


class _Answer(BaseModel):
    persons: list[_WirePerson] = []


def _person(wire: _WirePerson) -> CrmPerson:
    phones = [normalise_phone(p) or p.strip() for p in wire.phones if p.strip()]
    accounts = [normalise_account_number(a) for a in wire.accounts if a.strip()]
    return CrmPerson(
        name=(wire.name or "").strip() or None,
        phones=list(dict.fromkeys(phones)),
        email=(wire.email or "").strip() or None,
        accounts=list(dict.fromkeys(accounts)),
        segment=(wire.segment or "").strip() or None,
        note=(wire.note or "").strip() or None,
    )


class HttpCrm:
    """``Crm`` over the adapter contract above."""

    def __init__(
        self,
        url: str,
        token: str,
        timeout: float = 3.0,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.endpoint = url.rstrip("/") + "/persons"
        self.timeout = timeout
        headers = {"Accept": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self.http = httpx.AsyncClient(
            headers=headers, timeout=httpx.Timeout(timeout), transport=transport
        )

    async def find(self, phone: str | None, account: str | None) -> CrmPerson | None:
        normalised = normalise_phone(phone) if phone else None
        number = normalise_account_number(account) if account else None
        try:
            async with asyncio.timeout(self.timeout):
                if normalised is not None:
                    person = await self._ask({"phone": normalised})
                    if person is not None:
                        return person
                if number:
                    return await self._ask({"account": number})
                return None
        except TimeoutError as exc:
            raise CrmError(f"crm did not answer within {self.timeout:g}s") from exc

    async def close(self) -> None:
        await self.http.aclose()

    async def _ask(self, params: dict[str, str]) -> CrmPerson | None:
        try:
            response = await self.http.get(self.endpoint, params=params)
        except httpx.TimeoutException as exc:
            raise CrmError(f"crm did not answer within {self.timeout:g}s") from exc
        except httpx.HTTPError as exc:
            raise CrmError(f"crm unreachable: {exc.__class__.__name__}") from exc
        if response.status_code == 404:
            return None
        if response.status_code in (401, 403):
            raise CrmError(f"crm {response.status_code}: the token was refused")
        if response.status_code != 200:
            raise CrmError(f"crm answered {response.status_code}")
        try:
            answer = _Answer.model_validate_json(response.content)
        except ValidationError as exc:
            raise CrmError(
                f"crm answer is not the persons contract ({exc.error_count()} errors)"
            ) from exc
        return _person(answer.persons[0]) if answer.persons else None
