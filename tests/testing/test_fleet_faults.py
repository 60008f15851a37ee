"""Faults as values: construction, JSON round trips, validation that names the field."""

from __future__ import annotations

import json

import pytest

from bastion.testing import FAULT_KINDS, Fault, FaultError

EVERY_FAULT = [
    Fault.ok(),
    Fault.ok(text="hi", latency=0.1, chunk_delay=0.01, chunk_chars=2),
    Fault.ok(tool_calls=[("get_weather", {"city": "Paris"})]),
    Fault.status(429, retry_after=2),
    Fault.status(429, retry_after=1.5, retry_after_date=True, retry_after_ms=1500),
    Fault.status(500, body={"error": {"message": "boom"}}),
    Fault.reset(),
    Fault.hang(),
    Fault.slow_first_token(0.5),
    Fault.cut(10),
    Fault.stall(10, 0.2),
    Fault.malformed(5),
    Fault.missing_done(),
    Fault.no_finish(),
    Fault.inband_error(12, message="Overloaded"),
    Fault.context_length(),
    Fault.context_length(max_chars=100),
    Fault.content_filter(),
    Fault.reject_prefill(),
    Fault.flapping(1.0),
    Fault.flapping(0.5, down=Fault.hang(), up_for=0.5),
]


@pytest.mark.parametrize("fault", EVERY_FAULT, ids=lambda f: f.kind)
def test_every_fault_survives_a_json_round_trip(fault: Fault) -> None:
    assert Fault.from_dict(json.loads(json.dumps(fault.to_dict()))) == fault


def test_every_kind_has_a_constructor() -> None:
    assert {f.kind for f in EVERY_FAULT} == set(FAULT_KINDS)


def test_faults_are_frozen_and_hashable() -> None:
    fault = Fault.cut(3)
    with pytest.raises(AttributeError):
        fault.after_chars = 4  # type: ignore[misc]
    assert hash(fault) == hash(Fault.cut(3))


def test_tool_call_arguments_given_as_a_mapping_become_json_text() -> None:
    fault = Fault.ok(tool_calls=[("lookup", {"id": 7})])
    assert fault.tool_calls == (("lookup", '{"id": 7}'),)


def test_flapping_defaults_to_503_while_down() -> None:
    assert Fault.flapping(1.0).down == Fault.status(503)


def test_unknown_kind_is_rejected_naming_the_field() -> None:
    with pytest.raises(FaultError) as caught:
        Fault.from_dict({"kind": "explode"})
    assert caught.value.field == "kind"
    assert "explode" in str(caught.value)


def test_unknown_parameter_is_rejected_naming_it() -> None:
    with pytest.raises(FaultError) as caught:
        Fault.from_dict({"kind": "cut", "after_chars": 3, "speed": 9})
    assert caught.value.field == "speed"


def test_missing_required_parameter_is_rejected_naming_it() -> None:
    with pytest.raises(FaultError) as caught:
        Fault.from_dict({"kind": "stall", "after_chars": 3})
    assert caught.value.field == "duration"


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"kind": "status", "code": "429"}, "code"),
        ({"kind": "status", "code": 200}, "code"),
        ({"kind": "status", "code": 429, "retry_after": -1}, "retry_after"),
        ({"kind": "status", "code": 429, "retry_after_date": True}, "retry_after_date"),
        ({"kind": "cut", "after_chars": 2.5}, "after_chars"),
        ({"kind": "cut", "after_chars": True}, "after_chars"),
        ({"kind": "ok", "chunk_chars": 0}, "chunk_chars"),
        ({"kind": "ok", "tool_calls": [["f"]]}, "tool_calls[0]"),
        ({"kind": "flapping", "down_for": 1, "down": {"kind": "nope"}}, "down.kind"),
        ({"kind": "flapping", "down_for": 1, "up_for": 0}, "up_for"),
    ],
)
def test_bad_parameter_values_are_rejected_naming_the_field(data: dict, field: str) -> None:
    with pytest.raises(FaultError) as caught:
        Fault.from_dict(data)
    assert caught.value.field == field


def test_from_dict_rejects_a_non_object() -> None:
    with pytest.raises(FaultError) as caught:
        Fault.from_dict(["ok"])  # type: ignore[arg-type]
    assert caught.value.field == "fault"
