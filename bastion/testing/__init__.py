"""A simulated upstream fleet: fake LLM providers on loopback, scriptable with faults.

    from bastion.testing import FakeUpstream, Fleet, Fault

    async with FakeUpstream("primary") as up:
        up.script(Fault.status(429, retry_after=1), Fault.ok())
        ...                      # point a client at up.base_url
        assert [a.outcome for a in up.attempts] == ["status", "ok"]

Each upstream speaks OpenAI chat completions and Anthropic messages, streaming or not,
and answers slices of one text so that an answer cut on one upstream can be continued
on another. Used by the test suite, the offline demo and the chaos suite; the core
never imports it. `python -m bastion.testing` runs a fleet in its own process.
"""

from bastion.testing.faults import FAULT_KINDS, Fault
from bastion.testing.fleet import Fleet
from bastion.testing.log import AttemptLog
from bastion.testing.params import FaultError
from bastion.testing.plan import InstructMode, PrefillMode
from bastion.testing.server import DEFAULT_TEXT, FakeUpstream

__all__ = [
    "DEFAULT_TEXT",
    "FAULT_KINDS",
    "AttemptLog",
    "FakeUpstream",
    "Fault",
    "FaultError",
    "Fleet",
    "InstructMode",
    "PrefillMode",
]
