"""The `tracing:` section: off by default, errors that name the field, and OpenTelemetry
never loaded unless tracing is on."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from bastion import ConfigError
from bastion.config import load_config

BASE = """\
endpoints:
  - {id: local, provider: scripted, model: tiny, reply: hi, health: false}
"""


def with_tracing(section: str) -> str:
    return BASE + f"tracing: {section}\n"


def test_tracing_is_off_by_default() -> None:
    tracing = load_config(BASE).tracing
    assert not tracing.enabled
    assert (tracing.service_name, tracing.exporter, tracing.sample_ratio) == ("bastion", "otlp", 1)


def test_a_full_section_loads() -> None:
    tracing = load_config(
        with_tracing(
            "{enabled: true, service_name: edge, exporter: otlp,"
            " endpoint: 'http://collector:4318/v1/traces', sample_ratio: 0.25}"
        )
    ).tracing
    assert tracing.enabled and tracing.endpoint == "http://collector:4318/v1/traces"
    assert (tracing.service_name, tracing.sample_ratio) == ("edge", 0.25)


@pytest.mark.parametrize(
    ("section", "field"),
    [
        ("{sample_ratio: 1.5}", "tracing.sample_ratio"),
        ("{exporter: jaeger}", "tracing.exporter"),
        ("{endpoint: 'collector:4318'}", "tracing.endpoint"),
        ("{service_name: ''}", "tracing.service_name"),
        ("{sampel_ratio: 0.5}", "tracing.sampel_ratio"),
    ],
)
def test_a_bad_value_names_its_field_and_line(section: str, field: str) -> None:
    with pytest.raises(ConfigError, match=field.replace(".", r"\.")) as caught:
        load_config(with_tracing(section))
    assert caught.value.line == 3


def test_enabled_without_the_sdk_says_which_extra_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "opentelemetry.sdk.trace", None)  # as if not installed
    with pytest.raises(ConfigError, match=r"tracing\.enabled: .*bastion\[otel\]"):
        load_config(with_tracing("{enabled: true}"))
    load_config(with_tracing("{enabled: false}"))  # off: nothing is needed


def test_otlp_without_its_exporter_package_names_the_exporter_field(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "opentelemetry.exporter.otlp.proto.http", None)
    with pytest.raises(ConfigError, match=r"tracing\.exporter: .*bastion\[otel\]"):
        load_config(with_tracing("{enabled: true, exporter: otlp}"))
    load_config(with_tracing("{enabled: true, exporter: console}"))


def test_a_gateway_with_tracing_off_never_imports_opentelemetry() -> None:
    script = textwrap.dedent(
        f"""
        import sys
        from bastion.config import load_config
        from bastion.server.app import create_app
        from bastion.server.gateway import Gateway

        create_app(Gateway(load_config({BASE!r})))
        loaded = sorted(m for m in sys.modules if m.startswith("opentelemetry"))
        assert not loaded, loaded
        """
    )
    subprocess.run([sys.executable, "-c", script], check=True, timeout=60)
