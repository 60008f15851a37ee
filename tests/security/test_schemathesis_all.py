"""Schemathesis over the whole OpenAPI document — control plane, config PUT and
isolation included — with an admin key and with an ordinary (model-scoped) key: no
generated input, valid or not, gets a 5xx, and every answer is one the document
promises. The gateway is this module's own, since a generated config PUT or isolation
may change it. The endless event stream is judged by its head (status and media type),
which is all a generated request can change."""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import schemathesis
from conftest import security_config
from gateway_support import FleetProcess, GatewayProcess, Keys, bearer
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from bastion.server.openapi import build_document

STREAMS_FOREVER = ["events"]
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
_CONFIG = schemathesis.Config.from_dict(
    {
        "output": {
            "sanitization": {"keys-to-sanitize": ["authorization", "x-api-key", "x-bastion-user"]}
        }
    }
)
schema = schemathesis.openapi.from_dict(build_document(), config=_CONFIG).exclude(
    operation_id=STREAMS_FOREVER
)


@pytest.fixture(scope="module")
def fuzzed(
    fleet: FleetProcess, keys: Keys, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayProcess]:
    directory: Path = tmp_path_factory.mktemp("fuzzed")
    server = GatewayProcess(security_config(fleet, directory / "memory.db"), directory, keys)
    yield server
    server.stop()


def _aim(case: schemathesis.Case) -> None:
    """Half of the generated model and agent names are replaced by real ones (chosen by
    a hash, so a failing case fails again when replayed), so that generated bodies also
    reach the router, the agents and the fleet."""
    body = case.body
    model = body.get("model") if isinstance(body, dict) else None
    if isinstance(model, str) and zlib.crc32(model.encode()) % 2 == 0:
        body["model"] = "chat"
    name = (case.path_parameters or {}).get("name")
    if isinstance(name, str) and zlib.crc32(name.encode()) % 2 == 0:
        case.path_parameters["name"] = "support"


@pytest.mark.parametrize("who", ["admin", "app"])
@schema.parametrize()
@settings(max_examples=25, deadline=None, database=None, suppress_health_check=list(HealthCheck))
def test_every_operation_answers_as_documented_and_never_with_a_5xx(
    case: schemathesis.Case, fuzzed: GatewayProcess, keys: Keys, who: str
) -> None:
    _aim(case)
    response = case.call(base_url=fuzzed.url, headers=bearer(getattr(keys, who)), timeout=20)
    case.validate_response(response, checks=CHECKS)


@pytest.mark.parametrize(("who", "status"), [("admin", 200), ("app", 403)])
def test_the_event_stream_opens_for_admins_only(
    fuzzed: GatewayProcess, keys: Keys, who: str, status: int
) -> None:
    document = build_document()
    answers = document["paths"]["/api/v1/events"]["get"]["responses"]
    promised = answers[str(status)]
    if "$ref" in promised:
        promised = document["components"]["responses"][promised["$ref"].rsplit("/", 1)[1]]
    with httpx.stream(
        "GET", f"{fuzzed.url}/api/v1/events", headers=bearer(getattr(keys, who)), timeout=10
    ) as response:
        assert response.status_code == status
        media = response.headers["content-type"].split(";")[0]
        assert media in promised["content"]
