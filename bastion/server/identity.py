"""Who a caller is (`Principal`): its key's scopes, and the resources it may touch.

A key bound to resources (`auth.keys[].resources`) carries a `ResourceScope`: one id,
or every id under a prefix. An app that serves many users sends each user's identity
as a JWT in `x-bastion-user`, signed by a key the gateway knows (`auth.user_tokens`);
`UserTokens.verify` checks it with PyJWT, and the caller is then bound to that user's
one resource: `<prefix><subject>`, the prefix being the key's own (`tenant-a/`) or
`user:`.

A token's content never appears in a log line, an error or an audit entry: refusals
name the header and what is wrong with it, in words of our own, never PyJWT's message
(which may quote the token's parts).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import jwt
from jwt.algorithms import get_default_algorithms

from bastion.config.identity import MAX_RESOURCE, ResourceBinding, UserTokenSettings
from bastion.server.errors import ApiError, invalid

__all__ = [
    "USER_HEADER",
    "USER_PREFIX",
    "Principal",
    "ResourceScope",
    "UserTokenError",
    "UserTokens",
    "VerifiedUser",
    "bind_user",
    "user_token_error",
]

USER_HEADER = "x-bastion-user"
# Where a verified user's resource lives when the key names no prefix of its own.
USER_PREFIX = "user:"


@dataclass(frozen=True, slots=True)
class ResourceScope:
    """The resources a caller may touch: exactly `id`, or every id starting with
    `prefix` (exactly one of the two is set)."""

    id: str | None = None
    prefix: str | None = None

    def allows(self, resource: str) -> bool:
        if self.id is not None:
            return resource == self.id
        return self.prefix is not None and resource.startswith(self.prefix)

    def describe(self) -> str:
        if self.id is not None:
            return f"the resource {self.id!r}"
        return f"resources starting with {self.prefix!r}"


@dataclass(frozen=True, slots=True)
class VerifiedUser:
    """A token that verified: its subject, and when it stops being good (its `exp`
    plus the configured leeway, in epoch seconds)."""

    subject: str
    expires_at: float


class UserTokenError(Exception):
    """A token that does not verify. The message says why, in our words; it quotes
    nothing of the token."""


# PyJWT's refusals, most specific first, as what the caller is told.
_REASONS: tuple[tuple[type[Exception], str], ...] = (
    (jwt.ExpiredSignatureError, "the token has expired"),
    (jwt.ImmatureSignatureError, "the token is not valid yet (nbf or iat)"),
    (jwt.InvalidAudienceError, "the token is not meant for this audience (aud)"),
    (jwt.InvalidIssuerError, "the token is not from the expected issuer (iss)"),
    (jwt.InvalidAlgorithmError, "the token's algorithm is not one auth.user_tokens allows"),
    (jwt.InvalidSignatureError, "the token's signature does not verify"),
    (jwt.DecodeError, "not a well-formed JWT"),
)


class UserTokens:
    """Checks end users' tokens against `auth.user_tokens`. Built with the key ring,
    at start and on each reload."""

    def __init__(self, settings: UserTokenSettings) -> None:
        self.settings = settings
        self._algorithms = list(settings.algorithms)
        self._key: Any
        if settings.secret is not None:
            self._key = settings.secret.get_secret_value().encode()
        else:
            # Loaded once (the config checked it loads), not at every request.
            assert settings.public_key is not None  # the config requires one or the other
            self._key = get_default_algorithms()[self._algorithms[0]].prepare_key(
                settings.public_key
            )
        self._require = ["exp", settings.claim]
        if settings.issuer is not None:
            self._require.append("iss")
        if settings.audience is not None:
            self._require.append("aud")

    def verify(self, token: str, prefix: str) -> VerifiedUser:
        """The token's subject, if it verifies and `prefix` + subject is a resource id;
        else UserTokenError."""
        if not token or not token.isascii():
            raise UserTokenError("not a well-formed JWT")
        settings = self.settings
        try:
            claims = jwt.decode(
                token,
                self._key,
                algorithms=self._algorithms,
                issuer=settings.issuer,
                audience=settings.audience,
                leeway=settings.leeway,
                options={"require": self._require},
            )
        except jwt.MissingRequiredClaimError as exc:
            # The claim's name is one of ours (exp, iss, aud, the subject's claim).
            raise UserTokenError(f"the token has no {exc.claim!r} claim") from None
        except jwt.PyJWTError as exc:
            raise UserTokenError(_reason(exc)) from None
        subject = claims[settings.claim]
        if isinstance(subject, int) and not isinstance(subject, bool):
            subject = str(subject)
        if not isinstance(subject, str) or not subject or not subject.isprintable():
            raise UserTokenError(f"the token's {settings.claim!r} claim is not a usable id")
        if len(prefix) + len(subject) > MAX_RESOURCE:
            raise UserTokenError(f"the token's {settings.claim!r} claim is too long")
        expires = claims["exp"]
        if not isinstance(expires, int | float) or isinstance(expires, bool):
            raise UserTokenError("the token's 'exp' claim is not a time")
        return VerifiedUser(subject, float(expires) + settings.leeway)


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated caller. `models`/`agents` of None mean every one (see
    `Principal.scoped` for how a key's scopes become these). `resources` of None: the
    key is bound to no resource (an admin key sees them all). `expires_at`: when the
    user token the caller is bound by stops being good (epoch seconds)."""

    name: str
    admin: bool = False
    models: frozenset[str] | None = None
    agents: frozenset[str] | None = None
    resources: ResourceScope | None = None
    require_user: bool = False
    expires_at: float | None = None

    @classmethod
    def scoped(
        cls,
        name: str,
        admin: bool,
        models: Sequence[str] | None,
        agents: Sequence[str] | None,
        *,
        resources: ResourceBinding | None = None,
        require_user: bool = False,
    ) -> Principal:
        """The principal of a key with these scopes (None: the key does not name it).
        Least privilege: once a key names one scope, a scope it leaves out grants
        nothing; only a key naming neither may use everything."""
        scope = ResourceScope(resources.id, resources.prefix) if resources else None
        if models is None and agents is None:
            return cls(name, admin, resources=scope, require_user=require_user)
        return cls(
            name,
            admin,
            frozenset(models or ()),
            frozenset(agents or ()),
            resources=scope,
            require_user=require_user,
        )

    def may_use_model(self, model: str) -> bool:
        return self.models is None or model in self.models

    def may_use_agent(self, agent: str) -> bool:
        return self.agents is None or agent in self.agents

    @property
    def sees_every_resource(self) -> bool:
        """An admin key that no user's token binds."""
        return self.admin and self.resources is None

    def resource_for(self, requested: str | None) -> str | None:
        """The resource a request acts on: `requested` if the caller may touch it, the
        caller's one resource if it named none; ApiError (403 `resource_not_allowed`,
        400 when a resource must be named) otherwise. An unbound key gets `requested`."""
        scope = self.resources
        if scope is None:
            return requested
        if requested is None:
            if scope.id is not None:
                return scope.id
            raise invalid("resource_id", f"is required: the key may use {scope.describe()}")
        if not scope.allows(requested):
            raise ApiError(
                403,
                f"resource_id: the key {self.name!r} may not use the resource {requested!r} "
                f"(it may use {scope.describe()})",
                type="permission_error",
                param="resource_id",
                code="resource_not_allowed",
            )
        return requested

    def check_fresh(self, now: float) -> None:
        """ApiError(401) once the user token the caller is bound by has expired: a
        WebSocket outlives the token it was opened with."""
        if self.expires_at is not None and now >= self.expires_at:
            raise user_token_error("the token has expired")


def user_token_error(reason: str, code: str = "invalid_user_token") -> ApiError:
    """401 naming the user header and why; never the token."""
    return ApiError(
        401,
        f"{USER_HEADER}: {reason}",
        type="authentication_error",
        param=USER_HEADER,
        code=code,
    )


def bind_user(principal: Principal, users: UserTokens | None, token: str | None) -> Principal:
    """`principal` bound to the user whose token was sent, if one was; ApiError
    (401 naming the header) for a bad token, or none where the key needs one."""
    if token is None:
        if principal.require_user:
            raise user_token_error(
                f"the key {principal.name!r} acts for end users: send the user's token (a JWT)",
                code="user_token_required",
            )
        return principal
    if users is None:
        raise user_token_error("this gateway checks no user tokens (auth.user_tokens)")
    scope = principal.resources
    if scope is not None and scope.id is not None:
        raise ApiError(
            403,
            f"{USER_HEADER}: the key {principal.name!r} is bound to one resource and "
            "acts for no end users",
            type="permission_error",
            param=USER_HEADER,
            code="user_token_not_accepted",
        )
    prefix = scope.prefix if scope is not None and scope.prefix else USER_PREFIX
    try:
        user = users.verify(token.strip(), prefix)
    except UserTokenError as exc:
        raise user_token_error(str(exc)) from None
    return dataclasses.replace(
        principal, resources=ResourceScope(id=prefix + user.subject), expires_at=user.expires_at
    )


def _reason(error: Exception) -> str:
    for kind, reason in _REASONS:
        if isinstance(error, kind):
            return reason
    return "the token is not valid"
