"""End users' identities, and the resources a caller may touch.

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

from dataclasses import dataclass
from typing import Any

import jwt
from jwt.algorithms import get_default_algorithms

from bastion.config.identity import MAX_RESOURCE, UserTokenSettings

__all__ = [
    "USER_HEADER",
    "USER_PREFIX",
    "ResourceScope",
    "UserTokenError",
    "UserTokens",
    "VerifiedUser",
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


def _reason(error: Exception) -> str:
    for kind, reason in _REASONS:
        if isinstance(error, kind):
            return reason
    return "the token is not valid"
