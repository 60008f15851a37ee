"""API keys, scopes and the auth middleware.

Keys come from the config (`auth.keys`, values from `${ENV}`). A client presents one as
`Authorization: Bearer <key>` (OpenAI clients) or `x-api-key: <key>` (Anthropic
clients); when both are sent, the Bearer token is the one judged. Only SHA-256 digests
of the keys are held after load, and a presented key is compared with every one of
them by `hmac.compare_digest`, without stopping at a match, so that neither the time
taken nor the memory kept tells anything about the keys. A key never appears in a
response, a log line or an error: callers are named by the key's `name`.

What a path needs (`required_access`):

- `GET /api/v1/health`: nothing (load balancers probe it without a key).
- `/api/v1/agents/{name}/...`: a key whose `agents` scope has `name`.
- `GET /api/v1/threads`, `/api/v1/threads/{id}`, `/api/v1/runs/{id}`: a key; the
  handlers show an app key only its own resources' (an admin key sees them all).
- every other path under `/api/v1/`, and `/dashboard`: an admin key (the control plane).
- everything else (`/v1/*`, `/openapi.json`, unknown paths): a key. The `models` scope is
  checked where the model is known, in the OpenAI handlers.

Scopes are least privilege: a key that names either scope (`models` or `agents`) may use
only what it names, so a key with `models: [chat]` and no `agents` may use no agent (an
agent calls models of its own, which the key may be refused). A key naming neither
scope may use every model and every agent.

Resources (who owns a thread) are bound to the caller: a key may be limited to one
resource or a prefix (`resources`), and on the agents' and the threads' routes an
`x-bastion-user` token (see `identity`) binds the request to that user's resource; a
bad token is a 401 naming the header, and so is its absence from a key that
`require_user`s one. `Principal.resource_for` judges the `resource_id` a request names.

With no keys configured the gateway is open and requests carry no principal.
Refused attempts under /api/v1/ go to the audit log.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
from collections.abc import Awaitable, Callable, Mapping
from urllib.parse import unquote

import structlog
from aiohttp import web
from multidict import CIMultiDictProxy

from bastion.config.schema import AuthSettings
from bastion.server.audit import AuditEntry, AuditLog
from bastion.server.errors import ApiError
from bastion.server.identity import (
    USER_HEADER,
    Principal,
    UserTokens,
    bind_user,
    user_token_error,
)
from bastion.server.keys import GATEWAY, PRINCIPAL
from bastion.server.limits import RateLimits

__all__ = [
    "Access",
    "AuditEntry",
    "AuditLog",
    "KeyRing",
    "Principal",
    "RateLimits",
    "actor",
    "authorize",
    "presented_key",
    "required_access",
]

_log = structlog.get_logger("bastion.server")

_CONTROL = "/api/v1/"
_AGENTS = "/api/v1/agents"
_OPEN = frozenset({("GET", "/api/v1/health"), ("HEAD", "/api/v1/health")})
_READS = frozenset({"GET", "HEAD"})
# The routes whose requests name resources, where a user's token binds the caller.
_BOUND = ("/api/v1/agents", "/api/v1/threads", "/api/v1/runs")


class Access(enum.Enum):
    """What a request must present."""

    OPEN = "open"
    KEY = "key"
    AGENT = "agent"
    RESOURCE = "resource"  # a key; the handler shows it only its resources
    ADMIN = "admin"


def required_access(method: str, path: str) -> Access:
    """The access a request needs, from its method and its path as the router matches it
    (`rel_url.path_safe`, so that an encoded `/` cannot make the two disagree)."""
    if (method, path) in _OPEN:
        return Access.OPEN
    if path == _AGENTS or path.startswith(_AGENTS + "/"):
        return Access.AGENT
    if method in _READS and _is_read_of_memory(path):
        return Access.RESOURCE
    if path.startswith(_CONTROL) or path == "/dashboard" or path.startswith("/dashboard/"):
        return Access.ADMIN
    return Access.KEY


def _is_read_of_memory(path: str) -> bool:
    """`/api/v1/threads`, `/api/v1/threads/{id}` or `/api/v1/runs/{id}` (one segment:
    the router matches a path as `path_safe` gives it, `%2F` still encoded)."""
    if path == "/api/v1/threads":
        return True
    for base in ("/api/v1/threads/", "/api/v1/runs/"):
        if path.startswith(base):
            rest = path[len(base) :]
            return bool(rest) and "/" not in rest
    return False


def _binds_users(path: str) -> bool:
    return any(path == base or path.startswith(base + "/") for base in _BOUND)


def _agent_of(path: str) -> str | None:
    """The agent named by `/api/v1/agents/{name}/...`, or None for the agent list."""
    rest = path[len(_AGENTS) + 1 :]
    name = rest.split("/", 1)[0]
    return unquote(name) if name else None


def presented_key(headers: Mapping[str, str]) -> str | None:
    """The key a request presents, or None when it presents none in a usable shape.

    Malformed headers (empty, `Bearer` alone, another scheme) count as no key, so they
    end in a clean 401. Configured keys are visible ASCII, so a value outside it could
    never match and is dropped here; that reveals nothing about the keys.
    """
    token: str | None = None
    authorization = headers.get("Authorization", "")
    scheme, _, rest = authorization.strip().partition(" ")
    if scheme.lower() == "bearer" and rest.strip():
        token = rest.strip()
    else:
        token = headers.get("x-api-key", "").strip() or None
    if token is None or not token.isascii():
        return None
    return token


def _user_token(headers: CIMultiDictProxy[str]) -> str | None:
    """The one user token a request sends. Two are refused: a proxy in front might
    pass on either, and the one judged must be the one acted on."""
    tokens = headers.getall(USER_HEADER, [])
    if len(tokens) > 1:
        raise user_token_error("send one token, not several")
    return tokens[0] if tokens else None


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode("ascii")).digest()


class KeyRing:
    """The configured keys, as digests, each with the principal it stands for."""

    def __init__(
        self, entries: tuple[tuple[bytes, Principal], ...], users: UserTokens | None = None
    ) -> None:
        self._entries = entries
        self.users = users

    @classmethod
    def from_settings(cls, auth: AuthSettings | None) -> KeyRing:
        entries = tuple(
            (
                _digest(k.key.get_secret_value()),
                Principal.scoped(
                    k.name,
                    k.admin,
                    k.models,
                    k.agents,
                    resources=k.resources,
                    require_user=k.require_user,
                ),
            )
            for k in (auth.keys if auth else ())
        )
        users = UserTokens(auth.user_tokens) if auth and auth.user_tokens else None
        if users is not None:
            for _, principal in entries:
                bound = principal.resources is not None or principal.require_user
                if not bound and not principal.admin:
                    # Said at every (re)load: such a key may name a user's resource.
                    _log.warning(
                        "a key is bound to no resources: it may name any resource_id, "
                        "end users' included (set resources or require_user)",
                        key=principal.name,
                    )
        if not entries:
            # Built at startup and on each reload: an open gateway says so every time.
            _log.warning(
                "the gateway runs without API keys: anyone who can reach it may use it "
                "and its control plane (set auth.keys to require keys)"
            )
        return cls(entries, users)

    @property
    def enabled(self) -> bool:
        """Whether keys are required at all."""
        return bool(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def authenticate(self, presented: str | None) -> Principal | None:
        """The principal whose key was presented, or None."""
        if presented is None or not presented.isascii():
            return None
        digest = _digest(presented)
        found: Principal | None = None
        # Every digest is compared, match or not: the loop's time does not depend on
        # where (or whether) the key is in the ring.
        for known, principal in self._entries:
            if hmac.compare_digest(known, digest):
                found = principal
        return found

    def bind_user(self, principal: Principal, token: str | None) -> Principal:
        """`principal` bound to the user whose token was sent (see `identity.bind_user`)."""
        return bind_user(principal, self.users, token)


def actor(request: web.Request) -> str:
    """Who a request acts as, for the audit log: the key's name, or `anonymous`."""
    principal = request.get(PRINCIPAL)
    return principal.name if isinstance(principal, Principal) else "anonymous"


def _refuse(
    request: web.Request,
    access: Access,
    error: ApiError,
    who: str,
    headers: Mapping[str, str] | None = None,
) -> web.Response:
    # Refusals under /api/v1/ (and the dashboard) are audited; a refused model call is
    # a client error like any other.
    if access is not Access.KEY:
        outcome = "unauthenticated" if error.status == 401 else "forbidden"
        request.app[GATEWAY].audit.record(who, request.method, request.path, outcome)
    # Returned rather than raised: the error middleware would drop WWW-Authenticate.
    return error.response(headers)


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


async def authorize(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Authenticate the request and check its scope; sets `request[PRINCIPAL]`.
    Called by the app's one middleware (one middleware layer costs ~2 µs a request)."""
    keys = request.app[GATEWAY].keys
    path = request.rel_url.path_safe
    access = required_access(request.method, path)
    if not keys.enabled or access is Access.OPEN:
        return await handler(request)
    principal = keys.authenticate(presented_key(request.headers))
    if principal is None:
        error = ApiError(
            401,
            "missing or invalid API key: send it as 'Authorization: Bearer <key>' "
            "or 'x-api-key: <key>'",
            type="authentication_error",
            code="invalid_api_key",
        )
        return _refuse(request, access, error, "anonymous", {"WWW-Authenticate": "Bearer"})
    if access is Access.ADMIN and not principal.admin:
        error = ApiError(
            403,
            f"the key {principal.name!r} may not use the control plane",
            type="permission_error",
            code="admin_required",
        )
        return _refuse(request, access, error, principal.name)
    if access is Access.AGENT:
        agent = _agent_of(path)
        if agent is not None and not principal.may_use_agent(agent):
            error = ApiError(
                403,
                f"the key {principal.name!r} may not use the agent {agent!r}",
                type="permission_error",
                code="agent_not_allowed",
            )
            return _refuse(request, access, error, principal.name)
    if access is not Access.KEY and _binds_users(path):  # never on the chat hot path
        try:
            principal = keys.bind_user(principal, _user_token(request.headers))
        except ApiError as error:
            return _refuse(request, access, error, principal.name)
    request[PRINCIPAL] = principal
    return await handler(request)
