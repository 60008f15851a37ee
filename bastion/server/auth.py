"""API keys, scopes, per-key limits and the audit log. (Minimal; being completed.)"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import structlog
from aiohttp import web

from bastion.config.schema import AuthSettings
from bastion.server.keys import GATEWAY, PRINCIPAL


@dataclass(frozen=True, slots=True)
class Principal:
    name: str
    admin: bool = False
    models: frozenset[str] | None = None
    agents: frozenset[str] | None = None

    def may_use_model(self, model: str) -> bool:
        return self.models is None or model in self.models

    def may_use_agent(self, agent: str) -> bool:
        return self.agents is None or agent in self.agents


class KeyRing:
    def __init__(self, keys: dict[str, Principal]) -> None:
        self._keys = keys

    @classmethod
    def from_settings(cls, auth: AuthSettings | None) -> KeyRing:
        keys = {
            k.key: Principal(
                k.name,
                k.admin,
                frozenset(k.models) if k.models is not None else None,
                frozenset(k.agents) if k.agents is not None else None,
            )
            for k in (auth.keys if auth else ())
        }
        return cls(keys)

    @property
    def enabled(self) -> bool:
        return bool(self._keys)

    def authenticate(self, presented: str | None) -> Principal | None:
        if presented is None:
            return None
        found = None
        for key, principal in self._keys.items():
            if hmac.compare_digest(key.encode(), presented.encode()):
                found = principal
        return found


class RateLimits:
    def __init__(self, auth: AuthSettings | None) -> None:
        self._auth = auth

    def reconfigured(self, auth: AuthSettings | None) -> RateLimits:
        return RateLimits(auth)

    def admit(self, principal: Principal, tokens: int) -> float | None:
        return None

    def record_tokens(self, principal: Principal, tokens: int) -> None:
        return None


class AuditLog:
    def __init__(self) -> None:
        self._log = structlog.get_logger("bastion.audit")

    def record(self, actor: str, action: str, target: str, outcome: str) -> None:
        self._log.info("audit", actor=actor, action=action, target=target, outcome=outcome)


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    keys = request.app[GATEWAY].keys
    if keys.enabled and request.path != "/api/v1/health":
        header = request.headers.get("Authorization", "")
        presented = header[7:] if header.lower().startswith("bearer ") else None
        principal = keys.authenticate(presented)
        if principal is None:
            from bastion.server.errors import ApiError

            raise ApiError(
                401,
                "missing or invalid API key",
                type="authentication_error",
                code="invalid_api_key",
            )
        request[PRINCIPAL] = principal
    return await handler(request)
