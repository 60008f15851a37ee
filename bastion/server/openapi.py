"""The OpenAPI 3.1 document served at `GET /openapi.json`, assembled from each API's
part: the OpenAI-compatible API's hand-written schemas (`openai.schema`: the chat body
is parsed by hand on the hot path, so there is no model to derive it from), and the
schemas the control plane's and the agents' typed bodies generate (`control.bodies`,
`agents.bodies`, through `common.components`).

Built once per app; every caller gets the same bytes. The gateway suite runs
schemathesis against it, holding the handlers to it.
"""

from __future__ import annotations

import copy
from importlib import metadata

import orjson
from aiohttp import web

from bastion.server.agents import schema as agents
from bastion.server.common import (
    ERRORS,
    JSON,
    OBJECT,
    Error,
    Schema,
    body_of,
    components,
    operation,
    ref,
)
from bastion.server.control import schema as control
from bastion.server.openai import schema as openai


def _version() -> str:
    try:
        return metadata.version("bastion")
    except metadata.PackageNotFoundError:  # pragma: no cover - a bare source tree
        return "0.0.0"


def _paths() -> Schema:
    document = operation(
        "openapi",
        "This document.",
        body_of(OBJECT, "The OpenAPI document."),
        ("Unauthorized",),
    )
    return {
        **openai.paths(),
        **control.paths(),
        "/openapi.json": {"get": document},
        **agents.paths(),
    }


def build_document() -> Schema:
    """The whole document. A deep copy: the schemas it is built of are shared module
    constants, and a caller (a test tool resolving references, say) may change what it
    gets."""
    document = {
        "openapi": "3.1.0",
        "info": {
            "title": "Bastion",
            "version": _version(),
            "description": "An OpenAI-compatible gateway that keeps answering when model "
            "providers fail, and its control plane.",
        },
        "servers": [{"url": "/"}],
        # Either header; the control plane (/api/v1 but health) needs an admin key.
        "security": [{"bearer": []}, {"apiKey": []}],
        "tags": [
            {"name": "openai", "description": "OpenAI-compatible: the SDKs work unchanged."},
            {"name": "control", "description": "The control plane: admin keys."},
            {"name": "agents", "description": "The config's agents: keys with their scope."},
            {
                "name": "memory",
                "description": "Agents' threads and runs: an admin key reads all, an app "
                "key those of the resources it is bound to.",
            },
        ],
        "paths": _paths(),
        "components": {
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "description": "An auth.keys key."},
                "apiKey": {"type": "apiKey", "in": "header", "name": "x-api-key"},
            },
            "schemas": {
                **openai.SCHEMAS,
                **components((*control.TYPES, *agents.TYPES, Error)),
            },
            "responses": {
                name: body_of(ref("Error"), description, headers=headers)
                for name, (_, description, headers) in ERRORS.items()
            },
        },
    }
    return copy.deepcopy(document)


def add_openapi_route(app: web.Application) -> None:
    """Serve the document at `GET /openapi.json`, built and serialized on the first
    request and kept: generating the schemas takes tens of milliseconds, which start-up
    need not pay."""
    built: list[bytes] = []

    async def openapi(request: web.Request) -> web.Response:
        if not built:
            built.append(orjson.dumps(build_document()))
        return web.Response(body=built[0], content_type=JSON)

    app.router.add_get("/openapi.json", openapi)
