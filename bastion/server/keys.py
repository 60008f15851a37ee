"""Typed keys for what the app and each request carry."""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from aiohttp import web

if TYPE_CHECKING:
    from bastion.server.auth import Principal
    from bastion.server.gateway import Gateway

GATEWAY: web.AppKey[Gateway] = web.AppKey("bastion.gateway")
# The authenticated caller, set by the auth middleware; absent when the gateway runs
# without keys.
# aiohttp < 3.14 has no RequestKey; there a plain string key does the same job.
PRINCIPAL: web.RequestKey[Principal] = (
    web.RequestKey("bastion.principal")
    if hasattr(web, "RequestKey")
    else cast("web.RequestKey[Principal]", "bastion.principal")
)
