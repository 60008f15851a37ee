"""Fixtures for the security suite: the simulated fleet and `bastion serve` as real
subprocesses on loopback, with agents, memory and keys of every scope shape, probed
over HTTP as an attacker holding one of those keys would.

One fleet and one gateway serve the directory; every probe must leave the gateway as
it found it (that is what most tests assert). The gateway's environment holds a
secret its config never references, the target of the exfiltration probes.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "agents_api"))

from agents_api_support import agents_section
from gateway_support import FleetProcess, GatewayProcess, Keys, gateway_config

# In the gateway's environment, referenced by no config: a PUT must not reach it.
UNREFERENCED = "BASTION_SECURITY_UNREFERENCED"
# The shortest header-read limit that is still far from any honest client's.
HEADER_TIMEOUT = 1.0


@pytest.fixture(scope="session")
def keys() -> Keys:
    return Keys()


@pytest.fixture(scope="session")
def fleet() -> Iterator[FleetProcess]:
    running = FleetProcess()
    yield running
    running.close()


def security_config(fleet: FleetProcess, store: Path) -> dict[str, Any]:
    """`ops` is admin with no scope; `app` may use the model `chat` only; `other` the
    model `primary` only; there are agents, memory, and a short header timeout."""
    return gateway_config(
        fleet,
        memory={"store": f"sqlite:///{store}"},
        agents=agents_section(),
        server={"header_timeout": HEADER_TIMEOUT},
    )


@pytest.fixture(scope="session")
def secret() -> Iterator[str]:
    value = f"unreferenced-{os.urandom(8).hex()}"
    previous = os.environ.get(UNREFERENCED)
    os.environ[UNREFERENCED] = value
    yield value
    if previous is None:
        os.environ.pop(UNREFERENCED, None)
    else:
        os.environ[UNREFERENCED] = previous


@pytest.fixture(scope="session")
def gateway(
    fleet: FleetProcess, keys: Keys, secret: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayProcess]:
    directory = tmp_path_factory.mktemp("security")
    server = GatewayProcess(security_config(fleet, directory / "memory.db"), directory, keys)
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def clean_fleet(fleet: FleetProcess) -> None:
    fleet.reset()
