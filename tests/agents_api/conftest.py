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

from agents_api_support import agents_section
from gateway_support import FleetProcess, GatewayProcess, Keys, gateway_config


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


def served_config(fleet: FleetProcess, store: Path) -> dict:
    """The gateway suite's config (chat: primary → secondary, fast retries, breakers
    out of reach) with the agents, their memory, and keys scoped to agents: `app` may
    use both agents, `other` only `support`."""
    return gateway_config(
        fleet,
        memory={"store": f"sqlite:///{store}"},
        agents=agents_section(),
        auth={
            "keys": [
                {"key": "${BASTION_ADMIN_KEY}", "name": "ops", "admin": True},
                {"key": "${BASTION_APP_KEY}", "name": "app", "agents": ["support", "failover"]},
                {"key": "${BASTION_OTHER_KEY}", "name": "other", "agents": ["support"]},
            ]
        },
    )


@pytest.fixture(scope="session")
def served(
    fleet: FleetProcess, keys: Keys, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayProcess]:
    """`bastion serve` with the agents. Tests use thread ids of their own."""
    directory = tmp_path_factory.mktemp("agents-gateway")
    server = GatewayProcess(served_config(fleet, directory / "memory.db"), directory, keys)
    yield server
    server.stop()
