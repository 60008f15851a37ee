"""The processes under test: started pinned, timed to their first healthy answer, read
through /proc (CPU seconds, resident memory) and stopped by their own process id.

Linux only for the readings (`/proc/PID/task/*/schedstat`, `/proc/PID/status`);
elsewhere they read as None and the tables say so.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import IO

from bench._common import pinned, stop_process

# Bastion and the bare proxy are up in well under a second; LiteLLM imports for
# several seconds (about a minute on its very first run, compiling its modules).
START_TIMEOUT = 180.0
HEALTH_POLL = 0.005  # seconds between health probes while a server starts
STOP_TIMEOUT = 10.0
_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def free_port() -> int:
    """A port free a moment ago. Racy by nature; only for servers that need `--port`."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def http_status(url: str, timeout: float = 1.0) -> int | None:
    """The status of `GET url`, or None when nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code
    except (OSError, ValueError):
        return None


@dataclass(frozen=True, slots=True)
class Usage:
    """One reading of a process tree: CPU seconds so far and resident memory now/peak."""

    cpu_seconds: float
    rss_kib: int
    peak_kib: int


class Server:
    """A process under test, started by `start_server`."""

    def __init__(self, name: str, proc: subprocess.Popen[bytes], log: IO[bytes], url: str) -> None:
        self.name = name
        self.proc = proc
        self.url = url
        self.started_in = 0.0  # spawn to first healthy answer, seconds
        self._log = log

    @property
    def pid(self) -> int:
        return self.proc.pid

    def usage(self) -> Usage | None:
        return usage(self.pid)

    def log_tail(self, lines: int = 20) -> str:
        self._log.flush()
        self._log.seek(0)
        text = self._log.read().decode(errors="replace")
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        children = descendants(self.pid)
        stop_process(self.proc, STOP_TIMEOUT)
        for pid in children:  # orphans of a parent that did not take them along
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)


@contextlib.contextmanager
def start_server(
    name: str,
    args: Sequence[str],
    *,
    url: str,
    health_path: str,
    core: int | None,
    env: dict[str, str] | None = None,
    cwd: str | None = None,
) -> Iterator[Server]:
    """Spawn `args` on `core` (it inherits this process's affinity at spawn, so it runs
    pinned from its first instruction), wait until `url + health_path` answers 200 and
    yield it; stopped however the block ends. `started_in` is spawn to that answer."""
    with tempfile.TemporaryFile() as log:
        with pinned(core):
            started = time.perf_counter()
            proc = subprocess.Popen(
                list(args),
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, **(env or {})},
                cwd=cwd,
                start_new_session=True,  # a Ctrl-C reaches the benchmark only; it stops us
            )
        server = Server(name, proc, log, url)
        try:
            deadline = started + START_TIMEOUT
            while http_status(url + health_path) != 200:
                if proc.poll() is not None:
                    raise RuntimeError(f"{name} exited {proc.returncode}:\n{server.log_tail()}")
                if time.perf_counter() > deadline:
                    raise RuntimeError(f"{name} not healthy in {START_TIMEOUT:.0f} s")
                time.sleep(HEALTH_POLL)
            server.started_in = time.perf_counter() - started
            yield server
        finally:
            server.stop()


def usage(pid: int) -> Usage | None:
    """CPU and memory of a process and its children (a server that forks workers is
    charged for them), or None where /proc cannot be read."""
    totals = [_read(p) for p in (pid, *descendants(pid))]
    found = [t for t in totals if t is not None]
    if not found:
        return None
    return Usage(
        cpu_seconds=sum(t.cpu_seconds for t in found),
        rss_kib=sum(t.rss_kib for t in found),
        peak_kib=sum(t.peak_kib for t in found),
    )


def descendants(pid: int) -> list[int]:
    """Every process below `pid`, from /proc (empty where there is no /proc)."""
    parents: dict[int, list[int]] = {}
    try:
        entries = os.listdir("/proc")
    except OSError:
        return []
    for entry in entries:
        if entry.isdigit():
            stat = _stat_fields(int(entry))
            if stat is not None:
                parents.setdefault(int(stat[1]), []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        children = parents.get(todo.pop(), [])
        found += children
        todo += children
    return found


def _stat_fields(pid: int) -> list[str] | None:
    """The fields of /proc/PID/stat after the command name (state is [0], ppid [1])."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as stat:
            text = stat.read()
    except OSError:
        return None
    # The command name is in parentheses and may itself contain spaces or ')'.
    return text[text.rindex(")") + 2 :].split()


def _read(pid: int) -> Usage | None:
    cpu = _runtime(pid)
    if cpu is None:
        fields = _stat_fields(pid)
        if fields is None:
            return None
        # utime and stime are fields 14 and 15 of stat(5), [11] and [12] after the name;
        # in clock ticks (10 ms), hence the nanosecond schedstat first.
        cpu = (int(fields[11]) + int(fields[12])) / _TICKS
    memory = {"VmRSS": 0, "VmHWM": 0}
    try:
        with open(f"/proc/{pid}/status", encoding="ascii", errors="replace") as status:
            for line in status:
                key, _, value = line.partition(":")
                if key in memory:
                    memory[key] = int(value.split()[0])  # kB
    except OSError:
        return None
    return Usage(cpu_seconds=cpu, rss_kib=memory["VmRSS"], peak_kib=memory["VmHWM"])


def _runtime(pid: int) -> float | None:
    """CPU seconds of every thread of `pid` (user and system) from schedstat, which
    counts nanoseconds: at 20 requests a second, clock ticks would be too coarse."""
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
        total = 0
        for task in tasks:
            with open(f"/proc/{pid}/task/{task}/schedstat", encoding="ascii") as stat:
                total += int(stat.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return total / 1e9
