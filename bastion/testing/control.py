"""The `/_fleet/*` routes: script a fake upstream from another process.

    PUT    /_fleet/default    a fault, or {"fault": {...}, "model": "name"}
    POST   /_fleet/script     a fault, a list of faults, or {"faults": [...], "model": "name"}
    DELETE /_fleet/script     drop every queued fault
    POST   /_fleet/heal       back to healthy (no queued faults, every default ok)
    GET    /_fleet/attempts   {"upstream", "attempts": [AttemptLog...], "probes", "queued"}
    DELETE /_fleet/attempts   forget attempts and probes
    GET    /_fleet/continuation  how a cut answer is continued:
                                 {"prefill", "instruct", "overlap_words"}
    PUT    /_fleet/continuation  change some of those (heal restores them)

Bad input gets a 400 whose `error.field` names what was wrong.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any

import orjson
from aiohttp import web

from bastion.testing.faults import Fault
from bastion.testing.params import FaultError

if TYPE_CHECKING:
    from bastion.testing.server import FakeUpstream

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def control_routes(upstream: FakeUpstream) -> list[web.RouteDef]:
    """The control routes of `upstream`, to add to its application."""

    async def put_default(request: web.Request) -> web.StreamResponse:
        fault, model = _one_fault(await _json(request))
        upstream.set_default(fault, model=model)
        return _ok({"default": fault.to_dict(), "model": model})

    async def post_script(request: web.Request) -> web.StreamResponse:
        faults, model = _many_faults(await _json(request))
        upstream.script(*faults, model=model)
        return _ok({"queued": _queued(upstream)})

    async def delete_script(request: web.Request) -> web.StreamResponse:
        upstream.clear_script()
        return _ok({"queued": {}})

    async def post_heal(request: web.Request) -> web.StreamResponse:
        upstream.heal()
        return _ok({"healed": True})

    async def get_attempts(request: web.Request) -> web.StreamResponse:
        return _ok(
            {
                "upstream": upstream.name,
                "attempts": [a.to_dict() for a in upstream.attempts],
                "probes": upstream.probes,
                "queued": _queued(upstream),
            }
        )

    async def delete_attempts(request: web.Request) -> web.StreamResponse:
        upstream.clear_attempts()
        return _ok({"attempts": []})

    async def get_continuation(request: web.Request) -> web.StreamResponse:
        return _ok(upstream.settings.continuation())

    async def put_continuation(request: web.Request) -> web.StreamResponse:
        upstream.settings = upstream.settings.with_continuation(await _json(request))
        return _ok(upstream.settings.continuation())

    return [
        web.get("/_fleet/continuation", get_continuation),
        web.put("/_fleet/continuation", _validated(put_continuation)),
        web.put("/_fleet/default", _validated(put_default)),
        web.post("/_fleet/script", _validated(post_script)),
        web.delete("/_fleet/script", delete_script),
        web.post("/_fleet/heal", post_heal),
        web.get("/_fleet/attempts", get_attempts),
        web.delete("/_fleet/attempts", delete_attempts),
    ]


def _validated(handler: Handler) -> Handler:
    async def wrapped(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except FaultError as exc:
            return _ok({"error": {"message": str(exc), "field": exc.field}}, status=400)

    return wrapped


async def _json(request: web.Request) -> Any:
    try:
        return orjson.loads(await request.read())
    except orjson.JSONDecodeError:
        raise FaultError("body", "not valid JSON") from None


def _envelope(data: Any, key: str) -> tuple[Any, str | None]:
    """Split `{key: ..., "model": ...}` into its parts; anything else is the payload."""
    if not (isinstance(data, Mapping) and key in data):
        return data, None
    for name in data:
        if name not in (key, "model"):
            raise FaultError(name, f"unknown field; expected {key!r} and optional 'model'")
    model = data.get("model")
    if model is not None and not isinstance(model, str):
        raise FaultError("model", f"expected a string or null, got {model!r}")
    return data[key], model


def _one_fault(data: Any) -> tuple[Fault, str | None]:
    payload, model = _envelope(data, "fault")
    return Fault.from_dict(payload), model


def _many_faults(data: Any) -> tuple[tuple[Fault, ...], str | None]:
    payload, model = _envelope(data, "faults")
    if isinstance(payload, Mapping):
        payload = [payload]
    if not isinstance(payload, list):
        raise FaultError("faults", "expected a fault or a list of faults")
    faults = []
    for i, item in enumerate(payload):
        try:
            faults.append(Fault.from_dict(item))
        except FaultError as exc:
            raise FaultError(f"faults[{i}].{exc.field}", exc.message) from None
    return tuple(faults), model


def _queued(upstream: FakeUpstream) -> dict[str, int]:
    return {model or "*": count for model, count in upstream.queued.items()}


def _ok(data: Mapping[str, Any], status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(data), status=status, content_type="application/json")
