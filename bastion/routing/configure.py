"""From a validated config to the objects a Router is built of."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bastion.config import BastionConfig, ConfigError, load_config
from bastion.config.groups import ModelGroup, Target
from bastion.config.schema import GroupConfig, RetryConfig, RuleConfig
from bastion.models.base import Endpoint
from bastion.resilience.errors import ClassificationRule
from bastion.routing.options import EndpointPolicy, RouterOptions


@dataclass(frozen=True, slots=True)
class RouterParts:
    endpoints: tuple[Endpoint, ...]
    groups: Mapping[str, ModelGroup]
    options: RouterOptions
    default_model: str | None


def load_router_config(source: str | Path | Mapping[str, Any] | BastionConfig) -> RouterParts:
    config = source if isinstance(source, BastionConfig) else load_config(source)
    try:
        return RouterParts(
            endpoints=config.endpoints,
            groups={name: _group(g) for name, g in config.models.items()},
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


def _group(config: GroupConfig) -> ModelGroup:
    return ModelGroup(
        targets=tuple(Target(t) if isinstance(t, str) else t for t in config.targets),
        strategy=config.strategy,
        fallbacks=config.fallbacks,
        degraded=config.degraded,
        retry=_retry(config.retry),
        rules=_rules(config.classify),
        failover_on_content_filter=config.failover_on_content_filter,
        hedge=config.hedge,
    )


def _options(config: BastionConfig) -> RouterOptions:
    defaults = RouterOptions()
    retry = defaults.retry.override(_retry(config.retry)) if config.retry else defaults.retry
    return RouterOptions(
        retry=retry,
        breaker=config.breaker,
        outlier=config.outlier,
        budget=config.budget,
        deadline=config.deadline,
        rules=_rules(config.classify),
        endpoints={
            e.id: EndpointPolicy(
                retry=_retry(e.retry),
                rules=_rules(e.classify),
                breaker=e.breaker,
            )
            for e in config.endpoints
            if e.retry or e.classify or e.breaker
        },
        health_checks=config.health_checks,
        failover_first=config.failover_first,
        first_token=config.first_token,
    )
