"""The client and workspace APIs, driven from their own OpenAPI description: request
bodies generated from each operation's JSON schema (``strategies.from_schema``, the part
of hypothesis-jsonschema these schemas need; schemathesis would pull in a whole test
runner for the same) and mixed with
hostile values, query and path parameters likewise. Every answer is below 500, and every
refusal is in the API's error format."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fuzz.hub import DEEP, Hub, dumps
from fuzz.strategies import from_schema, hostile_scalar, hostile_text, hostile_value
from support import PASSWORD, seed_users

EXAMPLES = 8
# Not fuzzed: signing out ends the session the rest uses; uploads are multipart
# (tests/web/test_attachments.py); the exports build files (tests/analytics).
SKIPPED = ("/logout", "/attachments", "/stats/export")
PREFIXES = ("/api/client/v1", "/api/workspace/v1")


def _resolve(schema: Any, components: dict[str, Any], depth: int = 0) -> Any:
    if isinstance(schema, dict):
        ref = schema.get("$ref")
        if isinstance(ref, str) and depth < 8:
            return _resolve(components[ref.rsplit("/", 1)[-1]], components, depth + 1)
        return {k: _resolve(v, components, depth) for k, v in schema.items()}
    if isinstance(schema, list):
        return [_resolve(v, components, depth) for v in schema]
    return schema


def operations(spec: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    found = []
    for path, ops in spec["paths"].items():
        if not path.startswith(PREFIXES) or any(s in path for s in SKIPPED):
            continue
        for method, op in ops.items():
            found.append((method.upper(), path, op))
    return found


class Session:
    """A web-chat customer's token and a signed-in supervisor's cookie and CSRF token."""

    def __init__(self, hub: Hub) -> None:
        self.http = httpx.Client(base_url=hub.url, timeout=30)
        r = self.http.post("/api/client/v1/conversations", json={"name": "Фаззер"})
        self.token = r.json()["token"]
        self.conversation = r.json()["conversation_id"]
        r = self.http.post("/api/workspace/v1/login", json={"login": "sveta", "password": PASSWORD})
        assert r.status_code == 200, r.text
        self.csrf = r.json()["csrf_token"]

    def headers(self, path: str) -> dict[str, str]:
        if path.startswith("/api/client/"):
            return {"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"}
        return {"X-CSRF-Token": self.csrf, "Content-Type": "application/json"}


@pytest.fixture(scope="module")
def session(hub: Hub) -> Iterator[Session]:
    seed_users(hub.server.settings.database_url, {"sveta": {"name": "Светлана", "role": "admin"}})
    s = Session(hub)
    yield s
    s.http.close()


def _params(op: dict[str, Any], components: dict[str, Any], where: str) -> list[dict[str, Any]]:
    return [p for p in op.get("parameters", []) if p["in"] == where]


def _param_value(param: dict[str, Any], components: dict[str, Any], session: Session) -> Any:
    schema = _resolve(param.get("schema", {}), components)
    if param["name"] == "wait":
        return st.just(0)  # a long poll would only wait
    valid = from_schema(schema) if schema else st.text(max_size=5)
    extra = [st.just(session.conversation)] if param["in"] == "path" else []
    return st.one_of(valid, hostile_scalar, *extra)


def _as_param(value: Any) -> str:
    """Percent-encoded as a client could send it, lone surrogates as their raw bytes
    (invalid UTF-8: what a careless client's URL carries)."""
    if not isinstance(value, str):
        value = json.dumps(value) if not isinstance(value, bool) else str(value).lower()
    # Each value within a few kilobytes: the whole URL stays under httpx's 64 KiB limit.
    return quote(value[:1500].encode("utf-8", "surrogatepass"), safe="")


def test_every_operation_answers_below_500(hub: Hub, session: Session) -> None:
    spec = hub.server.app.openapi()
    components = spec.get("components", {}).get("schemas", {})
    ops = operations(spec)
    assert len(ops) > 20  # the workspace and the client API are both there
    for method, path, op in ops:
        body_schema = (
            op.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema")
        )
        bodies: st.SearchStrategy[Any] = st.none()
        if body_schema is not None:
            resolved = _resolve(body_schema, components)
            bodies = st.one_of(
                from_schema(resolved),
                st.dictionaries(hostile_text, hostile_value, max_size=4),
                hostile_value,
            )
        path_params = {
            p["name"]: _param_value(p, components, session) for p in _params(op, components, "path")
        }
        query_params = {
            p["name"]: st.one_of(st.none(), _param_value(p, components, session))
            for p in _params(op, components, "query")
        }

        request = st.tuples(
            bodies, st.fixed_dictionaries(path_params), st.fixed_dictionaries(query_params)
        )
        fuzz_operation(session, method, path, request)
    assert hub.problems_after() == []


def fuzz_operation(
    session: Session,
    method: str,
    path: str,
    requests: st.SearchStrategy[tuple[Any, dict[str, Any], dict[str, Any]]],
) -> None:
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(requests)
    def call(request: tuple[Any, dict[str, Any], dict[str, Any]]) -> None:
        body, path_values, query_values = request
        url = path
        for name, value in path_values.items():
            url = url.replace("{" + name + "}", _as_param(value))
        query = "&".join(f"{k}={_as_param(v)}" for k, v in query_values.items() if v is not None)
        if query:
            url = f"{url}?{query}"
        content = None if body is None else dumps(body, 40 if body == DEEP else 0)
        r = session.http.request(method, url, content=content, headers=session.headers(path))
        assert r.status_code < 500, f"{method} {url}: {r.status_code} {r.text[:300]}"
        if r.status_code >= 400 and r.headers.get("content-type") == "application/json":
            assert "code" in r.json()["error"], r.text

    call()
