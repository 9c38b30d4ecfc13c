"""Service endpoints (health, readiness, metrics) and the demo page."""

from __future__ import annotations

import httpx

from support import Customer, LiveServer


async def test_health_readiness_metrics_and_openapi(live_server: LiveServer) -> None:
    async with httpx.AsyncClient(timeout=30) as http:
        assert (await http.get(f"{live_server.url}/healthz")).json() == {"status": "ok"}
        ready = await http.get(f"{live_server.url}/readyz")
        assert ready.status_code == 200 and ready.json()["database"] == "ok"

        me = Customer(live_server, http)
        await me.start()
        await me.say("меню")
        metrics = (await http.get(f"{live_server.url}/metrics")).text
        assert 'abonent_messages_total{author="customer",channel="webchat"} 1.0' in metrics
        assert 'abonent_messages_total{author="bot",channel="webchat"} 2.0' in metrics
        assert 'abonent_deliveries_total{channel="webchat",result="sent"} 2.0' in metrics

        spec = (await http.get(f"{live_server.url}/openapi.json")).json()
        for path in (
            "/api/client/v1/conversations",
            "/api/client/v1/messages",
            "/api/client/v1/widget",
            "/api/operator/v1/queue",
            "/healthz",
            "/readyz",
            "/metrics",
        ):
            assert path in spec["paths"], path


async def test_operator_api_needs_its_token(live_server: LiveServer) -> None:
    async with httpx.AsyncClient(timeout=30) as http:
        url = f"{live_server.url}/api/operator/v1/queue"
        assert (await http.get(url)).json()["error"]["code"] == "missing_token"
        bad = await http.get(url, headers={"Authorization": "Bearer nope"})
        assert bad.status_code == 401 and bad.json()["error"]["code"] == "invalid_token"
        ok = await http.get(url, headers={"Authorization": "Bearer test-operator-token"})
        assert ok.json() == {"length": 0, "conversations": []}


async def test_demo_page_carries_the_widget(live_server: LiveServer) -> None:
    async with httpx.AsyncClient(timeout=30) as http:
        page = await http.get(f"{live_server.url}/")
        assert page.status_code == 200
        assert '/widget.js"' in page.text
        js = await http.get(f"{live_server.url}/widget.js")
        assert js.status_code == 200 and "javascript" in js.headers["content-type"]
        assert (await http.get(f"{live_server.url}/nope")).json()["error"]["code"] == "not_found"
