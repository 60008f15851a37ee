"""Who owns a thread: `auth.keys[].resources` and `auth.user_tokens`.

Threads belong to resources (a user, a tenant), and a key may be bound to the
resources it may touch: one `id`, or every id under a `prefix`. A key may also take an
end user's identity from a signed token (a JWT, `x-bastion-user`), checked against
`auth.user_tokens`; the resource is then the verified subject's own.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, Field, SecretStr, field_validator, model_validator

from bastion.resilience.settings import Duration, Frozen

# As thread and resource ids are (`server.agents.bodies.Identifier`): printable, ≤ 256.
MAX_RESOURCE = 256

HMAC_ALGORITHMS = ("HS256", "HS384", "HS512")
KEY_ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512")
Algorithm = Literal[
    "HS256",
    "HS384",
    "HS512",
    "RS256",
    "RS384",
    "RS512",
    "PS256",
    "PS384",
    "PS512",
    "ES256",
    "ES384",
    "ES512",
]
# RFC 7518 §3.2: an HMAC key at least as long as the hash's output.
_MIN_SECRET = {"HS256": 32, "HS384": 48, "HS512": 64}


def _printable(value: str) -> str:
    if not value.isprintable():
        raise ValueError("must be printable characters only")
    return value


ResourceText = Annotated[
    str, Field(min_length=1, max_length=MAX_RESOURCE), AfterValidator(_printable)
]


class ResourceBinding(Frozen):
    """`auth.keys[].resources`: the one resource `id` a key may use (a run or a read
    that names none gets it), or the `prefix` every resource it names must start with
    (`tenant-a/`)."""

    id: ResourceText | None = None
    # Room for at least one character after it.
    prefix: Annotated[ResourceText, Field(max_length=MAX_RESOURCE - 1)] | None = None

    @model_validator(mode="after")
    def _one(self) -> ResourceBinding:
        if (self.id is None) == (self.prefix is None):
            raise ValueError("give either id (one resource) or prefix (resources under it)")
        return self


class UserTokenSettings(Frozen):
    """`auth.user_tokens`: how an end user's token (`x-bastion-user: <JWT>`) is checked.

    `secret` for the HMAC algorithms (HS256…), `public_key` (PEM) for the others
    (RS256, ES256…, which need the `cryptography` package); one family per gateway, so
    that a public key is never taken for an HMAC secret. A token must carry `exp` and
    the `claim` naming its subject (`sub`), and `iss`/`aud` when `issuer`/`audience`
    are set; `leeway` forgives clocks that disagree by that much."""

    secret: SecretStr | None = None
    public_key: str | None = Field(default=None, min_length=1)
    algorithms: tuple[Algorithm, ...] = Field(default=("HS256",), min_length=1)
    issuer: str | None = Field(default=None, min_length=1)
    audience: str | None = Field(default=None, min_length=1)
    claim: str = Field(default="sub", min_length=1, max_length=100)
    leeway: Duration = 0.0

    @field_validator("algorithms")
    @classmethod
    def _one_family(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if any(a in HMAC_ALGORITHMS for a in value) and any(a in KEY_ALGORITHMS for a in value):
            raise ValueError(
                "mix no HMAC algorithm (HS*) with public-key ones (RS*, PS*, ES*): a public "
                "key must never be usable as an HMAC secret"
            )
        return value

    @property
    def hmac(self) -> bool:
        """Whether tokens are checked with the shared `secret` (else the `public_key`)."""
        return self.algorithms[0] in HMAC_ALGORITHMS

    @model_validator(mode="after")
    def _key(self) -> UserTokenSettings:
        # The messages never quote the secret or the key.
        if self.hmac:
            if self.secret is None:
                raise ValueError(f"{self.algorithms[0]} checks tokens with a secret: set secret")
            if self.public_key is not None:
                raise ValueError("an HMAC algorithm takes a secret, not a public_key")
            need = max(_MIN_SECRET[a] for a in self.algorithms)
            if len(self.secret.get_secret_value().encode()) < need:
                raise ValueError(
                    f"secret: {'/'.join(self.algorithms)} needs a secret of at least {need} bytes"
                )
            return self
        if self.public_key is None:
            raise ValueError(
                f"{self.algorithms[0]} checks tokens with a public key: set public_key"
            )
        if self.secret is not None:
            raise ValueError("a public-key algorithm takes a public_key, not a secret")
        _check_public_key(self.public_key, self.algorithms)
        return self


def _check_public_key(pem: str, algorithms: tuple[str, ...]) -> None:
    """Load the key as each algorithm would, so that a bad key stops the start rather
    than failing every request."""
    from jwt.algorithms import get_default_algorithms
    from jwt.exceptions import InvalidKeyError

    known = get_default_algorithms()
    for name in algorithms:
        if name not in known:
            raise ValueError(f"{name} needs the cryptography package: pip install 'pyjwt[crypto]'")
        try:
            key = known[name].prepare_key(pem)
        except (InvalidKeyError, ValueError, TypeError):
            raise ValueError(f"public_key is not a PEM public key {name} can use") from None
        if hasattr(key, "public_key"):  # only private keys derive a public one
            raise ValueError("public_key holds a private key: give its public key")


__all__ = ["Algorithm", "ResourceBinding", "UserTokenSettings"]
