"""`durability:` — agent runs as durable workflows (opt-in; absent means off).

    durability:
      engine: dbos                          # DBOS Transact, the only engine
      database: sqlite:///bastion-runs.db   # or postgresql://user:pw@host/db

`database` is the engine's own system database, where each run's steps are recorded;
replicas that recover one another's runs share one PostgreSQL database.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import field_validator

from bastion.resilience.settings import Frozen


class DurabilitySettings(Frozen):
    """`durability:`; see the module docstring."""

    engine: Literal["dbos"] = "dbos"
    database: str = "sqlite:///bastion-runs.db"

    @field_validator("database")
    @classmethod
    def _scheme(cls, value: str) -> str:
        if not re.match(r"^(sqlite|postgres(ql)?)://", value):
            raise ValueError("database must start with sqlite:// or postgresql://")
        return value


__all__ = ["DurabilitySettings"]
