"""The OpenAPI document and the app agree: every route is documented, every documented
operation is routed, and the document says what the gateway's contract says."""

from __future__ import annotations

from typing import Any

import pytest

from bastion.config import load_config
from bastion.server.app import create_app
from bastion.server.gateway import Gateway
from bastion.server.openapi import build_document

METHODS = {"get", "put", "post", "delete", "patch"}


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    return build_document()


def operations(document: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {
        (method.upper(), path): operation
        for path, item in document["paths"].items()
        for method, operation in item.items()
        if method in METHODS
    }


def test_every_route_is_documented_and_every_operation_routed(document: dict[str, Any]) -> None:
    config = load_config({"endpoints": [{"id": "a", "provider": "scripted", "model": "m"}]})
    app = create_app(Gateway(config))
    routed = {
        (route.method, route.resource.canonical)
        for route in app.router.routes()
        if route.method != "HEAD" and route.resource is not None
    }
    assert routed == set(operations(document))


def test_operation_ids_are_unique(document: dict[str, Any]) -> None:
    ids = [op["operationId"] for op in operations(document).values()]
    assert len(ids) == len(set(ids))


def test_every_operation_but_health_needs_a_key(document: dict[str, Any]) -> None:
    assert document["security"] == [{"bearer": []}, {"apiKey": []}]
    assert document["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    for (method, path), operation in operations(document).items():
        if path == "/api/v1/health":
            assert operation["security"] == []
        else:
            assert "security" not in operation
            assert "401" in operation["responses"], (method, path)


def test_control_plane_operations_refuse_non_admin_keys(document: dict[str, Any]) -> None:
    for (_, path), operation in operations(document).items():
        if path.startswith("/api/v1/") and path != "/api/v1/health":
            assert "403" in operation["responses"], path


def test_errors_are_documented_in_openai_shape(document: dict[str, Any]) -> None:
    error = document["components"]["schemas"]["Error"]
    assert error["required"] == ["error"]
    assert error["properties"]["error"]["required"] == ["message", "type", "param", "code"]
    responses = document["components"]["responses"]
    assert all(r["content"]["application/json"]["schema"] for r in responses.values())


def test_the_chat_request_passes_unknown_fields_through(document: dict[str, Any]) -> None:
    request = document["components"]["schemas"]["ChatRequest"]
    assert request["additionalProperties"] is True
    assert request["required"] == ["model", "messages"]
    properties = request["properties"]
    assert properties["temperature"]["anyOf"][0] == {"type": "number", "minimum": 0, "maximum": 2}
    assert properties["max_tokens"]["anyOf"][0] == {"type": "integer", "minimum": 1}
    roles = [
        role
        for message in properties["messages"]["items"]["oneOf"]
        for role in _roles(message, document)
    ]
    assert sorted(roles) == ["assistant", "developer", "system", "tool", "user"]


def _roles(message: dict[str, Any], document: dict[str, Any]) -> list[str]:
    if "$ref" in message:
        message = document["components"]["schemas"][message["$ref"].rsplit("/", 1)[1]]
    role = message["properties"]["role"]
    return [role["const"]] if "const" in role else list(role["enum"])
