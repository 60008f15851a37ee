"""The YAML schema (DESIGN §3) as frozen, validated pydantic models.

Durations are seconds or strings with a unit ("150ms", "2s", "5m"). Unknown keys are
errors, so a typo is caught at load time rather than silently ignored.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import (
    BeforeValidator,
    Field,
    SecretStr,
    field_validator,
    model_validator,
)

from bastion.config.fields import Duration, Frozen, PositiveDuration
from bastion.config.tracing_schema import TracingSettings
from bastion.config.transport_schema import ProxySetting, TlsConfig, check_proxy
from bastion.models.h1 import H1Target
from bastion.resilience.errors import ErrorKind


class TimeoutsConfig(Frozen):
    connect: PositiveDuration = 2.0
    headers: PositiveDuration | None = None
    # None: learned from the endpoint's observed time to first token (see `first_token:`).
    first_token: PositiveDuration | None = None
    idle: PositiveDuration = 30.0
    total: PositiveDuration = 120.0


class HealthConfig(Frozen):
    interval: PositiveDuration = 5.0
    timeout: PositiveDuration = 2.0
    mode: Literal["http", "completion", "off"] = "http"
    path: str | None = None
    healthy_after: int = Field(default=2, ge=1)
    unhealthy_after: int = Field(default=2, ge=1)


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


class BreakerSettings(Frozen):
    consecutive_failures: int = Field(default=5, ge=1)
    failure_rate: float = Field(default=0.5, gt=0, le=1)
    window: PositiveDuration = 30.0
    min_calls: int = Field(default=20, ge=1)
    open_for: PositiveDuration = 5.0
    open_for_max: PositiveDuration | None = None
    backoff: float = Field(default=2.0, ge=1)
    half_open_probes: int = Field(default=2, ge=1)


class OutlierSettings(Frozen):
    consecutive_errors: int = Field(default=5, ge=1)
    base_ejection: PositiveDuration = 30.0
    max_ejection: PositiveDuration = 300.0
    max_ejected_share: float = Field(default=0.5, ge=0, le=1)
    probe_after: Duration = 2.0


class BudgetSettings(Frozen):
    ratio: float = Field(default=0.2, ge=0)
    window: PositiveDuration = 10.0
    min_retries: int = Field(default=3, ge=0)


class EndpointConfig(Frozen):
    """One upstream deployment. `prefill` says how a stream broken mid-answer is
    continued here: `auto` (default) prefills on Anthropic and asks an OpenAI-compatible
    endpoint by instruction (OpenAI's API answers a trailing assistant message anew);
    `supported` forces prefill (vLLM, llama.cpp); `unsupported` never prefills."""

    id: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.:-]+$")
    provider: Literal["openai", "anthropic", "scripted"]
    model: str = Field(min_length=1)
    base_url: str = ""
    api_key: str | None = Field(default=None, repr=False)
    context_window: int | None = Field(default=None, gt=0)
    weight: float = Field(default=1.0, ge=0)
    max_concurrency: int | None = Field(default=None, ge=1)
    timeouts: TimeoutsConfig = TimeoutsConfig()
    health: HealthConfig | Literal[False] = HealthConfig()
    prefill: Literal["auto", "supported", "unsupported"] = "auto"
    headers: dict[str, str] = Field(default_factory=dict, repr=False)
    retry: RetryConfig = Field(default_factory=dict)
    classify: tuple[RuleConfig, ...] = ()
    breaker: BreakerSettings | None = None
    reply: str | None = None  # scripted endpoints: the fixed answer
    proxy: ProxySetting = Field(default=None, repr=False)  # may hold credentials
    tls: TlsConfig | None = None

    _proxy = field_validator("proxy")(check_proxy)

    @field_validator("base_url")
    @classmethod
    def _usable_url(cls, value: str) -> str:
        # What the upstream client will refuse at the first request, refused at load.
        if value:
            H1Target.parse(value)  # ValueError: scheme, host, port, credentials
        return value

    @model_validator(mode="after")
    def _url_for_http(self) -> EndpointConfig:
        if self.provider == "openai" and not self.base_url:
            raise ValueError("base_url is required for provider 'openai'")
        if self.reply is not None and self.provider != "scripted":
            raise ValueError("reply is only for provider 'scripted'")
        return self


class TargetConfig(Frozen):
    model: str
    retries: int | None = Field(default=None, ge=0)


class DegradedConfig(Frozen):
    message: str | None = None
    handler: str | None = Field(default=None, pattern=r"^[\w.]+:[\w.]+$")

    @model_validator(mode="after")
    def _one(self) -> DegradedConfig:
        if (self.message is None) == (self.handler is None):
            raise ValueError("give exactly one of message or handler ('module:function')")
        return self


class HedgeConfig(Frozen):
    multiplier: float = Field(default=2.0, gt=0)
    min_delay: Duration = 0.05
    max_delay: Duration = 5.0
    initial: Duration = 1.0


class GroupConfig(Frozen):
    strategy: Literal["priority", "weighted", "least-latency"] = "priority"
    targets: tuple[str | TargetConfig, ...] = Field(min_length=1)
    fallbacks: tuple[str, ...] = ()
    degraded: DegradedConfig | None = None
    retry: RetryConfig = Field(default_factory=dict)
    classify: tuple[RuleConfig, ...] = ()
    failover_on_content_filter: bool = False
    hedge: HedgeConfig | bool = False


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


class KeyConfig(Frozen):
    """An API key for the gateway's clients. `models` (model groups or endpoint ids) and
    `agents` list what it may use: absent means everything, empty means nothing. `admin`
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
    model: str | tuple[str | TargetConfig, ...]
    tools: tuple[Annotated[str, Field(pattern=r"^[\w.]+:[\w.]+$")], ...] = ()
    max_steps: int = Field(default=10, ge=1, le=100)
    memory: bool = True


class BastionConfig(Frozen):
    endpoints: tuple[EndpointConfig, ...] = Field(min_length=1)
    models: dict[str, GroupConfig] = Field(default_factory=dict)
    default_model: str | None = None
    retry: RetryConfig = Field(default_factory=dict)
    classify: tuple[RuleConfig, ...] = ()
    breaker: BreakerSettings = BreakerSettings()
    outlier: OutlierSettings = OutlierSettings()
    budget: BudgetSettings = BudgetSettings()
    deadline: PositiveDuration = 120.0
    health_checks: bool = True
    # See RouterOptions.failover_first: fail over at once while another target serves.
    failover_first: bool = True
    server: ServerSettings = ServerSettings()
    auth: AuthSettings | None = None
    tracing: TracingSettings = TracingSettings()
    # Sections that later parts of Bastion read; accepted here so one file serves all.
    memory: MemorySettings = MemorySettings()
    agents: dict[str, AgentConfig] = Field(default_factory=dict)
    state: dict[str, Any] | None = None
    mcp: dict[str, Any] | None = None

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
                ref = target if isinstance(target, str) else target.model
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
                ref = entry if isinstance(entry, str) else entry.model
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
