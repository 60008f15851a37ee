"""Planning: from a resolved spec to the ordered endpoints one request will try."""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from bastion.routing.endpoints import EndpointRuntime
from bastion.routing.groups import ModelGroup, Target
from bastion.routing.policies import STRATEGIES
from bastion.routing.spec import UnknownModel


@dataclass(frozen=True, slots=True)
class Candidate:
    runtime: EndpointRuntime
    target: Target


@dataclass(frozen=True, slots=True)
class Plan:
    """`candidates` in the order to try them. `panic` is set when every candidate was
    out of service and the plan tries them anyway rather than fail fast."""

    name: str
    group: ModelGroup
    candidates: tuple[Candidate, ...]
    panic: bool = False
    excluded: tuple[str, ...] = ()


def expand(
    group: ModelGroup,
    groups: Mapping[str, ModelGroup],
    runtimes: Mapping[str, EndpointRuntime],
    rng: random.Random,
) -> list[Target]:
    """The group's targets in strategy order, then its fallbacks; names of other groups
    expand in place; each endpoint appears once; cycles end quietly."""
    out: list[Target] = []
    seen_endpoints: set[str] = set()
    seen_groups: set[int] = set()

    def visit(g: ModelGroup) -> None:
        if id(g) in seen_groups:
            return
        seen_groups.add(id(g))
        direct = [t for t in g.targets if t.endpoint in runtimes]
        ordered = iter(STRATEGIES[g.strategy](direct, runtimes, rng))
        # Keep nested group names where they stand in the list; order only endpoints.
        for target in g.targets:
            if target.endpoint in runtimes:
                add(next(ordered))
            else:
                visit_name(target.endpoint)
        for name in g.fallbacks:
            visit_name(name)

    def visit_name(name: str) -> None:
        if name in runtimes:
            add(Target(name))
        elif name in groups:
            visit(groups[name])
        else:
            raise UnknownModel(name)

    def add(target: Target) -> None:
        if target.endpoint not in seen_endpoints:
            seen_endpoints.add(target.endpoint)
            out.append(target)

    visit(group)
    return out


def make_plan(
    name: str,
    group: ModelGroup,
    targets: list[Target],
    runtimes: Mapping[str, EndpointRuntime],
    in_service: Callable[[EndpointRuntime], bool],
) -> Plan:
    """Drop isolated endpoints always, and endpoints out of service (breaker open,
    ejected, failing health checks, full) unless that leaves nothing: then panic."""
    usable = [Candidate(runtimes[t.endpoint], t) for t in targets]
    usable = [c for c in usable if not c.runtime.isolated]
    ready = [c for c in usable if in_service(c.runtime)]
    excluded = tuple(c.runtime.id for c in usable if c not in ready)
    if ready or not usable:
        return Plan(name, group, tuple(ready), excluded=excluded)
    return Plan(name, group, tuple(usable), panic=True)
