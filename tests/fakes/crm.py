"""A fake company CRM adapter speaking the contract in ``abonent.crm.http``.

It checks the bearer token (401 otherwise), answers ``GET /persons`` by ``phone`` or
``account`` from the people it was given (200 ``{"persons": [...]}``, an empty list for
strangers), 400 without either parameter and 404 for any other path. Faults: ``fail_next``
from the harness for error statuses, ``delay`` for a CRM that answers too slowly.
"""

from __future__ import annotations

import time
from typing import Any

from fakes.base import FakePlatform, Recorded, Reply

TOKEN = "crm-test-token-7f3a"


class FakeCrm(FakePlatform):
    def __init__(self, token: str = TOKEN) -> None:
        super().__init__()
        self.token = token
        self.persons: list[dict[str, Any]] = []
        # Seconds to wait before answering (the fake serves from its own thread).
        self.delay = 0.0

    def add_person(
        self,
        name: str,
        phones: list[str] | None = None,
        accounts: list[str] | None = None,
        **fields: Any,
    ) -> dict[str, Any]:
        person = {"name": name, "phones": phones or [], "accounts": accounts or [], **fields}
        self.persons.append(person)
        return person

    @property
    def lookups(self) -> list[dict[str, str]]:
        """The query of every ``/persons`` call, in order."""
        return [r.query for r in self.calls("/persons")]

    def api(self, request: Recorded) -> Reply:
        if self.delay:
            time.sleep(self.delay)
        if request.method != "GET" or request.path != "/persons":
            return Reply(404, {"error": "not found"})
        if request.headers.get("authorization") != f"Bearer {self.token}":
            return Reply(401, {"error": "unauthorized"})
        phone = request.query.get("phone")
        account = request.query.get("account")
        if not phone and not account:
            return Reply(400, {"error": "phone or account is required"})
        found = [
            p
            for p in self.persons
            if (phone and phone in p["phones"]) or (account and account in p["accounts"])
        ]
        return Reply(200, {"persons": found})
