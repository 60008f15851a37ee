"""Threads and runs: what the agents keep in memory.

    GET    /api/v1/threads?resource_id=R[&limit=50&offset=0]  R's threads, newest first
    GET    /api/v1/threads/{id}?resource_id=R[&last=N]       the thread and its messages
    DELETE /api/v1/threads/{id}?resource_id=R                delete it (admin keys only)
    GET    /api/v1/runs/{id}                                  a run and its steps

A thread is always asked for with the resource (user, tenant) that owns it: a thread of
another resource is refused with 403 `wrong_resource` and nothing changes. (The
agents' own endpoints answer a run on another resource's thread the same way; they
could not hide that the thread exists, since a new id would start a thread.) With
no agents configured there is no store: no threads, no runs.

Admin keys read every resource's. An app key reads only the resources it is bound to
(`Principal.resource_for`): a resource outside them is a 403 `resource_not_allowed`,
a key bound to one resource (or a user's token) may leave `resource_id` out, and a
run of another resource is not found, as though it did not exist (run ids are the
callers' to choose). An app key bound to nothing reads nothing.
"""

from __future__ import annotations

from aiohttp import web

from bastion.memory import MemoryStore, RunRecord, Thread, WrongResource
from bastion.server.agents.api import run_error
from bastion.server.agents.bodies import Deleted, ThreadList, ThreadMessages
from bastion.server.agents.codec import identifier, message_body, run_body, thread_body
from bastion.server.auth import Principal
from bastion.server.common import json_response
from bastion.server.errors import ApiError, invalid
from bastion.server.keys import GATEWAY, PRINCIPAL

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


def _reader(request: web.Request) -> Principal | None:
    """The caller, if it reads only some resources (None: an open gateway or an admin
    key, which read them all); 403 for an app key bound to none."""
    principal: Principal | None = request.get(PRINCIPAL)
    if principal is None or principal.sees_every_resource:
        return None
    if principal.resources is None:
        raise ApiError(
            403,
            f"the key {principal.name!r} is bound to no resources, so it reads no threads "
            "or runs: bind it (auth.keys[].resources) or send a user's token "
            "(x-bastion-user)",
            type="permission_error",
            param="resource_id",
            code="resource_not_allowed",
        )
    return principal


def _resource(request: web.Request) -> str:
    """The resource a request names (`resource_id`), as the caller may read it."""
    reader = _reader(request)
    resource = identifier(request.query.get("resource_id"), "resource_id")
    if reader is not None:
        resource = reader.resource_for(resource)
    if resource is None:
        raise invalid("resource_id", "is required: the user or tenant the threads belong to")
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
    reader = _reader(request)
    store = _store(request)
    run: RunRecord | None = None
    if store is not None:
        try:
            run = await store.get_run(run_id)
        except Exception as exc:
            raise run_error(exc) from exc
    if run is None or not _may_read(reader, run):
        raise ApiError(404, f"no run {run_id!r}", param="id", code="run_not_found")
    return json_response(run_body(run))


def _may_read(reader: Principal | None, run: RunRecord) -> bool:
    if reader is None:
        return True
    scope = reader.resources
    return scope is not None and run.resource_id is not None and scope.allows(run.resource_id)


def add_thread_routes(app: web.Application) -> None:
    app.router.add_get("/api/v1/threads", list_threads)
    app.router.add_get("/api/v1/threads/{id}", get_thread)
    app.router.add_delete("/api/v1/threads/{id}", delete_thread)
    app.router.add_get("/api/v1/runs/{id}", get_run)
