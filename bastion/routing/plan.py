"""Planning: from a resolved spec to the ordered endpoints one request will try."""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Generic

from bastion.routing.endpoints import EndpointRuntime, M
from bastion.routing.groups import ModelGroup, Target
from bastion.routing.policies import STRATEGIES
from bastion.routing.spec import UnknownModel


@dataclass(frozen=True, slots=True)
class Candidate(Generic[M]):
    runtime: EndpointRuntime[M]
    target: Target


@dataclass(frozen=True, slots=True)
class Plan(Generic[M]):
    """`candidates` in the order to try them. `panic` is set when every candidate was
    out of service and the plan tries them anyway rather than fail fast."""

    name: str
    group: ModelGroup
    candidates: tuple[Candidate[M], ...]
    panic: bool = False
    excluded: tuple[str, ...] = ()


def expand(
    group: ModelGroup,
    groups: Mapping[str, ModelGroup],
    runtimes: Mapping[str, EndpointRuntime[Any]],
    rng: random.Random,
) -> list[Target]:
    """The group's targets in strategy order, then its fallbacks; names of other groups
    expand in place; each endpoint appears once; cycles end quietly."""
    out: list[Target] = []
    _visit(group, groups, runtimes, rng, out, set(), set())
    return out


def _visit(
    group: ModelGroup,
    groups: Mapping[str, ModelGroup],
    runtimes: Mapping[str, EndpointRuntime[Any]],
    rng: random.Random,
    out: list[Target],
    seen_endpoints: set[str],
    seen_groups: set[int],
) -> None:
    # A plain recursive function, not nested closures: closures that refer to each
    # other form a reference cycle per request, which the garbage collector then has
    # to find (measured: ~25 extra collections per 1000 requests).
    if id(group) in seen_groups:
        return
    seen_groups.add(id(group))
    direct = [t for t in group.targets if t.endpoint in runtimes]
    ordered = iter(STRATEGIES[group.strategy](direct, runtimes, rng))
    names = [*(t.endpoint for t in group.targets), *group.fallbacks]
    for index, name in enumerate(names):
        if index < len(group.targets) and name in runtimes:
            target = next(ordered)  # endpoints keep their places, in strategy order
        elif name in runtimes:
            target = Target(name)
        elif name in groups:
            _visit(groups[name], groups, runtimes, rng, out, seen_endpoints, seen_groups)
            continue
        else:
            raise UnknownModel(name)
        if target.endpoint not in seen_endpoints:
            seen_endpoints.add(target.endpoint)
            out.append(target)


def is_static(group: ModelGroup, groups: Mapping[str, ModelGroup]) -> bool:
    """Whether the group's expansion is the same every time (priority order all the
    way down), so it can be computed once."""
    pending, seen = [group], set()
    while pending:
        current = pending.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        if current.strategy != "priority":
            return False
        names = (*(t.endpoint for t in current.targets), *current.fallbacks)
        pending.extend(groups[name] for name in names if name in groups)
    return True


def make_plan(
    name: str,
    group: ModelGroup,
    targets: list[Target],
    runtimes: Mapping[str, EndpointRuntime[M]],
    in_service: Callable[[EndpointRuntime[M]], bool],
) -> Plan[M]:
    """Drop isolated endpoints always, and endpoints out of service (breaker open,
    ejected, failing health checks, full) unless that leaves nothing: then panic."""
    usable = [Candidate(runtimes[t.endpoint], t) for t in targets]
    usable = [c for c in usable if not c.runtime.isolated]
    ready = [c for c in usable if in_service(c.runtime)]
    excluded = tuple(c.runtime.id for c in usable if c not in ready)
    if ready or not usable:
        return Plan(name, group, tuple(ready), excluded=excluded)
    return Plan(name, group, tuple(usable), panic=True)
