"""The offline demo runs end to end: every request answered while the primary fails."""

from __future__ import annotations

from bastion.demo.run import run_demo


async def test_short_demo_answers_every_request_through_the_outage(capsys):
    code = await run_demo(duration=4.0, rate=25.0, live=False)
    out = capsys.readouterr().out
    assert code == 0, out
    assert "100.00% success" in out
    # The outage happened and was routed around: other endpoints served too.
    served = next(line for line in out.splitlines() if "served by" in line)
    assert "secondary" in served or "local" in served
