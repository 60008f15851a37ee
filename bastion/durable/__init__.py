"""Durable agent runs on DBOS Transact (opt-in: `durability:` in the config).

An agent run becomes a DBOS workflow whose id is the run id; each model call and each
tool call is a DBOS step, whose outcome is recorded when it finishes and replayed, not
re-executed, when the run resumes. A gateway that restarts with the same replica id
(DBOS's executor id) resumes the runs it was carrying; see `engine`.

DBOS is one instance per process (`DBOS(config=...)` is a singleton), so one process
has one engine: `bastion serve` starts it when its config has `durability:`.
"""

from bastion.durable.engine import DurableEngine, EngineBusy

__all__ = ["DurableEngine", "EngineBusy"]
