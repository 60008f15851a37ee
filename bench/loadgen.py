"""Load generators: `wrk` for plain requests, an aiohttp client for streams and for runs
where every answer must be looked at (success, attempts, time to first byte).

Both are closed loops: N connections, each sending its next request as soon as its
previous answer is in, so the offered load follows the service. wrk is the faster
client by far (C, one thread here); the aiohttp client is used where wrk cannot see
what is needed — wrk reads a stream as one response and cannot time its first byte.
"""

from __future__ import annotations

import asyncio
import math
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import aiohttp

WRK_HINT = (
    "wrk not found: install it (`apt-get install -y wrk`, `brew install wrk`, or build "
    "https://github.com/wg/wrk) to measure plain requests"
)
# A request slower than this counts as an error (wrk's own default is 2 s, too short
# for a 64-deep queue in front of a slow target).
REQUEST_TIMEOUT = 10.0
# wrk prints its own report; this line, from the script's done(), is what we parse.
_WRK_SCRIPT = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = [==[{body}]==]
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("BENCH %d %d %d %d %.0f %.0f\\n", summary.requests,
    summary.duration, e.status, e.connect + e.read + e.write + e.timeout,
    latency:percentile(50), latency:percentile(99)))
end
"""


@dataclass(frozen=True, slots=True)
class Result:
    """One closed-loop run against one target."""

    requests: int  # answered, successful or not
    seconds: float
    errors: int  # non-2xx answers, socket errors and timeouts
    p50_ms: float
    p99_ms: float

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


def wrk_path() -> str | None:
    return shutil.which("wrk")


def run_wrk(url: str, body: bytes, connections: int, seconds: int) -> Result:
    """`wrk -t1 -cN -dS` POSTing `body` to `url`. One thread: the load generator gets one
    core, shared with the fake upstream."""
    wrk = wrk_path()
    if wrk is None:
        raise RuntimeError(WRK_HINT)
    with tempfile.NamedTemporaryFile("w", suffix=".lua") as script:
        script.write(_WRK_SCRIPT.format(body=body.decode()))
        script.flush()
        args = [wrk, "-t1", f"-c{connections}", f"-d{seconds}s"]
        args += [f"--timeout={REQUEST_TIMEOUT:.0f}s", "-s", script.name, url]
        done = subprocess.run(
            args, capture_output=True, text=True, timeout=seconds + REQUEST_TIMEOUT + 30
        )
    line = next((ln for ln in done.stdout.splitlines() if ln.startswith("BENCH ")), None)
    if done.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stderr or done.stdout}")
    requests, micros, status, socket, p50, p99 = (int(float(v)) for v in line.split()[1:])
    return Result(requests, micros / 1e6, status + socket, p50 / 1000, p99 / 1000)


# --- the aiohttp client -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Outcome:
    """One request as the client saw it."""

    ok: bool
    first_byte: float  # seconds from sending to the first body bytes
    total: float  # seconds from sending to the end of the body
    attempts: int | None  # upstream attempts, as the target's headers report them


AttemptsOf = Callable[[Mapping[str, str]], int | None]


def no_attempts(headers: Mapping[str, str]) -> int | None:
    return None


@dataclass(frozen=True, slots=True)
class Run:
    outcomes: list[Outcome]
    seconds: float

    def result(self, *, first_byte: bool = False) -> Result:
        times = [o.first_byte if first_byte else o.total for o in self.outcomes if o.ok]
        errors = sum(not o.ok for o in self.outcomes)
        return Result(
            len(self.outcomes),
            self.seconds,
            errors,
            percentile(times, 50) * 1000,
            percentile(times, 99) * 1000,
        )

    def attempts_per_request(self) -> float | None:
        known = [o.attempts for o in self.outcomes if o.attempts is not None]
        return sum(known) / len(known) if known else None


async def run_clients(
    url: str,
    body: bytes,
    concurrency: int,
    *,
    seconds: float,
    max_requests: int,
    attempts_of: AttemptsOf = no_attempts,
) -> Run:
    """`concurrency` workers POSTing `body` until `seconds` pass or `max_requests` are
    sent, whichever comes first. A stream (text/event-stream) succeeds when it ends
    with `[DONE]`; a plain answer when its status is 200."""
    left = max_requests
    outcomes: list[Outcome] = []
    headers = {"Content-Type": "application/json"}
    connector = aiohttp.TCPConnector(limit=concurrency)
    timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT)

    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

        async def one() -> Outcome:
            sent = time.perf_counter()
            first = 0.0
            try:
                async with session.post(url, data=body, headers=headers) as response:
                    tail = b""
                    async for chunk in response.content.iter_any():
                        first = first or time.perf_counter() - sent
                        tail = (tail + chunk)[-64:]
                    ok = response.status == 200
                    if response.content_type == "text/event-stream":
                        ok = ok and b"[DONE]" in tail
                    attempts = attempts_of(response.headers)
            except (aiohttp.ClientError, TimeoutError):
                ok, attempts = False, None
            total = time.perf_counter() - sent
            return Outcome(ok, first or total, total, attempts)

        async def worker(deadline: float) -> None:
            nonlocal left
            while left > 0 and time.perf_counter() < deadline:
                left -= 1
                outcomes.append(await one())

        started = time.perf_counter()
        await asyncio.gather(*(worker(started + seconds) for _ in range(concurrency)))
        return Run(outcomes, time.perf_counter() - started)


def percentile(values: Sequence[float], q: float) -> float:
    """The nearest-rank percentile (NaN for no values)."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]
