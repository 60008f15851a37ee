"""Model specs: what a caller may say when it names "the model".

A spec is one of:
- a group name or an endpoint id: `"chat"`, `"primary"`;
- a fallback list, each entry a name or a `Target` (or `{"model": name, "retries": n}`);
- a callable of the request's `RuntimeContext`, sync or async, returning any of the
  above — chosen per request (per step, for agents).
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeAlias

from bastion.routing.groups import ModelGroup, Target
from bastion.types import RuntimeContext

SpecEntry: TypeAlias = str | Target | Mapping[str, Any]
StaticSpec: TypeAlias = str | Target | Sequence[SpecEntry]
ModelSpec: TypeAlias = StaticSpec | Callable[[RuntimeContext], StaticSpec | Awaitable[StaticSpec]]


class UnknownModel(LookupError):
    """The spec names no group and no endpoint."""

    def __init__(self, name: str) -> None:
        super().__init__(f"unknown model or endpoint: {name!r}")
        self.name = name


@dataclass(frozen=True, slots=True)
class ResolvedSpec:
    name: str
    group: ModelGroup


def _target(entry: SpecEntry) -> Target:
    if isinstance(entry, Target):
        return entry
    if isinstance(entry, str):
        return Target(entry)
    name = entry.get("model", entry.get("endpoint"))
    if not isinstance(name, str):
        raise TypeError(f"a fallback entry needs a 'model' name, got {dict(entry)!r}")
    retries = entry.get("retries")
    if retries is not None and (not isinstance(retries, int) or retries < 0):
        raise TypeError(f"'retries' of {name!r} must be a non-negative integer")
    return Target(name, retries)


async def resolve(
    spec: ModelSpec,
    context: RuntimeContext,
    groups: Mapping[str, ModelGroup],
    endpoints: Collection[str],
) -> ResolvedSpec:
    """Turn a spec into a group: a named one, or an ad-hoc priority group."""
    if callable(spec):
        produced = spec(context)
        if inspect.isawaitable(produced):
            produced = await produced
        spec = produced
    if isinstance(spec, str):
        group = groups.get(spec)
        if group is not None:
            return ResolvedSpec(spec, group)
        if spec in endpoints:
            return ResolvedSpec(spec, ModelGroup(targets=(Target(spec),)))
        raise UnknownModel(spec)
    if isinstance(spec, Target):
        entries: Sequence[SpecEntry] = (spec,)
    elif isinstance(spec, Sequence):
        entries = spec
    else:
        raise TypeError(f"not a model spec: {spec!r}")
    targets = tuple(_target(e) for e in entries)
    if not targets:
        raise TypeError("an empty fallback list names no model")
    return ResolvedSpec("+".join(t.endpoint for t in targets), ModelGroup(targets=targets))
