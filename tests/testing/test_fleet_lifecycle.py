"""Starting, stopping and running fleets: quick, clean, and from the command line."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
import time

import aiohttp
import pytest

from bastion.testing import FakeUpstream, Fault, Fleet
from bastion.testing.__main__ import parse_args

BODY = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "stream": True}


def other_tasks() -> set[asyncio.Task]:
    return asyncio.all_tasks() - {asyncio.current_task()}


async def test_closing_ends_hung_requests_at_once(http) -> None:
    up = FakeUpstream("primary")
    await up.start()
    up.set_default(Fault.hang())
    request = asyncio.create_task(http.post(up.base_url + "/chat/completions", json=BODY))
    await asyncio.sleep(0.05)
    started = time.monotonic()
    await up.close()
    assert time.monotonic() - started < 0.5
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await request
    assert up.attempts[0].outcome == "hang"
    assert other_tasks() == set()


async def test_closing_ends_stalled_streams_at_once(http) -> None:
    async with FakeUpstream("primary") as up:
        up.set_default(Fault.stall(4, duration=30))
        response = await http.post(up.base_url + "/chat/completions", json=BODY)
        await response.content.readuntil(b"The ")  # the stream is now stalled
        started = time.monotonic()
    assert time.monotonic() - started < 0.5
    with pytest.raises(aiohttp.ClientPayloadError):
        await response.read()
    response.release()
    assert other_tasks() == set()


async def test_close_is_safe_twice_and_before_start() -> None:
    up = FakeUpstream("primary")
    await up.close()
    await up.start()
    await up.close()
    await up.close()


async def test_the_address_is_unknown_until_started() -> None:
    with pytest.raises(RuntimeError, match="not running"):
        _ = FakeUpstream("primary").base_url


async def test_a_fleet_indexes_its_upstreams_by_name() -> None:
    async with Fleet(["primary", "secondary", "local"]) as fleet:
        assert fleet.names == ["primary", "secondary", "local"]
        assert len({u.port for u in fleet}) == 3
        assert fleet.urls()["local"] == fleet["local"].base_url


async def test_a_fleet_refuses_two_upstreams_with_one_name() -> None:
    with pytest.raises(ValueError, match="primary"):
        Fleet(["primary", FakeUpstream("primary")])


async def test_a_fleet_that_cannot_bind_stops_what_it_started() -> None:
    async with FakeUpstream("taken") as holder:
        fleet = Fleet([FakeUpstream("a"), FakeUpstream("b", port=holder.port)])
        with pytest.raises(OSError):
            await fleet.start()
        assert not fleet["a"].running


async def test_the_command_line_rejects_a_bad_upstream_spec() -> None:
    with pytest.raises(SystemExit):
        parse_args(["--upstream", "primary"])


async def test_the_command_line_runs_a_fleet_until_sigterm() -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bastion.testing",
        "--upstream",
        "primary=0",
        "--upstream",
        "secondary=0",
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert process.stdout is not None
        line = await asyncio.wait_for(process.stdout.readline(), 10)
        urls = json.loads(line)
        assert set(urls) == {"primary", "secondary"}
        async with aiohttp.ClientSession() as http:
            root = urls["secondary"].removesuffix("/v1")
            put = http.put(root + "/_fleet/default", json={"kind": "status", "code": 503})
            async with put as response:
                assert response.status == 200
            async with http.post(urls["secondary"] + "/chat/completions", json=BODY) as response:
                assert response.status == 503
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), 5) == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def test_the_command_line_refuses_an_unknown_continuation_behaviour() -> None:
    with pytest.raises(SystemExit):
        parse_args(["--upstream", "a=0", "--instruct", "paraphrase"])
    with pytest.raises(SystemExit):
        parse_args(["--upstream", "a=0", "--overlap-words", "-1"])


async def test_the_command_line_sets_how_cut_answers_are_continued() -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bastion.testing",
        "--upstream",
        "a=0",
        "--prefill",
        "ignore",
        "--instruct",
        "reword",
        "--overlap-words",
        "1",
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert process.stdout is not None
        line = await asyncio.wait_for(process.stdout.readline(), 10)
        root = json.loads(line)["a"].removesuffix("/v1")
        async with aiohttp.ClientSession() as http, http.get(root + "/_fleet/continuation") as got:
            set_by_flags = {"prefill": "ignore", "instruct": "reword", "overlap_words": 1}
            assert await got.json() == set_by_flags
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), 5) == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
