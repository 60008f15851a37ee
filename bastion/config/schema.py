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
    PrivateAttr,
    field_validator,
    model_validator,
)
from pydantic.dataclasses import dataclass as pydantic_dataclass

from bastion.config.durability_schema import DurabilitySettings
from bastion.config.errors import FieldError
from bastion.config.groups import Degraded, Hedge, ModelGroup, Strategy, Target, import_handler
from bastion.config.sections import AuthSettings, KeyConfig, MemorySettings, ServerSettings
from bastion.config.tracing_schema import TracingSettings
from bastion.config.transport_schema import ProxySetting, TlsConfig, check_proxy, transport_options
from bastion.config.trust import ConfigTrust
from bastion.models.base import Endpoint
from bastion.models.providers import PROVIDERS, provider
from bastion.resilience.breaker import BreakerConfig
from bastion.resilience.budget import BudgetConfig
from bastion.resilience.errors import ErrorKind
from bastion.resilience.learned import AdaptiveFirstToken
from bastion.resilience.outlier import OutlierConfig
from bastion.resilience.settings import STRICT, Count, Duration, Flag, Frozen, PositiveDuration

# Retries of one attempt: past a hundred, the deadline ends the request anyway.
Retries = Annotated[Count | None, Field(ge=0, le=100)]


class KindPolicyConfig(Frozen):
    """`attempts` is accepted as another name for `retries` (DESIGN §3 uses it)."""

    retries: Retries = None
    attempts: Retries = None
    base: Duration | None = None
    max: Duration | None = None
    failover: Flag | None = None
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
    status: Annotated[Count, Field(ge=100, le=599)] | str | None = None
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
    failover_on_content_filter: Flag = _GROUP.failover_on_content_filter
    hedge: Annotated[Hedge | None, BeforeValidator(_hedge)] = _GROUP.hedge


class AgentConfig(Frozen):
    """An agent served at /api/v1/agents/{name}. `tools` are import paths of Python
    functions decorated with `@tool` ("package.module:function")."""

    description: str = ""
    instructions: str = Field(min_length=1)
    model: str | tuple[str | Target, ...]
    tools: tuple[Annotated[str, Field(pattern=r"^[\w.]+:[\w.]+$")], ...] = ()
    max_steps: Annotated[Count, Field(ge=1, le=100)] = 10
    memory: Flag = True


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
    health_checks: Flag = True
    # See RouterOptions.failover_first: fail over at once while another target serves.
    failover_first: Flag = True
    # How long a stream waits for its first token where an endpoint sets no
    # timeouts.first_token: learned from the endpoint's observed times to first token.
    first_token: AdaptiveFirstToken = AdaptiveFirstToken()
    server: ServerSettings = ServerSettings()
    auth: AuthSettings | None = None
    tracing: TracingSettings = TracingSettings()
    memory: MemorySettings = MemorySettings()
    # Off unless given: agent runs as durable workflows (bastion.durable).
    durability: DurabilitySettings | None = None
    agents: dict[str, AgentConfig] = Field(default_factory=dict)
    state: _State = None
    mcp: _Mcp = None

    # The policy this config was judged against (see `load_config`).
    _trust: ConfigTrust | None = PrivateAttr(default=None)

    @property
    def trust(self) -> ConfigTrust | None:
        """The policy `load_config` judged this config against: the one its own
        document sets, or the one it was given. None for a config built otherwise."""
        return self._trust

    def attach_trust(self, trust: ConfigTrust) -> None:
        """Record the policy this config was judged against (`load_config` does)."""
        self._trust = trust

    @model_validator(mode="after")
    def _references(self) -> BastionConfig:
        # Each error names the entry at fault, so that it points at that entry's line.
        first: dict[str, int] = {}
        for index, endpoint in enumerate(self.endpoints):
            if endpoint.id in first:
                raise FieldError(
                    ("endpoints", index, "id"),
                    f"duplicate endpoint id {endpoint.id!r} (also endpoints[{first[endpoint.id]}])",
                )
            first[endpoint.id] = index
        for name in self.models:
            if name in first:
                raise FieldError(
                    ("models", name),
                    f"{name!r} names an endpoint too (endpoints[{first[name]}]); "
                    "a model group needs a name of its own",
                )
        known = set(first) | set(self.models)

        def check(ref: str, loc: tuple[str | int, ...]) -> None:
            if ref not in known:
                raise FieldError(loc, f"unknown endpoint or model {ref!r}")

        for name, group in self.models.items():
            for index, target in enumerate(group.targets):
                ref = target if isinstance(target, str) else target.endpoint
                check(ref, ("models", name, "targets", index))
            for index, ref in enumerate(group.fallbacks):
                check(ref, ("models", name, "fallbacks", index))
        if self.default_model is not None:
            check(self.default_model, ("default_model",))
        for name, agent in self.agents.items():
            if isinstance(agent.model, str):
                check(agent.model, ("agents", name, "model"))
            else:
                for index, entry in enumerate(agent.model):
                    ref = entry if isinstance(entry, str) else entry.endpoint
                    check(ref, ("agents", name, "model", index))
        if self.auth is not None:
            for index, key in enumerate(self.auth.keys):
                for at, ref in enumerate(key.models or ()):
                    check(ref, ("auth", "keys", index, "models", at))
                for at, ref in enumerate(key.agents or ()):
                    if ref not in self.agents:
                        raise FieldError(
                            ("auth", "keys", index, "agents", at), f"unknown agent {ref!r}"
                        )
        return self


__all__ = [
    "AgentConfig",
    "AuthSettings",
    "BastionConfig",
    "EndpointConfig",
    "GroupConfig",
    "KeyConfig",
    "MemorySettings",
    "RetryConfig",
    "RuleConfig",
    "ServerSettings",
]
