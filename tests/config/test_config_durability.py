"""`durability:` is off unless given; given, its engine and database are checked, and a
bad value is a `ConfigError` naming the field."""

from __future__ import annotations

import pytest

from bastion.config import ConfigError, load_config
from bastion.config.durability_schema import DurabilitySettings

BASE = """
endpoints: [{id: a, provider: scripted, model: m}]
"""


def test_absent_means_off() -> None:
    assert load_config(BASE).durability is None


@pytest.mark.parametrize(
    "database", ["sqlite:///runs.db", "sqlite:////var/lib/runs.db", "postgresql://u:p@h/db"]
)
def test_sqlite_and_postgres_databases_are_taken(database: str) -> None:
    config = load_config(BASE + f"durability: {{database: '{database}'}}\n")
    assert config.durability == DurabilitySettings(engine="dbos", database=database)


@pytest.mark.parametrize(
    ("section", "field"),
    [
        ("{database: 'redis://h:6379/0'}", "durability.database"),
        ("{database: 'runs.db'}", "durability.database"),
        ("{engine: temporal}", "durability.engine"),
        ("{dbos: true}", "durability.dbos"),
    ],
)
def test_a_bad_value_names_its_field(section: str, field: str) -> None:
    with pytest.raises(ConfigError, match=field.replace(".", r"\.")):
        load_config(BASE + f"durability: {section}\n")
