"""Bad input gets a clear 4xx in OpenAI's error shape, naming the field, and never
reaches an upstream."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from gateway_support import MAX_BODY, QUESTION, FleetProcess, GatewayProcess, Keys, bearer


@pytest.fixture
def http(gateway: GatewayProcess, keys: Keys) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=gateway.url, headers=bearer(keys.app), timeout=10) as client:
        yield client


@pytest.fixture
def no_upstream_call(fleet: FleetProcess) -> Iterator[None]:
    yield
    assert fleet.attempts("primary") == [] and fleet.attempts("secondary") == []


def openai_error(response: httpx.Response, status: int) -> dict[str, Any]:
    """The `error` object, after checking the status and that the shape is OpenAI's."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"}
    error: dict[str, Any] = body["error"]
    assert {"message", "type", "param", "code"} <= set(error)
    assert isinstance(error["message"], str) and error["message"]
    return error


def chat_body(**fields: Any) -> dict[str, Any]:
    return {"model": "chat", "messages": QUESTION, **fields}


pytestmark = pytest.mark.usefixtures("no_upstream_call")


def test_malformed_json_is_a_400(http: httpx.Client) -> None:
    response = http.post(
        "/v1/chat/completions",
        content=b'{"model": "chat", "messages": [',
        headers={"Content-Type": "application/json"},
    )
    assert openai_error(response, 400)["code"] == "invalid_json"


def test_a_body_that_is_not_an_object_is_a_400(http: httpx.Client) -> None:
    response = http.post("/v1/chat/completions", json=[chat_body()])
    assert openai_error(response, 400)["code"] == "invalid_json"


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"model": 5}, "model"),
        ({"model": ""}, "model"),
        ({"messages": "hello"}, "messages"),
        ({"messages": []}, "messages"),
        ({"messages": ["hello"]}, "messages[0]"),
        ({"messages": [{"role": "wizard", "content": "hi"}]}, "messages[0].role"),
        ({"messages": [{"role": "user", "content": 5}]}, "messages[0].content"),
        ({"messages": [{"role": "user"}]}, "messages[0].content"),
        (
            {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}]},
            "messages[0].content[0].image_url.url",
        ),
        ({"messages": [{"role": "tool", "content": "42"}]}, "messages[0].tool_call_id"),
        ({"stream": "yes"}, "stream"),
        ({"stream_options": "usage"}, "stream_options"),
        ({"temperature": "hot"}, "temperature"),
        ({"temperature": 2.5}, "temperature"),
        ({"temperature": True}, "temperature"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"max_tokens": 1.5}, "max_tokens"),
        ({"tools": {"name": "f"}}, "tools"),
        ({"tools": [{"type": "function", "function": {}}]}, "tools[0].function.name"),
        ({"tool_choice": 5}, "tool_choice"),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_a_wrong_field_is_a_400_naming_it(
    http: httpx.Client, fields: dict[str, Any], param: str
) -> None:
    error = openai_error(http.post("/v1/chat/completions", json=chat_body(**fields)), 400)
    assert error["type"] == "invalid_request_error"
    assert error["param"] == param
    assert param in error["message"]


@pytest.mark.parametrize("missing", ["model", "messages"])
def test_a_missing_field_is_a_400_naming_it(http: httpx.Client, missing: str) -> None:
    body = chat_body()
    del body[missing]
    error = openai_error(http.post("/v1/chat/completions", json=body), 400)
    assert error["param"] == missing


def test_a_body_above_max_body_is_a_413(http: httpx.Client) -> None:
    huge = [{"role": "user", "content": "x" * (MAX_BODY + 1)}]
    error = openai_error(http.post("/v1/chat/completions", json=chat_body(messages=huge)), 413)
    assert str(MAX_BODY) in error["message"]


def test_an_unknown_model_is_a_404(gateway: GatewayProcess, keys: Keys) -> None:
    # The admin key may use any model, so what is refused is the model, not the key.
    response = httpx.post(
        f"{gateway.url}/v1/chat/completions",
        json=chat_body(model="gpt-17"),
        headers=bearer(keys.admin),
    )
    error = openai_error(response, 404)
    assert (error["param"], error["code"]) == ("model", "model_not_found")
    assert "gpt-17" in error["message"]


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [("GET", "/v1/chat/completions", "POST"), ("DELETE", "/v1/models", "GET")],
)
def test_a_wrong_method_is_a_405_with_allow(
    http: httpx.Client, method: str, path: str, allowed: str
) -> None:
    response = http.request(method, path)
    openai_error(response, 405)
    assert allowed in response.headers["allow"]


def test_an_unknown_path_is_a_404(http: httpx.Client) -> None:
    openai_error(http.get("/v1/embeddings"), 404)


@pytest.mark.parametrize(
    "headers", [{}, {"Authorization": "Bearer not-a-key"}], ids=["none", "wrong"]
)
def test_a_missing_or_wrong_key_is_a_401(gateway: GatewayProcess, headers: dict[str, str]) -> None:
    response = httpx.post(f"{gateway.url}/v1/chat/completions", json=chat_body(), headers=headers)
    assert openai_error(response, 401)["type"] == "authentication_error"


@pytest.mark.parametrize("stream", [False, True], ids=["complete", "stream"])
def test_a_key_without_the_scope_is_refused_before_any_upstream_call(
    gateway: GatewayProcess, keys: Keys, stream: bool
) -> None:
    response = httpx.post(
        f"{gateway.url}/v1/chat/completions",
        json=chat_body(stream=stream),
        headers=bearer(keys.other),
    )
    error = openai_error(response, 403)
    assert (error["type"], error["param"]) == ("permission_error", "model")


def test_health_needs_no_key(gateway: GatewayProcess) -> None:
    response = httpx.get(f"{gateway.url}/api/v1/health")
    assert response.status_code == 200
    assert response.json()["ready"] is True


def test_the_control_plane_refuses_an_app_key(http: httpx.Client) -> None:
    assert openai_error(http.get("/api/v1/status"), 403)["type"] == "permission_error"
