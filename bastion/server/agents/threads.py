"""Threads and runs: what the agents keep in memory, under the control plane.

    GET    /api/v1/threads?resource_id=R[&limit=50&offset=0]  R's threads, newest first
    GET    /api/v1/threads/{id}?resource_id=R[&last=N]       the thread and its messages
    DELETE /api/v1/threads/{id}?resource_id=R                delete it and its messages
    GET    /api/v1/runs/{id}                                  a run and its steps

A thread is always asked for with the resource (user, tenant) that owns it: a thread of
another resource is refused with 403 `wrong_resource` and nothing changes. (The
agents' own endpoints answer a run on another resource's thread the same way; they
could not hide that the thread exists, since a new id would start a thread.) With
no agents configured there is no store: no threads, no runs.
"""

from __future__ import annotations

from aiohttp import web

from bastion.memory import MemoryStore, RunRecord, Thread, WrongResource
from bastion.server.agents.api import run_error
from bastion.server.agents.bodies import Deleted, ThreadList, ThreadMessages
from bastion.server.agents.codec import identifier, message_body, run_body, thread_body
from bastion.server.common import json_response
from bastion.server.errors import ApiError, invalid
from bastion.server.keys import GATEWAY

MAX_LIMIT = 200


def _int(request: web.Request, name: str, default: int | None, low: int, high: int) -> int | None:
    raw = request.query.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        value = low - 1
    if not low <= value <= high:
        raise invalid(name, f"must be an integer from {low} to {high}")
    return value


def _resource(request: web.Request) -> str:
    resource = identifier(request.query.get("resource_id"), "resource_id", required=True)
    assert resource is not None  # required=True never gives None
    return resource


def _not_found(thread_id: str) -> ApiError:
    return ApiError(404, f"no thread {thread_id!r}", param="id", code="thread_not_found")


async def _owned_thread(store: MemoryStore, thread_id: str, resource: str) -> Thread:
    """The thread, if it exists and belongs to `resource` (else 404 / WrongResource)."""
    thread = await store.get_thread(thread_id)
    if thread is None:
        raise _not_found(thread_id)
    if thread.resource_id != resource:
        raise WrongResource(thread_id)
    return thread


def _store(request: web.Request) -> MemoryStore | None:
    return request.app[GATEWAY].agents.store


async def list_threads(request: web.Request) -> web.Response:
    resource = _resource(request)
    limit = _int(request, "limit", 50, 1, MAX_LIMIT) or 50
    offset = _int(request, "offset", 0, 0, 1_000_000) or 0
    store = _store(request)
    threads = []
    if store is not None:
        try:
            threads = await store.list_threads(resource, limit=limit, offset=offset)
        except Exception as exc:
            raise run_error(exc) from exc
    page: ThreadList = {"object": "list", "data": [thread_body(t) for t in threads]}
    return json_response(page)


async def get_thread(request: web.Request) -> web.Response:
    thread_id = request.match_info["id"]
    resource = _resource(request)
    last = _int(request, "last", None, 0, 100_000)
    store = _store(request)
    if store is None:
        raise _not_found(thread_id)
    try:
        thread = await _owned_thread(store, thread_id, resource)
        messages = await store.messages(thread_id, last=last)
    except Exception as exc:
        raise run_error(exc) from exc
    body: ThreadMessages = {
        **thread_body(thread),
        "messages": [message_body(m) for m in messages],
    }
    return json_response(body)


async def delete_thread(request: web.Request) -> web.Response:
    thread_id = request.match_info["id"]
    resource = _resource(request)
    store = _store(request)
    if store is None:
        raise _not_found(thread_id)
    try:
        await _owned_thread(store, thread_id, resource)
        deleted = await store.delete_thread(thread_id)
    except Exception as exc:
        raise run_error(exc) from exc
    if not deleted:  # deleted by someone else in between
        raise _not_found(thread_id)
    deleted_body: Deleted = {"id": thread_id, "deleted": True}
    return json_response(deleted_body)


async def get_run(request: web.Request) -> web.Response:
    run_id = request.match_info["id"]
    store = _store(request)
    run: RunRecord | None = None
    if store is not None:
        try:
            run = await store.get_run(run_id)
        except Exception as exc:
            raise run_error(exc) from exc
    if run is None:
        raise ApiError(404, f"no run {run_id!r}", param="id", code="run_not_found")
    return json_response(run_body(run))


def add_thread_routes(app: web.Application) -> None:
    app.router.add_get("/api/v1/threads", list_threads)
    app.router.add_get("/api/v1/threads/{id}", get_thread)
    app.router.add_delete("/api/v1/threads/{id}", delete_thread)
    app.router.add_get("/api/v1/runs/{id}", get_run)
