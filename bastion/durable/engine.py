"""The DBOS engine behind durable agent runs.

One workflow, `bastion.agent_run`, runs any agent of the gateway: its inputs are the
agent's name and the run's inputs (messages, runtime context, run, thread and resource
ids), so that a process that restarts can start it again from what DBOS recorded. The
agent is looked up by name in the live gateway when the workflow starts; a resumed
workflow waits until the gateway has installed its agents (`open`).

Steps go through `DbosJournal` (`DBOS.run_step_async`): DBOS numbers a workflow's steps
in the order they begin and records each outcome, so that on resume the steps that
finished return their recorded outcome and only the step in flight runs again.

Recovery: `DBOS.launch()` re-enqueues the PENDING workflows of its executor id, here
the gateway's replica id. `recover(executor_ids)` takes over those of replicas that
died (`DBOS._recover_pending_workflows`, which DBOS marks internal; DBOS Conductor is
its supported front).

The application version is fixed (`APP_VERSION`) rather than DBOS's hash of the
workflow code: DBOS recovers only workflows of its own version, and a run recorded by
one Bastion release must resume on the next. Bump it when the recorded steps of a run
change meaning.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, TypeVar

import sqlalchemy as sa
import structlog
from dbos import DBOS, DBOSConfig, SetWorkflowID

from bastion.agents.agent import Agent, drive
from bastion.agents.events import AgentResult
from bastion.types import Message

_log = structlog.get_logger("bastion.durable")

T = TypeVar("T")

WORKFLOW = "bastion.agent_run"
APP_VERSION = "bastion-agent-run-1"


class EngineBusy(RuntimeError):
    """A second engine in a process that already has one: DBOS is a process singleton."""


class DbosJournal:
    """Each step of a run as a DBOS step named `name` (`model:N` or `tool:NAME`)."""

    __slots__ = ()

    async def step(self, name: str, call: Callable[[], Awaitable[T]]) -> T:
        async def run() -> T:
            return await call()

        return await DBOS.run_step_async({"name": name}, run)


JOURNAL = DbosJournal()

_engine: DurableEngine | None = None


@DBOS.workflow(name=WORKFLOW)
async def agent_run(
    agent_name: str,
    messages: Sequence[Message],
    context: Mapping[str, Any],
    run_id: str,
    thread_id: str | None,
    resource_id: str | None,
) -> AgentResult:
    """One agent run, start to end: the workflow DBOS records and resumes."""
    engine = _engine
    if engine is None:  # pragma: no cover - DBOS runs workflows only once launched
        raise RuntimeError("durable runs: no engine in this process")
    agent = await engine.agent(agent_name)
    run = agent.resume(messages, context, run_id, thread_id, resource_id, journal=JOURNAL)
    return await drive(run)


class DurableEngine:
    """DBOS launched for this process, with `executor_id` (the gateway's replica id) and
    its system database at `database` (sqlite:///... or postgresql://...).

    `launch` must run on the event loop that serves requests: DBOS starts the
    workflows it recovers on the loop that launched it. Recovered runs wait until
    `open(lookup)` gives them the live agents by name."""

    def __init__(self, database: str, executor_id: str) -> None:
        self.database = database
        self.executor_id = executor_id
        self._lookup: Callable[[str], Agent | None] | None = None
        self._ready = asyncio.Event()
        self._launched = False

    def launch(self) -> None:
        """Create DBOS and launch it (migrations, then recovery of this executor's
        pending runs). EngineBusy if the process already has an engine."""
        global _engine
        if _engine is not None:
            raise EngineBusy("durability: this process already runs a durable engine")
        config: DBOSConfig = {
            "name": "bastion",
            "system_database_url": _sqlalchemy_url(self.database),
            "executor_id": self.executor_id,
            "application_version": APP_VERSION,
            "log_level": "WARNING",
        }
        if self.database.startswith("sqlite:"):
            config["system_database_engine"] = _sqlite_engine(self.database)
        _engine = self
        _DBOS_LOG.addFilter(_ONE_LINE)
        try:
            DBOS(config=config)
            DBOS.launch()
        except BaseException:
            _engine = None
            DBOS.destroy()
            raise
        self._launched = True
        _log.info("durable runs on", engine="dbos", executor=self.executor_id)

    async def pending(self) -> set[str]:
        """The ids of runs DBOS has not finished (any executor): runs the memory store
        must not mark interrupted, since they will resume."""
        statuses = await DBOS.list_workflows_async(
            status=["PENDING", "ENQUEUED"], name=WORKFLOW, load_input=False, load_output=False
        )
        return {s.workflow_id for s in statuses}

    def open(self, lookup: Callable[[str], Agent | None]) -> None:
        """Give runs the live agents (by name); recovered runs start now."""
        self._lookup = lookup
        self._ready.set()

    async def agent(self, name: str) -> Agent:
        """The live agent `name`, once the gateway has installed its agents."""
        await self._ready.wait()
        assert self._lookup is not None
        agent = self._lookup(name)
        if agent is None:
            raise LookupError(f"durable run: the agent {name!r} is no longer configured")
        return agent

    async def generate(
        self,
        agent: Agent,
        messages: Sequence[Message],
        context: Mapping[str, Any],
        run_id: str,
        thread_id: str | None,
        resource_id: str | None,
    ) -> AgentResult:
        """Run `agent` as the durable workflow `run_id` and wait for its result. A
        caller that leaves does not stop the run: it goes on and is recorded."""
        with SetWorkflowID(run_id):
            handle = await DBOS.start_workflow_async(
                agent_run, agent.name, tuple(messages), dict(context), run_id, thread_id,
                resource_id,
            )  # fmt: skip
        return await handle.get_result()

    async def recover(self, executor_ids: Sequence[str]) -> list[str]:
        """Take over the pending runs of other (dead) replicas; their run ids."""
        handles = await asyncio.to_thread(DBOS._recover_pending_workflows, list(executor_ids))
        return [h.get_workflow_id() for h in handles]

    async def close(self) -> None:
        """Shut DBOS down; runs in flight stay pending, to resume at the next launch.
        DBOS joins its background threads (up to a second): off the event loop."""
        global _engine
        if not self._launched:
            return
        self._launched = False
        await asyncio.to_thread(DBOS.destroy)
        if _engine is self:
            _engine = None


class _OneLine(logging.Filter):
    """DBOS's log lines without tracebacks: a failed run is reported by Bastion (the
    run store, the API's error), a failed launch as a ConfigError; a line names the
    exception's type only, since its text may quote a database URL."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info is not None and record.exc_info[1] is not None:
            record.msg = f"{record.getMessage()} {type(record.exc_info[1]).__name__}"
            record.args = None
            record.exc_info = None
            record.exc_text = None
        return True


_DBOS_LOG = logging.getLogger("dbos")
_ONE_LINE = _OneLine()


def _sqlite_engine(url: str) -> sa.Engine:
    """DBOS's SQLite engine (immediate transactions, a long busy timeout, foreign keys),
    in WAL mode with synchronous=NORMAL: a commit appends to the log instead of syncing
    a rollback journal, and readers do not wait for the writer. A commit can be lost
    to a power cut (not to a killed process); the run then resumes from the step before."""
    engine = sa.create_engine(url)

    @sa.event.listens_for(engine, "connect")
    def _setup(dbapi_conn: Any, record: Any) -> None:
        dbapi_conn.isolation_level = "IMMEDIATE"
        for pragma in ("busy_timeout=30000", "foreign_keys=ON", "journal_mode=WAL",
                       "synchronous=NORMAL"):  # fmt: skip
            dbapi_conn.execute(f"PRAGMA {pragma}")

    return engine


def _sqlalchemy_url(url: str) -> str:
    """DBOS's URL for `url`: PostgreSQL through psycopg 3, which DBOS installs."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url.removeprefix(prefix)
    return url
