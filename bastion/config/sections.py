"""The config's sections for the server itself: `server:`, `auth:` and `memory:`."""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import BeforeValidator, Field, SecretStr, field_validator, model_validator

from bastion.config.errors import FieldError
from bastion.config.identity import ResourceBinding, UserTokenSettings
from bastion.config.trust import TrustSettings
from bastion.resilience.settings import (
    Count,
    Duration,
    Flag,
    Frozen,
    LongDuration,
    PositiveDuration,
)

_SIZE = re.compile(r"^\s*(\d+)\s*(b|kb|kib|mb|mib)?\s*$", re.IGNORECASE)
_SIZE_UNITS = {None: 1, "b": 1, "kb": 1000, "kib": 1024, "mb": 1000**2, "mib": 1024**2}


def _size(value: Any) -> Any:
    if isinstance(value, str):
        match = _SIZE.match(value)
        if match is None or len(match.group(1)) > 12:
            raise ValueError(f"not a size: {value!r} (use e.g. 8MiB, 512KiB, 100000)")
        unit = match.group(2).lower() if match.group(2) else None
        return int(match.group(1)) * _SIZE_UNITS[unit]
    return value


# A request body the gateway holds in memory: a GiB is past any chat request.
Size = Annotated[Count, BeforeValidator(_size), Field(gt=0, le=1024**3)]


class ServerSettings(TrustSettings):
    """`server:`. Besides where it listens and how: the trust settings
    (`tool_modules`, `env_allow`, `allow_literal_secrets`, see `bastion.config.trust`)."""

    host: str = "127.0.0.1"
    port: Annotated[Count, Field(ge=0, le=65535)] = 8080
    max_body: Size = 8 * 1024 * 1024
    # Streams in flight get this long to finish on shutdown before they are cut.
    drain_timeout: Duration = 30.0
    log_requests: Flag = False
    # A request head not whole this long after its first byte (or, for a connection's
    # first request, after the connection opened) closes the connection: a slow-loris.
    header_timeout: PositiveDuration = 10.0
    # An idle kept-alive connection is closed after this long. aiohttp's own default is
    # an hour (for load balancers with long idle timeouts); an hour of idle sockets per
    # client is a cheap way to run the process out of file descriptors. Raise it above
    # the idle timeout of a load balancer in front (AWS ALB: 60 s).
    keepalive_timeout: PositiveDuration = 75.0
    # What the memory store knows this gateway by across restarts, so that a restarted
    # gateway can let go of the leases and runs its crashed predecessor left. Unique per
    # live process; default: host name, port and config file (see README).
    replica_id: str | None = Field(default=None, max_length=200, pattern=r"^[!-~]+$")


# Per minute: a billion is past any real limit, and still an int a counter can hold.
PerMinute = Annotated[Count | None, Field(ge=1, le=1_000_000_000)]


class KeyConfig(Frozen):
    """An API key for the gateway's clients. `models` (model groups or endpoint ids) and
    `agents` list what it may use. A key naming either may use only what it names (the
    other, absent, grants nothing); a key naming neither may use everything. `admin`
    opens the control plane. Limits are per minute and per process.

    `resources` binds a key to the resources (thread owners) it may touch, and
    `require_user` makes it send an end user's token (`x-bastion-user`) on the agents'
    and the threads' routes; an admin key sees every resource and takes neither.

    The key is a `SecretStr`: reprs and dumps of the config (logs, a config endpoint)
    show asterisks, never the key."""

    key: SecretStr
    name: str = Field(min_length=1)
    models: tuple[str, ...] | None = None
    agents: tuple[str, ...] | None = None
    admin: Flag = False
    resources: ResourceBinding | None = None
    require_user: Flag = False
    requests_per_minute: PerMinute = None
    tokens_per_minute: PerMinute = None

    @field_validator("key")
    @classmethod
    def _usable(cls, value: SecretStr) -> SecretStr:
        # The messages never quote the value: it is a secret.
        secret = value.get_secret_value()
        if len(secret) < 8:
            raise ValueError("a key needs at least 8 characters")
        # Keys travel in an HTTP header, and clients (the openai SDK, curl) send only
        # visible ASCII there; a key outside it could never be presented.
        if not all("!" <= c <= "~" for c in secret):
            raise ValueError("a key may contain only visible ASCII characters, no spaces")
        return value

    @model_validator(mode="after")
    def _binding(self) -> KeyConfig:
        if self.admin and self.resources is not None:
            raise FieldError(("resources",), "an admin key sees every resource: bind app keys")
        if self.admin and self.require_user:
            raise FieldError(("require_user",), "an admin key sees every resource: bind app keys")
        if self.require_user and self.resources is not None and self.resources.id is not None:
            raise FieldError(
                ("require_user",),
                "a key bound to one resource id has no users to tell apart: bind it to a "
                "prefix, under which each user's resource is <prefix><subject>",
            )
        return self


class AuthSettings(Frozen):
    """API keys for the gateway's clients. With none, the gateway is open.
    `user_tokens` checks end users' tokens, for the keys that carry them."""

    keys: tuple[KeyConfig, ...] = ()
    user_tokens: UserTokenSettings | None = None

    @model_validator(mode="after")
    def _users(self) -> AuthSettings:
        if self.user_tokens is not None and not self.keys:
            raise FieldError(
                ("user_tokens",), "user tokens bind a key's callers: configure auth.keys too"
            )
        for index, key in enumerate(self.keys):
            if key.require_user and self.user_tokens is None:
                raise FieldError(
                    ("keys", index, "require_user"),
                    "needs auth.user_tokens: how the users' tokens are checked",
                )
        return self

    @model_validator(mode="after")
    def _unique(self) -> AuthSettings:
        names: dict[str, int] = {}
        values: dict[str, int] = {}
        for index, key in enumerate(self.keys):
            if key.name in names:
                raise FieldError(
                    ("keys", index, "name"),
                    f"duplicate key name {key.name!r} (also auth.keys[{names[key.name]}])",
                )
            names[key.name] = index
            secret = key.key.get_secret_value()
            if secret in values:
                raise FieldError(
                    ("keys", index, "key"),
                    f"this key has the same value as auth.keys[{values[secret]}]",
                )
            values[secret] = index
        return self


class MemorySettings(Frozen):
    """Where agents keep threads: `sqlite:///path.db` (default), `postgresql://…`,
    `redis://…`. Threads idle longer than `retention` are deleted by a sweep."""

    store: str = "sqlite:///bastion.db"
    last_n: Annotated[Count, Field(ge=0, le=10_000)] = 20
    retention: LongDuration | None = None
    lease_ttl: PositiveDuration = 60.0
    wait: PositiveDuration = 30.0

    @field_validator("store")
    @classmethod
    def _scheme(cls, value: str) -> str:
        if not re.match(r"^(sqlite|postgres(ql)?|rediss?)://", value):
            raise ValueError("store must start with sqlite://, postgresql:// or redis://")
        return value


__all__ = ["AuthSettings", "KeyConfig", "MemorySettings", "ServerSettings", "Size"]
