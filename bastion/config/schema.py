"""The YAML schema (DESIGN §3) as frozen, validated types.

A section the runtime reads is validated straight into the runtime's type (`Endpoint`,
`Timeouts`, `HealthCheck`, `BreakerConfig`, `OutlierConfig`, `BudgetConfig`, `Hedge`,
`Target`): its defaults and checks are written once, on that type. What is here is the
config's own shape around them. Durations are seconds or strings with a unit ("150ms",
"2s", "5m"). Unknown keys are errors, so a typo is caught at load time rather than
silently ignored.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BeforeValidator,
    Field,
    SecretStr,
    field_validator,
    model_validator,
)
from pydantic.dataclasses import dataclass as pydantic_dataclass

from bastion.config.groups import Degraded, Hedge, ModelGroup, Strategy, Target, import_handler
from bastion.config.tracing_schema import TracingSettings
from bastion.config.transport_schema import ProxySetting, TlsConfig, check_proxy, transport_options
from bastion.models.base import Endpoint
from bastion.models.providers import PROVIDERS, provider
from bastion.resilience.breaker import BreakerConfig
from bastion.resilience.budget import BudgetConfig
from bastion.resilience.errors import ErrorKind
from bastion.resilience.learned import AdaptiveFirstToken
from bastion.resilience.outlier import OutlierConfig
from bastion.resilience.settings import STRICT, Duration, Frozen, PositiveDuration


class KindPolicyConfig(Frozen):
    """`attempts` is accepted as another name for `retries` (DESIGN §3 uses it)."""

    retries: int | None = Field(default=None, ge=0)
    attempts: int | None = Field(default=None, ge=0)
    base: Duration | None = None
    max: Duration | None = None
    failover: bool | None = None
    retry_after_cap: Duration | None = None

    def overrides(self) -> dict[str, Any]:
        out = {
            k: v
            for k, v in self.model_dump(exclude_none=True).items()
            if k not in ("attempts", "retries")
        }
        retries = self.retries if self.retries is not None else self.attempts
        if retries is not None:
            out["retries"] = retries
        return out


RetryConfig = dict[ErrorKind, KindPolicyConfig]


class RuleConfig(Frozen):
    """A user classification rule: every given condition must match."""

    kind: ErrorKind
    status: int | str | None = None
    header: dict[str, str] | None = None
    body: str | None = None

    @field_validator("status")
    @classmethod
    def _status(cls, value: int | str | None) -> int | str | None:
        if isinstance(value, str) and not re.fullmatch(r"\d{3}(-\d{3})?", value):
            raise ValueError("status is a code (429) or a range ('500-599')")
        return value

    @field_validator("header")
    @classmethod
    def _one_header(cls, value: dict[str, str] | None) -> dict[str, str] | None:
        if value is not None and len(value) != 1:
            raise ValueError("header is one {name: regex} pair")
        return value

    @model_validator(mode="after")
    def _some_condition(self) -> RuleConfig:
        if self.status is None and self.header is None and self.body is None:
            raise ValueError("a rule needs at least one of status, header, body")
        return self


def _registered(name: str) -> str:
    provider(name)  # ValueError naming the registered ones
    return name


# A group's defaults are ModelGroup's own.
_GROUP = ModelGroup(targets=())


@pydantic_dataclass(frozen=True, slots=True, config=STRICT)
class EndpointConfig(Endpoint):
    """An `endpoints:` entry: the `Endpoint` itself (`proxy:` and `tls:` make its
    `transport`), plus the router's policy for it
    (`retry`, `classify`, `breaker`), which is not part of what makes the endpoint the
    same endpoint across a reload. A config names only registered providers (the
    router builds every model), and ids that fit in a URL path and a metric label."""

    id: Annotated[str, Field(min_length=1, pattern=r"^[A-Za-z0-9_.:-]+$")]
    provider: Annotated[str, AfterValidator(_registered)]
    retry: RetryConfig = dataclasses.field(default_factory=dict, compare=False)
    classify: tuple[RuleConfig, ...] = dataclasses.field(default=(), compare=False)
    breaker: BreakerConfig | None = dataclasses.field(default=None, compare=False)
    # The YAML's spelling of `transport` (which they set, and which is compared).
    proxy: Annotated[ProxySetting, AfterValidator(check_proxy)] = dataclasses.field(
        default=None, repr=False, compare=False
    )  # may hold credentials
    tls: TlsConfig | None = dataclasses.field(default=None, compare=False)

    def __post_init__(self) -> None:
        Endpoint.__post_init__(self)
        if PROVIDERS[self.provider].needs_base_url and not self.base_url:
            raise ValueError(f"base_url is required for provider {self.provider!r}")
        if self.proxy is not None or self.tls is not None:
            # Derived once, at load; frozen afterwards like every other field.
            object.__setattr__(self, "transport", transport_options(self.proxy, self.tls))


def _degraded(value: Any) -> Any:
    # `handler` is an import path in a config; the group holds the callable.
    if isinstance(value, dict) and set(value) <= {"message", "handler"}:
        message, handler = value.get("message"), value.get("handler")
        if (message is None) == (handler is None):
            raise ValueError("give exactly one of message or handler ('module:function')")
        if handler is not None:
            if not isinstance(handler, str) or not re.fullmatch(r"[\w.]+:[\w.]+", handler):
                raise ValueError("handler is an import path: 'package.module:function'")
            return Degraded(handler=import_handler(handler))
        if not isinstance(message, str):
            raise ValueError("message is a string")
        return Degraded(message=message)
    return value


def _hedge(value: Any) -> Any:
    # `hedge: true` hedges with the defaults, `hedge: false` not at all.
    if value is True:
        return Hedge()
    return None if value is False else value


class GroupConfig(Frozen):
    """A `models:` entry. `classify` becomes the group's `rules` and `retry` its
    per-kind overrides; the rest are `ModelGroup`'s own fields and defaults."""

    strategy: Strategy = _GROUP.strategy
    targets: tuple[str | Target, ...] = Field(min_length=1)
    fallbacks: tuple[str, ...] = _GROUP.fallbacks
    degraded: Annotated[Degraded | None, BeforeValidator(_degraded)] = None
    retry: RetryConfig = Field(default_factory=dict)
    classify: tuple[RuleConfig, ...] = ()
    failover_on_content_filter: bool = _GROUP.failover_on_content_filter
    hedge: Annotated[Hedge | None, BeforeValidator(_hedge)] = _GROUP.hedge


_SIZE = re.compile(r"^\s*(\d+)\s*(b|kb|kib|mb|mib)?\s*$", re.IGNORECASE)
_SIZE_UNITS = {None: 1, "b": 1, "kb": 1000, "kib": 1024, "mb": 1000**2, "mib": 1024**2}


def _size(value: Any) -> Any:
    if isinstance(value, str):
        match = _SIZE.match(value)
        if match is None:
            raise ValueError(f"not a size: {value!r} (use e.g. 8MiB, 512KiB, 100000)")
        unit = match.group(2).lower() if match.group(2) else None
        return int(match.group(1)) * _SIZE_UNITS[unit]
    return value


Size = Annotated[int, BeforeValidator(_size), Field(gt=0)]


class ServerSettings(Frozen):
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    max_body: Size = 8 * 1024 * 1024
    # Streams in flight get this long to finish on shutdown before they are cut.
    drain_timeout: Duration = 30.0
    log_requests: bool = False
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


class KeyConfig(Frozen):
    """An API key for the gateway's clients. `models` (model groups or endpoint ids) and
    `agents` list what it may use. A key naming either may use only what it names (the
    other, absent, grants nothing); a key naming neither may use everything. `admin`
    opens the control plane. Limits are per minute and per process.

    The key is a `SecretStr`: reprs and dumps of the config (logs, a config endpoint)
    show asterisks, never the key."""

    key: SecretStr
    name: str = Field(min_length=1)
    models: tuple[str, ...] | None = None
    agents: tuple[str, ...] | None = None
    admin: bool = False
    requests_per_minute: int | None = Field(default=None, ge=1)
    tokens_per_minute: int | None = Field(default=None, ge=1)

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


class AuthSettings(Frozen):
    """API keys for the gateway's clients. With none, the gateway is open."""

    keys: tuple[KeyConfig, ...] = ()

    @model_validator(mode="after")
    def _unique(self) -> AuthSettings:
        names = [k.name for k in self.keys]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"duplicate key names: {', '.join(dupes)}")
        if len({k.key.get_secret_value() for k in self.keys}) != len(self.keys):
            raise ValueError("two keys have the same value")
        return self


class MemorySettings(Frozen):
    """Where agents keep threads: `sqlite:///path.db` (default), `postgresql://…`,
    `redis://…`. Threads idle longer than `retention` are deleted by a sweep."""

    store: str = "sqlite:///bastion.db"
    last_n: int = Field(default=20, ge=0)
    retention: Duration | None = None
    lease_ttl: PositiveDuration = 60.0
    wait: PositiveDuration = 30.0

    @field_validator("store")
    @classmethod
    def _scheme(cls, value: str) -> str:
        if not re.match(r"^(sqlite|postgres(ql)?|rediss?)://", value):
            raise ValueError("store must start with sqlite://, postgresql:// or redis://")
        return value


class AgentConfig(Frozen):
    """An agent served at /api/v1/agents/{name}. `tools` are import paths of Python
    functions decorated with `@tool` ("package.module:function")."""

    description: str = ""
    instructions: str = Field(min_length=1)
    model: str | tuple[str | Target, ...]
    tools: tuple[Annotated[str, Field(pattern=r"^[\w.]+:[\w.]+$")], ...] = ()
    max_steps: int = Field(default=10, ge=1, le=100)
    memory: bool = True


def _refuse(what: str) -> BeforeValidator:
    def refuse(value: Any) -> Any:
        raise ValueError(f"not implemented yet: {what}; remove the section")

    return BeforeValidator(refuse)


# In DESIGN §3 but not built: refused by name rather than accepted and ignored.
_State = Annotated[None, _refuse("shared state across processes (each keeps its own)")]
_Mcp = Annotated[None, _refuse("MCP servers as tool sources")]


class BastionConfig(Frozen):
    endpoints: tuple[EndpointConfig, ...] = Field(min_length=1)
    models: dict[str, GroupConfig] = Field(default_factory=dict)
    default_model: str | None = None
    retry: RetryConfig = Field(default_factory=dict)
    classify: tuple[RuleConfig, ...] = ()
    breaker: BreakerConfig = BreakerConfig()
    outlier: OutlierConfig = OutlierConfig()
    budget: BudgetConfig = BudgetConfig()
    # The router's defaults (RouterOptions reads them from here).
    deadline: PositiveDuration = 120.0
    health_checks: bool = True
    # See RouterOptions.failover_first: fail over at once while another target serves.
    failover_first: bool = True
    # How long a stream waits for its first token where an endpoint sets no
    # timeouts.first_token: learned from the endpoint's observed times to first token.
    first_token: AdaptiveFirstToken = AdaptiveFirstToken()
    server: ServerSettings = ServerSettings()
    auth: AuthSettings | None = None
    tracing: TracingSettings = TracingSettings()
    memory: MemorySettings = MemorySettings()
    agents: dict[str, AgentConfig] = Field(default_factory=dict)
    state: _State = None
    mcp: _Mcp = None

    @model_validator(mode="after")
    def _references(self) -> BastionConfig:
        ids = [e.id for e in self.endpoints]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ValueError(f"duplicate endpoint ids: {', '.join(dupes)}")
        known = set(ids) | set(self.models)
        clash = sorted(set(ids) & set(self.models))
        if clash:
            raise ValueError(f"names used by both an endpoint and a model: {', '.join(clash)}")
        for name, group in self.models.items():
            for target in group.targets:
                ref = target if isinstance(target, str) else target.endpoint
                if ref not in known:
                    raise ValueError(f"models.{name}.targets: unknown endpoint or model {ref!r}")
            for ref in group.fallbacks:
                if ref not in known:
                    raise ValueError(f"models.{name}.fallbacks: unknown endpoint or model {ref!r}")
        if self.default_model is not None and self.default_model not in known:
            raise ValueError(f"default_model: unknown endpoint or model {self.default_model!r}")
        for name, agent in self.agents.items():
            refs = [agent.model] if isinstance(agent.model, str) else agent.model
            for entry in refs:
                ref = entry if isinstance(entry, str) else entry.endpoint
                if ref not in known:
                    raise ValueError(f"agents.{name}.model: unknown endpoint or model {ref!r}")
        if self.auth is not None:
            agents = set(self.agents or {})
            for index, key in enumerate(self.auth.keys):
                for ref in key.models or ():
                    if ref not in known:
                        raise ValueError(
                            f"auth.keys[{index}].models: unknown endpoint or model {ref!r}"
                        )
                for ref in key.agents or ():
                    if ref not in agents:
                        raise ValueError(f"auth.keys[{index}].agents: unknown agent {ref!r}")
        return self
