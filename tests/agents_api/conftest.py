"""Fixtures for the end-to-end tier: `bastion serve` as a subprocess with agents in its
config and memory in a SQLite file, in front of the simulated fleet as a subprocess.

The processes and their config come from the gateway suite's `gateway_support`, so
that both suites start servers the same way; one fleet and one gateway serve this
whole directory, and `clean_fleet` heals the fleet around each test that uses it.
In-process tests build their own app (`agents_api_support.serve`) and need neither.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

# The gateway suite's process helpers live next to its tests, not in a package.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "gateway"))

from agents_api_support import served_config
from gateway_support import FleetProcess, GatewayProcess, Keys


@pytest.fixture(scope="session")
def keys() -> Keys:
    return Keys()


@pytest.fixture(scope="session")
def fleet() -> Iterator[FleetProcess]:
    running = FleetProcess()
    yield running
    running.close()


@pytest.fixture
def clean_fleet(fleet: FleetProcess) -> Iterator[FleetProcess]:
    """The fleet healed, its attempts forgotten; healed again after the test, so that
    a test's faults (a hang, say) never reach a test that does not ask for this."""
    fleet.reset()
    yield fleet
    fleet.reset()


@pytest.fixture(scope="session")
def served(
    fleet: FleetProcess, keys: Keys, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayProcess]:
    """`bastion serve` with the agents. Tests use thread ids of their own."""
    directory = tmp_path_factory.mktemp("agents-gateway")
    server = GatewayProcess(served_config(fleet, directory / "memory.db"), directory, keys)
    yield server
    server.stop()
