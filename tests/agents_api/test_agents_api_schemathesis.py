"""Schemathesis against a gateway that has agents: generated run bodies, thread and run
queries, valid or not, get documented answers and never a 5xx — including real runs
against the fleet, whose results and event streams must match the document.

The same again as an app key bound to one resource: its refusals (another resource,
a thread or run it may not read) must be documented too.

(The gateway suite runs the whole document against a gateway without agents, where
the agents' operations only ever answer 404.)
"""

from __future__ import annotations

import schemathesis
from agents_api_support import BOUND
from gateway_support import FleetProcess, GatewayProcess, Keys, bearer
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from bastion.server.openapi import build_document

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
schema = schemathesis.openapi.from_dict(build_document(), config=_CONFIG).include(
    tag_regex="agents|memory"
)


def _name_an_agent(case: schemathesis.Case) -> None:
    """Generated agent names exist nowhere (the in-process tests cover the 404): name
    the real agent, so that generated bodies run."""
    if case.path_parameters and "name" in case.path_parameters:
        case.path_parameters["name"] = "support"


@schema.parametrize()
@settings(max_examples=25, deadline=None, database=None, suppress_health_check=list(HealthCheck))
def test_generated_agent_requests_get_documented_answers_and_never_a_5xx(
    case: schemathesis.Case, served: GatewayProcess, clean_fleet: FleetProcess, keys: Keys
) -> None:
    _name_an_agent(case)
    response = case.call(base_url=served.url, headers=bearer(keys.admin), timeout=20)
    case.validate_response(response, checks=CHECKS)


@schema.parametrize()
@settings(max_examples=15, deadline=None, database=None, suppress_health_check=list(HealthCheck))
def test_a_key_bound_to_one_resource_gets_documented_answers_and_never_a_5xx(
    case: schemathesis.Case, served: GatewayProcess, clean_fleet: FleetProcess
) -> None:
    _name_an_agent(case)
    response = case.call(base_url=served.url, headers=bearer(BOUND), timeout=20)
    case.validate_response(response, checks=CHECKS)
