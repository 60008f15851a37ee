"""Fixtures: `bastion serve` as a real subprocess on loopback, in front of the simulated
fleet as a real subprocess.

One fleet and one gateway serve the whole session; `clean_fleet` heals the fleet and
forgets its attempts before every test, and the gateway's breakers and outlier
detectors are set out of reach (`gateway_config`) so that one test's faults do not
take an endpoint out for the next. Tests that stop, reload or multiply a server start
their own (`make_gateway`).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from gateway_support import (
    FleetProcess,
    GatewayProcess,
    Keys,
    MakeGateway,
    gateway_config,
)


@pytest.fixture(scope="session")
def keys() -> Keys:
    return Keys()


@pytest.fixture(scope="session")
def fleet() -> Iterator[FleetProcess]:
    running = FleetProcess()
    yield running
    running.close()


@pytest.fixture(autouse=True)
def clean_fleet(fleet: FleetProcess) -> None:
    fleet.reset()


@pytest.fixture(scope="session")
def gateway(
    fleet: FleetProcess, keys: Keys, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayProcess]:
    """The shared gateway. Tests must leave it as they found it."""
    server = GatewayProcess(gateway_config(fleet), tmp_path_factory.mktemp("gateway"), keys)
    yield server
    server.stop()


@pytest.fixture
def make_gateway(fleet: FleetProcess, keys: Keys, tmp_path: Path) -> Iterator[MakeGateway]:
    """A gateway of the test's own, for tests that reload, stop or multiply it."""
    started: list[GatewayProcess] = []

    def start(config: dict[str, Any] | None = None, **kwargs: Any) -> GatewayProcess:
        directory = tmp_path / f"gateway-{len(started)}"
        directory.mkdir()
        server = GatewayProcess(config or gateway_config(fleet), directory, keys, **kwargs)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()
