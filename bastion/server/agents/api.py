"""The agents of the `agents:` config section, over HTTP.

    GET  /api/v1/agents                  the agents this key may use, with their tools
    POST /api/v1/agents/{name}/generate  run to the end; the result as JSON
    POST /api/v1/agents/{name}/stream    the run's events as server-sent events
    GET  /api/v1/agents/{name}/ws        WebSocket: many turns on one socket (`ws`)

A run body is read and checked in full before anything runs (`codec`): a bad
body, an unknown agent, a resource outside the key's binding (403
`resource_not_allowed`), a thread of another resource or a run id already used is a
4xx in OpenAI's error shape, and nothing is written. A bound key names a resource on
every run, so that its runs can be read back; one bound to a single resource (or to a
user by an `x-bastion-user` token) may leave `resource_id` out, and it is filled in.

The runtime context is the body's `context` over the request's
`x-bastion-context-<key>` headers (the body wins); it reaches the model selection, the
instructions' `{key}` placeholders and the tools. A placeholder without a default
whose key the context lacks is a 400 naming `context.<key>`, before anything runs.

The key's `agents` scope is enforced by the auth middleware; its rate limits count
each run as one request. A client that disconnects cancels its run: the upstream call
or tool in progress stops, the run is recorded as cancelled, and nothing is committed
to the thread.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping
from contextlib import aclosing
from dataclasses import dataclass, replace
from typing import Any

import structlog
from aiohttp import web

from bastion.agents import Agent, AgentError, Error, Finished, MissingContext
from bastion.config.groups import Target
from bastion.memory import (
    MemoryStoreError,
    ThreadBusy,
    ThreadConflict,
    ThreadNotFound,
    WrongResource,
)
from bastion.resilience.errors import UpstreamError
from bastion.server.agents.bodies import AgentInfo, AgentList, ModelEntry
from bastion.server.agents.codec import (
    RunBody,
    event_body,
    header_context,
    parse_run,
    result_body,
)
from bastion.server.coalesce import WriteBuffer, next_or_flush
from bastion.server.common import dumps, json_response, load_json
from bastion.server.errors import ApiError, from_exception, invalid
from bastion.server.gateway import Gateway
from bastion.server.keys import GATEWAY, PRINCIPAL
from bastion.types import RuntimeContext, Usage

_log = structlog.get_logger("bastion.server")

RUN_ID_HEADER = "x-bastion-run-id"


# --- errors --------------------------------------------------------------------------


def run_error(error: BaseException | None, run_id: str | None = None) -> ApiError:
    """What a run's failure answers: the router's failures as the chat API answers
    them, an agent's bound (step limit, invalid tool arguments or output) as 502, the
    memory's refusals as 4xx, a store that is away as 503. The run id goes along, so
    the run's steps can be looked up."""
    extra = {"run_id": run_id} if run_id else {}
    if isinstance(error, ApiError):
        return error
    if isinstance(error, MissingContext):
        return _missing_context(error, extra)
    if isinstance(error, AgentError):
        return ApiError(502, error.message, type="agent_error", code=error.kind, extra=extra)
    if isinstance(error, WrongResource):
        return ApiError(
            403,
            str(error),
            type="permission_error",
            param="resource_id",
            code="wrong_resource",
            extra=extra,
        )
    if isinstance(error, ThreadBusy):
        return ApiError(409, str(error), code="thread_busy", retry_after=1.0, extra=extra)
    if isinstance(error, ThreadConflict):
        return ApiError(409, str(error), code="thread_conflict", extra=extra)
    if isinstance(error, ThreadNotFound):
        return ApiError(404, str(error), param="thread_id", code="thread_not_found", extra=extra)
    if isinstance(error, MemoryStoreError):
        _log.error("memory store error", error=str(error))
        return ApiError(
            503,
            "the memory store is unavailable",
            type="server_error",
            code="memory_unavailable",
            retry_after=1.0,
            extra=extra,
        )
    if isinstance(error, UpstreamError):  # a stream that broke beyond repair
        return ApiError(502, str(error), type="upstream_error", code="upstream_failed", extra=extra)
    if not isinstance(error, Exception):
        return ApiError(500, "internal error", type="server_error", code="internal_error")
    answer = from_exception(error)
    answer.extra = {**answer.extra, **extra}
    return answer


def _missing_context(error: MissingContext, extra: Mapping[str, Any]) -> ApiError:
    """400 naming the first missing key as `context.<key>`, and how to send it."""
    key = error.keys[0]
    header = "x-bastion-context-" + key.lower().replace("_", "-")
    return ApiError(
        400,
        f"context.{key}: {error.message}; send it in the body's `context` or as the "
        f"{header} header, or give the placeholder a default: {{{key}|...}}",
        param=f"context.{key}",
        code="missing_context",
        extra=extra,
    )


# --- one turn ------------------------------------------------------------------------


def find_agent(gateway: Gateway, name: str) -> Agent:
    agent = gateway.agents.get(name)
    if agent is None:
        raise ApiError(404, f"no agent {name!r}", param="name", code="agent_not_found")
    return agent


@dataclass(frozen=True, slots=True)
class Turn:
    """A run body, checked against the gateway's state, ready to run."""

    body: RunBody
    run_id: str
    context: RuntimeContext

    def arguments(self) -> dict[str, Any]:
        # `body.resource_id` is the one the caller's binding allowed (`prepare_turn`).
        return {
            "thread_id": self.body.thread_id,
            "resource_id": self.body.resource_id,
            "context": self.context,
            "run_id": self.run_id,
        }


async def prepare_turn(
    request: web.Request, agent: Agent, body: RunBody, headers: Mapping[str, str]
) -> Turn:
    """Check what the body cannot check alone (the resource against the key's binding,
    the thread against the resource), then count the run against the key's rate
    limit. Raises ApiError; nothing is written before this returns."""
    gateway = request.app[GATEWAY]
    store = gateway.agents.store
    principal = request.get(PRINCIPAL)
    if principal is not None:
        # The key's resources bind the body's resource_id (filled in for a key of one);
        # a socket's turns are judged against the token it was opened with.
        principal.check_fresh(time.time())
        body = replace(body, resource_id=principal.resource_for(body.resource_id))
    try:
        context = agent.check_context({**header_context(headers), **body.context})
        if body.thread_id is not None and agent.memory is not None:
            if body.resource_id is None:
                raise invalid(
                    "resource_id", "is required with thread_id: the user or tenant it belongs to"
                )
            if store is not None:
                thread = await store.get_thread(body.thread_id)
                if thread is not None and thread.resource_id != body.resource_id:
                    raise WrongResource(body.thread_id)
        # Steps are stored by (run, index): a second run of one id would overwrite them.
        run_id = body.run_id
        if run_id is not None and store is not None and await store.get_run(run_id) is not None:
            raise ApiError(
                409, f"a run {body.run_id!r} exists already", param="run_id", code="run_exists"
            )
    except Exception as exc:
        raise run_error(exc) from exc
    if principal is not None:
        chars = sum(len(m.content or "") for m in body.messages)
        wait = gateway.limits.admit(principal, chars // 4)
        if wait is not None:
            raise ApiError(
                429,
                f"rate limit of key {principal.name!r} reached",
                type="rate_limit_error",
                code="rate_limit_exceeded",
                retry_after=wait,
            )
    return Turn(body, body.run_id or uuid.uuid4().hex, context)


def record_usage(request: web.Request, usage: Usage) -> None:
    principal = request.get(PRINCIPAL)
    if principal is not None and usage.total_tokens:
        request.app[GATEWAY].limits.record_tokens(principal, usage.total_tokens)


# --- handlers ------------------------------------------------------------------------


def _model(plan_model: str | tuple[str | Target, ...]) -> str | list[ModelEntry]:
    if isinstance(plan_model, str):
        return plan_model
    return [
        {"model": e, "retries": None}
        if isinstance(e, str)
        else {"model": e.endpoint, "retries": e.retries}
        for e in plan_model
    ]


async def list_agents(request: web.Request) -> web.Response:
    """The agents the caller's key may use: name, description, model and tools."""
    gateway = request.app[GATEWAY]
    principal = request.get(PRINCIPAL)
    data: list[AgentInfo] = [
        {
            "name": name,
            "description": plan.config.description,
            "model": _model(plan.config.model),
            "tools": [
                {"name": t.name, "description": t.description, "parameters": t.parameters}
                for t in plan.tools
            ],
            "memory": plan.config.memory,
            "max_steps": plan.config.max_steps,
        }
        for name, plan in gateway.agents.plans.items()
        if principal is None or principal.may_use_agent(name)
    ]
    body: AgentList = {"object": "list", "data": data}
    return json_response(body)


async def generate(request: web.Request) -> web.Response:
    """Run the agent to the end; the result as JSON."""
    gateway = request.app[GATEWAY]
    with gateway.using_router():
        agent = find_agent(gateway, request.match_info["name"])
        body = parse_run(load_json(await request.read()))
        turn = await prepare_turn(request, agent, body, request.headers)
        try:
            result = await agent.generate(body.messages, **turn.arguments())
        except Exception as exc:
            raise run_error(exc, turn.run_id) from exc
    record_usage(request, result.usage)
    return json_response(result_body(result), headers={RUN_ID_HEADER: turn.run_id})


def sse(kind: str, fields: Mapping[str, Any]) -> bytes:
    return b"event: " + kind.encode() + b"\ndata: " + dumps(fields) + b"\n\n"


async def stream(request: web.Request) -> web.StreamResponse:
    """The run's events as server-sent events, ending with `finish` or `error`.
    Failures found before the run starts are plain HTTP errors; after, in-band."""
    gateway = request.app[GATEWAY]
    with gateway.using_router():
        agent = find_agent(gateway, request.match_info["name"])
        body = parse_run(load_json(await request.read()))
        turn = await prepare_turn(request, agent, body, request.headers)
        response = web.StreamResponse(
            headers={
                "Content-Type": "text/event-stream",
                "Cache-Control": "no-cache",
                "X-Accel-Buffering": "no",
                RUN_ID_HEADER: turn.run_id,
            }
        )
        await response.prepare(request)
        pending = WriteBuffer(response)
        try:
            async with aclosing(agent.stream(body.messages, **turn.arguments())) as events:
                while True:
                    # Events that are ready go out together, written before any wait.
                    try:
                        event = await next_or_flush(events, pending.flush)
                    except StopAsyncIteration:
                        break
                    error = None
                    if isinstance(event, Error):
                        error = run_error(event.exception, turn.run_id)
                    elif isinstance(event, Finished):
                        record_usage(request, event.result.usage)
                    pending.add(sse(*event_body(event, error)))
                await pending.flush()
        except ConnectionResetError:
            # The client left; leaving the block closed the run (cancelled, recorded).
            return response
    await response.write_eof()
    return response


def add_agent_routes(app: web.Application) -> None:
    """The HTTP routes; the WebSocket's are `ws.add_agent_socket_routes`."""
    app.router.add_get("/api/v1/agents", list_agents)
    app.router.add_post("/api/v1/agents/{name}/generate", generate)
    app.router.add_post("/api/v1/agents/{name}/stream", stream)
