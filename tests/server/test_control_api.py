"""The control plane over real sockets: a gateway in front of the fake fleet.

The gateway's `chat` group is primary → secondary; server errors are not retried and
two in a row open a breaker for a minute, so one or two requests put the gateway
into a known state.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client.parser import text_string_to_metric_families
from structlog.testing import capture_logs

from bastion.config import load_config
from bastion.server.app import create_app
from bastion.server.control.events import EVENT_STREAM_OPTIONS, EVENT_STREAMS, EventStreamOptions
from bastion.server.gateway import Gateway
from bastion.testing import Fault, Fleet

BASE = ("primary", "secondary")


def config_yaml(fleet: Fleet, endpoints: tuple[str, ...] = BASE, *, connect: str = "1s") -> str:
    """The gateway's config as YAML text, one endpoint per listed upstream."""
    lines = ["endpoints:"]
    for name in endpoints:
        lines += [
            f"  - id: {name}",
            "    provider: openai",
            f"    model: model-{name}",
            f"    base_url: {fleet[name].base_url}",
            "    health: false",
            f"    timeouts: {{connect: {connect}, first_token: 2s, idle: 2s, total: 5s}}",
        ]
    lines += [
        "models:",
        "  chat:",
        f"    targets: [{', '.join(BASE)}]",
        "default_model: chat",
        "health_checks: false",
        "retry: {server_error: {retries: 0}}",
        "breaker: {consecutive_failures: 2, open_for: 60s}",
        "outlier: {consecutive_errors: 100}",
    ]
    return "\n".join(lines) + "\n"


@dataclass
class Control:
    client: TestClient[Any, Any]
    gateway: Gateway
    fleet: Fleet

    async def chat(self) -> ClientResponse:
        body = {"model": "chat", "messages": [{"role": "user", "content": "hi"}]}
        response = await self.client.post("/v1/chat/completions", json=body)
        await response.read()
        return response

    async def json(self, method: str, path: str, **kwargs: Any) -> tuple[int, Any]:
        response = await self.client.request(method, path, **kwargs)
        return response.status, orjson.loads(await response.read())

    async def endpoint(self, endpoint_id: str) -> dict[str, Any]:
        _, body = await self.json("GET", "/api/v1/status")
        return next(e for e in body["endpoints"] if e["id"] == endpoint_id)


Start = Callable[..., Awaitable[Control]]


@pytest.fixture
async def fleet() -> AsyncIterator[Fleet]:
    async with Fleet(["primary", "secondary", "tertiary"]) as running:
        yield running


@pytest.fixture
async def start(fleet: Fleet) -> AsyncIterator[Start]:
    """Start a gateway app on a loopback port; `events=` sets the event-stream options."""
    clients: list[TestClient[Any, Any]] = []

    async def run(events: EventStreamOptions | None = None) -> Control:
        gateway = Gateway(load_config(config_yaml(fleet)))
        app = create_app(gateway)
        if events is not None:
            app[EVENT_STREAM_OPTIONS] = events
        # As `bastion serve` runs it: a client that leaves cancels its handler.
        client: TestClient[Any, Any] = TestClient(TestServer(app, handler_cancellation=True))
        await client.start_server()
        clients.append(client)
        return Control(client, gateway, fleet)

    yield run
    for client in clients:
        await client.close()


@pytest.fixture
async def control(start: Start) -> Control:
    return await start()


def audit_lines(logs: Sequence[Mapping[str, Any]]) -> list[tuple[str, str, str, str]]:
    return [
        (e["actor"], e["action"], e["target"], e["outcome"]) for e in logs if e["event"] == "audit"
    ]


# --- health ----------------------------------------------------------------------------


async def test_health_is_ready_while_every_endpoint_is_in_service(control: Control) -> None:
    status, body = await control.json("GET", "/api/v1/health")
    assert status == 200
    assert body == {
        "status": "ok",
        "live": True,
        "ready": True,
        "endpoints_in_service": 2,
        "endpoints": 2,
    }


async def test_health_is_degraded_but_ready_with_one_endpoint_out(control: Control) -> None:
    await control.client.post("/api/v1/endpoints/primary/isolate")
    status, body = await control.json("GET", "/api/v1/health")
    assert (status, body["status"], body["ready"], body["endpoints_in_service"]) == (
        200,
        "degraded",
        True,
        1,
    )


async def test_readiness_turns_503_when_every_endpoint_is_isolated(control: Control) -> None:
    for endpoint in BASE:
        await control.client.post(f"/api/v1/endpoints/{endpoint}/isolate")
    status, body = await control.json("GET", "/api/v1/health")
    assert status == 503
    assert body["ready"] is False
    assert body["endpoints_in_service"] == 0


async def test_liveness_probe_answers_200_while_not_ready(control: Control) -> None:
    for endpoint in BASE:
        await control.client.post(f"/api/v1/endpoints/{endpoint}/isolate")
    status, body = await control.json("GET", "/api/v1/health?probe=live")
    assert (status, body["live"], body["ready"]) == (200, True, False)


# --- status ----------------------------------------------------------------------------


async def test_status_shows_an_open_breaker_after_failures(control: Control) -> None:
    control.fleet["primary"].set_default(Fault.status(500))
    for _ in range(2):
        assert (await control.chat()).status == 200

    status, body = await control.json("GET", "/api/v1/status")
    assert status == 200
    primary, secondary = body["endpoints"]
    assert primary["id"] == "primary"
    assert (primary["breaker"], primary["failed"], primary["in_service"]) == ("open", 2, False)
    assert primary["reopens_in"] > 50
    assert (secondary["breaker"], secondary["served"], secondary["in_service"]) == (
        "closed",
        2,
        True,
    )
    assert body["models"] == [
        {
            "name": "chat",
            "strategy": "priority",
            "targets": ["primary", "secondary"],
            "fallbacks": [],
            "degraded": False,
            "hedge": False,
        }
    ]
    assert body["pid"] == os.getpid()
    assert body["config"]["origin"] == "code"


# --- isolation -------------------------------------------------------------------------


async def test_isolating_moves_traffic_to_the_other_endpoint_until_recovered(
    control: Control,
) -> None:
    with capture_logs() as logs:
        status, body = await control.json("POST", "/api/v1/endpoints/primary/isolate")
    assert (status, body["isolated"], body["in_service"]) == (200, True, False)
    assert audit_lines(logs) == [("anonymous", "isolate", "primary", "ok")]

    response = await control.chat()
    assert response.headers["x-bastion-endpoint"] == "secondary"
    assert control.fleet["primary"].attempts == []

    status, body = await control.json("POST", "/api/v1/endpoints/primary/recover")
    assert (status, body["isolated"], body["in_service"]) == (200, False, True)
    response = await control.chat()
    assert response.headers["x-bastion-endpoint"] == "primary"


async def test_unknown_endpoint_is_404_in_openai_shape(control: Control) -> None:
    for action in ("isolate", "recover"):
        with capture_logs() as logs:
            status, body = await control.json("POST", f"/api/v1/endpoints/nope/{action}")
        assert status == 404
        assert body["error"]["code"] == "endpoint_not_found"
        assert body["error"]["type"] == "invalid_request_error"
        assert "'nope'" in body["error"]["message"]
        assert audit_lines(logs) == [("anonymous", action, "nope", "not_found")]


# --- config ----------------------------------------------------------------------------


async def test_put_config_adds_an_endpoint_and_keeps_an_open_breaker(control: Control) -> None:
    control.fleet["primary"].set_default(Fault.status(500))
    for _ in range(2):
        await control.chat()
    assert (await control.endpoint("primary"))["breaker"] == "open"

    new = config_yaml(control.fleet, ("primary", "secondary", "tertiary"))
    with capture_logs() as logs:
        status, body = await control.json("PUT", "/api/v1/config", data=new)
    assert status == 200, body
    assert body["endpoints"] == ["primary", "secondary", "tertiary"]
    assert audit_lines(logs) == [("anonymous", "reload", "api", "ok")]

    _, models = await control.json("GET", "/v1/models")
    assert "tertiary" in [m["id"] for m in models["data"]]
    assert (await control.endpoint("primary"))["breaker"] == "open"
    _, status_body = await control.json("GET", "/api/v1/status")
    assert status_body["config"]["origin"] == "api"


async def test_invalid_config_is_400_naming_line_and_field_and_changes_nothing(
    control: Control,
) -> None:
    router = control.gateway.router
    bad = config_yaml(control.fleet, ("primary", "secondary", "tertiary"), connect="fast")
    line = bad.splitlines().index(next(s for s in bad.splitlines() if "fast" in s)) + 1

    with capture_logs() as logs:
        status, body = await control.json("PUT", "/api/v1/config", data=bad)
    assert status == 400
    error = body["error"]
    assert error["code"] == "invalid_config"
    assert error["line"] == line
    assert f"line {line}" in error["message"]
    assert "endpoints[0].timeouts.connect" in error["message"]
    [(actor, action, target, outcome)] = audit_lines(logs)
    assert (actor, action, target) == ("anonymous", "reload", "api")
    # The reason, not a line number: the field and what is wrong with it.
    assert outcome.startswith("rejected: endpoints[0].timeouts.connect: not a duration")

    assert control.gateway.router is router
    _, models = await control.json("GET", "/v1/models")
    assert "tertiary" not in [m["id"] for m in models["data"]]


async def test_an_empty_config_body_is_400_and_audited(control: Control) -> None:
    with capture_logs() as logs:
        status, body = await control.json("PUT", "/api/v1/config", data=b"  \n")
    assert (status, body["error"]["param"]) == (400, "body")
    assert audit_lines(logs) == [("anonymous", "reload", "api", "rejected: body")]


async def test_a_config_body_is_never_read_as_a_file_path(control: Control, tmp_path: Path) -> None:
    path = tmp_path / "other.yaml"
    path.write_text(config_yaml(control.fleet, ("primary", "secondary", "tertiary")))
    status, body = await control.json("PUT", "/api/v1/config", data=str(path))
    assert status == 400
    assert "mapping" in body["error"]["message"]
    assert "tertiary" not in control.gateway.router.endpoints


# --- metrics ---------------------------------------------------------------------------


def sample(page: str, name: str, **labels: str) -> float:
    for family in text_string_to_metric_families(page):
        for s in family.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                return s.value
    raise AssertionError(f"no sample {name}{labels}")


async def test_metrics_page_counts_requests_attempts_and_failovers(control: Control) -> None:
    control.fleet["primary"].set_default(Fault.status(500))
    for _ in range(2):
        await control.chat()

    response = await control.client.get("/api/v1/metrics")
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("text/plain; version=")
    page = await response.text()
    requests = sample(page, "bastion_requests_total", model="chat", outcome="ok", stream="false")
    assert requests == 2
    assert sample(page, "bastion_attempts_total", endpoint="primary", outcome="server_error") == 2
    assert sample(page, "bastion_attempts_total", endpoint="secondary", outcome="ok") == 2
    assert sample(page, "bastion_failovers_total", endpoint="primary", kind="server_error") == 2
    assert sample(page, "bastion_breaker_state", endpoint="primary") == 2
    assert sample(page, "bastion_breaker_state", endpoint="secondary") == 0
    assert sample(page, "bastion_overhead_seconds_count") == 2


# --- events ----------------------------------------------------------------------------


async def read_events(response: ClientResponse, until: str) -> list[tuple[str, Any]]:
    """SSE events (name, data) read until one named `until`, within two seconds."""
    events: list[tuple[str, Any]] = []
    name = ""
    async with asyncio.timeout(2):
        while True:
            line = (await response.content.readline()).decode().rstrip("\n")
            if line.startswith("event: "):
                name = line.removeprefix("event: ")
            elif line.startswith("data: "):
                events.append((name, orjson.loads(line.removeprefix("data: "))))
                if name == until:
                    return events


async def wait_for(condition: Callable[[], bool]) -> None:
    for _ in range(200):  # two seconds
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the condition never held")


async def test_event_stream_carries_a_failover_and_unsubscribes_when_the_client_leaves(
    control: Control,
) -> None:
    streams = control.client.app[EVENT_STREAMS]
    control.fleet["primary"].set_default(Fault.status(500))
    response = await control.client.get("/api/v1/events")
    assert response.headers["Content-Type"] == "text/event-stream"
    assert await response.content.readline() == b": subscribed\n"
    assert len(streams) == 1

    await control.chat()
    events = await read_events(response, until="failed_over")
    assert events[-1][1]["endpoint"] == "primary"
    assert events[-1][1]["kind"] == "server_error"
    assert ("attempt_finished", "primary") in [(n, d.get("endpoint")) for n, d in events]

    response.close()
    await wait_for(lambda: len(streams) == 0)


async def test_event_stream_sends_keep_alives(start: Start) -> None:
    control = await start(events=EventStreamOptions(keepalive=0.05))
    response = await control.client.get("/api/v1/events")
    async with asyncio.timeout(2):
        assert await response.content.readline() == b": subscribed\n"
        assert await response.content.readline() == b"\n"
        assert await response.content.readline() == b": keep-alive\n"
    response.close()


async def test_a_slow_event_reader_loses_the_oldest_events_and_is_told(start: Start) -> None:
    control = await start(events=EventStreamOptions(queue_size=2))
    response = await control.client.get("/api/v1/events")
    await response.content.readline()
    router = control.gateway.router
    for _ in range(3):  # six events, synchronously: the writer cannot run in between
        router.isolate("primary")
        router.recover("primary")

    events = await read_events(response, until="endpoint_isolated")
    assert events == [
        ("dropped", {"count": 4}),
        ("endpoint_isolated", {"worker": 0, "endpoint": "primary", "isolated": True}),
    ]
    page = await (await control.client.get("/api/v1/metrics")).text()
    assert sample(page, "bastion_events_dropped_total") == 4
    response.close()


async def test_event_streams_end_when_the_server_shuts_down(control: Control) -> None:
    response = await control.client.get("/api/v1/events")
    assert await response.content.readline() == b": subscribed\n"
    # Well within the server's shutdown timeout: the stream ends, it is not cut.
    async with asyncio.timeout(2):
        await control.client.server.close()
        assert await response.content.read() == b"\n"
    assert response.content.at_eof()
