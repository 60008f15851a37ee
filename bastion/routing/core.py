"""The router's shared state: endpoints, their health, and the policies that apply."""

from __future__ import annotations

import itertools
import os
import random
from collections.abc import Iterable, Mapping
from typing import Generic

from bastion.models.base import Endpoint, HealthProbe
from bastion.observability.events import EventBus
from bastion.resilience.breaker import CircuitBreaker
from bastion.resilience.budget import RetryBudget
from bastion.resilience.clock import Clock
from bastion.resilience.errors import ErrorKind, Rule
from bastion.resilience.health import HealthChecker
from bastion.resilience.learned import FirstTokenLimit
from bastion.resilience.outlier import OutlierDetector
from bastion.resilience.retry import RetryPolicy
from bastion.routing.endpoints import EndpointRuntime, M
from bastion.routing.groups import ModelGroup, RetryOverrides, Target
from bastion.routing.options import RouterOptions
from bastion.routing.plan import Candidate, Plan, expand, is_static, make_plan
from bastion.routing.spec import ModelSpec, ResolvedSpec, resolve
from bastion.types import RuntimeContext

# Kinds a per-entry `retries` count applies to. The others are never retried on the
# same endpoint: a timeout moves on, a bad request or a refused prompt stays bad there.
RETRYABLE_KINDS = (
    ErrorKind.CONNECTION,
    ErrorKind.RATE_LIMITED,
    ErrorKind.UNAVAILABLE,
    ErrorKind.SERVER_ERROR,
    ErrorKind.PROTOCOL,
    ErrorKind.UNKNOWN,
)

ALL_ENDPOINTS = "*"


class RouterCore(Generic[M]):
    """Everything a request needs to be planned and its outcome recorded."""

    def __init__(
        self,
        endpoints: Iterable[tuple[Endpoint, M]],
        groups: Mapping[str, ModelGroup],
        options: RouterOptions,
        *,
        clock: Clock,
        rng: random.Random,
        bus: EventBus,
        previous: RouterCore[M] | None = None,
    ) -> None:
        self.options = options
        self.groups = dict(groups)
        self.clock = clock
        self.rng = rng
        self.bus = bus
        self.runtimes: dict[str, EndpointRuntime[M]] = {}
        self._previous = previous
        for endpoint, model in endpoints:
            if endpoint.id in self.runtimes:
                raise ValueError(f"duplicate endpoint id {endpoint.id!r}")
            override = options.endpoints.get(endpoint.id)
            breaker_config = (override.breaker if override else None) or options.breaker
            kept = previous.runtimes.get(endpoint.id) if previous is not None else None
            if (
                kept is not None
                and kept.endpoint == endpoint
                and kept.model is model
                and kept.breaker.config == breaker_config
            ):
                # Unchanged by a reload: its breaker, budget, latency and isolation
                # carry over, so a sick endpoint stays out and a healthy one stays in.
                kept.breaker.on_transition = bus.emit
                self.runtimes[endpoint.id] = kept
                continue
            self.runtimes[endpoint.id] = EndpointRuntime(
                endpoint=endpoint,
                model=model,
                breaker=CircuitBreaker(
                    endpoint.id, breaker_config, clock=clock, on_transition=bus.emit
                ),
                budget=RetryBudget(
                    ratio=options.budget.ratio,
                    window=options.budget.window,
                    min_retries=options.budget.min_retries,
                    clock=clock,
                ),
                first_token=FirstTokenLimit(options.first_token),
            )
        clash = set(self.groups) & set(self.runtimes)
        if clash:
            raise ValueError(f"names used by both a group and an endpoint: {sorted(clash)}")
        self.detectors: dict[str, OutlierDetector] = {
            ALL_ENDPOINTS: OutlierDetector(
                ALL_ENDPOINTS, self.runtimes, options.outlier, clock=clock, on_event=bus.emit
            )
        }
        for name, group in self.groups.items():
            members = [t.endpoint for t in expand(group, self.groups, self.runtimes, rng)]
            self.detectors[name] = OutlierDetector(
                name, members, options.outlier, clock=clock, on_event=bus.emit
            )
        if previous is not None:
            # Unchanged endpoints keep their ejections too, group by group.
            unchanged = frozenset(
                ep for ep, rt in self.runtimes.items() if previous.runtimes.get(ep) is rt
            )
            for name, detector in self.detectors.items():
                old = previous.detectors.get(name)
                if old is not None:
                    detector.adopt(old, unchanged)
        self._member_of: dict[str, tuple[OutlierDetector, ...]] = {
            ep: tuple(d for d in self.detectors.values() if ep in d.members) for ep in self.runtimes
        }
        self.health = HealthChecker(clock=clock, on_change=bus.emit)
        self._policies: dict[tuple[str, str, int | None], RetryPolicy] = {}
        self._rules: dict[tuple[str, str], tuple[Rule, ...]] = {}
        self._static: dict[str, tuple[ResolvedSpec, list[Target], Plan[M]]] = {}
        self._ids = itertools.count(1)
        self._id_prefix = os.urandom(3).hex()

    # --- planning ------------------------------------------------------------------

    async def plan(self, spec: ModelSpec, context: RuntimeContext) -> Plan[M]:
        cached = self._static.get(spec) if isinstance(spec, str) else None
        if cached is not None:
            resolved, targets, whole = cached
            detector = self.detectors.get(resolved.name, self.detectors[ALL_ENDPOINTS])
            # The common case, every target in service: the plan built once will do.
            # Each endpoint is asked once: asking may hand out an ejected one's probe.
            for index, candidate in enumerate(whole.candidates):
                if not self._in_service(candidate.runtime, detector):
                    asked = {c.runtime.id: True for c in whole.candidates[:index]}
                    asked[candidate.runtime.id] = False
                    return self._replan(resolved, targets, detector, asked)
            return whole
        else:
            resolved = await resolve(spec, context, self.groups, self.runtimes)
            targets = expand(resolved.group, self.groups, self.runtimes, self.rng)
            detector = self.detectors.get(resolved.name, self.detectors[ALL_ENDPOINTS])
            if isinstance(spec, str) and is_static(resolved.group, self.groups):
                # Groups never change during a router's life (a reload builds a new one).
                whole = Plan(
                    resolved.name,
                    resolved.group,
                    tuple(Candidate(self.runtimes[t.endpoint], t) for t in targets),
                )
                self._static[spec] = (resolved, targets, whole)
        return make_plan(
            resolved.name,
            resolved.group,
            targets,
            self.runtimes,
            lambda rt: self._in_service(rt, detector),
        )

    def _replan(
        self,
        resolved: ResolvedSpec,
        targets: list[Target],
        detector: OutlierDetector,
        asked: dict[str, bool],
    ) -> Plan[M]:
        def in_service(rt: EndpointRuntime[M]) -> bool:
            known = asked.get(rt.id)
            return known if known is not None else self._in_service(rt, detector)

        return make_plan(resolved.name, resolved.group, targets, self.runtimes, in_service)

    def _in_service(self, rt: EndpointRuntime[M], detector: OutlierDetector) -> bool:
        return (
            not rt.isolated
            and rt.breaker.available()
            and detector.admits(rt.id)
            and self.health.is_healthy(rt.id)
            and not rt.full
        )

    def next_request_id(self) -> str:
        return f"{self._id_prefix}-{next(self._ids)}"

    # --- policies ------------------------------------------------------------------

    def policy(self, plan: Plan[M], target: Target) -> RetryPolicy:
        """Router defaults, then the group's overrides, then the endpoint's, then the
        fallback entry's own retry count. Built once per combination."""
        key = (plan.name, target.endpoint, target.retries)
        cached = self._policies.get(key)
        if cached is not None:
            return cached
        policy = _layer(self.options.retry, plan.group.retry)
        if plan.group.failover_on_content_filter:
            policy = policy.override({ErrorKind.CONTENT_FILTER: {"failover": True}})
        endpoint_policy = self.options.endpoints.get(target.endpoint)
        if endpoint_policy is not None:
            policy = _layer(policy, endpoint_policy.retry)
        if target.retries is not None:
            policy = policy.override({k: {"retries": target.retries} for k in RETRYABLE_KINDS})
        self._policies[key] = policy
        return policy

    def rules(self, plan: Plan[M], endpoint: str) -> tuple[Rule, ...]:
        key = (plan.name, endpoint)
        cached = self._rules.get(key)
        if cached is None:
            endpoint_policy = self.options.endpoints.get(endpoint)
            own = endpoint_policy.rules if endpoint_policy else ()
            cached = (*own, *plan.group.rules, *self.options.rules)
            self._rules[key] = cached
        return cached

    # --- outcomes ------------------------------------------------------------------

    def record_outcome(self, rt: EndpointRuntime[M], ok: bool) -> None:
        for detector in self._member_of[rt.id]:
            detector.record(rt.id, ok)

    # --- health and lifecycle ------------------------------------------------------

    def start_health_checks(self) -> None:
        if not self.options.health_checks:
            return
        for rt in self.runtimes.values():
            check = rt.endpoint.health
            model = rt.model
            if check.mode == "off" or not isinstance(model, HealthProbe):
                continue

            async def probe(
                model: HealthProbe = model,
                mode: str = check.mode,
                path: str | None = check.path,
                limit: float = check.timeout,
            ) -> None:
                await model.probe(mode, path, limit)

            carried = (
                self._previous.health.tracker(rt.id)
                if self._previous is not None and self._previous.runtimes.get(rt.id) is rt
                else None
            )
            self.health.add(
                rt.id,
                probe,
                interval=check.interval,
                timeout=check.timeout,
                healthy_after=check.healthy_after,
                unhealthy_after=check.unhealthy_after,
                tracker=carried,
            )


def _layer(policy: RetryPolicy, layer: RetryPolicy | RetryOverrides) -> RetryPolicy:
    """A whole policy (perhaps with a callable) replaces; overrides refine."""
    if isinstance(layer, RetryPolicy):
        return layer
    return policy.override(layer) if layer else policy
