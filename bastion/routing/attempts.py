"""One request's walk through its plan: admission, outcomes, decisions, the record.

`RequestRun` holds what one request has learned so far (its attempts, its deadline,
the smallest context window known to be too small) and turns each outcome into a
decision. Admitting a call on an endpoint gives a `Slot`, which is closed exactly
once: by a success, by a failure (which returns the decision), or by a release (no
verdict: cancelled, or lost a hedge). It performs no I/O of its own; the attempt
engine (`routing/engine.py`) carries its decisions out.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic

from bastion.models.http_errors import error_fields, scrub_secrets
from bastion.observability.events import (
    AttemptFinished,
    FailedOver,
    PanicMode,
    RequestFinished,
    RetryScheduled,
)
from bastion.resilience.errors import (
    ENDPOINT_FAULTS,
    Classification,
    ErrorKind,
    UpstreamError,
    UpstreamTimeout,
    classify,
)
from bastion.resilience.retry import Action, Decision, FailureInfo
from bastion.routing.core import RouterCore
from bastion.routing.endpoints import EndpointRuntime, M
from bastion.routing.errors import FailoverError, NoTargetAvailable, UpstreamDetail
from bastion.routing.plan import Candidate, Plan
from bastion.types import AttemptRecord, Usage

# Failures that are the caller's to fix: the upstream's own words go back to them, and
# they are the caller's answer (never a reason for a degraded reply).
CALLERS_FAULTS = frozenset(
    {ErrorKind.INVALID_REQUEST, ErrorKind.CONTEXT_LENGTH, ErrorKind.CONTENT_FILTER}
)

# A 429 storm is the endpoint telling us to back off: it counts against the breaker
# so that a sustained storm opens it and traffic moves elsewhere instead of hammering.
BREAKER_FAULTS = ENDPOINT_FAULTS | {ErrorKind.RATE_LIMITED}


@dataclass(frozen=True, slots=True)
class Outcome:
    classification: Classification
    decision: Decision


class Slot(Generic[M]):
    """One admitted call on an endpoint. Closed exactly once — `succeed`, `fail` or
    `release` — so the endpoint's in-flight count and its breaker's probe slot are
    always given back; closing twice is a no-op, so `release` is safe in a `finally`."""

    __slots__ = ("candidate", "hedge", "open", "retries", "run", "started")

    def __init__(
        self, run: RequestRun[M], candidate: Candidate[M], retries: int, hedge: bool
    ) -> None:
        self.run = run
        self.candidate = candidate
        self.retries = retries
        self.hedge = hedge
        self.started = run.core.clock.now()
        self.open = True

    @property
    def runtime(self) -> EndpointRuntime[M]:
        return self.candidate.runtime

    def succeed(
        self,
        *,
        ttft: float | None = None,
        usage: Usage | None = None,
        response_model: str | None = None,
    ) -> None:
        """Record an answer. `usage` is the upstream's count, when it gave one."""
        if self.open:
            self.open = False
            self.run._succeeded(self, ttft, usage, response_model)

    def fail(
        self, error: Exception, *, others_racing: bool = False, alternative: bool = False
    ) -> Outcome:
        """Record a failure and decide what follows it. With `others_racing` (a hedge
        is still running), nothing is retried here: the race goes on instead. With
        `alternative` (another target is in service), a retry becomes a failover
        unless the router's `failover_first` is off or the target set its own count."""
        self.open = False
        return self.run._failed(self, error, others_racing, alternative)

    def release(self) -> None:
        """The call ended with no verdict on the endpoint (cancelled, lost a hedge)."""
        if self.open:
            self.open = False
            rt = self.candidate.runtime
            rt.in_flight -= 1
            rt.breaker.release()


class RequestRun(Generic[M]):
    def __init__(
        self, core: RouterCore[M], plan: Plan[M], *, deadline: float, stream: bool
    ) -> None:
        self.core = core
        self.plan = plan
        self.stream = stream
        self.request_id = core.next_request_id()
        self.started = core.clock.now()
        self.deadline_at = self.started + deadline
        self.attempts: list[AttemptRecord] = []
        self.errors: list[Exception] = []
        self.final_kind: ErrorKind | None = None
        self.finished = False
        self._too_small: int | None = None
        self._unknown_window_failed = False
        self._budget_counted: set[str] = set()
        if plan.panic and core.bus.active:
            core.bus.emit(PanicMode(self.request_id, tuple(c.runtime.id for c in plan.candidates)))
        # With nothing to try, the group's degraded answer (if any) is still an answer:
        # the loop then ends at once and the strategy serves it.
        if not plan.candidates and plan.group.degraded is None:
            raise NoTargetAvailable(plan.name, plan.excluded)

    def remaining(self) -> float:
        return self.deadline_at - self.core.clock.now()

    def eligible(self, candidate: Candidate[M]) -> bool:
        """After a context-length error, only a larger window may be tried."""
        window = candidate.runtime.endpoint.context_window
        if self._too_small is not None:
            return window is not None and window > self._too_small
        if self._unknown_window_failed:
            return window is not None
        return True

    def admit(
        self, candidate: Candidate[M], *, retries: int = 0, hedge: bool = False
    ) -> Slot[M] | None:
        """Reserve a call on the candidate's endpoint: its breaker must let it through
        (unless the plan is in panic mode) and it must have room. Counted in the
        endpoint's retry budget once. A retry refused here (the breaker just opened)
        is a failover."""
        rt = candidate.runtime
        if rt.full or (not self.plan.panic and not rt.breaker.try_acquire()):
            if retries and self.core.bus.active:
                kind = self.attempts[-1].kind if self.attempts else None
                reason = "endpoint full" if rt.full else "breaker open"
                self.core.bus.emit(FailedOver(self.request_id, rt.id, kind or "", reason))
            return None
        if rt.id not in self._budget_counted:
            self._budget_counted.add(rt.id)
            rt.budget.record_request()
        rt.in_flight += 1
        return Slot(self, candidate, retries, hedge)

    def _succeeded(
        self,
        slot: Slot[M],
        ttft: float | None,
        usage: Usage | None,
        response_model: str | None,
    ) -> None:
        rt = slot.candidate.runtime
        started = slot.started
        rt.in_flight -= 1
        now = self.core.clock.now()
        duration = now - started
        rt.breaker.record_success()
        self.core.record_outcome(rt, True)
        rt.latency.add(duration)
        if ttft is not None:
            rt.ttft.add(ttft)
            rt.first_token.add(ttft)
        rt.served += 1
        self.attempts.append(
            AttemptRecord(rt.id, rt.endpoint.model, None, None, started - self.started, duration)
        )
        if self.core.bus.active:
            prompt, completion = (
                (usage.prompt_tokens, usage.completion_tokens)
                if usage is not None and usage.total_tokens > 0
                else (None, None)
            )
            self.core.bus.emit(
                AttemptFinished(
                    self.request_id,
                    rt.id,
                    rt.endpoint.model,
                    None,
                    None,
                    duration,
                    ttft,
                    slot.hedge,
                    prompt,
                    completion,
                    response_model,
                )
            )

    def _failed(
        self, slot: Slot[M], error: Exception, others_racing: bool, alternative: bool
    ) -> Outcome:
        candidate = slot.candidate
        rt = candidate.runtime
        started = slot.started
        rt.in_flight -= 1
        rules = self.core.rules(self.plan, rt.id)
        classification = classify(error, rules=rules)
        kind = classification.kind
        if kind in BREAKER_FAULTS:
            rt.breaker.record_failure()
            self.core.record_outcome(rt, False)
            rt.failed += 1
        else:
            rt.breaker.release()
        if isinstance(error, UpstreamTimeout) and error.phase == "first_token":
            # Censored: the first token would have come later than this, if at all.
            rt.first_token.add(error.after)
        if kind is ErrorKind.CONTEXT_LENGTH:
            window = rt.endpoint.context_window
            if window is None:
                self._unknown_window_failed = True
            else:
                self._too_small = max(window, self._too_small or 0)
        now = self.core.clock.now()
        decision = self._decide(slot, classification, others_racing, alternative)
        retrying = decision.action is Action.RETRY
        self.attempts.append(
            AttemptRecord(
                rt.id,
                rt.endpoint.model,
                kind.value,
                classification.status,
                started - self.started,
                now - started,
                _short(error),
                decision.delay if retrying else 0.0,
            )
        )
        self.errors.append(error)
        bus = self.core.bus
        if bus.active:
            bus.emit(
                AttemptFinished(
                    self.request_id,
                    rt.id,
                    rt.endpoint.model,
                    kind.value,
                    classification.status,
                    now - started,
                    None,
                    slot.hedge,
                )
            )
            if retrying:
                bus.emit(
                    RetryScheduled(
                        self.request_id, rt.id, kind.value, slot.retries + 1, decision.delay
                    )
                )
            elif decision.action is Action.FAILOVER:
                bus.emit(FailedOver(self.request_id, rt.id, kind.value, decision.reason))
        self.final_kind = kind
        return Outcome(classification, decision)

    def _decide(
        self, slot: Slot[M], classification: Classification, racing: bool, alternative: bool
    ) -> Decision:
        """The policy's decision, then the run's own limits on it: a rejected prefill is
        asked again at once by instruction (learned, so asked once); a retry while a
        hedge still runs is the race going on; a retry while another target is in
        service is a failover (waiting out a backoff costs more than asking the next
        target; the first is retried by later requests); a retry needs the budget."""
        rt = slot.candidate.runtime
        if classification.kind is ErrorKind.PREFILL_REJECTED and rt.prefill_ok is not False:
            rt.prefill_ok = False
            return Decision(Action.RETRY, 0.0, "prefill rejected: asked again by instruction")
        policy = self.core.policy(self.plan, slot.candidate.target)
        decision = policy.decide(
            FailureInfo(classification, slot.retries, rt.id),
            remaining=self.remaining(),
            rng=self.core.rng,
        )
        if decision.action is not Action.RETRY:
            return decision
        if racing:
            return Decision(Action.FAILOVER, 0.0, "a hedge is still running")
        if (
            alternative
            and self.core.options.failover_first
            and slot.candidate.target.retries is None
        ):
            return Decision(Action.FAILOVER, 0.0, "another target is in service")
        if not rt.budget.try_spend():
            return Decision(Action.FAILOVER, 0.0, "retry budget spent")
        return decision

    def error(self) -> FailoverError | NoTargetAvailable:
        """The error for the caller, listing every attempt made."""
        if not self.errors:
            return NoTargetAvailable(self.plan.name, self.plan.excluded)
        kind = self.final_kind or ErrorKind.UNKNOWN
        count = len(self.attempts)
        text = f"{self.plan.name!r}: {count} attempt(s) failed, the last with {kind.value}"
        detail = self._detail(kind)
        if detail is not None:
            text += f": {detail.message}"
        if self.remaining() <= 0:
            text += f"; the deadline of {self.deadline_at - self.started:g}s was reached"
        return FailoverError(text, self.errors, self.attempts, kind, detail)

    def _detail(self, kind: ErrorKind) -> UpstreamDetail | None:
        """The upstream's own words on a request it refused as the caller's fault."""
        if kind not in CALLERS_FAULTS or not self.errors:
            return None
        error = self.errors[-1]
        rt = self.core.runtimes.get(self.attempts[-1].endpoint) if self.attempts else None
        key = rt.endpoint.api_key if rt is not None else None
        if not isinstance(error, UpstreamError):
            return UpstreamDetail(scrub_secrets(str(error), key)[:1000])
        param, code = error_fields(error.body)
        return UpstreamDetail(
            scrub_secrets(error.message, key)[:1000],
            scrub_secrets(param, key) if param else None,
            scrub_secrets(code, key) if code else None,
        )

    def finish(self, endpoint: str | None, ok: bool, *, cancelled: bool = False) -> None:
        """The request ended: answered (`ok`), failed, or `cancelled` by its caller
        (a client that left), which is reported with the kind "cancelled". Only the
        first call counts: a request ends once."""
        if self.finished:
            return
        self.finished = True
        if self.core.bus.active:
            kind = None
            if cancelled:
                kind = "cancelled"
            elif not ok:
                kind = (self.final_kind or ErrorKind.UNKNOWN).value
            self.core.bus.emit(
                RequestFinished(
                    self.request_id,
                    endpoint,
                    ok,
                    len(self.attempts),
                    self.core.clock.now() - self.started,
                    self.stream,
                    kind,
                    self.plan.name,
                )
            )


def _short(error: Exception) -> str:
    if isinstance(error, UpstreamError):
        return error.message[:200]
    return f"{type(error).__name__}: {error}"[:200]
