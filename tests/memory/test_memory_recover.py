"""A replica restarted under its id lets go of what its crashed predecessor held — its
leases and its runs left `running` — and of nothing any other replica holds, on a
shared database too. Run against SQLite, PostgreSQL and Redis."""

from __future__ import annotations

import asyncio

from bastion.memory import INTERRUPTED, Memory, Recovered, RunRecord


def running(run_id: str, thread_id: str | None = None) -> RunRecord:
    return RunRecord(run_id, "support", thread_id, "alice", "running", 1.0, None)


async def test_a_restarted_replica_releases_its_own_leases_and_runs_only(make_store):
    crashed = await make_store(replica_id="replica-a")
    other = await make_store(replica_id="replica-b")  # alive, sharing the data
    for thread in ("t-a", "t-b"):
        await crashed.get_or_create_thread(thread, "alice")
    assert await crashed.acquire_lease("t-a", "turn-1", 60) is True
    assert await other.acquire_lease("t-b", "turn-2", 60) is True
    await crashed.start_run(running("run-a", "t-a"))
    await crashed.start_run(running("run-a-done"))
    await crashed.finish_run("run-a-done", "ok", None)
    await other.start_run(running("run-b", "t-b"))

    restarted = await make_store(replica_id="replica-a")  # the crashed one never closed
    recovered = await restarted.recover()

    assert recovered == Recovered(leases=1, runs=1)
    assert await other.acquire_lease("t-a", "turn-3", 60) is True  # free at once
    assert await restarted.acquire_lease("t-b", "turn-4", 60) is False  # still b's
    interrupted = await restarted.get_run("run-a")
    assert interrupted is not None
    assert (interrupted.status, interrupted.error) == ("error", INTERRUPTED)
    assert interrupted.ended_at is not None and interrupted.replica == "replica-a"
    done = await restarted.get_run("run-a-done")
    assert done is not None and (done.status, done.error) == ("ok", None)
    alive = await restarted.get_run("run-b")
    assert alive is not None and (alive.status, alive.replica) == ("running", "replica-b")
    assert await restarted.recover() == Recovered(leases=0, runs=0)  # nothing left


async def test_a_lease_taken_over_after_it_expired_stays_with_the_new_holder(make_store):
    crashed = await make_store(replica_id="replica-a")
    other = await make_store(replica_id="replica-b")
    assert await crashed.acquire_lease("t", "turn-1", 0.2) is True
    await asyncio.sleep(0.3)  # leases run on the server's clock: real time must pass
    assert await other.acquire_lease("t", "turn-2", 60) is True

    restarted = await make_store(replica_id="replica-a")

    assert (await restarted.recover()).leases == 0
    assert await restarted.acquire_lease("t", "turn-3", 60) is False


async def test_runs_finished_or_released_normally_leave_nothing_to_recover(make_store):
    store = await make_store(replica_id="replica-a")
    memory = Memory(store, wait=0.0)
    await store.start_run(running("run-1", "t"))
    async with memory.turn("t", "alice"):
        pass
    await store.finish_run("run-1", "error", "cancelled")

    restarted = await make_store(replica_id="replica-a")

    assert await restarted.recover() == Recovered(leases=0, runs=0)
    run = await restarted.get_run("run-1")
    assert run is not None and run.error == "cancelled"


async def test_a_turn_in_a_restarted_process_does_not_wait_for_the_old_lease(make_store):
    crashed = await make_store(replica_id="replica-a")
    await crashed.get_or_create_thread("t", "alice")
    await crashed.acquire_lease("t", "the-crashed-turn", 60)  # never released
    restarted = await make_store(replica_id="replica-a")
    memory = Memory(restarted, wait=0.0)  # would be ThreadBusy at once if still held

    await restarted.recover()
    async with memory.turn("t", "alice") as turn:
        await turn.commit([])

    thread = await restarted.get_thread("t")
    assert thread is not None and thread.version == 1


async def test_a_store_given_no_replica_id_recovers_nothing_of_another(make_store):
    named = await make_store(replica_id="replica-a")
    await named.acquire_lease("t", "turn-1", 60)
    await named.start_run(running("run-1"))

    anonymous = await make_store()

    assert anonymous.replica_id != named.replica_id
    assert await anonymous.recover() == Recovered(leases=0, runs=0)
    assert await anonymous.acquire_lease("t", "turn-2", 60) is False


async def test_runs_named_to_keep_stay_running_and_a_later_recover_still_finds_them(make_store):
    crashed = await make_store(replica_id="replica-k")
    for run_id in ("durable-1", "durable-2", "plain"):
        await crashed.start_run(running(run_id))

    restarted = await make_store(replica_id="replica-k")
    assert await restarted.recover(keep=["durable-1", "durable-2", "unknown"]) == Recovered(
        leases=0, runs=1
    )
    for run_id in ("durable-1", "durable-2"):
        kept = await restarted.get_run(run_id)
        assert kept is not None and (kept.status, kept.error) == ("running", None)
    plain = await restarted.get_run("plain")
    assert plain is not None and (plain.status, plain.error) == ("error", INTERRUPTED)

    # A kept run that dies again is still this replica's to let go of.
    again = await make_store(replica_id="replica-k")
    assert await again.recover(keep=["durable-2"]) == Recovered(leases=0, runs=1)
    gone = await again.get_run("durable-1")
    assert gone is not None and gone.status == "error"
