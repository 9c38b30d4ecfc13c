"""A fake utility billing speaking the v1 contract of docs/billing-http-api.md.

It checks the bearer token (401), serves ``GET /accounts/{number}``, ``GET /accounts?phone=``,
``GET /tariffs`` (404 unless ``tariffs`` is set) and ``POST /readings``, which it checks like
a billing would (zones of the plan, not below the last accepted, one submission per period
unless ``replace``) and answers idempotently: a repeated ``submission_id`` gets the first
answer again and stores nothing. ``accepted`` lists each stored submission once.

Faults: ``down`` (every request answered 503 at once, as a billing behind a balancer whose
backend is gone), ``delay`` (seconds before any answer), and the harness's ``fail_next``
for one-off statuses or malformed bodies.
"""

from __future__ import annotations

import copy
import time
from datetime import date
from decimal import Decimal
from typing import Any

from fakes.base import FakePlatform, Recorded, Reply

TOKEN = "billing-test-token-51c2"
ZONES = {
    "single": ["single"],
    "two_zone": ["day", "night"],
    "three_zone": ["peak", "half_peak", "night"],
}


def _plain(value: Decimal) -> str:
    text = format(value, "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


class FakeBilling(FakePlatform):
    def __init__(self, token: str = TOKEN) -> None:
        super().__init__()
        self.token = token
        self.accounts: dict[str, dict[str, Any]] = {}
        self.tariffs: dict[str, Any] | None = None
        self.down = False
        self.delay = 0.0
        # submission_id → (status, body) of the first answer.
        self.answers: dict[str, tuple[int, dict[str, Any]]] = {}
        # Stored submissions (each once), in order.
        self.accepted: list[dict[str, Any]] = []

    def add_account(
        self,
        number: str,
        plan: str = "two_zone",
        last: dict[str, str] | None = None,
        last_date: str | None = "2026-11-20",
        phone: str | None = None,
        balance: str = "1520.40",
        **fields: Any,
    ) -> dict[str, Any]:
        zones = ZONES[plan]
        account = {
            "number": number,
            "holder": "Петров Пётр Петрович",
            "address": "г. Энск, ул. Мира, д. 5, кв. 12",
            "plan": plan,
            "phone": phone,
            "balance": balance,
            "due_date": "2026-12-25",
            "last_readings": (
                {"date": last_date, "values": last or {z: "1000" for z in zones}}
                if last is not None or last_date is not None
                else None
            ),
            "period_submission": None,
            **fields,
        }
        self.accounts[number] = account
        return account

    @property
    def posts(self) -> list[Recorded]:
        return [r for r in self.calls("/readings") if r.method == "POST"]

    # ------------------------------------------------------------------ the API
    def api(self, request: Recorded) -> Reply:
        if self.delay:
            time.sleep(self.delay)
        if self.down:
            return Reply(503, {"error": "unavailable"})
        if request.headers.get("authorization") != f"Bearer {self.token}":
            return Reply(401, {"error": "unauthorized"})
        path = request.path.rstrip("/")
        if request.method == "GET" and path == "/accounts":
            phone = request.query.get("phone", "")
            found = [a for a in self.accounts.values() if phone and a.get("phone") == phone]
            return Reply(200, {"accounts": found})
        if request.method == "GET" and path.startswith("/accounts/"):
            account = self.accounts.get(path.removeprefix("/accounts/"))
            if account is None:
                return Reply(404, {"error": "unknown_account"})
            return Reply(200, account)
        if request.method == "GET" and path == "/tariffs":
            if self.tariffs is None:
                return Reply(404, {"error": "not_owned"})
            return Reply(200, self.tariffs)
        if request.method == "POST" and path == "/readings":
            return self._submit(request)
        return Reply(404, {"error": "not found"})

    def _submit(self, request: Recorded) -> Reply:
        body = request.json()
        sid = body.get("submission_id")
        if not sid or request.headers.get("idempotency-key") != sid:
            return Reply(400, {"error": "bad_request", "message": "submission_id and key"})
        with self._lock:
            if sid in self.answers:
                status, answer = self.answers[sid]
                return Reply(status, copy.deepcopy(answer))
            status, answer = self._decide(body)
            self.answers[sid] = (status, answer)
            return Reply(status, copy.deepcopy(answer))

    def _decide(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        account = self.accounts.get(str(body.get("account")))
        if account is None:
            return 404, {"error": "unknown_account"}
        zones = ZONES[account["plan"]]
        values = body.get("values") or {}
        if sorted(values) != sorted(zones):
            return 422, {"error": "rejected", "reason": "wrong_zone_count"}
        taken_on = date.fromisoformat(body["taken_on"])
        period = account.get("period_submission")
        if period is not None and date.fromisoformat(period["taken_on"]).replace(
            day=1
        ) != taken_on.replace(day=1):
            period = None
        if period is not None and not body.get("replace"):
            return 409, {"error": "already_submitted", "period_submission": period}
        base = period["base"] if period is not None else account["last_readings"]
        previous = {z: Decimal(str((base or {}).get("values", {}).get(z, "0"))) for z in zones}
        given = {z: Decimal(str(values[z])) for z in zones}
        for zone in zones:
            if given[zone] < previous[zone]:
                return 422, {
                    "error": "rejected",
                    "reason": "lower_than_last",
                    "zone": zone,
                    "message": f"показание {_plain(given[zone])} меньше принятого "
                    f"{_plain(previous[zone])}",
                }
        answer: dict[str, Any] = {
            "submission_id": body["submission_id"],
            "status": "accepted",
            "previous": base,
            "consumption": {z: _plain(given[z] - previous[z]) for z in zones},
        }
        if period is not None:
            answer["replaced"] = {"taken_on": period["taken_on"], "values": period["values"]}
        account["period_submission"] = {
            "taken_on": body["taken_on"],
            "values": {z: _plain(given[z]) for z in zones},
            "base": base,
        }
        account["last_readings"] = {
            "date": body["taken_on"],
            "values": {z: _plain(given[z]) for z in zones},
        }
        self.accepted.append(body)
        return 200, answer
