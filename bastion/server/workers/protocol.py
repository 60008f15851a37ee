"""What the supervisor and its workers agree on: where the sockets are, how a worker
learns who it is, and the state they share."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import aiohttp

# Set by the supervisor in each worker's environment.
RUNTIME_ENV = "BASTION_RUNTIME_DIR"
INDEX_ENV = "BASTION_WORKER_INDEX"
COUNT_ENV = "BASTION_WORKERS"

# The host part of URLs sent over the Unix sockets (aiohttp wants one; nothing reads it).
LOCAL = "http://bastion"


def hub_socket(runtime: Path) -> Path:
    return runtime / "supervisor.sock"


def worker_socket(runtime: Path, index: int) -> Path:
    return runtime / f"worker-{index}.sock"


@dataclass(frozen=True, slots=True)
class WorkerPlace:
    """This worker's index among `count`, and the supervisor's runtime directory."""

    runtime: Path
    index: int
    count: int

    @classmethod
    def from_environment(cls) -> WorkerPlace:
        environ = os.environ
        return cls(Path(environ[RUNTIME_ENV]), int(environ[INDEX_ENV]), int(environ[COUNT_ENV]))

    def environment(self) -> dict[str, str]:
        return {
            RUNTIME_ENV: str(self.runtime),
            INDEX_ENV: str(self.index),
            COUNT_ENV: str(self.count),
        }


@dataclass(frozen=True, slots=True)
class SharedState:
    """What every worker must agree on, numbered: `config` is the text last PUT (None:
    the file's, as started or re-read on SIGHUP), `isolated` the endpoints taken out by
    hand, `put_at` when the config was PUT. A worker applies a version only once, and
    never an older one after a newer."""

    version: int = 0
    config: str | None = None
    isolated: tuple[str, ...] = ()
    put_at: float | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> SharedState:
        return cls(
            version=int(body["version"]),
            config=body["config"],
            isolated=tuple(body["isolated"]),
            put_at=body["put_at"],
        )


def unix_session(path: Path, timeout: float) -> aiohttp.ClientSession:
    """A client session whose every request goes to the Unix socket at `path`."""
    return aiohttp.ClientSession(
        connector=aiohttp.UnixConnector(path=str(path)),
        timeout=aiohttp.ClientTimeout(total=timeout),
    )
