"""From a validated config to the objects a Router is built of."""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from bastion.config import BastionConfig, ConfigError, load_config
from bastion.config.schema import EndpointConfig, GroupConfig, RetryConfig, RuleConfig
from bastion.config.transport_schema import transport_options
from bastion.models.base import ChatModel, Endpoint, HealthCheck, Timeouts
from bastion.models.scripted import ScriptedModel
from bastion.resilience.breaker import BreakerConfig
from bastion.resilience.errors import ClassificationRule
from bastion.resilience.outlier import OutlierConfig
from bastion.routing.groups import Degraded, DegradedHandler, Hedge, ModelGroup, Target
from bastion.routing.options import BudgetConfig, EndpointPolicy, RouterOptions


@dataclass(frozen=True, slots=True)
class RouterParts:
    endpoints: tuple[Endpoint | tuple[Endpoint, ChatModel], ...]
    groups: Mapping[str, ModelGroup]
    options: RouterOptions
    default_model: str | None


def load_router_config(source: str | Path | Mapping[str, Any] | BastionConfig) -> RouterParts:
    config = source if isinstance(source, BastionConfig) else load_config(source)
    try:
        return RouterParts(
            endpoints=tuple(_endpoint(e) for e in config.endpoints),
            groups={name: _group(name, g) for name, g in config.models.items()},
            options=_options(config),
            default_model=config.default_model,
        )
    except ConfigError:
        raise
    except (ValueError, TypeError) as exc:
        raise ConfigError(str(exc)) from None


def _rules(rules: tuple[RuleConfig, ...]) -> tuple[ClassificationRule, ...]:
    out = []
    for rule in rules:
        status: int | tuple[int, int] | None
        if isinstance(rule.status, str):
            low, _, high = rule.status.partition("-")
            status = (int(low), int(high or low))
        else:
            status = rule.status
        header = next(iter(rule.header.items())) if rule.header else None
        out.append(ClassificationRule(rule.kind, status, header, rule.body))
    return tuple(out)


def _retry(retry: RetryConfig) -> dict[Any, Any]:
    return {kind: policy.overrides() for kind, policy in retry.items()}


def _endpoint(config: EndpointConfig) -> Endpoint | tuple[Endpoint, ChatModel]:
    health = config.health
    endpoint = Endpoint(
        id=config.id,
        provider=config.provider,
        model=config.model,
        base_url=config.base_url,
        api_key=config.api_key,
        context_window=config.context_window,
        weight=config.weight,
        max_concurrency=config.max_concurrency,
        timeouts=Timeouts(**config.timeouts.model_dump()),
        health=HealthCheck(mode="off") if health is False else HealthCheck(**health.model_dump()),
        prefill=config.prefill,
        headers=tuple(config.headers.items()),
        transport=transport_options(config.proxy, config.tls),
    )
    if config.provider == "scripted":
        return endpoint, ScriptedModel(model=config.model, default=config.reply or "")
    return endpoint


def _handler(path: str, where: str) -> DegradedHandler:
    module_name, _, attr = path.partition(":")
    try:
        target: Any = importlib.import_module(module_name)
        for part in attr.split("."):
            target = getattr(target, part)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"{where}: cannot import {path!r}: {exc}") from None
    if not callable(target):
        raise ConfigError(f"{where}: {path!r} is not callable")
    return cast(DegradedHandler, target)


def _group(name: str, config: GroupConfig) -> ModelGroup:
    degraded = None
    if config.degraded is not None:
        degraded = (
            Degraded(message=config.degraded.message)
            if config.degraded.handler is None
            else Degraded(handler=_handler(config.degraded.handler, f"models.{name}.degraded"))
        )
    hedge: Hedge | None = None
    if config.hedge is True:
        hedge = Hedge()
    elif config.hedge is not False:
        hedge = Hedge(**config.hedge.model_dump())
    return ModelGroup(
        targets=tuple(
            Target(t) if isinstance(t, str) else Target(t.model, t.retries) for t in config.targets
        ),
        strategy=config.strategy,
        fallbacks=config.fallbacks,
        degraded=degraded,
        retry=_retry(config.retry),
        rules=_rules(config.classify),
        failover_on_content_filter=config.failover_on_content_filter,
        hedge=hedge,
    )


def _options(config: BastionConfig) -> RouterOptions:
    defaults = RouterOptions()
    retry = defaults.retry.override(_retry(config.retry)) if config.retry else defaults.retry
    return RouterOptions(
        retry=retry,
        breaker=BreakerConfig(**config.breaker.model_dump()),
        outlier=OutlierConfig(**config.outlier.model_dump()),
        budget=BudgetConfig(**config.budget.model_dump()),
        deadline=config.deadline,
        rules=_rules(config.classify),
        endpoints={
            e.id: EndpointPolicy(
                retry=_retry(e.retry),
                rules=_rules(e.classify),
                breaker=BreakerConfig(**e.breaker.model_dump()) if e.breaker else None,
            )
            for e in config.endpoints
            if e.retry or e.classify or e.breaker
        },
        health_checks=config.health_checks,
        failover_first=config.failover_first,
    )
