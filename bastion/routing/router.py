"""The Router: plan a request, try endpoints until one answers, tell what happened.

    router = Router.from_config("bastion.yaml")
    answer = await router.complete(chat("Hello"), model="chat")
    async for event in router.stream(chat("Hello"), model=["primary", "backup"]):
        ...

`complete` and `stream` share one attempt loop shape: plan (ordered candidates minus
those out of service), then for each candidate admit → call under the attempt's time
bounds → classify a failure → retry here, fail over, or return. One deadline bounds
the whole request. When every target failed, the group's degraded answer (if any)
is returned, flagged; otherwise a FailoverError listing every attempt.
"""

from __future__ import annotations

import asyncio
import inspect
import random
from collections.abc import Awaitable, Iterable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any, Self

from bastion.config import BastionConfig
from bastion.models import build_model
from bastion.models.base import ChatModel, Closeable, Endpoint
from bastion.models.http import Transport
from bastion.observability.events import DegradedAnswer, EndpointIsolated, EventBus, EventHook
from bastion.resilience.clock import Clock, SystemClock
from bastion.routing.assemble import Assembled, complete_by_stream
from bastion.routing.attempts import CALLERS_FAULTS, RequestRun
from bastion.routing.core import RouterCore
from bastion.routing.endpoints import EndpointRuntime
from bastion.routing.engine import AttemptLoop
from bastion.routing.groups import ModelGroup
from bastion.routing.options import RouterOptions
from bastion.routing.plan import Candidate
from bastion.routing.spec import ModelSpec
from bastion.routing.status import EndpointStatus, endpoint_status
from bastion.routing.streaming import RouterStream
from bastion.routing.timing import within
from bastion.types import ChatRequest, ChatResponse, Message, RuntimeContext, Usage

_NO_CONTEXT = RuntimeContext()


class Router:
    """Routes chat requests over endpoints with failover. See the module docstring.

    A Router is itself a `ChatModel` (its `default_model` is the spec it answers for),
    so it goes wherever one model does: an `Agent`, another Router's endpoint (a model
    made of models). `Router.single(model)` wraps one model the other way round.
    """

    def __init__(
        self,
        endpoints: Iterable[Endpoint | tuple[Endpoint, ChatModel]],
        groups: Mapping[str, ModelGroup] | None = None,
        *,
        options: RouterOptions | None = None,
        default_model: ModelSpec | None = None,
        session: Transport | None = None,
        clock: Clock | None = None,
        rng: random.Random | None = None,
        hooks: Iterable[EventHook] = (),
        previous: Router | None = None,
    ) -> None:
        pairs: list[tuple[Endpoint, ChatModel]] = []
        # Models the router built are the router's to close; models handed in are not.
        self._owned: list[ChatModel] = []
        for entry in endpoints:
            if isinstance(entry, tuple):
                pairs.append(entry)
                continue
            model = previous._hand_over(entry) if previous is not None else None
            if model is None:
                model = build_model(entry, session=session)
            pairs.append((entry, model))
            self._owned.append(model)
        self.events = EventBus(tuple(hooks))
        self._core: RouterCore = RouterCore(
            pairs,
            groups or {},
            options or RouterOptions(),
            clock=clock or SystemClock(),
            rng=rng or random.Random(),
            bus=self.events,
            previous=previous._core if previous is not None else None,
        )
        self.default_model = default_model
        self._started = False

    @classmethod
    def from_config(
        cls, source: str | Path | Mapping[str, Any] | BastionConfig, **kwargs: Any
    ) -> Router:
        """Build from a YAML file path, YAML text, a parsed mapping or a validated
        config (the schema of DESIGN §3); keyword arguments go to the constructor.

        With `previous=router`, endpoints that the new config leaves unchanged keep
        their connections, breaker, ejection, health and latency state: a reload does not
        forget that an endpoint is sick."""
        from bastion.routing.configure import load_router_config

        parts = load_router_config(source)
        return cls(
            parts.endpoints,
            parts.groups,
            options=parts.options,
            default_model=parts.default_model,
            **kwargs,
        )

    @classmethod
    def single(cls, model: ChatModel, *, endpoint: str | None = None, **kwargs: Any) -> Router:
        """A router over one model (named `endpoint`, by default the model's name):
        its retries, breaker, timeouts and events, with nothing to fail over to.
        The model stays the caller's to close."""
        name = endpoint or model.model_name
        kwargs.setdefault("options", RouterOptions(health_checks=False))
        return cls(
            [(Endpoint(id=name, provider="custom", model=model.model_name), model)],
            default_model=name,
            **kwargs,
        )

    @property
    def model_name(self) -> str:
        """The name of what the router answers for by default (`ChatModel`)."""
        spec = self.default_model
        return spec if isinstance(spec, str) else "router"

    def _hand_over(self, endpoint: Endpoint) -> ChatModel | None:
        """Give an unchanged endpoint's model (and its open connections) to the router
        that replaces this one; it is then that router's to close."""
        rt = self._core.runtimes.get(endpoint.id)
        if rt is None or rt.endpoint != endpoint or rt.model not in self._owned:
            return None
        self._owned.remove(rt.model)
        return rt.model

    # --- lifecycle -----------------------------------------------------------------

    async def start(self) -> None:
        """Start active health checks (if configured). Idempotent."""
        if not self._started:
            self._started = True
            self._core.start_health_checks()
            await self._core.health.start()

    async def aclose(self) -> None:
        await self._core.health.stop()
        for model in self._owned:
            if isinstance(model, Closeable):
                await model.aclose()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    # --- requests ------------------------------------------------------------------

    async def complete(
        self,
        request: ChatRequest,
        *,
        model: ModelSpec | None = None,
        context: RuntimeContext | None = None,
        deadline: float | None = None,
    ) -> ChatResponse:
        """A complete answer, from the first target that gives one."""
        context = context if context is not None else _NO_CONTEXT
        run = await self._begin(model, context, deadline, stream=False)

        def call(candidate: Candidate) -> Awaitable[ChatResponse | Assembled]:
            rt = candidate.runtime
            if rt.streams_whole(request):
                clock = self._core.clock
                return complete_by_stream(rt, request, remaining=run.remaining(), clock=clock)
            limit, phase = rt.endpoint.timeouts.whole_answer()
            remaining = run.remaining()
            if remaining < limit:
                limit, phase = remaining, "total"
            return within(rt.model.complete(request), limit, phase=phase, endpoint=rt.id)

        loop = AttemptLoop(run)
        async for attempt in loop:
            with attempt:
                result = await attempt.call(call)
                if isinstance(result, Assembled):
                    response, ttft = result.response, result.ttft
                else:
                    response, ttft = result, None
                attempt.succeed(ttft=ttft, usage=response.usage, response_model=response.model)
                run.finish(attempt.candidate.runtime.id, True)
                # Built directly: dataclasses.replace costs twice as much on this path.
                return ChatResponse(
                    response.message,
                    response.finish_reason,
                    response.usage,
                    response.model,
                    attempt.candidate.runtime.id,
                    tuple(run.attempts),
                    response.degraded,
                    response.raw,
                )
        if loop.returned:
            run.finish(None, False)
            raise run.error()
        try:
            return await self._exhausted(run, request, context)
        except asyncio.CancelledError:
            run.finish(None, False, cancelled=True)
            raise

    def stream(
        self,
        request: ChatRequest,
        *,
        model: ModelSpec | None = None,
        context: RuntimeContext | None = None,
        deadline: float | None = None,
    ) -> RouterStream:
        """A stream of text/tool-call deltas ending in one StreamFinish, failing over
        before and after the first token; see `RouterStream`."""
        context = context if context is not None else _NO_CONTEXT

        async def begin() -> RequestRun:
            return await self._begin(model, context, deadline, stream=True)

        return RouterStream(begin, request, context, self._degraded_text)

    async def _begin(
        self,
        model: ModelSpec | None,
        context: RuntimeContext,
        deadline: float | None,
        *,
        stream: bool,
    ) -> RequestRun:
        spec = model if model is not None else self.default_model
        if spec is None:
            raise ValueError("no model given and the router has no default model")
        plan = await self._core.plan(spec, context)
        limit = deadline if deadline is not None else self._core.options.deadline
        return RequestRun(self._core, plan, deadline=limit, stream=stream)

    async def _degraded_text(
        self, run: RequestRun, request: ChatRequest, context: RuntimeContext
    ) -> str | ChatResponse | None:
        degraded = run.plan.group.degraded
        if degraded is None or run.final_kind in CALLERS_FAULTS:
            return None
        if self.events.active:
            self.events.emit(DegradedAnswer(run.request_id, run.plan.name))
        if degraded.handler is None:
            return degraded.message
        produced = degraded.handler(request, context)
        if inspect.isawaitable(produced):
            produced = await produced
        return produced

    async def _exhausted(
        self, run: RequestRun, request: ChatRequest, context: RuntimeContext
    ) -> ChatResponse:
        produced = await self._degraded_text(run, request, context)
        if produced is None:
            run.finish(None, False)
            raise run.error()
        run.finish("degraded", True)
        if isinstance(produced, ChatResponse):
            return replace(produced, degraded=True, attempts=tuple(run.attempts))
        return ChatResponse(
            message=Message(role="assistant", content=produced),
            finish_reason="stop",
            usage=Usage(),
            model="degraded",
            endpoint="degraded",
            attempts=tuple(run.attempts),
            degraded=True,
        )

    # --- control -------------------------------------------------------------------

    def isolate(self, endpoint: str) -> None:
        """Take an endpoint out of service by hand until `recover`."""
        self._runtime(endpoint).isolated = True
        self.events.emit(EndpointIsolated(endpoint, True))

    def recover(self, endpoint: str) -> None:
        self._runtime(endpoint).isolated = False
        self.events.emit(EndpointIsolated(endpoint, False))

    def status(self) -> list[EndpointStatus]:
        """A snapshot of every endpoint: breaker, ejection, health, load, counts."""
        return [endpoint_status(self._core, rt) for rt in self._core.runtimes.values()]

    @property
    def endpoints(self) -> tuple[str, ...]:
        return tuple(self._core.runtimes)

    @property
    def groups(self) -> Mapping[str, ModelGroup]:
        return self._core.groups

    def _runtime(self, endpoint: str) -> EndpointRuntime:
        try:
            return self._core.runtimes[endpoint]
        except KeyError:
            raise KeyError(f"unknown endpoint {endpoint!r}") from None
