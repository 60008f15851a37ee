"""An endpoint's `proxy:` and `tls:` are checked when the config loads: each mistake is
a config error naming the field, and a proxy's password never appears in one."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import trustme
import yaml

from bastion import ConfigError
from bastion.config import load_config
from bastion.models.base import Endpoint
from bastion.routing.configure import load_router_config


def config(**settings: Any) -> dict[str, Any]:
    entry = {"id": "a", "provider": "openai", "model": "m", "base_url": "https://x.test/v1"}
    return {"endpoints": [{**entry, **settings}]}


def load_yaml(directory: Path, **settings: Any) -> None:
    """Load the config as `bastion serve` would: from a YAML file."""
    path = directory / "bastion.yaml"
    path.write_text(yaml.safe_dump(config(**settings)))
    load_config(path)


def built(**settings: Any) -> Endpoint:
    [endpoint] = load_router_config(config(**settings)).endpoints
    assert isinstance(endpoint, Endpoint)
    return endpoint


@pytest.fixture(scope="module")
def pems(tmp_path_factory) -> dict[str, str]:
    directory = tmp_path_factory.mktemp("pems")
    ca = trustme.CA()
    leaf = ca.issue_cert("client@example.com")
    other = trustme.CA().issue_cert("someone-else")
    paths = {
        "ca": directory / "ca.pem",
        "cert": directory / "cert.pem",
        "key": directory / "key.pem",
        "other_key": directory / "other.pem",
        "not_pem": directory / "notes.txt",
    }
    ca.cert_pem.write_to_path(str(paths["ca"]))
    leaf.cert_chain_pems[0].write_to_path(str(paths["cert"]))
    leaf.private_key_pem.write_to_path(str(paths["key"]))
    other.private_key_pem.write_to_path(str(paths["other_key"]))
    paths["not_pem"].write_text("not a certificate\n")
    return {name: str(path) for name, path in paths.items()}


def test_without_proxy_or_tls_the_environment_and_system_trust_apply() -> None:
    options = built().transport
    assert (options.proxy, options.trust_env, options.tls.is_default) == (None, True, True)


def test_proxy_false_turns_the_environment_off() -> None:
    options = built(proxy=False).transport
    assert (options.proxy, options.trust_env) == (None, False)


def test_tls_files_reach_the_endpoint(pems) -> None:
    tls = {"ca_file": pems["ca"], "cert_file": pems["cert"], "key_file": pems["key"]}
    options = built(proxy="http://proxy.test:3128", tls=tls).transport
    assert options.proxy == "http://proxy.test:3128"
    assert (options.tls.ca_file, options.tls.cert_file, options.tls.key_file) == (
        pems["ca"],
        pems["cert"],
        pems["key"],
    )
    options.tls.context()  # usable as loaded


@pytest.mark.parametrize(
    ("tls", "says"),
    [
        ({"ca_file": "/no/such/ca.pem"}, r"endpoints\[0\]\.tls\.ca_file: no such file"),
        ({"cert_file": "/no/such/cert.pem"}, r"endpoints\[0\]\.tls\.cert_file: no such file"),
        ({"key_file": "KEY"}, r"endpoints\[0\]\.tls: key_file needs cert_file"),
        ({"ca_file": "NOT_PEM"}, r"endpoints\[0\]\.tls: ca_file: not a usable certificate"),
        (
            {"cert_file": "CERT", "key_file": "OTHER_KEY"},
            r"endpoints\[0\]\.tls: cert_file/key_file: not a usable certificate or key",
        ),
        ({"verify": "sometimes"}, r"endpoints\[0\]\.tls\.verify"),
        ({"ca": "x"}, r"endpoints\[0\]\.tls\.ca"),
    ],
)
def test_unusable_tls_settings_name_the_field(pems, tmp_path, tls, says) -> None:
    names = {"KEY": pems["key"], "NOT_PEM": pems["not_pem"], "CERT": pems["cert"]}
    names["OTHER_KEY"] = pems["other_key"]
    tls = {k: names.get(v, v) if isinstance(v, str) else v for k, v in tls.items()}
    with pytest.raises(ConfigError, match=says):
        load_yaml(tmp_path, tls=tls)


@pytest.mark.parametrize(
    ("proxy", "says"),
    [
        ("socks5://user:${PROXY_PASSWORD:-hunter2}@proxy.test:1080", "must be http://"),
        ("http://user:${PROXY_PASSWORD:-hunter2}@proxy.test:99999", "invalid proxy URL"),
        ("http://", "no host"),
        (True, r"endpoints\[0\]\.proxy"),
    ],
)
def test_unusable_proxy_names_the_field_and_hides_the_password(tmp_path, proxy, says) -> None:
    with pytest.raises(ConfigError, match=says) as caught:
        load_yaml(tmp_path, proxy=proxy)
    assert "endpoints[0].proxy" in str(caught.value)
    assert "hunter2" not in str(caught.value)
