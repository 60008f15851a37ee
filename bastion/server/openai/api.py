"""`POST /v1/chat/completions`, `GET /v1/models` and `GET /v1/models/{model}`,
OpenAI-compatible.

Response headers tell what happened: `x-bastion-endpoint` (what served),
`x-bastion-attempts`, `x-bastion-overhead-ms` (the gateway's own time: the request's
wall time less the upstream attempts and the backoff between them) and
`x-bastion-degraded`. A stream's headers go out with its first token, since the
router holds the response until then so that early failures fail over invisibly.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Sequence
from itertools import count

import orjson
from aiohttp import web

from bastion.routing import Router, RouterStream, UnknownModel
from bastion.server.coalesce import WriteBuffer, next_or_flush
from bastion.server.errors import ApiError, from_exception
from bastion.server.gateway import Gateway
from bastion.server.keys import GATEWAY, PRINCIPAL
from bastion.server.openai.codec import ChunkWriter, ParsedChat, completion_body, parse_chat
from bastion.types import AttemptRecord, StreamError, StreamFinish, TextDelta, ToolCallDelta

_ids = count(1)
_prefix = os.urandom(4).hex()


def _upstream_time(attempts: Sequence[AttemptRecord]) -> float:
    return sum(a.duration + a.retry_in for a in attempts)


def _headers(
    endpoint: str | None, attempts: int, overhead: float, degraded: bool
) -> dict[str, str]:
    return {
        "x-bastion-endpoint": endpoint or "",
        "x-bastion-attempts": str(attempts),
        "x-bastion-overhead-ms": f"{max(0.0, overhead) * 1000:.3f}",
        "x-bastion-degraded": "true" if degraded else "false",
    }


def _retry_after(router: Router) -> float:
    """When to come back: the soonest an endpoint's breaker lets a probe through."""
    waits = [s.reopens_in for s in router.status() if s.reopens_in > 0]
    return min(waits) if waits else 1.0


async def chat_completions(request: web.Request) -> web.StreamResponse:
    gateway: Gateway = request.app[GATEWAY]
    started = time.monotonic()
    parsed = parse_chat(await request.read())
    principal = request.get(PRINCIPAL)
    if principal is not None and not principal.may_use_model(parsed.model):
        raise ApiError(
            403,
            f"this key may not use the model {parsed.model!r}",
            type="permission_error",
            param="model",
            code="model_not_allowed",
        )
    if principal is not None:
        wait = gateway.limits.admit(principal, parsed.request.approx_prompt_chars() // 4)
        if wait is not None:
            raise ApiError(
                429,
                f"rate limit of key {principal.name!r} reached",
                type="rate_limit_error",
                code="rate_limit_exceeded",
                retry_after=wait,
            )
    request_id = f"{_prefix}{next(_ids)}"
    with gateway.using_router() as router:
        try:
            if parsed.stream:
                stream = router.stream(parsed.request, model=parsed.model)
                return await _stream(request, gateway, stream, parsed, request_id, started)
            answer = await router.complete(parsed.request, model=parsed.model)
        except ApiError:
            raise
        except Exception as exc:
            gateway.metrics.observe_request(
                parsed.model, "error", parsed.stream, time.monotonic() - started, None
            )
            raise from_exception(exc, retry_after=_retry_after(router)) from exc
    elapsed = time.monotonic() - started
    overhead = elapsed - _upstream_time(answer.attempts)
    if principal is not None:
        gateway.limits.record_tokens(principal, answer.usage.total_tokens)
    gateway.metrics.observe_request(parsed.model, "ok", False, elapsed, overhead)
    return web.Response(
        body=completion_body(answer, request_id),
        content_type="application/json",
        headers=_headers(answer.endpoint, len(answer.attempts), overhead, answer.degraded),
    )


async def _stream(
    request: web.Request,
    gateway: Gateway,
    stream: RouterStream,
    parsed: ParsedChat,
    request_id: str,
    started: float,
) -> web.StreamResponse:
    """Relay a router stream as server-sent events. Errors before the first event are
    ordinary HTTP errors; after it, in-band error events (the headers are out)."""
    try:
        first = await stream.__anext__()
    except StopAsyncIteration:  # pragma: no cover - a router stream always finishes
        raise ApiError(502, "the stream ended before it began", type="upstream_error") from None
    now = time.monotonic()
    since = stream.serving_since
    upstream = _upstream_time(stream.attempts_so_far()) + (
        now - since if since is not None else 0.0
    )
    overhead = now - started - upstream
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream",
            "Cache-Control": "no-cache",
            **_headers(
                stream.endpoint, len(stream.attempts_so_far()) + 1, overhead, stream.degraded
            ),
        }
    )
    metrics = gateway.metrics
    metrics.observe_first_token(parsed.model, now - started)
    writer = ChunkWriter(request_id, stream.model or "")
    seams = stream.seams
    finish_reason = "error"
    usage = 0
    last = now
    pending = WriteBuffer(response)
    try:
        await response.prepare(request)
        event = first
        while True:
            if isinstance(event, TextDelta | ToolCallDelta):
                if stream.seams != seams:  # another model carries on from here
                    seams = stream.seams
                    writer.rename(stream.model or "")
                tick = time.monotonic()
                if event is not first:
                    metrics.observe_inter_token(stream.endpoint or "", tick - last)
                last = tick
                pending.add(
                    writer.text(event) if isinstance(event, TextDelta) else writer.tool_call(event)
                )
            elif isinstance(event, StreamError):
                attempts = [
                    {"endpoint": a.endpoint, "kind": a.kind, "status": a.status}
                    for a in event.attempts
                ]
                pending.add(ChunkWriter.error(event.kind, event.message, attempts))
            elif isinstance(event, StreamFinish):
                finish_reason = event.finish_reason
                usage = event.usage.total_tokens if event.usage else 0
                if finish_reason != "error":
                    report = stream.usage_report() if len(stream.attempts) > 1 else None
                    pending.add(writer.finish(event, parsed.include_usage, report))
                else:
                    pending.add(b"data: [DONE]\n\n")
                await pending.flush()
                break
            # Events already decoded go out together; the buffer is written before any wait.
            event = await next_or_flush(stream, pending.flush)
    except (ConnectionResetError, asyncio.CancelledError):
        # The client left: stop the upstream attempt at once, no tokens for nobody.
        await stream.aclose()
        raise
    principal = request.get(PRINCIPAL)
    if principal is not None and usage:
        gateway.limits.record_tokens(principal, usage)
    metrics.observe_request(
        parsed.model,
        "ok" if finish_reason != "error" else "error",
        True,
        time.monotonic() - started,
        overhead,
    )
    await response.write_eof()
    return response


def _allowed_models(request: web.Request) -> list[str]:
    """The model groups and endpoint ids of the live config that the caller may use."""
    principal = request.get(PRINCIPAL)
    router = request.app[GATEWAY].router
    return [
        name
        for name in (*router.groups, *router.endpoints)
        if principal is None or principal.may_use_model(name)
    ]


def _model_object(request: web.Request, name: str) -> dict[str, object]:
    """A model in OpenAI's shape (`client.models.retrieve`/`list` read it)."""
    created = int(request.app[GATEWAY].started_at)
    return {"id": name, "object": "model", "created": created, "owned_by": "bastion"}


async def list_models(request: web.Request) -> web.Response:
    data = [_model_object(request, name) for name in _allowed_models(request)]
    return web.Response(
        body=orjson.dumps({"object": "list", "data": data}), content_type="application/json"
    )


async def retrieve_model(request: web.Request) -> web.Response:
    """One model, if the live config has it and the key may use it; a 404 otherwise,
    so that a key learns nothing of the models outside its scope."""
    name = request.match_info["model"]
    if name not in _allowed_models(request):
        raise from_exception(UnknownModel(name))
    return web.Response(
        body=orjson.dumps(_model_object(request, name)), content_type="application/json"
    )


def add_openai_routes(app: web.Application) -> None:
    app.router.add_post("/v1/chat/completions", chat_completions)
    app.router.add_get("/v1/models", list_models)
    # `.+`: a group's name may hold a `/` ("openai/gpt-4o"), sent encoded or not.
    app.router.add_get("/v1/models/{model:.+}", retrieve_model)
