"""OutlierDetector: passive ejection over a group, on a fake clock."""

from __future__ import annotations

from typing import Any

import pytest

from bastion.resilience.clock import FakeClock
from bastion.resilience.outlier import Ejected, OutlierConfig, OutlierDetector, Restored


def make(
    members: tuple[str, ...] = ("a", "b", "c", "d"), **config: Any
) -> tuple[OutlierDetector, FakeClock, list[Ejected | Restored]]:
    clock = FakeClock()
    events: list[Ejected | Restored] = []
    detector = OutlierDetector(
        "chat",
        members,
        OutlierConfig(**config),
        clock=clock,
        on_event=events.append,
    )
    return detector, clock, events


def errors(detector: OutlierDetector, name: str, times: int) -> None:
    for _ in range(times):
        detector.record(name, ok=False)


def test_ejected_after_n_consecutive_errors() -> None:
    detector, _, events = make(consecutive_errors=3)
    errors(detector, "a", 2)
    assert not detector.is_ejected("a")
    errors(detector, "a", 1)
    assert detector.is_ejected("a")
    assert detector.ejected() == {"a"}
    assert events == [Ejected("chat", "a", 0.0, 30.0, "3 consecutive errors")]


def test_a_success_resets_the_consecutive_count() -> None:
    detector, _, _ = make(consecutive_errors=3)
    errors(detector, "a", 2)
    detector.record("a", ok=True)
    errors(detector, "a", 2)
    assert not detector.is_ejected("a")


def test_never_more_than_the_max_share_is_ejected() -> None:
    detector, _, _ = make(consecutive_errors=1, max_ejected_share=0.5)
    for name in ("a", "b", "c", "d"):
        errors(detector, name, 1)
    assert detector.ejected() == {"a", "b"}
    assert detector.max_ejected == 2


def test_a_member_held_back_by_the_share_is_ejected_once_a_slot_frees() -> None:
    detector, clock, _ = make(("a", "b"), consecutive_errors=2, base_ejection=10.0)
    errors(detector, "a", 2)
    errors(detector, "b", 5)
    assert detector.ejected() == {"a"}
    clock.advance(10.0)
    errors(detector, "b", 1)
    assert detector.ejected() == {"b"}


def test_a_group_of_one_is_never_ejected_by_default() -> None:
    detector, _, events = make(("solo",), consecutive_errors=1)
    errors(detector, "solo", 10)
    assert not detector.is_ejected("solo")
    assert events == []


def test_a_group_of_one_may_be_ejected_when_the_share_allows_it() -> None:
    detector, _, _ = make(("solo",), consecutive_errors=1, max_ejected_share=1.0)
    errors(detector, "solo", 1)
    assert detector.is_ejected("solo")


def test_restored_after_its_ejection_time() -> None:
    detector, clock, events = make(consecutive_errors=1, base_ejection=30.0)
    errors(detector, "a", 1)
    clock.advance(29.0)
    assert detector.is_ejected("a")
    clock.advance(1.0)
    assert not detector.is_ejected("a")
    assert events[-1] == Restored("chat", "a", 30.0)
    assert detector.ejected() == frozenset()


def test_ejection_time_grows_with_each_ejection_up_to_the_cap() -> None:
    detector, clock, events = make(consecutive_errors=1, base_ejection=10.0, max_ejection=25.0)
    lengths = []
    for _ in range(4):
        errors(detector, "a", 1)
        ejected = events[-1]
        assert isinstance(ejected, Ejected)
        lengths.append(ejected.until - ejected.at)
        clock.advance(ejected.until - clock.now())
        assert not detector.is_ejected("a")
    assert lengths == [10.0, 20.0, 25.0, 25.0]


def test_ejection_time_starts_over_after_a_long_good_spell() -> None:
    detector, clock, events = make(consecutive_errors=1, base_ejection=10.0, max_ejection=25.0)
    errors(detector, "a", 1)
    clock.advance(10.0)
    assert not detector.is_ejected("a")
    clock.advance(25.0)
    errors(detector, "a", 1)
    last = events[-1]
    assert isinstance(last, Ejected) and last.until - last.at == 10.0


def test_errors_while_ejected_do_not_extend_the_ejection() -> None:
    detector, clock, events = make(consecutive_errors=1, base_ejection=10.0)
    errors(detector, "a", 1)
    clock.advance(5.0)
    errors(detector, "a", 3)  # tried anyway in panic mode
    assert [type(e) for e in events] == [Ejected]
    clock.advance(5.0)
    assert not detector.is_ejected("a")


def test_unknown_names_are_ignored() -> None:
    detector, _, events = make(consecutive_errors=1)
    errors(detector, "stranger", 5)
    assert not detector.is_ejected("stranger")
    assert events == []


def test_a_failing_hook_does_not_stop_the_ejection(caplog: pytest.LogCaptureFixture) -> None:
    def broken(event: Ejected | Restored) -> None:
        raise RuntimeError("bus down")

    detector = OutlierDetector(
        "chat", ("a", "b"), OutlierConfig(consecutive_errors=1), clock=FakeClock(), on_event=broken
    )
    errors(detector, "a", 1)
    assert detector.is_ejected("a")
    assert "on_event hook failed" in caplog.text


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("consecutive_errors", 0),
        ("base_ejection", 0.0),
        ("max_ejection", 1.0),
        ("max_ejected_share", 1.5),
    ],
)
def test_config_validation_names_the_field(field: str, value: float) -> None:
    with pytest.raises(ValueError, match=field):
        OutlierConfig(**{field: value})  # type: ignore[arg-type]


def test_an_ejected_member_admits_one_probe_when_it_is_due() -> None:
    detector, clock, _ = make(consecutive_errors=1, probe_after=2.0)
    errors(detector, "a", 1)
    assert not detector.admits("a")
    clock.advance(2.0)
    assert detector.admits("a")  # this call is the probe
    assert not detector.admits("a")  # one probe at a time
    assert detector.is_ejected("a")


def test_a_successful_probe_brings_the_member_back_at_once() -> None:
    detector, clock, events = make(consecutive_errors=1, probe_after=2.0)
    errors(detector, "a", 1)
    clock.advance(2.0)
    assert detector.admits("a")
    detector.record("a", ok=True)
    assert not detector.is_ejected("a")
    assert events[-1] == Restored("chat", "a", 2.0)


def test_failed_probes_come_further_apart() -> None:
    detector, clock, _ = make(consecutive_errors=1, probe_after=2.0, base_ejection=100.0)
    errors(detector, "a", 1)
    probes = []
    for _ in range(300):
        clock.advance(0.25)
        if detector.admits("a"):
            probes.append(clock.now())
            detector.record("a", ok=False)
    assert probes[:4] == [2.0, 6.0, 14.0, 30.0]  # gaps of 2, 4, 8, 16 s
    assert detector.is_ejected("a")


def test_probing_can_be_turned_off() -> None:
    detector, clock, _ = make(consecutive_errors=1, probe_after=0.0)
    errors(detector, "a", 1)
    clock.advance(29.0)
    assert not detector.admits("a")
    clock.advance(1.0)
    assert detector.admits("a")
