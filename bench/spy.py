"""Where a server process spends its time, from py-spy's sampled stacks.

py-spy is not a Bastion dependency; put it anywhere on PATH (or name it in `PY_SPY`):

    python3 -m venv /tmp/spy && /tmp/spy/bin/pip install py-spy && export PY_SPY=/tmp/spy/bin/py-spy

Sampling reads the process from outside (`--nonblocking`: it is never paused), so the
server runs at full speed while it is profiled, unlike under cProfile.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections import Counter
from dataclasses import dataclass

SPY_HINT = (
    "py-spy not found: `pip install py-spy` into any venv and put it on PATH or set "
    "PY_SPY=/path/to/py-spy (it may need root or ptrace permission)"
)
SAMPLE_RATE = 250  # per second; py-spy's default is 100
# Where a frame comes from, most specific first; the first marker wins. py-spy names
# files from their import root: "(bastion/routing/plan.py:104)", "(asyncio/events.py:80)".
_AREAS = (
    ("(bastion/server/", "bastion.server"),
    ("(bastion/routing/", "bastion.routing"),
    ("(bastion/models/", "bastion.models"),
    ("(bastion/resilience/", "bastion.resilience"),
    ("(bastion/observability/", "bastion.observability"),
    ("(bastion/", "bastion (other)"),
    ("(aiohttp/", "aiohttp"),
    ("(multidict/", "aiohttp"),
    ("(yarl/", "aiohttp"),
    ("(asyncio/", "asyncio"),
    ("(selectors.py", "epoll wait"),
    ("(structlog/", "structlog"),
    ("(bench/", "bench"),
)
# Functions whose inclusive share is listed: the ones a request passes through.
_OWN_CODE = ("(bastion/", "(bench/")


def spy_path() -> str | None:
    return os.environ.get("PY_SPY") or shutil.which("py-spy")


@dataclass(frozen=True, slots=True)
class Profile:
    samples: int
    own: Counter[str]  # function (file:line name) -> samples where it was on top
    top_area: Counter[str]  # area -> samples whose innermost frame is in the area
    inclusive: Counter[str]  # our own functions -> samples with them on the stack


@dataclass(frozen=True, slots=True)
class Recording:
    """py-spy sampling a process, writing its stacks to `path`."""

    proc: subprocess.Popen[str]
    path: str

    def collect(self, timeout: float) -> Profile:
        """Wait for the sampling to end and read what it found."""
        try:
            output, _ = self.proc.communicate(timeout=timeout)
            if self.proc.returncode != 0:
                raise RuntimeError(f"py-spy failed: {output.strip()[-400:]}")
            with open(self.path, encoding="utf-8") as raw:
                return _parse(raw.read())
        finally:
            os.unlink(self.path)


def record(pid: int, seconds: int) -> Recording:
    """Start sampling `pid` for `seconds`, without pausing it."""
    spy = spy_path()
    if spy is None:
        raise RuntimeError(SPY_HINT)
    fd, path = tempfile.mkstemp(suffix=".txt")
    os.close(fd)
    args = [spy, "record", "--pid", str(pid), "--duration", str(seconds), "--rate"]
    args += [str(SAMPLE_RATE), "--nonblocking", "--format", "raw", "--output", path]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    return Recording(proc, path)


def _parse(text: str) -> Profile:
    """py-spy's raw format: one line per distinct stack, `frame;frame;... count`,
    outermost first; a frame is `name (file:line)`."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    top_area: Counter[str] = Counter()
    samples = 0
    for line in text.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        samples += n
        frames = stack.split(";")
        own[_short(frames[-1])] += n
        top_area[_area(frames[-1])] += n
        for function in {_function(f) for f in frames if any(m in f for m in _OWN_CODE)}:
            inclusive[function] += n
    return Profile(samples, own, top_area, inclusive)


def _area(frame: str) -> str:
    return next((area for marker, area in _AREAS if marker in frame), "other")


def _short(frame: str) -> str:
    """`name (file:line)` → `file:line name`."""
    name, _, where = frame.partition(" (")
    return f"{where.rstrip(')')} {name}"


def _function(frame: str) -> str:
    """`name (file:line)` → `file name`: every line of a function counts as one."""
    name, _, where = frame.partition(" (")
    return f"{where.rstrip(')').rpartition(':')[0]} {name}"


def summary(profile: Profile, *, top: int) -> list[str]:
    """The profile as text: where the innermost frames are, by area; our functions by
    inclusive share; then the top functions by own time."""
    total = max(profile.samples, 1)
    areas = ", ".join(f"{a} {n / total:.0%}" for a, n in profile.top_area.most_common())
    lines = [f"  {profile.samples} samples at {SAMPLE_RATE}/s; own time by area: {areas}"]
    lines.append("  inclusive, our code:")
    lines += [f"  {n / total:6.1%}  {f}" for f, n in profile.inclusive.most_common(top)]
    lines.append("  own time:")
    lines += [f"  {n / total:6.1%}  {where}" for where, n in profile.own.most_common(top)]
    return lines
